"""Figures of the gradient flow per layer and per time step, one function per figure.

Every plot function is ``f(df, ax=None, **options) -> ax``: it draws only on ``ax`` and returns it;
with ``ax=None`` it draws on a new headless :class:`matplotlib.figure.Figure` (no pyplot). The grid
helper :func:`plot_norms_grid` takes a Figure and fills it with one small axes per layer. The pair
heatmaps and the lag decay are in :mod:`gradflow.report.lag_plots`.

Colour encodes the neuron kind (:mod:`gradflow.report.style`); line style the gradient part (spatial
solid, temporal dashed); several runs of one kind differ by marker and hatch. Bars carry the 95%
bootstrap interval of the summary (``<column>_ci_low`` / ``_ci_high``) as error bars. Non-finite values
are never drawn and never raise: a grey note says how many were left out.

>>> from matplotlib.figure import Figure
>>> import pandas as pd
>>> ps = pd.DataFrame({"step": 0, "layer": "sn1", "layer_index": 0, "neuron": "clif", "t": [0, 1],
...     "firing_rate": 0.2, "window_fraction": 0.4, "grad_total_norm": [1.0, 1.0],
...     "grad_spatial_norm": [0.5, 1.0], "grad_temporal_norm": [0.5, float("nan")],
...     "temporal_zero_fraction": [0.0, 1.0], "nonfinite": [0, 3]})
>>> ax = Figure().subplots()
>>> plot_norms_over_t(ps, ax=ax) is ax
True
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ._common import as_float, layer_order, pick_layer, select_run
from .style import (
    NOTE_COLOR,
    axes,
    count_nonfinite,
    add_figure_note,
    left_out,
    add_note,
    nothing,
    run_styles,
)
from .summary import summarize

__all__ = [
    "plot_norms_over_t",
    "plot_norms_grid",
    "plot_temporal_share",
    "plot_window_firing",
    "grid_shape",
    "fixed_margins",
    "figure_legend",
    "layer_ticks",
    "style_legend",
]

_NORM_LABEL = r"gradient norm $\|\partial L/\partial u[t]\|_2$"


def layer_ticks(ax, layers: Sequence[str]) -> None:
    """Layer names as x tick labels at 0, 1, ...; rotated when there are many or they are long."""
    ax.set_xticks(np.arange(len(layers)))
    rotate = len(layers) > 6 or max((len(str(l)) for l in layers), default=0) * len(layers) > 60
    ax.set_xticklabels([str(l) for l in layers], rotation=45 if rotate else 0,
                       ha="right" if rotate else "center", rotation_mode="anchor" if rotate else "default")
    ax.set_xlim(-0.6, max(len(layers) - 0.4, 0.6))


# ------------------------------------------------------------------------ spatial vs temporal over t

def plot_norms_over_t(
    per_step: pd.DataFrame,
    ax=None,
    *,
    layer: Optional[str] = None,
    total: bool = False,
    logy: bool = False,
    legend: bool = True,
    title: Optional[str] = None,
    note: bool = True,
):
    """Spatial ``||P[t]||`` (solid) and temporal ``||temporal[t]||`` (dashed) norms over t, one layer.

    ``per_step`` is the recorder's table (docs/reference.md) (several runs overlaid when it has a ``run`` column). Values are
    the mean over recorded steps of the finite norms at each t. ``layer`` defaults to the first layer;
    ``total=True`` adds ``||delta[t]||`` dotted; ``logy=True`` uses a log axis (zeros left out, noted).
    ``note=False`` leaves out the note on values not drawn (the grid puts one note on the figure).
    """
    ax = axes(ax)
    d, layer = pick_layer(per_step, layer)
    parts = [("spatial", "grad_spatial_norm", "-"), ("temporal", "grad_temporal_norm", "--")]
    if total:
        parts.append(("total", "grad_total_norm", ":"))
    n_bad = n_zero = drawn = 0
    styles = run_styles(d) if not d.empty else []
    for st in styles:
        r = select_run(d, st["run"])
        t = as_float(r["t"])
        for name, col, ls in parts:
            v = as_float(r[col])
            ok = np.isfinite(v) & np.isfinite(t)
            n_bad += int((~ok).sum())
            if logy:
                n_zero += int((ok & (v <= 0)).sum())
                ok &= v > 0
            if not ok.any():
                continue
            m = pd.Series(v[ok]).groupby(t[ok]).mean()
            prefix = f"{st['label']} " if len(styles) > 1 else ""
            ax.plot(m.index, m.to_numpy(), linestyle=ls, marker=st["marker"], markersize=4,
                    color=st["color"], label=f"{prefix}{name}", lw=1.6)
            drawn += 1
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("time step t (steps)")
    ax.set_ylabel(_NORM_LABEL)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else f"{layer}: spatial vs temporal gradient"
                 if layer is not None else "spatial vs temporal gradient")
    if not drawn:
        nothing(ax)
    elif legend:
        ax.legend(fontsize="small", frameon=False)
    text = left_out(n_bad, n_zero, "zeros (log axis)")
    if text and note:
        add_note(ax, text)
    return ax


def grid_shape(n: int, ncols: Optional[int], default: int) -> Tuple[int, int]:
    """``(rows, columns)`` of a grid of ``n`` axes, ``ncols`` (or ``default``) to a row."""
    n = max(n, 1)
    ncols = max(1, min(ncols or default, n))
    return math.ceil(n / ncols), ncols


def fixed_margins(fig, *, left=0.95, right=0.3, bottom=0.75, top=1.15, wspace=0.5, hspace=0.62) -> bool:
    """Lay a grid out with margins in inches when ``fig`` has no layout engine (fast for many axes).

    Returns True when it did (False: the figure's own layout engine, e.g. constrained, is in charge).
    """
    if fig.get_layout_engine() is not None:
        return False
    W, H = fig.get_size_inches()
    fig.subplots_adjust(left=min(left / W, 0.4), right=max(1 - right / W, 0.6),
                        bottom=min(bottom / H, 0.4), top=max(1 - top / H, 0.6),
                        wspace=wspace, hspace=hspace)
    return True


def plot_norms_grid(per_step: pd.DataFrame, fig, *, ncols: Optional[int] = None, logy: bool = False,
                    total: bool = False) -> List:
    """Fill ``fig`` with one small :func:`plot_norms_over_t` axes per layer; returns the axes used.

    Runs are overlaid in each axes (colour = neuron type). Axes are ordered by ``layer_index``, four to a
    row by default; one legend for the figure sits at the top.
    """
    layers = layer_order(per_step)
    nrows, ncols = grid_shape(len(layers), ncols, 4)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    fixed = fixed_margins(fig)
    used = []
    for i, ax in enumerate(grid.flat):
        if i >= len(layers):
            ax.set_visible(False)
            continue
        plot_norms_over_t(per_step, ax=ax, layer=layers[i], legend=False, logy=logy, total=total,
                          title=str(layers[i]), note=False)
        # A fixed title position skips matplotlib's per-draw search for overlaps (slow with many axes).
        ax.set_title(str(layers[i]), fontsize="medium", y=1.0, pad=4)
        if i % ncols:
            ax.set_ylabel("")
        if i + ncols < len(layers):
            ax.set_xlabel("")
        used.append(ax)
    if not layers:
        nothing(grid.flat[0], "no layers recorded")
        used.append(grid.flat[0])
    handles = style_legend(per_step, [("spatial", "-"), ("temporal", "--")] + ([("total", ":")] if total else []))
    H = fig.get_size_inches()[1]
    if handles:
        figure_legend(fig, handles, y=1 - 0.5 / H if fixed else None)
    fig.suptitle(r"Spatial (solid) and temporal (dashed) gradient norms over time steps",
                 **({"y": 1 - 0.1 / H, "va": "top"} if fixed else {}))
    cols = ["grad_spatial_norm", "grad_temporal_norm"] + (["grad_total_norm"] if total else [])
    n_bad = count_nonfinite(per_step, cols)
    if n_bad:
        add_figure_note(fig, f"not drawn: {n_bad} non-finite norm value{'s' if n_bad != 1 else ''}")
    return used


def figure_legend(fig, handles: List, y: Optional[float] = None) -> None:
    """One legend for ``fig`` above its axes: at height ``y`` (fixed margins), else placed "outside"
    by the constrained layout engine (matplotlib >= 3.7), else in the upper right corner."""
    if y is not None:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, y), ncol=min(len(handles), 6),
                   frameon=False)
        return
    if isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        try:
            fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 6), frameon=False)
            return
        except (ValueError, TypeError):
            pass
    fig.legend(handles=handles, loc="upper right", ncol=1, frameon=False, fontsize="small")


def style_legend(df: pd.DataFrame, parts: Sequence[Tuple[str, str]]) -> List:
    """Legend handles: one per run (colour, marker), then one grey line per ``(name, linestyle)``."""
    handles = []
    if df.empty:
        return handles
    styles = run_styles(df)
    for st in styles:
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], lw=2, label=st["label"]))
    for name, ls in parts:
        handles.append(Line2D([], [], color="0.3", linestyle=ls, lw=1.6, label=name))
    return handles


# ---------------------------------------------------------------------------------- shares per layer

def _as_summary(df: pd.DataFrame) -> pd.DataFrame:
    """A summary table: ``df`` itself, or :func:`~gradflow.report.summarize` of a ``per_step`` table."""
    if "grad_spatial_norm" in df.columns:
        return summarize({"per_step": df}, n_resamples=200)
    return df


def _per_layer_values(s: pd.DataFrame, column: str, layers: Sequence[str]) -> np.ndarray:
    """``column`` of a summary for each of ``layers``, in that order (NaN where a layer or the column is missing)."""
    d = s.drop_duplicates("layer").set_index("layer")
    if column not in d.columns:
        return np.full(len(layers), np.nan)
    return np.array([as_float([d.at[l, column]])[0] if l in d.index else np.nan for l in layers])


_SHARE_LABELS = {
    "temporal_share": ("temporal share (%, sign-blind)",
                       "Temporal share of the input-current gradient per layer (sign-blind)"),
    "weight_temporal_projection": ("temporal projection (%)",
                                   "Weight update carried by the temporal gradient, per layer"),
    "weight_temporal_share": ("weight temporal share (%, sign-blind)",
                              "Temporal share of the weight gradient per layer (sign-blind)"),
}


def _value_labels(ax, xs, v, lo, hi) -> None:
    """Each bar's percentage just beyond its bar and its interval (above for positive, below for negative)."""
    for x, p, a, b in zip(xs, v, lo, hi):
        if not np.isfinite(p):
            continue
        up = p >= 0
        y = max(p, b) if up and np.isfinite(b) else min(p, a) if not up and np.isfinite(a) else p
        ax.annotate(f"{p:.0f}%" if abs(p) >= 1 or p == 0 else f"{p:.1f}%", (x, y), xytext=(0, 2 if up else -2),
                    textcoords="offset points", ha="center", va="bottom" if up else "top", fontsize="x-small")


def _error_bars(ax, xs, v, lo, hi, color) -> int:
    """Draw the intervals ``[lo, hi]`` (percent) at ``xs`` where both bounds are finite; return how many."""
    ok = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.errorbar(xs[ok], v[ok], yerr=np.vstack([v[ok] - lo[ok], hi[ok] - v[ok]]).clip(min=0),
                    fmt="none", ecolor="0.15", elinewidth=1.0, capsize=2.5, zorder=4)
    return int(ok.sum())


def plot_temporal_share(
    df: pd.DataFrame,
    ax=None,
    *,
    column: str = "temporal_share",
    title: Optional[str] = None,
    values: Optional[bool] = None,
):
    """A per-layer share as bars (grouped by run in comparisons), in percent, with 95% error bars.

    ``df`` is a :func:`~gradflow.report.summarize` table (or a ``per_step`` table, summarised here).
    ``column``: ``temporal_share`` (sign-blind, default), ``weight_temporal_projection`` (signed: may be
    negative, a zero line is drawn) or ``weight_temporal_share``. The interval columns
    ``<column>_ci_low`` / ``_ci_high`` become error bars where present. Layers whose value is missing
    or not finite get an ``n/a`` mark. ``values`` prints the percentage on each bar (default: when
    there are at most 24 bars).
    """
    ax = axes(ax)
    s = _as_summary(df)
    layers = layer_order(s) if not s.empty else []
    styles = run_styles(s) if layers else []
    x = np.arange(len(layers))
    width = 0.8 / max(len(styles), 1)
    show_values = values if values is not None else len(layers) * max(len(styles), 1) <= 24
    drawn = missing = n_ci = 0
    top, bottom = 0.0, 0.0
    for i, st in enumerate(styles):
        r = select_run(s, st["run"])
        v, lo, hi = (100 * _per_layer_values(r, c, layers)
                     for c in (column, f"{column}_ci_low", f"{column}_ci_high"))
        ok = np.isfinite(v)
        xs = x - 0.4 + width * (i + 0.5)
        if ok.any():
            ax.bar(xs[ok], v[ok], width * 0.92, color=st["color"], hatch=st["hatch"],
                          edgecolor="white" if not st["hatch"] else "0.2", linewidth=0.5, label=st["label"])
            if show_values:
                _value_labels(ax, xs, v, lo, hi)
            drawn += int(ok.sum())
            n_ci += _error_bars(ax, xs, v, lo, hi, st["color"])
            both = np.concatenate([v[ok], hi[ok & np.isfinite(hi)], lo[ok & np.isfinite(lo)]])
            top, bottom = max(top, float(np.max(both))), min(bottom, float(np.min(both)))
        for xm in xs[~ok]:
            ax.text(xm, 0, "n/a", ha="center", va="bottom", fontsize="x-small", color=NOTE_COLOR, rotation=90)
        missing += int((~ok).sum())
    layer_ticks(ax, layers)
    if drawn:
        ax.set_ylim(min(bottom * 1.18, 0.0), min(100.0, max(top * 1.18, 5.0)))
    else:
        ax.set_ylim(0, 100.0)
    if bottom < 0:
        ax.axhline(0, color="0.3", lw=0.8)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ylabel, default_title = _SHARE_LABELS.get(column, (column, column))
    ax.set_ylabel(ylabel)
    ax.set_xlabel("layer (forward order)")
    ax.set_title(title if title is not None else default_title)
    if not drawn:
        nothing(ax)
    elif len(styles) > 1 or n_ci:
        handles = ax.get_legend_handles_labels()[0] if len(styles) > 1 else []
        if n_ci:
            handles.append(Line2D([], [], color="0.15", marker="|", markersize=9, linestyle="none",
                                  label="95% bootstrap interval"))
        ax.legend(handles=handles, fontsize="small", frameon=False)
    if missing:
        add_note(ax, f"n/a: {missing} missing or non-finite value{'s' if missing != 1 else ''}")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_window_firing(df: pd.DataFrame, ax=None, *, title: Optional[str] = None):
    """Firing rate (solid, circles) and surrogate-window fraction (dashed, triangles) per layer, in %.

    ``df`` is a :func:`~gradflow.report.summarize` table or a ``per_step`` table (summarised here);
    runs are overlaid, coloured by neuron type.
    """
    ax = axes(ax)
    s = _as_summary(df)
    layers = layer_order(s) if not s.empty else []
    x = np.arange(len(layers))
    drawn = missing = 0
    styles = run_styles(s) if layers else []
    for st in styles:
        r = select_run(s, st["run"])
        for col, name, ls, marker in (("firing_rate", "firing rate", "-", "o"),
                                      ("window_fraction", "window fraction", "--", "^")):
            v = 100 * _per_layer_values(r, col, layers)
            ok = np.isfinite(v)
            missing += int((~ok).sum())
            if not ok.any():
                continue
            prefix = f"{st['label']} " if len(styles) > 1 else ""
            ax.plot(x[ok], v[ok], linestyle=ls, marker=marker if len(styles) == 1 else st["marker"],
                    color=st["color"], label=f"{prefix}{name}", lw=1.6, markersize=5)
            drawn += 1
    layer_ticks(ax, layers)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("share of neuron outputs (%)")
    ax.set_xlabel("layer (forward order)")
    ax.set_title(title if title is not None else "Firing rate and surrogate-window fraction per layer")
    if drawn:
        ax.legend(fontsize="small", frameon=False)
    else:
        nothing(ax)
    if missing:
        add_note(ax, f"not drawn: {missing} missing or non-finite value{'s' if missing != 1 else ''}")
    ax.grid(axis="y", alpha=0.3)
    return ax


