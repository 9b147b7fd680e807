"""The ``gradflow theory`` report: closed-form theory drawn for a lecture, no checkpoint needed.

Three tables from :mod:`gradflow.theory` (``docs/theory.md``), the figures drawn from them, and
:func:`write_theory_report`, which writes all of it into one directory atomically::

    out_dir/summary.json            parameters; decay rate, half-life, horizon for the chosen settings
    out_dir/eps_curves.csv          neuron, m_prev, u, eps                (eps_curves, Eq. 3-6)
    out_dir/lag_curves.csv          neuron, tau, model, lag, predicted_relative   (lag_curves, Eq. 17-21)
    out_dir/half_lives.csv          neuron, tau, surrogate, alpha, decay_rate, half_life, horizon
    out_dir/tables/half_lives.md    the half-life table for a slide (Markdown) ...
    out_dir/tables/half_lives.tex   ... and for a paper (booktabs LaTeX)
    out_dir/figures/eps_curves.png|svg       eps(u): LIF vs CLIF at a few m[t-1]
    out_dir/figures/lag_curves.png|svg       predicted relative_k over the lag, several tau, log y
    out_dir/figures/half_life_map.png|svg    tau x surrogate map of half-lives, annotated cells
    out_dir/index.html              one self-contained page (figures as base64 PNG), opens offline

The plot functions follow :mod:`gradflow.report.plots`: ``f(df, ax=None, **options) -> ax`` draws
only on ``ax`` (a colour bar is an inset of ``ax``) and returns it; with ``ax=None`` pyplot's
current axes are used, importing pyplot only then. Colour is the neuron type
(:func:`gradflow.report.plots.neuron_color`); shades of it tell several tau apart, lighter for
shorter tau. Non-finite values are never drawn; a grey note says how many were left out.

The predictions model one layer fed i.i.d. Gaussian currents ``x[t] ~ N(mean, std^2)`` (docs
Eq. 20); half-life and horizon come from the log-linear decay rate of the predicted profile
(Eq. 22-23) under the ``simulation`` model (Eq. 21, all temporal correlations kept).

>>> from matplotlib.figure import Figure
>>> from gradflow.theory import eps_curves
>>> ax = Figure().subplots()
>>> plot_eps_curves(eps_curves(tau=2.0), ax=ax, tau=2.0) is ax
True
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .io.atomic import atomic_directory, check_target
from .report.plots import neuron_color
from .report.tables import to_latex, to_markdown
from .theory import (
    SURROGATES,
    TheoryError,
    clif_jacobian,
    decay_rate,
    eps_curves,
    gamma_of,
    half_life,
    half_life_table,
    horizon,
    lag_curves,
    lif_eps,
    resolve_alpha,
    sg,
    sg_support,
)

__all__ = [
    "DEFAULT_TAUS",
    "FIGURE_NAMES",
    "NEURON_CHOICES",
    "plot_eps_curves",
    "plot_half_life_map",
    "plot_lag_curves",
    "theory_tables",
    "write_theory_report",
]

#: tau values of the curves and the map when the caller gives none (the chosen tau is always added).
DEFAULT_TAUS: Tuple[float, ...] = (1.1, 1.5, 2.0, 3.0, 4.0)

#: Values of the ``neuron`` argument: one type, or LIF and CLIF side by side.
NEURON_CHOICES: Tuple[str, ...] = ("lif", "clif", "both")

#: Figures written under ``figures/`` (``.png`` and ``.svg`` each), in page order.
FIGURE_NAMES: Tuple[str, ...] = ("eps_curves", "lag_curves", "half_life_map")

#: The prediction model behind half-lives and horizons (docs Eq. 21); the curves add ``independent``.
MAIN_MODEL = "simulation"
_MODEL_STYLE = {"simulation": ("-", "o"), "independent": ("--", None), "markov": (":", "s")}
_MODEL_LABEL = {"simulation": "simulation (correlations kept)", "independent": "independent steps",
                "markov": "Markov window chain"}

_NOTE_COLOR = "0.35"
_M_VALUES = (0.0, 1.0, 3.0)          # CLIF memory values m[t-1] drawn in the eps figure
_LEVELS = ((0.5, "50%"), (0.01, "1%"))
_RC = {
    "font.size": 13,
    "axes.titlesize": "large",
    "axes.labelsize": "medium",
    "xtick.labelsize": "medium",
    "ytick.labelsize": "medium",
    "legend.fontsize": "small",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "gradflow",
}
_PNG_DPI = 130


# ------------------------------------------------------------------------------------ drawing helpers

def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt  # lazily: only when the caller wants pyplot's current axes

        ax = plt.gca()
    return ax


def _note(ax, text: str) -> None:
    ax.text(0.99, 0.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small",
            color=_NOTE_COLOR, zorder=5,
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def _nothing(ax, text: str = "no finite data to draw") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="small",
            color=_NOTE_COLOR)


def _tint(color: str, shade: float) -> Tuple[float, float, float]:
    """``color`` lightened (``shade`` 0: a pale tint) or darkened (``shade`` 1), for ordered series."""
    rgb = np.array(mcolors.to_rgb(color))
    shade = float(np.clip(shade, 0.0, 1.0))
    if shade < 0.5:
        mix = 0.4 + 1.2 * shade           # share of the full colour, 0.4 .. 1
        out = mix * rgb + (1 - mix) * np.ones(3)
    else:
        out = rgb * (1 - 0.8 * (shade - 0.5))
    return tuple(np.clip(out, 0.0, 1.0))


def _fmt_num(x: float, digits: int = 3) -> str:
    """A short human number: ``0.5``, ``1.1``, ``-0.25``."""
    return f"{float(x):.{digits}g}"


def _neurons_in(df: pd.DataFrame, neuron: Optional[str]) -> List[str]:
    if neuron is not None:
        return [str(neuron).lower()]
    if "neuron" not in df.columns or df.empty:
        return [""]
    return [str(v) for v in pd.unique(df["neuron"])]


def _select_neuron(df: pd.DataFrame, neuron: str) -> pd.DataFrame:
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
        return v_threshold - h, v_threshold + h, f"surrogate window |u - θ| ≤ {_fmt_num(h)}"
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
    ax = _axes(ax)
    n_bad = 0
    drawn = 0
    win = _window(v_threshold, surrogate, alpha)
    if win is not None:
        ax.axvspan(win[0], win[1], color="0.88", zorder=0, label=win[2])
    ax.axvline(v_threshold, color="0.3", ls="--", lw=1.2, zorder=1, label=f"threshold θ = {_fmt_num(v_threshold)}")
    ax.axhline(0.0, color="0.55", lw=0.8, zorder=1)
    if tau is not None:
        g = gamma_of(tau)
        ax.axhline(g, color="0.45", ls=":", lw=1.2, zorder=1)
        ax.annotate(f"γ = {_fmt_num(g)}", xy=(0.005, g), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize="small", color="0.3")
    lif = df[df["neuron"].astype(str).str.lower() == "lif"] if "neuron" in df.columns else df.iloc[0:0]
    clif = df[df["neuron"].astype(str).str.lower() == "clif"] if "neuron" in df.columns else df.iloc[0:0]
    series = [(lif, neuron_color("lif"), "LIF", 3.2, 5)]   # LIF on top: where CLIF equals it, LIF shows
    m_vals = sorted(pd.unique(pd.to_numeric(clif["m_prev"], errors="coerce"))) if not clif.empty else []
    for i, m in enumerate(m_vals):
        part = clif[pd.to_numeric(clif["m_prev"], errors="coerce") == m]
        shade = 0.15 + 0.85 * i / max(len(m_vals) - 1, 1)
        series.append((part, _tint(neuron_color("clif"), shade), f"CLIF, m[t-1] = {_fmt_num(m)}", 2.0, 3))
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
        _nothing(ax)
    elif legend:
        ax.legend(fontsize="small", frameon=False, loc="best")
    if n_bad:
        _note(ax, f"not drawn: {n_bad} non-finite value{'s' if n_bad != 1 else ''}")
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
    """Predicted ``relative_k = G_k / G_0`` over the lag ``k``, one line per tau, log y axis.

    ``df`` is :func:`gradflow.theory.lag_curves`'s table (``tau, model, lag,
    predicted_relative``), optionally with a ``neuron`` column; ``neuron`` keeps one type
    (default: every type in the table, each in its colour). Shades tell tau apart (darker:
    longer memory); line style tells the model (``models``, default all in the table):
    ``simulation`` solid with markers, ``independent`` dashed. ``levels`` draws the 50% and
    1% levels that define half-life and horizon. Zeros cannot be drawn on the log axis and are
    counted in the note with the non-finite values.
    """
    ax = _axes(ax)
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
            shade = 0.1 + 0.9 * i / max(len(taus) - 1, 1)
            color = _tint(base, shade)
            prefix = f"{nrn.upper()} " if len(neurons) > 1 else ""
            shown = False
            for model in use_models:
                part = d[(pd.to_numeric(d["tau"], errors="coerce") == tau) & (d["model"] == model)]
                if part.empty:
                    continue
                part = part.sort_values("lag")
                k = pd.to_numeric(part["lag"], errors="coerce").to_numpy(float)
                r = pd.to_numeric(part["predicted_relative"], errors="coerce").to_numpy(float)
                ok = np.isfinite(k) & np.isfinite(r)
                n_bad += int((~ok).sum())
                n_zero += int((ok & (r <= 0)).sum())
                ok &= r > 0
                if not ok.any():
                    continue
                ls, marker = _MODEL_STYLE.get(model, ("-.", None))
                ax.plot(k[ok], r[ok], color=color, ls=ls, marker=marker, markersize=5, lw=2.0)
                drawn += 1
                shown = True
            if shown:
                colour_handles.append(Line2D([], [], color=color, lw=2.5, label=f"{prefix}τ = {_fmt_num(tau)}"))
    ax.set_yscale("log")
    if levels and drawn:
        for y, name in _LEVELS:
            ax.axhline(y, color="0.5", ls=":", lw=1.0, zorder=0)
            ax.annotate(name, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                        textcoords="offset points", ha="left", va="center", fontsize="x-small", color="0.35",
                        annotation_clip=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("lag k (time steps)")
    ax.set_ylabel(r"predicted relative gradient $G_k / G_0$ (dimensionless)")
    if title is None:
        who = " and ".join(n.upper() for n in neurons if n) or "neuron"
        title = f"{who}: how far back the gradient reaches"
    ax.set_title(title)
    if not drawn:
        _nothing(ax)
    elif legend:
        style_handles = [Line2D([], [], color="0.3", ls=_MODEL_STYLE.get(m, ("-.", None))[0],
                                marker=_MODEL_STYLE.get(m, ("-.", None))[1], lw=1.8, label=_MODEL_LABEL.get(m, m))
                         for m in use_models]
        ax.legend(handles=colour_handles + style_handles, fontsize="small", frameon=False, loc="lower left")
    parts = []
    if n_bad:
        parts.append(f"{n_bad} non-finite value{'s' if n_bad != 1 else ''}")
    if n_zero:
        parts.append(f"{n_zero} zero{'s' if n_zero != 1 else ''} (log axis)")
    if parts:
        _note(ax, "not drawn: " + ", ".join(parts))
    return ax


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
    ax = _axes(ax)
    nrn = _neurons_in(df, neuron)[0]
    d = _select_neuron(df, nrn)
    if d.empty or value not in d.columns:
        _nothing(ax, "no half-lives to draw")
        ax.set_xticks([])
        ax.set_yticks([])
        return ax
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
    finite = np.isfinite(grid)
    top = vmax if vmax is not None else (float(np.nanmax(np.where(finite, grid, np.nan))) if finite.any() else 1.0)
    top = top if top > 0 else 1.0
    base = neuron_color(nrn or None)
    cmap = mcolors.LinearSegmentedColormap.from_list(f"gradflow-{nrn or 'x'}", ["#ffffff", base])
    cmap = cmap.with_extremes(bad="#e6e6e6", over=base)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=top, aspect="auto",
                   origin="upper", interpolation="nearest")
    for i in range(len(taus)):
        for j in range(len(surs)):
            v = grid[i, j]
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
    if highlight is not None:
        h_tau, h_sur = float(highlight[0]), str(highlight[1])
        if h_tau in taus and h_sur in surs:
            ax.add_patch(Rectangle((surs.index(h_sur) - 0.5, taus.index(h_tau) - 0.5), 1, 1, fill=False,
                                   edgecolor="black", lw=2.5, zorder=4))
    ax.set_xticks(np.arange(len(surs)))
    ax.set_xticklabels([f"{s}\nα = {_fmt_num(alphas[s])}" if alphas.get(s) is not None else s for s in surs])
    ax.set_yticks(np.arange(len(taus)))
    ax.set_yticklabels([_fmt_num(t) for t in taus])
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
        _note(ax, f"{n_bad} cell{'s' if n_bad != 1 else ''} n/a")
    return ax


def _hatched(i: int, j: int) -> Rectangle:
    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#e6e6e6", edgecolor="0.6", hatch="//", lw=0, zorder=2)


# -------------------------------------------------------------------------------------------- tables

def _check_tau(tau: float, name: str = "tau") -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise TheoryError(f"{name} must be a number greater than 1, got {tau!r}.") from None
    if not (math.isfinite(t) and t > 1):
        raise TheoryError(f"{name} must be greater than 1 (gamma = 1 - 1/tau must be positive), got {_fmt_num(t, 6)}.")
    return t


def _params(
    *, tau, taus, v_threshold, surrogate, alpha, neuron, reset, v_reset, detach_reset, max_lag, T, mean, std,
    n, seed,
) -> dict:
    """Validate every option once; returns the resolved parameters (alpha filled in, taus sorted)."""
    tau = _check_tau(tau)
    given = DEFAULT_TAUS if taus is None else taus
    tau_list = sorted({_check_tau(t, "every tau in taus") for t in given} | {tau})
    try:
        theta = float(v_threshold)
    except (TypeError, ValueError):
        raise TheoryError(f"v_threshold must be a positive number, got {v_threshold!r}.") from None
    if not (math.isfinite(theta) and theta > 0):
        raise TheoryError(f"v_threshold must be a positive number, got {v_threshold!r}.")
    a = resolve_alpha(surrogate, alpha)
    neuron = str(neuron).lower()
    if neuron not in NEURON_CHOICES:
        raise TheoryError(f"unknown neuron {neuron!r}; expected one of {', '.join(NEURON_CHOICES)}.")
    reset = str(reset).lower()
    if reset not in ("soft", "hard"):
        raise TheoryError(f"unknown reset {reset!r}; expected soft or hard.")
    if reset == "soft" and v_reset is not None:
        raise TheoryError("v_reset applies to the hard reset only; pass reset='hard' (--reset hard) with it.")
    if reset == "hard":
        if neuron == "clif":
            raise TheoryError("CLIF has a single reset rule (SPEC §1); the hard reset applies to LIF only "
                              "(use --neuron lif or both).")
        v_reset = 0.0 if v_reset is None else float(v_reset)
        if not math.isfinite(v_reset):
            raise TheoryError(f"v_reset must be a finite number, got {v_reset!r}.")
    if int(T) != T or T < 2:
        raise TheoryError(f"T must be an integer of at least 2, got {T!r}.")
    T = int(T)
    if max_lag is not None:
        if int(max_lag) != max_lag or max_lag < 1:
            raise TheoryError(f"max_lag must be a positive integer, got {max_lag!r}.")
        max_lag = int(max_lag)
        if max_lag > T - 1:
            raise TheoryError(f"max_lag must be at most T - 1 = {T - 1}, got {max_lag}; raise T (--T).")
    if not (math.isfinite(float(mean)) and math.isfinite(float(std)) and float(std) > 0):
        raise TheoryError(f"the input current needs a finite mean and a positive std, got ({mean!r}, {std!r}).")
    if int(n) != n or n < 100:
        raise TheoryError(f"n (simulated neurons) must be an integer of at least 100, got {n!r}.")
    return dict(tau=tau, taus=tau_list, v_threshold=theta, surrogate=surrogate, alpha=a, neuron=neuron,
                neurons=["lif", "clif"] if neuron == "both" else [neuron], reset=reset,
                v_reset=v_reset if reset == "hard" else None, detach_reset=bool(detach_reset),
                max_lag=max_lag if max_lag is not None else T - 1, T=T, mean=float(mean), std=float(std),
                n=int(n), seed=int(seed), model=MAIN_MODEL)


def _neuron_v_reset(p: dict, neuron: str) -> Optional[float]:
    # CLIF has its own reset rule; the hard reset (v_reset) is LIF's only
    return p["v_reset"] if neuron == "lif" else None


def theory_tables(
    *,
    tau: float = 2.0,
    taus: Optional[Sequence[float]] = None,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: Optional[float] = None,
    neuron: str = "both",
    reset: str = "soft",
    v_reset: Optional[float] = None,
    detach_reset: bool = False,
    max_lag: Optional[int] = None,
    T: int = 8,
    mean: float = 0.5,
    std: float = 0.5,
    n: int = 20_000,
    seed: int = 0,
) -> Dict[str, object]:
    """Compute the three tables of the report and the numbers of ``summary.json``; writes nothing.

    Options as :func:`write_theory_report`. Returns ``{"eps_curves", "lag_curves", "half_lives"}``
    DataFrames (columns in the module documentation) and ``"summary"``, a JSON-ready dict.
    Raises :class:`gradflow.theory.TheoryError` (a :class:`~gradflow.errors.UsageError`) naming
    the first bad option.
    """
    p = _params(tau=tau, taus=taus, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha, neuron=neuron,
                reset=reset, v_reset=v_reset, detach_reset=detach_reset, max_lag=max_lag, T=T, mean=mean,
                std=std, n=n, seed=seed)
    return _compute(p)


def _compute(p: dict) -> Dict[str, object]:
    """The tables and summary of :func:`theory_tables` for validated parameters."""
    t0 = time.perf_counter()
    sim = dict(mean=p["mean"], std=p["std"], T=p["T"], max_lag=p["max_lag"], v_threshold=p["v_threshold"],
               detach_reset=p["detach_reset"], n=p["n"], seed=p["seed"])
    # eps(u): always LIF against CLIF, the lecture's point (v_reset reaches LIF only)
    eps = eps_curves(tau=p["tau"], v_threshold=p["v_threshold"], surrogate=p["surrogate"], alpha=p["alpha"],
                     v_reset=p["v_reset"], detach_reset=p["detach_reset"], m_values=_M_VALUES)
    lags, maps = [], []
    for nrn in p["neurons"]:
        vr = _neuron_v_reset(p, nrn)
        lc = lag_curves(p["taus"], neuron=nrn, surrogate=p["surrogate"], alpha=p["alpha"], v_reset=vr,
                        models=(MAIN_MODEL, "independent"), **sim)
        lags.append(lc.assign(neuron=nrn))
        for sur in SURROGATES:   # the chosen alpha for the chosen surrogate, defaults for the others
            a = p["alpha"] if sur == p["surrogate"] else None
            maps.append(half_life_table(p["taus"], (sur,), neuron=nrn, model=MAIN_MODEL, alpha=a, v_reset=vr,
                                        **sim).assign(neuron=nrn))
    lag_df = pd.concat(lags, ignore_index=True)[["neuron", "tau", "model", "lag", "predicted_relative"]]
    map_df = pd.concat(maps, ignore_index=True)[["neuron", "tau", "surrogate", "alpha", "decay_rate", "half_life",
                                                 "horizon"]]
    summary = _summary(p, lag_df, eps)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return {"eps_curves": eps, "lag_curves": lag_df, "half_lives": map_df, "summary": summary}


def _profile_numbers(d: pd.DataFrame) -> dict:
    r = decay_rate(d["lag"], d["predicted_relative"])
    return {"decay_rate": r, "half_life": half_life(r), "horizon": horizon(r)}


def _summary(p: dict, lag_df: pd.DataFrame, eps: pd.DataFrame) -> dict:
    """summary.json: parameters, and per neuron the chosen tau's profile and its half-life/horizon."""
    import gradflow

    results = {}
    per_tau = []
    for nrn in p["neurons"]:
        d = lag_df[lag_df["neuron"] == nrn]
        for tau in p["taus"]:
            dt = d[(d["tau"] == tau) & (d["model"] == MAIN_MODEL)].sort_values("lag")
            nums = _profile_numbers(dt)
            per_tau.append(dict(neuron=nrn, tau=tau, **nums))
            if tau == p["tau"]:
                ind = _profile_numbers(d[(d["tau"] == tau) & (d["model"] == "independent")].sort_values("lag"))
                results[nrn] = dict(nums, model=MAIN_MODEL, lags=dt["lag"].astype(int).tolist(),
                                    relative=dt["predicted_relative"].tolist(), independent=ind)
    params = {k: p[k] for k in ("tau", "taus", "v_threshold", "surrogate", "alpha", "neuron", "reset", "v_reset",
                                "detach_reset", "max_lag", "T", "n", "seed", "model")}
    params["current"] = {"mean": p["mean"], "std": p["std"]}
    return {
        "command": "gradflow theory",
        "gradflow_version": gradflow.__version__,
        "parameters": params,
        "gamma": gamma_of(p["tau"]),
        "results": results,
        "per_tau": per_tau,
        "factors": _probe_factors(p),
        "notes": _notes(p),
    }


def _probe_factors(p: dict) -> dict:
    """The one-step factors the page quotes: LIF and CLIF a quarter threshold below theta, and far away."""
    theta, kw = p["v_threshold"], dict(tau=p["tau"], v_threshold=p["v_threshold"], surrogate=p["surrogate"],
                                        alpha=p["alpha"], detach_reset=p["detach_reset"])
    u = 0.75 * theta
    lif = float(lif_eps(u, v_reset=p["v_reset"], **kw))
    clif = {_fmt_num(m): float(clif_jacobian(u, m, **kw).uu) for m in _M_VALUES}
    return {"u": u, "sg": float(sg(u - theta, p["surrogate"], p["alpha"])), "lif": lif, "clif": clif,
            "lif_far_below": float(lif_eps(theta - 3.0 * max(theta, 1.0), v_reset=p["v_reset"], **kw))}


def _notes(p: dict) -> List[str]:
    notes = [f"Predictions for one layer fed i.i.d. N({_fmt_num(p['mean'])}, {_fmt_num(p['std'])}^2) currents, "
             f"T = {p['T']}, simulated on {p['n']} neurons (docs/theory.md Eq. 20-21)."]
    if p["reset"] == "hard":
        notes.append("The hard reset applies to LIF only; CLIF keeps its own reset rule (SPEC §1).")
    if p["surrogate"] in ("sigmoid", "atan"):
        notes.append(f"The {p['surrogate']} surrogate has no compact window: every neuron gets some surrogate "
                     "gradient; the shaded band marks where sg is at least half its peak.")
    return notes


# ---------------------------------------------------------------------------------------- rendering

def _figure_specs(tables: Mapping[str, object], p: dict) -> List[Tuple[str, Tuple[float, float], str, object]]:
    """``(name, size in inches, caption, draw(fig))`` for every figure of the report."""
    eps, lag_df, map_df = tables["eps_curves"], tables["lag_curves"], tables["half_lives"]
    neurons = p["neurons"]
    theta, sur, a = p["v_threshold"], p["surrogate"], p["alpha"]
    finite = pd.to_numeric(map_df["half_life"], errors="coerce")
    finite = finite[np.isfinite(finite)]
    vmax = float(finite.max()) if len(finite) else None

    def draw_eps(fig):
        plot_eps_curves(eps, ax=fig.subplots(), v_threshold=theta, surrogate=sur, alpha=a, tau=p["tau"],
                        lif_soft=p["reset"] == "soft" and not p["detach_reset"])

    def draw_lags(fig):
        axes = fig.subplots(1, len(neurons), sharey=True, squeeze=False)[0]
        for ax, nrn in zip(axes, neurons):
            plot_lag_curves(lag_df, ax=ax, neuron=nrn, title=f"{nrn.upper()}: predicted gradient over the lag")
        for ax in axes[1:]:
            ax.set_ylabel("")

    def draw_map(fig):
        axes = fig.subplots(1, len(neurons), squeeze=False)[0]
        for i, (ax, nrn) in enumerate(zip(axes, neurons)):
            plot_half_life_map(map_df, ax=ax, neuron=nrn, vmax=vmax, highlight=(p["tau"], sur))
            if i:
                ax.set_ylabel("")

    wide = len(neurons) > 1
    return [
        ("eps_curves", (9.0, 5.6),
         f"One-step factor ε = ∂u[t+1]/∂u[t] against the potential u[t] (τ = {_fmt_num(p['tau'])}, "
         f"θ = {_fmt_num(theta)}, {sur} surrogate, α = {_fmt_num(a)}): LIF (blue) and CLIF at three memory "
         "values m[t-1] (orange, darker = larger m).", draw_eps),
        ("lag_curves", (13.0 if wide else 8.0, 5.4),
         "Predicted relative gradient G_k / G_0 over the lag k, one line per τ (darker = longer τ), log scale: "
         "solid = simulation with all temporal correlations, dashed = independent steps. Dotted lines: the 50% "
         "(half-life) and 1% (horizon) levels.", draw_lags),
        ("half_life_map", (13.0 if wide else 7.5, 5.6),
         f"Half-life of the temporal gradient in steps for every τ and surrogate (default α each, "
         f"α = {_fmt_num(a)} for {sur}); the outlined cell is the chosen setting. Same colour scale in both "
         "panels." if wide else
         f"Half-life of the temporal gradient in steps for every τ and surrogate (default α each, "
         f"α = {_fmt_num(a)} for {sur}); the outlined cell is the chosen setting.", draw_map),
    ]


def _render(name: str, size: Tuple[float, float], draw, fig_dir: Path) -> bytes:
    """Draw one figure headless (Agg), save PNG and SVG under ``fig_dir``, return the PNG bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onstrained.?[Ll]ayout.*")
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_PNG_DPI, metadata={"Software": None})
        png = buf.getvalue()
        (fig_dir / f"{name}.png").write_bytes(png)
        fig.savefig(fig_dir / f"{name}.svg", format="svg", metadata={"Date": None})
    return png


def _jsonable(obj):
    """``obj`` with numpy values as Python ones and non-finite floats as None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj if obj is None or isinstance(obj, str) else str(obj)


def _display_half_lives(map_df: pd.DataFrame) -> pd.DataFrame:
    """The half-life table with readable headings (LIF/CLIF in capitals, units in the headings)."""
    return pd.DataFrame({
        "Neuron": map_df["neuron"].str.upper(),
        "tau": map_df["tau"],
        "Surrogate": map_df["surrogate"],
        "alpha": map_df["alpha"],
        "Decay rate per step": map_df["decay_rate"],
        "Half-life (steps)": map_df["half_life"],
        "1% horizon (steps)": map_df["horizon"],
    })


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:72rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.5}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.sub{color:#555;margin-top:0}figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#444;font-size:.92rem}table{border-collapse:collapse;font-size:.92rem;margin:.6rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e3e3e3;text-align:right}th{background:#f5f5f5}
td.l,th.l{text-align:left}code{background:#f3f3f3;padding:0 .2rem;border-radius:3px}
.key{display:flex;gap:2rem;flex-wrap:wrap}.key div{background:#f7f7f7;border-radius:6px;padding:.6rem 1rem}
.key b{font-size:1.3rem}
"""


_NUMERIC_TEXT = re.compile(r"^[-+0-9.e∞ ()]+$|^n/a$")   # numbers as text are right-aligned too


def _num_html(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (float, np.floating)):
        return "∞" if math.isinf(v) else f"{v:.3g}"
    return html.escape(str(v))


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f'<th class="{"" if pd.api.types.is_numeric_dtype(df[c]) else "l"}">{html.escape(str(c))}</th>'
                   for c in df.columns)
    rows = []
    for row in df.itertuples(index=False, name=None):
        cells = "".join(f'<td class="{"l" if isinstance(v, str) and not _NUMERIC_TEXT.match(v) else ""}">'
                        f'{_num_html(v)}</td>' for v in row)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _half_life_grid(map_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (neuron, tau), one column per surrogate: ``"half-life (horizon)"`` as text."""
    def cell(r) -> str:
        return f"{_num_html(float(r['half_life']))} ({_num_html(float(r['horizon']))})"

    surs = list(dict.fromkeys(map_df["surrogate"]))
    alphas = map_df.drop_duplicates("surrogate").set_index("surrogate")["alpha"]
    rows = []
    for (nrn, tau), d in map_df.groupby(["neuron", "tau"], sort=False):
        by = d.set_index("surrogate")
        rows.append([nrn.upper(), float(tau)] + [cell(by.loc[s]) if s in by.index else "n/a" for s in surs])
    return pd.DataFrame(rows, columns=["Neuron", "τ"] + [f"{s} (α = {_fmt_num(alphas[s])})" for s in surs])


def _explanation(p: dict, summary: dict) -> str:
    """The page's short text: what eps is, why LIF cuts, why CLIF flips; numbers for these settings."""
    f = summary["factors"]
    g = summary["gamma"]
    theta, a = p["v_threshold"], p["alpha"]
    e = html.escape
    rect_cut = p["surrogate"] == "rectangle" and math.isclose(a, theta)
    m1 = f["clif"].get("1", next(iter(f["clif"].values())))
    lines = [
        "<h2>What the figures show</h2>",
        "<p><b>The one-step factor ε.</b> Back-propagation through time carries the gradient from step t+1 "
        "to step t through the neuron's own state, multiplied by <code>ε[t] = ∂u[t+1]/∂u[t]</code> at fixed "
        "input. A gradient that started k steps later arrives multiplied by the product of k such factors, "
        "so |ε| &lt; 1 makes it fade geometrically with the lag. For LIF with soft reset "
        "<code>ε = γ (1 − θ·sg(u − θ))</code>, with the leak <code>γ = 1 − 1/τ</code> "
        f"(= {_fmt_num(g)} here): the leak path, minus the reset's surrogate gradient.</p>",
        "<p><b>Why LIF's factor is 0 inside the window.</b> The rectangle surrogate with "
        "<code>α = θ</code> is <code>sg = 1/α = 1/θ</code> inside the window <code>|u − θ| ≤ α/2</code>, "
        "so <code>θ·sg = 1</code> and <code>ε = γ (1 − 1) = 0</code>: the reset's surrogate gradient cancels "
        "the leak exactly. Every neuron inside the window cuts its temporal path; outside it ε = γ. "
        "The window fraction therefore sets how fast the temporal gradient vanishes.</p>",
        "<p><b>CLIF's sign flip.</b> CLIF resets by <code>θ + sigmoid(m)</code> instead of θ, so inside the "
        "window, below threshold, its factor is <code>γ (1 − (θ + sigmoid(m))/α) = −γ·sigmoid(m)/θ</code> "
        "for α = θ: negative, not zero. The gradient is passed on with a flipped sign and a magnitude "
        "between γ/(2θ) and γ/θ, so CLIF keeps temporal gradient exactly where LIF cuts it "
        "(docs/theory.md Eq. 7).</p>",
        f"<p><b>With these settings</b> ({e(p['surrogate'])}, α = {_fmt_num(a)}, θ = {_fmt_num(theta)}, "
        f"{'detached ' if p['detach_reset'] else ''}{e(p['reset'])} reset), at "
        f"<code>u = {_fmt_num(f['u'])}</code> (a quarter threshold below θ, sg = {_fmt_num(f['sg'])}): "
        f"LIF ε = {_fmt_num(f['lif'])}, CLIF ε = {_fmt_num(m1)} for m[t-1] = 1; far below threshold "
        f"LIF ε = {_fmt_num(f['lif_far_below'])} (= γ)."
        + ("" if rect_cut else " These are not the rectangle, α = θ values of the text above, so the factor "
           "inside the window is reduced rather than cut.") + "</p>",
        "<p><b>Decay with the lag.</b> The second figure predicts <code>relative_k = G_k/G_0</code>, the "
        "share of the gradient that travels k steps back, for a layer driven by i.i.d. Gaussian currents; "
        "the half-life is the lag where it falls to 50%, the horizon where the temporal contribution "
        "falls under 1% of the spatial one (from a log-linear fit of the profile, docs Eq. 22-23).</p>",
    ]
    return "\n".join(lines)


def _page(p: dict, summary: dict, specs, pngs: Mapping[str, bytes], map_df: pd.DataFrame) -> str:
    e = html.escape
    key = []
    for nrn, res in summary["results"].items():
        key.append(f"<div>{e(nrn.upper())} at τ = {_fmt_num(p['tau'])}<br>"
                   f"half-life <b>{_num_html(res['half_life'])}</b> steps · "
                   f"horizon <b>{_num_html(res['horizon'])}</b> steps</div>")
    params = [("τ (chosen)", _fmt_num(p["tau"])), ("τ (curves)", ", ".join(_fmt_num(t) for t in p["taus"])),
              ("threshold θ", _fmt_num(p["v_threshold"])), ("surrogate", p["surrogate"]),
              ("α", _fmt_num(p["alpha"])), ("neuron", p["neuron"]),
              ("reset", p["reset"] + (f" (v_reset = {_fmt_num(p['v_reset'])})" if p["v_reset"] is not None else "")),
              ("detach_reset", str(p["detach_reset"])), ("T / max lag", f"{p['T']} / {p['max_lag']}"),
              ("input current", f"i.i.d. N({_fmt_num(p['mean'])}, {_fmt_num(p['std'])}²) per step"),
              ("simulation", f"{p['n']} neurons, seed {p['seed']}, model {p['model']}")]
    param_rows = "".join(f'<tr><td class="l">{e(k)}</td><td class="l">{e(v)}</td></tr>' for k, v in params)
    figs = []
    for i, (name, _size, caption, _draw) in enumerate(specs, 1):
        b64 = base64.b64encode(pngs[name]).decode("ascii")
        figs.append(f'<figure id="{e(name)}"><img alt="{e(name.replace("_", " "))}" '
                    f'src="data:image/png;base64,{b64}"><figcaption>Figure {i}. {e(caption)}</figcaption></figure>')
    notes = "".join(f"<li>{e(n)}</li>" for n in summary["notes"])
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gradflow theory: temporal gradient decay in LIF and CLIF</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Temporal gradient decay: closed-form theory</h1>",
        f'<p class="sub">gradflow {e(summary["gradflow_version"])} · <code>gradflow theory</code> · no checkpoint '
        "needed</p>",
        f'<div class="key">{"".join(key)}</div>',
        _explanation(p, summary),
        "<h2>Figures</h2>", *figs,
        "<h2>Half-lives</h2>",
        "<p>Half-life in steps, and in brackets the 1% horizon, for every τ and surrogate "
        "(full precision: <code>half_lives.csv</code>, <code>tables/half_lives.md</code>, <code>.tex</code>).</p>",
        _html_table(_half_life_grid(map_df)),
        "<h2>Parameters</h2>", f"<table><tbody>{param_rows}</tbody></table>",
        f"<ul>{notes}</ul>",
        "</body></html>",
    ])


# ------------------------------------------------------------------------------------------ writing

def _write_into(tmp: Path, tables: Mapping[str, object], p: dict) -> None:
    for name in ("eps_curves", "lag_curves", "half_lives"):
        tables[name].to_csv(tmp / f"{name}.csv", index=False)
    (tmp / "tables").mkdir()
    pretty = _display_half_lives(tables["half_lives"])
    (tmp / "tables" / "half_lives.md").write_text(to_markdown(pretty) + "\n", encoding="utf-8")
    (tmp / "tables" / "half_lives.tex").write_text(
        to_latex(pretty, caption="Predicted half-life and 1% horizon of the temporal gradient (gradflow theory).",
                 label="tab:gradflow-half-lives") + "\n", encoding="utf-8")
    fig_dir = tmp / "figures"
    fig_dir.mkdir()
    specs = _figure_specs(tables, p)
    pngs = {name: _render(name, size, draw, fig_dir) for name, size, _caption, draw in specs}
    written = [q.relative_to(tmp).as_posix() for q in tmp.rglob("*") if q.is_file()]
    summary = dict(tables["summary"], files=sorted(written + ["index.html", "summary.json"]))
    (tmp / "index.html").write_text(_page(p, summary, specs, pngs, tables["half_lives"]), encoding="utf-8")
    (tmp / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2, allow_nan=False) + "\n",
                                      encoding="utf-8")


def write_theory_report(
    out_dir: Union[str, os.PathLike],
    *,
    tau: float = 2.0,
    taus: Optional[Sequence[float]] = None,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: Optional[float] = None,
    neuron: str = "both",
    reset: str = "soft",
    v_reset: Optional[float] = None,
    detach_reset: bool = False,
    max_lag: Optional[int] = None,
    T: int = 8,
    mean: float = 0.5,
    std: float = 0.5,
    n: int = 20_000,
    seed: int = 0,
    force: bool = False,
) -> Dict[str, pd.DataFrame]:
    """Write the theory report directory (layout in the module documentation); returns its tables.

    tau: the chosen membrane time constant (> 1), the one ``summary.json`` reports; taus: the tau
    values of the curves and the half-life map (default :data:`DEFAULT_TAUS`; ``tau`` is always
    added). v_threshold: theta. surrogate, alpha: the surrogate of the curves (alpha None: its
    default); the map shows every surrogate, at its default alpha except the chosen one. neuron:
    ``lif``, ``clif`` or ``both``. reset: ``soft`` or ``hard`` (LIF only; ``v_reset`` default 0);
    detach_reset: stop the gradient through the spike in the reset. max_lag: the longest lag
    predicted (default ``T - 1``). T, mean, std, n, seed: the simulated layer, ``n`` neurons fed
    i.i.d. ``N(mean, std^2)`` currents for ``T`` steps.

    Everything is written into a temporary ``.<name>.tmp-XXXX`` beside ``out_dir`` and renamed
    into place when complete; on any error (also Ctrl-C, and SIGTERM from the main thread) the
    temporary directory is removed and nothing is left behind. An existing ``out_dir`` raises
    :class:`~gradflow.errors.UsageError` unless ``force``; even then it is replaced only if it is
    empty or a previous report (has ``summary.json`` or ``index.html``). Bad options raise
    :class:`gradflow.theory.TheoryError` (a UsageError) before anything is written.

    Returns ``{"eps_curves", "lag_curves", "half_lives"}``, the DataFrames of the CSVs. The path
    written is ``Path(out_dir)``; ``summary.json`` there holds the summary.
    """
    p = _params(tau=tau, taus=taus, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha, neuron=neuron,
                reset=reset, v_reset=v_reset, detach_reset=detach_reset, max_lag=max_lag, T=T, mean=mean,
                std=std, n=n, seed=seed)
    out = Path(out_dir).expanduser().absolute()
    check_target(out, force)  # refuse early, before computing anything
    tables = _compute(p)
    with atomic_directory(out, force=force) as tmp:
        _write_into(tmp, tables, p)
    return {k: tables[k] for k in ("eps_curves", "lag_curves", "half_lives")}
