"""Figures of the closed-form theory (``gradflow theory``): eps(u), predicted lag curves, half-life map.

Plot functions follow the report toolkit (:mod:`gradflow.report.style`): ``f(df, ax=None, **options)
-> ax`` draws only on ``ax`` (a colour bar is an inset of ``ax``) and returns it; with ``ax=None`` it
draws on a new headless Figure. Colour is the neuron kind; shades of it tell several tau apart,
darker for longer tau. Non-finite values are never drawn; a grey note says how many were left out.
The tables come from :mod:`gradflow.theory` (docs/theory.md).

>>> from gradflow.theory import eps_curves
>>> ax = plot_eps_curves(eps_curves(tau=2.0), tau=2.0)
>>> sorted({line.get_label() for line in ax.lines if line.get_label().startswith("CLIF")})
['CLIF, m[t-1] = 0', 'CLIF, m[t-1] = 1', 'CLIF, m[t-1] = 3']
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..theory import gamma_of, resolve_alpha, sg_support
from .style import add_note, axes, left_out, neuron_color, nothing, shade

__all__ = ["plot_eps_curves", "plot_lag_curves", "plot_half_life_map", "fmt_num", "MODEL_LABEL"]

_MODEL_STYLE = {"simulation": ("-", "o"), "independent": ("--", None), "markov": (":", "s")}

#: Legend text of each prediction model.
MODEL_LABEL = {"simulation": "simulation (correlations kept)", "independent": "independent steps",
               "markov": "Markov window chain"}

_LEVELS = ((0.5, "50%"), (0.01, "1%"))


def fmt_num(x: float, digits: int = 3) -> str:
    """A short human number: ``0.5``, ``1.1``, ``-0.25`` (``digits`` significant digits)."""
    return f"{float(x):.{digits}g}"


def _neurons_in(df: pd.DataFrame, neuron: Optional[str]) -> List[str]:
    """The neuron kinds to draw: ``[neuron]``, else those of the table's ``neuron`` column (``[""]``: none)."""
    if neuron is not None:
        return [str(neuron).lower()]
    if "neuron" not in df.columns or df.empty:
        return [""]
    return [str(v) for v in pd.unique(df["neuron"])]


def _select_neuron(df: pd.DataFrame, neuron: str) -> pd.DataFrame:
    """The rows of one neuron kind (all rows when ``neuron`` is empty or the table has no ``neuron`` column)."""
    if not neuron or "neuron" not in df.columns:
        return df
    return df[df["neuron"].astype(str).str.lower() == neuron]


def _window(v_threshold: float, surrogate: Optional[str], alpha: Optional[float]) -> Optional[Tuple[float, float, str]]:
    """Where ``sg`` is non-zero (compact surrogates) or at least half its peak (smooth ones)."""
    if surrogate is None:
        return None
    a = resolve_alpha(surrogate, alpha)
    h = sg_support(surrogate, a)
    if math.isfinite(h):
        return v_threshold - h, v_threshold + h, f"surrogate window |u - θ| ≤ {fmt_num(h)}"
    # half maximum of the smooth surrogates, solved in closed form
    if surrogate == "sigmoid":     # sig(1 - sig) = 1/8  <=>  sig = (2 +- sqrt 2)/4
        half = math.log((2 + math.sqrt(2)) / (2 - math.sqrt(2))) / a
    else:                          # atan: (pi/2 alpha x)^2 = 1
        half = 2.0 / (math.pi * a)
    return v_threshold - half, v_threshold + half, "sg ≥ half its peak"


# ------------------------------------------------------------------------------------------- figures

def plot_eps_curves(
    df: pd.DataFrame,
    ax=None,
    *,
    v_threshold: float = 1.0,
    surrogate: Optional[str] = "rectangle",
    alpha: Optional[float] = None,
    tau: Optional[float] = None,
    lif_soft: bool = True,
    title: Optional[str] = None,
    legend: bool = True,
):
    """The one-step temporal factor against the potential: LIF's ``eps(u)`` and CLIF's ``uu(u; m[t-1])``.

    ``df`` is :func:`gradflow.theory.eps_curves`'s table (``neuron, m_prev, u, eps``). LIF is one
    line in its colour; CLIF one line per ``m_prev``, shades of its colour (darker: larger
    memory). The threshold ``v_threshold`` is a vertical dashed line; the surrogate window of
    ``surrogate``/``alpha`` is shaded (for sigmoid and atan, which have no compact support, the
    band where ``sg`` is at least half its peak; ``surrogate=None`` draws no band). With ``tau``
    given, the leak factor ``gamma = 1 - 1/tau`` is a dotted reference line. ``lif_soft``: whether
    the LIF rows use the soft, not detached reset (only then does the default title say "LIF cuts").
    """
    ax = axes(ax)
    n_bad = 0
    drawn = 0
    win = _window(v_threshold, surrogate, alpha)
    if win is not None:
        ax.axvspan(win[0], win[1], color="0.88", zorder=0, label=win[2])
    ax.axvline(v_threshold, color="0.3", ls="--", lw=1.2, zorder=1, label=f"threshold θ = {fmt_num(v_threshold)}")
    ax.axhline(0.0, color="0.55", lw=0.8, zorder=1)
    if tau is not None:
        g = gamma_of(tau)
        ax.axhline(g, color="0.45", ls=":", lw=1.2, zorder=1)
        ax.annotate(f"γ = {fmt_num(g)}", xy=(0.005, g), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize="small", color="0.3")
    lif = df[df["neuron"].astype(str).str.lower() == "lif"] if "neuron" in df.columns else df.iloc[0:0]
    clif = df[df["neuron"].astype(str).str.lower() == "clif"] if "neuron" in df.columns else df.iloc[0:0]
    series = [(lif, neuron_color("lif"), "LIF", 3.2, 5)]   # LIF on top: where CLIF equals it, LIF shows
    m_vals = sorted(pd.unique(pd.to_numeric(clif["m_prev"], errors="coerce"))) if not clif.empty else []
    for i, m in enumerate(m_vals):
        part = clif[pd.to_numeric(clif["m_prev"], errors="coerce") == m]
        depth = 0.15 + 0.85 * i / max(len(m_vals) - 1, 1)
        series.append((part, shade(neuron_color("clif"), depth), f"CLIF, m[t-1] = {fmt_num(m)}", 2.0, 3))
    for part, color, label, lw, z in series:
        if part.empty:
            continue
        part = part.sort_values("u")
        u = pd.to_numeric(part["u"], errors="coerce").to_numpy(float)
        e = pd.to_numeric(part["eps"], errors="coerce").to_numpy(float)
        ok = np.isfinite(u) & np.isfinite(e)
        n_bad += int((~ok).sum())
        if not ok.any():
            continue
        # NaN at the dropped points breaks the line there instead of bridging the gap
        ax.plot(u, np.where(ok, e, np.nan), color=color, lw=lw, label=label, zorder=z)
        drawn += 1
    ax.set_xlabel("membrane potential before reset u[t] (units of θ)")
    ax.set_ylabel(r"one-step factor $\varepsilon = \partial u[t+1] / \partial u[t]$ (dimensionless)")
    if title is None:
        cut = surrogate == "rectangle" and math.isclose(resolve_alpha(surrogate, alpha), v_threshold)
        title = ("One step back in time: LIF cuts, CLIF flips the sign" if cut and lif_soft
                 else "One step back in time: LIF vs CLIF")
    ax.set_title(title)
    if not drawn:
        nothing(ax)
    elif legend:
        ax.legend(fontsize="small", frameon=False, loc="best")
    if n_bad:
        add_note(ax, f"not drawn: {n_bad} non-finite value{'s' if n_bad != 1 else ''}")
    return ax


def plot_lag_curves(
    df: pd.DataFrame,
    ax=None,
    *,
    neuron: Optional[str] = None,
    models: Optional[Sequence[str]] = None,
    levels: bool = True,
    title: Optional[str] = None,
    legend: bool = True,
):
    """Predicted ``relative_k`` (the share of a source's spatial gradient that survives k steps back)
    over the lag ``k``, one line per tau, log y axis.

    ``df`` is :func:`gradflow.theory.lag_curves`'s table (``tau, model, lag,
    predicted_relative``), optionally with a ``neuron`` column; ``neuron`` keeps one type
    (default: every type in the table, each in its colour). Shades tell tau apart (darker:
    longer memory); line style tells the model (``models``, default all in the table):
    ``simulation`` solid with markers, ``independent`` dashed. ``levels`` draws the 50% and
    1% levels that define half-life and horizon. Zeros cannot be drawn on the log axis and are
    counted in the note with the non-finite values.
    """
    ax = axes(ax)
    n_bad = n_zero = drawn = 0
    neurons = _neurons_in(df, neuron)
    all_models = [str(m) for m in pd.unique(df["model"])] if "model" in df.columns and not df.empty else []
    use_models = [m for m in (models if models is not None else all_models) if m in all_models]
    taus = sorted(float(t) for t in pd.unique(pd.to_numeric(df["tau"], errors="coerce"))
                  if np.isfinite(t)) if not df.empty else []
    colour_handles = []
    for nrn in neurons:
        d = _select_neuron(df, nrn)
        base = neuron_color(nrn or None)
        for i, tau in enumerate(taus):
            color = shade(base, 0.1 + 0.9 * i / max(len(taus) - 1, 1))
            prefix = f"{nrn.upper()} " if len(neurons) > 1 else ""
            shown = False
            for model in use_models:
                part = d[(pd.to_numeric(d["tau"], errors="coerce") == tau) & (d["model"] == model)]
                ok, bad, zero = _draw_curve(ax, part, color, model)
                drawn, n_bad, n_zero, shown = drawn + ok, n_bad + bad, n_zero + zero, shown or bool(ok)
            if shown:
                colour_handles.append(Line2D([], [], color=color, lw=2.5, label=f"{prefix}τ = {fmt_num(tau)}"))
    ax.set_yscale("log")
    if levels and drawn:
        _draw_levels(ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("lag k (time steps)")
    ax.set_ylabel(r"predicted relative gradient relative$_k$ (dimensionless)")
    if title is None:
        who = " and ".join(n.upper() for n in neurons if n) or "neuron"
        title = f"{who}: how far back the gradient reaches"
    ax.set_title(title)
    if not drawn:
        nothing(ax)
    elif legend:
        style_handles = [Line2D([], [], color="0.3", ls=_MODEL_STYLE.get(m, ("-.", None))[0],
                                marker=_MODEL_STYLE.get(m, ("-.", None))[1], lw=1.8, label=MODEL_LABEL.get(m, m))
                         for m in use_models]
        ax.legend(handles=colour_handles + style_handles, fontsize="small", frameon=False, loc="lower left")
    text = left_out(n_bad, n_zero, "zeros (log axis)" if n_zero != 1 else "zero (log axis)")
    if text:
        add_note(ax, text)
    return ax


def _draw_curve(ax, part: pd.DataFrame, color, model: str) -> Tuple[int, int, int]:
    """One predicted profile (``lag``, ``predicted_relative``) in the model's line style.

    Returns (1 if drawn else 0, non-finite values left out, zeros left out of the log axis).
    """
    if part.empty:
        return 0, 0, 0
    part = part.sort_values("lag")
    k = pd.to_numeric(part["lag"], errors="coerce").to_numpy(float)
    r = pd.to_numeric(part["predicted_relative"], errors="coerce").to_numpy(float)
    ok = np.isfinite(k) & np.isfinite(r)
    bad, zero = int((~ok).sum()), int((ok & (r <= 0)).sum())
    ok &= r > 0
    if not ok.any():
        return 0, bad, zero
    ls, marker = _MODEL_STYLE.get(model, ("-.", None))
    ax.plot(k[ok], r[ok], color=color, ls=ls, marker=marker, markersize=5, lw=2.0)
    return 1, bad, zero


def _draw_levels(ax) -> None:
    """Dotted lines at the 50% (half-life) and 1% (horizon) levels, labelled outside the right edge."""
    for y, name in _LEVELS:
        ax.axhline(y, color="0.5", ls=":", lw=1.0, zorder=0)
        ax.annotate(name, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", ha="left", va="center", fontsize="x-small", color="0.35",
                    annotation_clip=False)


def plot_half_life_map(
    df: pd.DataFrame,
    ax=None,
    *,
    neuron: Optional[str] = None,
    value: str = "half_life",
    vmax: Optional[float] = None,
    colorbar: bool = True,
    annotate: bool = True,
    highlight: Optional[Tuple[float, str]] = None,
    title: Optional[str] = None,
):
    """The tau x surrogate map: one cell per pair, coloured and annotated with its half-life.

    ``df`` is :func:`gradflow.theory.half_life_table`'s table (``tau, surrogate, alpha,
    decay_rate, half_life, horizon``), optionally with a ``neuron`` column; ``neuron`` picks one
    type (default: the first in the table). Rows are tau (ascending downwards), columns the
    surrogates in the order of the table. ``value`` may be ``horizon`` or ``decay_rate``
    instead. The colour map runs from white to the neuron's colour, from 0 to ``vmax`` (default:
    the largest finite value; pass a common ``vmax`` to compare two maps). Infinite values
    (no decay) are hatched grey and annotated ``∞``, missing ones ``n/a``. ``highlight``
    ``(tau, surrogate)`` outlines one cell (the chosen settings). The colour bar is an inset of
    ``ax``.
    """
    ax = axes(ax)
    nrn = _neurons_in(df, neuron)[0]
    d = _select_neuron(df, nrn)
    if d.empty or value not in d.columns:
        nothing(ax, "no half-lives to draw")
        ax.set_xticks([])
        ax.set_yticks([])
        return ax
    taus, surs, grid, alphas = _map_grid(d, value)
    finite = np.isfinite(grid)
    top = vmax if vmax is not None else (float(np.nanmax(np.where(finite, grid, np.nan))) if finite.any() else 1.0)
    top = top if top > 0 else 1.0
    base = neuron_color(nrn or None)
    cmap = mcolors.LinearSegmentedColormap.from_list(f"gradflow-{nrn or 'x'}", ["#ffffff", base])
    cmap = cmap.with_extremes(bad="#e6e6e6", over=base)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=top, aspect="auto",
                   origin="upper", interpolation="nearest")
    _cells(ax, grid, cmap, top, annotate)
    if highlight is not None:
        h_tau, h_sur = float(highlight[0]), str(highlight[1])
        if h_tau in taus and h_sur in surs:
            ax.add_patch(Rectangle((surs.index(h_sur) - 0.5, taus.index(h_tau) - 0.5), 1, 1, fill=False,
                                   edgecolor="black", lw=2.5, zorder=4))
    ax.set_xticks(np.arange(len(surs)))
    ax.set_xticklabels([f"{s}\nα = {fmt_num(alphas[s])}" if alphas.get(s) is not None else s for s in surs])
    ax.set_yticks(np.arange(len(taus)))
    ax.set_yticklabels([fmt_num(t) for t in taus])
    ax.set_ylabel("membrane time constant τ (steps)")
    ax.set_xlabel("surrogate gradient")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    unit = {"half_life": "half-life (steps)", "horizon": "1% horizon (steps)",
            "decay_rate": "decay rate per step (1)"}.get(value, value)
    if title is None:
        title = f"{nrn.upper() + ': ' if nrn else ''}{unit}"
    ax.set_title(title)
    if colorbar:
        cax = ax.inset_axes([1.03, 0.0, 0.04, 1.0])
        cb = ax.figure.colorbar(im, cax=cax)
        cb.set_label(unit, fontsize="small")
        cb.outline.set_visible(False)
    n_bad = int(np.isnan(grid).sum())
    if n_bad:
        add_note(ax, f"{n_bad} cell{'s' if n_bad != 1 else ''} n/a")
    return ax


def _map_grid(d: pd.DataFrame, value: str):
    """``(taus, surrogates, grid[tau, surrogate] of value, alpha per surrogate)`` of a half-life table."""
    surs = [str(s) for s in pd.unique(d["surrogate"])]
    taus = sorted(float(t) for t in pd.unique(pd.to_numeric(d["tau"], errors="coerce")) if np.isfinite(t))
    grid = np.full((len(taus), len(surs)), np.nan)
    alphas = {}
    for row in d.itertuples(index=False):
        tau = float(getattr(row, "tau"))
        if tau not in taus:
            continue
        j = surs.index(str(getattr(row, "surrogate")))
        grid[taus.index(tau), j] = float(getattr(row, value))
        alphas.setdefault(surs[j], getattr(row, "alpha", None))
    return taus, surs, grid, alphas


def _cells(ax, grid: np.ndarray, cmap, top: float, annotate: bool) -> None:
    """Hatch infinite cells and write every cell's value (ink chosen for contrast with its colour)."""
    for (i, j), v in np.ndenumerate(grid):
        if np.isposinf(v):
            ax.add_patch(_hatched(i, j))
        if not annotate:
            continue
        if np.isnan(v):
            text, ink = "n/a", "0.35"
        elif np.isinf(v):
            text, ink = "∞", "0.15"
        else:
            text = f"{v:.2f}"
            lum = np.dot(mcolors.to_rgb(cmap(min(v / top, 1.0))), (0.299, 0.587, 0.114))
            ink = "white" if lum < 0.5 else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize="medium", color=ink)


def _hatched(i: int, j: int) -> Rectangle:
    """A grey hatched square over map cell (i, j): an infinite half-life (no decay)."""
    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#e6e6e6", edgecolor="0.6", hatch="//", lw=0, zorder=2)
