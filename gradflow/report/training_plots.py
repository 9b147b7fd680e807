"""Figures of a watched training run: per-layer numbers against the training step.

Every plot function is ``f(df, ax=None, **options) -> ax`` (the grid helper takes a Figure), draws only
on its axes, never raises on non-finite values and says in a grey note how many it left out
(:mod:`gradflow.report.style`). ``df`` is the run's ``summary.csv`` (one row per recorded step and
layer, :data:`gradflow.watch.SUMMARY_COLUMNS`, optionally with the theory's ``predicted_*`` columns)
or its ``lags.csv``.

Colour is the neuron kind; the layers of a network are shades of it, light for the first layer and
dark for the last (:func:`gradflow.report.style.shade`). A band is the 95% bootstrap interval of the
step (``<metric>_ci_low`` / ``_ci_high``); a dashed line of the same colour is the theory's prediction.

>>> import pandas as pd
>>> s = pd.DataFrame({"train_step": [0, 10, 0, 10], "layer": ["sn1", "sn1", "sn2", "sn2"],
...     "layer_index": [0, 0, 1, 1], "neuron": "lif", "half_life": [0.8, 0.6, 1.2, float("inf")],
...     "half_life_ci_low": [0.7, 0.5, 1.0, 1.1], "half_life_ci_high": [0.9, 0.7, 1.4, float("inf")]})
>>> ax = plot_over_steps(s, "half_life")
>>> len(ax.lines), [t.get_text() for t in ax.texts]
(2, ['not drawn: 1 non-finite value'])
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ._common import as_float, layer_order
from .plots import fixed_margins, grid_shape
from .style import add_note, axes, left_out, neuron_color, nothing, shade

__all__ = [
    "METRIC_LABELS",
    "layer_colors",
    "plot_over_steps",
    "plot_activity_over_steps",
    "relative_matrix",
    "plot_relative_heatmap",
    "plot_relative_heatmap_grid",
]

#: Axis label and title of each metric over training (percent metrics are drawn in %).
METRIC_LABELS: Dict[str, Tuple[str, str, bool]] = {
    "half_life": ("half-life (steps)", "Half-life of the temporal gradient over training", False),
    "relative_1": ("relative_1", "Gradient surviving one step back (relative_1) over training", False),
    "weight_temporal_projection": ("weight temporal projection (%)",
                                   "Temporal part of the weight update over training", True),
    "temporal_share": ("temporal share (%)", "Temporal share of dL/du over training", True),
    "firing_rate": ("firing rate (%)", "Firing rate over training", True),
    "window_fraction": ("window fraction (%)", "Surrogate-window occupancy over training", True),
    "decay_rate": ("decay rate per step", "Fitted per-step decay factor over training", False),
}


def layer_colors(df: pd.DataFrame) -> Dict[str, tuple]:
    """One colour per layer: its neuron kind's colour, shaded from light (first) to dark (last layer)."""
    layers = layer_order(df)
    kinds = {}
    if "neuron" in df.columns:
        kinds = df.drop_duplicates("layer").set_index("layer")["neuron"].to_dict()
    n = len(layers)
    return {layer: shade(neuron_color(kinds.get(layer)), 0.5 if n == 1 else 0.15 + 0.8 * i / (n - 1))
            for i, layer in enumerate(layers)}


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, np.nan)


def plot_over_steps(
    summary: pd.DataFrame,
    metric: str,
    ax=None,
    *,
    predicted: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    legend: bool = True,
):
    """``metric`` of every layer against the training step, with its 95% band and, dashed, ``predicted``.

    ``summary``: rows ``train_step, layer, layer_index, neuron, <metric>`` (and ``<metric>_ci_low`` /
    ``_ci_high``, and the ``predicted`` column, where present). Non-finite values (a half-life beyond the
    longest lag is ``inf``) are left out and counted in a note; a band is drawn where both bounds are
    finite. Percent metrics (:data:`METRIC_LABELS`) are drawn in %.
    """
    ax = axes(ax)
    ylabel, default_title, percent = METRIC_LABELS.get(metric, (metric, metric, False))
    scale = 100.0 if percent else 1.0
    colors = layer_colors(summary) if len(summary) else {}
    chosen = [x for x in (layers if layers is not None else list(colors)) if x in colors]
    drawn = bad = 0
    for layer in chosen:
        d = summary[summary["layer"] == layer].sort_values("train_step")
        x = as_float(d["train_step"])
        v = as_float(d[metric]) * scale if metric in d else np.full(len(d), np.nan)
        ok = np.isfinite(v) & np.isfinite(x)
        bad += int((~ok).sum())
        if ok.any():
            ax.plot(x[ok], v[ok], "-o", color=colors[layer], lw=1.6, markersize=3.5, label=layer, zorder=3)
            drawn += 1
        lo_c, hi_c = f"{metric}_ci_low", f"{metric}_ci_high"
        if lo_c in d and hi_c in d:
            lo, hi = as_float(d[lo_c]) * scale, as_float(d[hi_c]) * scale
            band = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(x)
            if band.any():
                ax.fill_between(x, _finite(lo), _finite(hi), where=band, color=colors[layer], alpha=0.18,
                                linewidth=0, zorder=2)
        if predicted is not None and predicted in d:
            p = as_float(d[predicted]) * scale
            pk = np.isfinite(p) & np.isfinite(x)
            if pk.any():
                ax.plot(x[pk], p[pk], "--", color=colors[layer], lw=1.3, zorder=3)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else default_title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    if not drawn:
        nothing(ax)
    elif legend:
        handles = [Line2D([], [], color=colors[layer], marker="o", markersize=3.5, label=layer) for layer in chosen]
        if predicted is not None and predicted in summary:
            handles.append(Line2D([], [], color="0.3", ls="--", label="theory"))
        ax.legend(handles=handles, fontsize="small", frameon=False, ncol=1 + len(handles) // 8)
    note = left_out(bad)
    if note:
        add_note(ax, note)
    ax.grid(alpha=0.3)
    return ax


def plot_activity_over_steps(summary: pd.DataFrame, ax=None, *, title: Optional[str] = None):
    """Firing rate (solid) and surrogate-window occupancy (dashed) of every layer over training, in %,
    each with its 95% band where the step has one."""
    ax = axes(ax)
    colors = layer_colors(summary) if len(summary) else {}
    drawn = bad = 0
    for layer, color in colors.items():
        d = summary[summary["layer"] == layer].sort_values("train_step")
        x = as_float(d["train_step"])
        for col, ls in (("firing_rate", "-"), ("window_fraction", "--")):
            v = 100 * as_float(d[col]) if col in d else np.full(len(d), np.nan)
            ok = np.isfinite(v) & np.isfinite(x)
            bad += int((~ok).sum())
            if ok.any():
                ax.plot(x[ok], v[ok], ls, color=color, lw=1.5)
                drawn += 1
            if f"{col}_ci_low" in d:
                lo, hi = 100 * as_float(d[f"{col}_ci_low"]), 100 * as_float(d[f"{col}_ci_high"])
                band = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(x)
                if band.any():
                    ax.fill_between(x, _finite(lo), _finite(hi), where=band, color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("training step")
    ax.set_ylabel("share of neuron outputs (%)")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else "Firing rate (solid) and window occupancy (dashed) over training")
    if drawn:
        handles = [Line2D([], [], color=c, label=layer) for layer, c in colors.items()]
        handles += [Line2D([], [], color="0.3", ls="-", label="firing rate"),
                    Line2D([], [], color="0.3", ls="--", label="window occupancy")]
        ax.legend(handles=handles, fontsize="small", frameon=False, ncol=1 + len(handles) // 8)
    else:
        nothing(ax)
    note = left_out(bad)
    if note:
        add_note(ax, note)
    ax.grid(alpha=0.3)
    return ax


def relative_matrix(lags: pd.DataFrame, layer: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps [S], lags [K], R [K, S])``: relative_k of ``layer`` per recorded training step (columns)
    and lag ``k >= 1`` (rows); steps with several backward passes show their mean."""
    d = lags[(lags["layer"] == layer) & (as_float(lags["lag"]) >= 1)]
    if d.empty:
        return np.zeros(0), np.zeros(0), np.zeros((0, 0))
    m = d.pivot_table(index="lag", columns="train_step", values="relative", aggfunc="mean", dropna=False)
    return m.columns.to_numpy(float), m.index.to_numpy(float), m.to_numpy(float)


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; the outer cells as wide as their neighbour)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def _norm(values: np.ndarray, floor: float = 1e-3) -> Optional[mcolors.LogNorm]:
    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return None
    return mcolors.LogNorm(vmin=max(float(v.min()), floor), vmax=max(float(v.max()), floor * 10))


def _cmap():
    """viridis; grey for cells without a finite value, black for zeros and values below the floor."""
    return matplotlib.colormaps["viridis"].with_extremes(bad="#ececec", under="black")


def plot_relative_heatmap(lags: pd.DataFrame, ax=None, *, layer: Optional[str] = None, norm=None,
                          colorbar: bool = True):
    """relative_k of one layer as a heatmap: training step (x) against lag k (y), log colour scale.

    ``lags``: the run's ``lags.csv`` (``train_step, layer, lag, relative``); ``layer`` defaults to the
    first. Returns the axes (its ``images``/``collections`` hold the mesh).
    """
    ax = axes(ax)
    layers = layer_order(lags) if len(lags) else []
    layer = layer if layer is not None else (layers[0] if layers else None)
    steps, ks, R = relative_matrix(lags, layer) if layer is not None else (np.zeros(0),) * 2 + (np.zeros((0, 0)),)
    ax.set_title(str(layer) if layer is not None else "relative_k")
    if not R.size or not np.isfinite(R).any():
        nothing(ax)
        return ax
    norm = norm if norm is not None else _norm(R)
    mesh = ax.pcolormesh(_edges(steps), _edges(ks), np.ma.masked_invalid(R), cmap=_cmap(), norm=norm,
                         shading="flat")
    ax.set_xlabel("training step")
    ax.set_ylabel("lag k")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, label="relative_k")
    bad = int((~np.isfinite(R)).sum())
    if bad:
        add_note(ax, left_out(bad))
    return ax


def plot_relative_heatmap_grid(lags: pd.DataFrame, fig, *, ncols: Optional[int] = None) -> List:
    """One :func:`plot_relative_heatmap` per layer on ``fig``, one shared log colour scale; returns the axes."""
    layers = layer_order(lags) if len(lags) else []
    rows, cols = grid_shape(len(layers), ncols, 3)
    grid = fig.subplots(rows, cols, squeeze=False)
    fixed_margins(fig, right=1.2)
    valid = lags[as_float(lags["lag"]) >= 1]["relative"] if len(lags) else pd.Series(dtype=float)
    norm = _norm(as_float(valid))
    out = []
    for i, ax in enumerate(grid.flat):
        if i >= len(layers):
            ax.set_visible(False)
            continue
        plot_relative_heatmap(lags, ax, layer=layers[i], norm=norm, colorbar=False)
        out.append(ax)
    if not layers:
        nothing(grid.flat[0])
    elif norm is not None:
        mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=_cmap())
        fig.colorbar(mappable, ax=list(grid.flat), label="relative_k", shrink=0.9)
    return out
