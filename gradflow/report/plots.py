"""Figures of the gradient flow, one function per figure.

Every plot function is ``f(df, ax=None, **options) -> ax``: it draws only on ``ax`` (a colour bar
goes into an inset of ``ax``, never a new figure axes) and returns it. With ``ax=None`` it draws on
pyplot's current axes, importing pyplot only then, so the library itself stays headless. The grid
helpers ``plot_norms_grid`` and ``plot_pair_grid`` take a :class:`matplotlib.figure.Figure` and fill
it with one small axes per layer.

Colour encodes the neuron type everywhere (:data:`NEURON_COLORS`); line style encodes the gradient
part (spatial solid, temporal dashed); several layers on one axes are shades of their neuron colour,
darker for deeper layers; several runs with the same neuron type differ by marker and hatch.
Non-finite values are never drawn and never raise: each axes says in a grey note how many were left
out, and an axes with nothing finite to draw says so in its middle.

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
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from ._common import (
    as_float,
    layer_order,
    neuron_of,
    ordered_runs,
    run_keys,
    select_run,
)
from .summary import _weight_share, lag_profile, summarize

__all__ = [
    "NEURON_COLORS",
    "neuron_color",
    "plot_norms_over_t",
    "plot_norms_grid",
    "plot_temporal_share",
    "plot_pair_heatmap",
    "plot_pair_grid",
    "plot_lag_decay",
    "plot_window_firing",
]

#: One colour per neuron type (Okabe-Ito, safe for colour-blind readers).
NEURON_COLORS: Dict[str, str] = {"lif": "#0072B2", "clif": "#D55E00", "plif": "#009E73"}
_OTHER_COLOR = "#555555"
_RUN_MARKERS = ("o", "s", "^", "D", "v", "P")
_RUN_HATCHES = ("", "//", "..", "xx", "\\\\", "++")
_NOTE_COLOR = "0.35"
_NORM_LABEL = r"gradient norm $\|\partial L/\partial u[t]\|_2$"


def neuron_color(neuron: Optional[str]) -> str:
    """The colour of a neuron type (case-insensitive); grey for unknown or missing types."""
    return NEURON_COLORS.get(str(neuron).lower(), _OTHER_COLOR) if neuron is not None else _OTHER_COLOR


def _shade(color: str, depth: float) -> Tuple[float, float, float]:
    # depth 0 (first layer) is a light tint of the colour, 1 (last layer) a darkened version.
    rgb = np.array(mcolors.to_rgb(color))
    if depth <= 0.5:
        a = 0.35 + 1.3 * depth
        out = (1 - a) * np.ones(3) + a * rgb
    else:
        out = rgb * (1 - 0.9 * (depth - 0.5))
    return tuple(np.clip(out, 0, 1))


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt  # lazily: only when the caller wants pyplot's current axes

        ax = plt.gca()
    return ax


def _note(ax, text: str) -> None:
    ax.text(0.99, 0.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small",
            color=_NOTE_COLOR, zorder=5,
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def _figure_note(fig, text: str) -> None:
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize="small", color=_NOTE_COLOR)


def _count_nonfinite(df: pd.DataFrame, columns: Sequence[str]) -> int:
    return int(sum((~np.isfinite(as_float(df[c]))).sum() for c in columns if c in df.columns))


def _nothing(ax, text: str = "no finite data to draw") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="small",
            color=_NOTE_COLOR)


def _left_out(n_nonfinite: int, n_other: int = 0, other: str = "") -> Optional[str]:
    parts = []
    if n_nonfinite:
        parts.append(f"{n_nonfinite} non-finite value{'s' if n_nonfinite != 1 else ''}")
    if n_other:
        parts.append(f"{n_other} {other}")
    return ("not drawn: " + ", ".join(parts)) if parts else None


def _run_styles(df: pd.DataFrame) -> List[dict]:
    """One style per run: colour of its neuron, and a marker/hatch to tell runs of one type apart."""
    runs = ordered_runs(df)
    styles = []
    for i, run in enumerate(runs):
        neuron = neuron_of(df, run)
        styles.append({
            "run": run,
            "neuron": neuron,
            "color": neuron_color(neuron),
            "marker": _RUN_MARKERS[i % len(_RUN_MARKERS)],
            "hatch": _RUN_HATCHES[i % len(_RUN_HATCHES)],
            "label": str(run) if run is not None else (neuron.upper() if neuron else "run"),
        })
    colours = [s["color"] for s in styles]
    if len(set(colours)) == len(colours):   # distinct colours: no hatching needed
        for s in styles:
            s["hatch"] = ""
    return styles


def _pick_layer(df: pd.DataFrame, layer: Optional[str]) -> Tuple[pd.DataFrame, Optional[str]]:
    if layer is None:
        order = layer_order(df)
        layer = order[0] if order else None
    return (df[df["layer"] == layer] if layer is not None else df.iloc[0:0]), layer


def _layer_ticks(ax, layers: Sequence[str]) -> None:
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

    ``per_step`` is the SPEC §3 table (several runs overlaid when it has a ``run`` column). Values are
    the mean over recorded steps of the finite norms at each t. ``layer`` defaults to the first layer;
    ``total=True`` adds ``||delta[t]||`` dotted; ``logy=True`` uses a log axis (zeros left out, noted).
    ``note=False`` leaves out the note on values not drawn (the grid puts one note on the figure).
    """
    ax = _axes(ax)
    d, layer = _pick_layer(per_step, layer)
    parts = [("spatial", "grad_spatial_norm", "-"), ("temporal", "grad_temporal_norm", "--")]
    if total:
        parts.append(("total", "grad_total_norm", ":"))
    n_bad = n_zero = drawn = 0
    styles = _run_styles(d) if not d.empty else []
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
        _nothing(ax)
    elif legend:
        ax.legend(fontsize="small", frameon=False)
    text = _left_out(n_bad, n_zero, "zeros (log axis)")
    if text and note:
        _note(ax, text)
    return ax


def _grid_shape(n: int, ncols: Optional[int], default: int) -> Tuple[int, int]:
    n = max(n, 1)
    ncols = max(1, min(ncols or default, n))
    return math.ceil(n / ncols), ncols


def _fixed_margins(fig, *, left=0.95, right=0.3, bottom=0.75, top=1.15, wspace=0.5, hspace=0.62) -> bool:
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
    nrows, ncols = _grid_shape(len(layers), ncols, 4)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    fixed = _fixed_margins(fig)
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
        _nothing(grid.flat[0], "no layers recorded")
        used.append(grid.flat[0])
    handles = _style_legend(per_step, [("spatial", "-"), ("temporal", "--")] + ([("total", ":")] if total else []))
    H = fig.get_size_inches()[1]
    if handles:
        _figure_legend(fig, handles, y=1 - 0.5 / H if fixed else None)
    fig.suptitle(r"Spatial (solid) and temporal (dashed) gradient norms over time steps",
                 **({"y": 1 - 0.1 / H, "va": "top"} if fixed else {}))
    cols = ["grad_spatial_norm", "grad_temporal_norm"] + (["grad_total_norm"] if total else [])
    n_bad = _count_nonfinite(per_step, cols)
    if n_bad:
        _figure_note(fig, f"not drawn: {n_bad} non-finite norm value{'s' if n_bad != 1 else ''}")
    return used


def _figure_legend(fig, handles: List, y: Optional[float] = None) -> None:
    # Above the axes: at height y (fixed margins), or "outside" placement, which needs the
    # constrained layout engine (matplotlib >= 3.7).
    from matplotlib.layout_engine import ConstrainedLayoutEngine

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


def _style_legend(df: pd.DataFrame, parts: Sequence[Tuple[str, str]]) -> List:
    handles = []
    if df.empty:
        return handles
    styles = _run_styles(df)
    for st in styles:
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], lw=2, label=st["label"]))
    for name, ls in parts:
        handles.append(Line2D([], [], color="0.3", linestyle=ls, lw=1.6, label=name))
    return handles


# ---------------------------------------------------------------------------------- shares per layer

def _as_summary(df: pd.DataFrame) -> pd.DataFrame:
    """A summary table from a summary (returned as is), a ``per_step`` or a ``weights`` table."""
    if "grad_spatial_norm" in df.columns:
        return summarize(df)
    if "param" in df.columns and "spatial_norm" in df.columns and "weight_temporal_share" not in df.columns:
        keys = run_keys(df) + ["layer"]
        share = _weight_share(df, keys)
        idx = df.groupby(keys, sort=False)["layer_index"].min().reset_index()
        out = idx.merge(share.reset_index(), on=keys, how="left") if len(share) else \
            idx.assign(weight_temporal_share=np.nan)
        if "neuron" in df.columns:
            out = out.merge(df[keys + ["neuron"]].drop_duplicates(keys), on=keys, how="left")
        return out
    return df


def _per_layer_values(s: pd.DataFrame, column: str, layers: Sequence[str]) -> np.ndarray:
    d = s.drop_duplicates("layer").set_index("layer")
    if column not in d.columns:
        return np.full(len(layers), np.nan)
    return np.array([as_float([d.at[l, column]])[0] if l in d.index else np.nan for l in layers])


def plot_temporal_share(
    df: pd.DataFrame,
    ax=None,
    *,
    column: str = "temporal_share",
    title: Optional[str] = None,
    values: Optional[bool] = None,
):
    """Temporal share per layer as bars (grouped by run in comparisons), in percent.

    ``df`` is a :func:`~gradflow.report.summarize` table, or a ``per_step`` table (summarised here);
    ``column="weight_temporal_share"`` plots the weight-gradient share instead (a summary or a
    ``weights`` table). Layers whose value is missing or not finite get an ``n/a`` mark. ``values``
    prints the percentage on each bar (default: when there are at most 24 bars).
    """
    ax = _axes(ax)
    s = _as_summary(df)
    layers = layer_order(s) if not s.empty else []
    styles = _run_styles(s) if layers else []
    x = np.arange(len(layers))
    width = 0.8 / max(len(styles), 1)
    n_bars = len(layers) * max(len(styles), 1)
    show_values = values if values is not None else n_bars <= 24
    drawn = missing = 0
    top = 0.0
    for i, st in enumerate(styles):
        v = 100 * _per_layer_values(select_run(s, st["run"]), column, layers)
        ok = np.isfinite(v)
        xs = x - 0.4 + width * (i + 0.5)
        if ok.any():
            bars = ax.bar(xs[ok], v[ok], width * 0.92, color=st["color"], hatch=st["hatch"],
                          edgecolor="white" if not st["hatch"] else "0.2", linewidth=0.5,
                          label=st["label"])
            if show_values:
                ax.bar_label(bars, labels=[f"{p:.0f}%" if p >= 1 or p == 0 else f"{p:.1f}%" for p in v[ok]],
                             fontsize="x-small", padding=1.5)
            drawn += int(ok.sum())
            top = max(top, float(np.max(v[ok])))
        for xm in xs[~ok]:
            ax.text(xm, 0, "n/a", ha="center", va="bottom", fontsize="x-small", color=_NOTE_COLOR,
                    rotation=90)
        missing += int((~ok).sum())
    _layer_ticks(ax, layers)
    ax.set_ylim(0, min(100.0, max(top * 1.18, 5.0)) if drawn else 100.0)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    what = "weight gradient" if column.startswith("weight") else "input-current gradient"
    ax.set_ylabel(f"temporal share of {what} (%)")
    ax.set_xlabel("layer (forward order)")
    ax.set_title(title if title is not None else
                 f"Temporal share of the {what} per layer")
    if not drawn:
        _nothing(ax)
    elif len(styles) > 1:
        ax.legend(fontsize="small", frameon=False)
    if missing:
        _note(ax, f"n/a: {missing} missing or non-finite value{'s' if missing != 1 else ''}")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_window_firing(df: pd.DataFrame, ax=None, *, title: Optional[str] = None):
    """Firing rate (solid, circles) and surrogate-window fraction (dashed, triangles) per layer, in %.

    ``df`` is a :func:`~gradflow.report.summarize` table or a ``per_step`` table (summarised here);
    runs are overlaid, coloured by neuron type.
    """
    ax = _axes(ax)
    s = _as_summary(df)
    layers = layer_order(s) if not s.empty else []
    x = np.arange(len(layers))
    drawn = missing = 0
    styles = _run_styles(s) if layers else []
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
    _layer_ticks(ax, layers)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("share of neuron outputs (%)")
    ax.set_xlabel("layer (forward order)")
    ax.set_title(title if title is not None else "Firing rate and surrogate-window fraction per layer")
    if drawn:
        ax.legend(fontsize="small", frameon=False)
    else:
        _nothing(ax)
    if missing:
        _note(ax, f"not drawn: {missing} missing or non-finite value{'s' if missing != 1 else ''}")
    ax.grid(axis="y", alpha=0.3)
    return ax


# -------------------------------------------------------------------------------- pair[t, t'] heatmap

def _pair_matrix(pairs: pd.DataFrame) -> Tuple[np.ndarray, np.ndarray, int]:
    """RMS over steps of ``||pair[t, t']||`` as a ``[T, T]`` matrix (NaN: not recorded / not finite).

    Also returns a boolean matrix of cells that had only non-finite values, and the count of non-finite
    rows left out.
    """
    t = as_float(pairs["t"])
    ts = as_float(pairs["t_source"])
    v = as_float(pairs["norm"])
    idx_ok = np.isfinite(t) & np.isfinite(ts) & (t >= 0) & (ts >= 0)
    if not idx_ok.any():
        return np.zeros((0, 0)), np.zeros((0, 0), bool), int((~np.isfinite(v)).sum())
    T = int(max(t[idx_ok].max(), ts[idx_ok].max())) + 1
    fin = idx_ok & np.isfinite(v)
    sq = np.zeros((T, T))
    cnt = np.zeros((T, T))
    np.add.at(sq, (t[fin].astype(int), ts[fin].astype(int)), v[fin] ** 2)
    np.add.at(cnt, (t[fin].astype(int), ts[fin].astype(int)), 1)
    seen = np.zeros((T, T), bool)
    seen[t[idx_ok].astype(int), ts[idx_ok].astype(int)] = True
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.sqrt(sq / cnt)
    m[cnt == 0] = np.nan
    bad_only = seen & (cnt == 0)
    return m, bad_only, int((idx_ok & ~np.isfinite(v)).sum())


def _log_norm(values: np.ndarray, floor: float = 1e-6) -> Optional[mcolors.LogNorm]:
    pos = values[np.isfinite(values) & (values > 0)]
    if pos.size == 0:
        return None
    vmax = float(pos.max())
    vmin = max(float(pos.min()), vmax * floor)
    if vmin >= vmax:
        vmin = vmax / 10.0
    return mcolors.LogNorm(vmin=vmin, vmax=vmax)


def _cmap():
    import matplotlib

    # bad (light grey): not recorded (t' < t, beyond max lag) or not finite;
    # under (black): exactly zero or below the log scale's floor
    return matplotlib.colormaps["viridis"].with_extremes(bad="#ececec", under="black")


def plot_pair_heatmap(
    pairs: pd.DataFrame,
    ax=None,
    *,
    layer: Optional[str] = None,
    run: Optional[Hashable] = None,
    relative: bool = False,
    norm: Optional[mcolors.Normalize] = None,
    colorbar: bool = True,
    title: Optional[str] = None,
    note: bool = True,
):
    """Heatmap of ``||pair[t, t']||`` for one layer (log colour scale; rows t, columns t' >= t).

    Cell (t, t') is the RMS over recorded steps of the norm of the part of ``delta[t]`` that started as
    ``P[t']``. ``layer`` defaults to the first layer and ``run`` to the first run. ``relative=True``
    divides by the largest cell, so maps of different layers share a scale. Grey cells were not recorded
    (t' < t, or beyond the recorder's ``max_lag``); black cells are exactly zero or below the colour
    scale (1e-6 of the largest cell); a red cross marks cells whose values were all non-finite. The
    colour bar, when drawn, is an inset of ``ax``.
    """
    ax = _axes(ax)
    runs = ordered_runs(pairs)
    run = run if run is not None else runs[0]
    d, layer = _pick_layer(select_run(pairs, run), layer)
    m, bad_only, n_bad = _pair_matrix(d) if not d.empty else (np.zeros((0, 0)), np.zeros((0, 0), bool), 0)
    if relative and m.size:
        peak = np.nanmax(np.where(np.isfinite(m), m, np.nan)) if np.isfinite(m).any() else np.nan
        if np.isfinite(peak) and peak > 0:
            m = m / peak
    name = f"{run} {layer}" if run is not None and len(runs) > 1 else str(layer)
    ax.set_title(title if title is not None else f"{name}: " + r"$\|pair[t, t']\|$")
    ax.set_xlabel("source step t' (steps)")
    ax.set_ylabel("receiving step t (steps)")
    the_norm = norm if norm is not None else (_log_norm(m) if m.size else None)
    if the_norm is not None and m.size:
        # exact zeros (no gradient from that source) would vanish as "bad" on a log scale: draw them
        # in the "under" colour instead
        m = np.where(np.isfinite(m) & (m <= 0), the_norm.vmin / 10.0, m)
    if m.size == 0 or the_norm is None:
        if m.size:
            ax.imshow(np.ma.masked_invalid(np.full_like(m, np.nan)), cmap=_cmap(), origin="upper",
                      interpolation="nearest")
        _nothing(ax, "no positive finite pair norms" if m.size else "no pair data")
    else:
        im = ax.imshow(np.ma.masked_invalid(m), cmap=_cmap(), norm=the_norm, origin="upper",
                       interpolation="nearest", aspect="equal")
        if colorbar:
            cax = ax.inset_axes([1.04, 0.0, 0.05, 1.0])
            cb = ax.figure.colorbar(im, cax=cax, extend="min")
            cb.set_label("relative norm" if relative else "norm (RMS over steps)", fontsize="small")
            cb.ax.tick_params(labelsize="x-small")
    if bad_only.any():
        yy, xx = np.nonzero(bad_only)
        ax.plot(xx, yy, "x", color="#CC0000", markersize=6, mew=1.5)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    text = _left_out(n_bad)
    if text and note:
        _note(ax, text)
    return ax


def plot_pair_grid(pairs: pd.DataFrame, fig, *, ncols: Optional[int] = None, relative: bool = True) -> List:
    """Fill ``fig`` with :func:`plot_pair_heatmap` axes: one per layer, a block of rows per run.

    With ``relative=True`` (default) each map is divided by its largest cell and all maps share one log
    colour scale and one colour bar, so the decay away from the diagonal compares across layers and runs.
    Returns the axes used.
    """
    runs = ordered_runs(pairs)
    layers = layer_order(pairs)
    nrows_run, ncols = _grid_shape(len(layers), ncols, 6)
    grid = fig.subplots(nrows_run * len(runs), ncols, squeeze=False)
    shared = None
    if relative and layers:
        lows = []
        for run in runs:
            r = select_run(pairs, run)
            for layer in layers:
                m = _pair_matrix(r[r["layer"] == layer])[0]
                ok = np.isfinite(m) & (m > 0)
                if ok.any():
                    lows.append(float(m[ok].min() / m[ok].max()))
        if lows:
            shared = mcolors.LogNorm(vmin=max(min(lows), 1e-6) if min(lows) < 1 else 0.1, vmax=1.0)
    fixed = _fixed_margins(fig, left=1.25 if len(runs) > 1 else 0.95, right=1.3 if relative else 0.9,
                           top=0.75, wspace=0.55 if shared is None else 0.3, hspace=0.55)
    used, image = [], None
    for b, run in enumerate(runs):
        for i in range(nrows_run * ncols):
            ax = grid[b * nrows_run + i // ncols, i % ncols]
            if i >= len(layers):
                ax.set_visible(False)
                continue
            plot_pair_heatmap(pairs, ax=ax, layer=layers[i], run=run, relative=relative, norm=shared,
                              colorbar=shared is None, title=str(layers[i]), note=False)
            ax.set_title(str(layers[i]), fontsize="medium", y=1.0, pad=4)
            if i % ncols:
                ax.set_ylabel("")
                if shared is not None:
                    ax.tick_params(labelleft=False)   # same T x T maps: tick labels on the left column
            elif run is not None and len(runs) > 1:
                ax.set_ylabel(f"{run}\nreceiving step t", fontweight="bold")
            if i + ncols < len(layers):
                ax.set_xlabel("")
            image = ax.images[-1] if ax.images else image
            used.append(ax)
    if not layers:
        _nothing(grid.flat[0], "no pair data recorded")
        used.append(grid.flat[0])
    W, H = fig.get_size_inches()
    if shared is not None and image is not None:
        if fixed:
            box = fig.subplotpars
            cax = fig.add_axes([1 - 1.0 / W, box.bottom, 0.16 / W, box.top - box.bottom])
            cb = fig.colorbar(image, cax=cax, extend="min")
        else:
            cb = fig.colorbar(image, ax=[a for a in used], shrink=0.8, extend="min")
        cb.set_label(r"$\|pair[t, t']\|$ / largest cell of its layer")
    fig.suptitle("pair[t, t']: gradient at step t that started at step t'",
                 **({"y": 1 - 0.1 / H, "va": "top"} if fixed else {}))
    n_bad = _count_nonfinite(pairs, ["norm"])
    if n_bad:
        _figure_note(fig, f"red cross: only non-finite values "
                          f"({n_bad} non-finite value{'s' if n_bad != 1 else ''} not drawn)")
    return used


# ------------------------------------------------------------------------------------------ lag decay

def plot_lag_decay(
    df: pd.DataFrame,
    ax=None,
    *,
    theory: Optional[pd.DataFrame] = None,
    layers: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    legend: Optional[bool] = None,
):
    """Measured (markers) vs predicted (lines) relative gradient ``G_k / G_0`` over lag k, log y axis.

    ``df`` is a ``lags`` table (pooled over steps as in :func:`~gradflow.report.lag_profile`) or a
    theory table with ``measured_relative`` and ``predicted_relative``. ``theory`` adds the predicted
    lines to a ``lags`` table. Layers are shades of their neuron colour, darker for deeper layers;
    ``layers`` restricts the plot. A per-layer legend is drawn for up to 8 curves (``legend`` forces it
    on or off); otherwise a style legend explains markers and lines.
    """
    ax = _axes(ax)
    measured_col = "measured_relative" if "measured_relative" in df.columns else "relative"
    if measured_col == "relative" and {"norm", "step"} <= set(df.columns):
        measured = lag_profile(df)
        if "neuron" in df.columns:
            keys = run_keys(df) + ["layer"]
            measured = measured.merge(df[keys + ["neuron"]].drop_duplicates(keys), on=keys, how="left")
    else:
        measured = df
    predicted = theory if theory is not None else (df if "predicted_relative" in df.columns else None)
    if predicted is not None and "neuron" not in predicted.columns and "neuron" in measured.columns:
        keys = [k for k in run_keys(measured) if k in predicted.columns] + ["layer"]
        predicted = predicted.merge(measured[keys + ["neuron"]].drop_duplicates(keys), on=keys, how="left")
    all_layers = layer_order(measured) if not measured.empty else []
    if predicted is not None and not predicted.empty:
        all_layers += [l for l in layer_order(predicted) if l not in all_layers]
    if layers is not None:
        all_layers = [l for l in all_layers if l in set(layers)]
    styles = _run_styles(measured if not measured.empty else (predicted if predicted is not None else measured))
    n_curves = len(all_layers) * max(len(styles), 1)
    per_layer_legend = legend if legend is not None else n_curves <= 8
    n_bad = n_nonpos = drawn = 0
    depth_div = max(len(all_layers) - 1, 1)
    for st in styles:
        for j, layer in enumerate(all_layers):
            color = _shade(st["color"], j / depth_div) if len(all_layers) > 1 else st["color"]
            label = f"{st['label'] + ' ' if len(styles) > 1 else ''}{layer}"
            for src, col, kind in ((measured, measured_col, "measured"),
                                   (predicted, "predicted_relative", "predicted")):
                if src is None or src.empty or col not in src.columns:
                    continue
                r = select_run(src, st["run"]) if "run" in src.columns else src
                r = r[r["layer"] == layer]
                k, v = as_float(r["lag"]), as_float(r[col])
                fin = np.isfinite(k) & np.isfinite(v)
                n_bad += int((~fin).sum())
                ok = fin & (v > 0)
                n_nonpos += int((fin & (v <= 0)).sum())
                if not ok.any():
                    continue
                order = np.argsort(k[ok], kind="stable")
                kk, vv = k[ok][order], v[ok][order]
                if kind == "measured":
                    ax.plot(kk, vv, linestyle="none", marker=st["marker"], markersize=6, color=color,
                            markeredgecolor="white", markeredgewidth=0.5, label=label, zorder=3)
                else:
                    ax.plot(kk, vv, linestyle="-", color=color, lw=1.5, zorder=2, label="_predicted")
                drawn += 1
    ax.set_yscale("log")
    ax.set_xlabel("lag k = t' - t (time steps)")
    ax.set_ylabel(r"relative gradient $G_k / G_0$")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else "Lag decay: measured (markers) vs predicted (lines)")
    if not drawn:
        _nothing(ax)
    else:
        ax.axhline(0.5, color="0.6", lw=0.8, linestyle=":", zorder=1)
        handles = [Line2D([], [], color="0.3", marker="o", linestyle="none", label="measured"),
                   Line2D([], [], color="0.3", lw=1.5, label="predicted"),
                   Line2D([], [], color="0.6", lw=0.8, linestyle=":", label="0.5 (half-life)")]
        if per_layer_legend:
            handles = [h for h in ax.get_lines() if h.get_label() and not h.get_label().startswith("_")] + handles
        else:
            for st in styles:
                handles.append(Patch(color=st["color"], label=f"{st['label']} (darker = deeper layer)"))
        ax.legend(handles=handles, fontsize="x-small", frameon=False, loc="best",
                  ncol=2 if len(handles) > 6 else 1)
    note = _left_out(n_bad, n_nonpos, "values <= 0 (log axis)")
    if note:
        _note(ax, note)
    ax.grid(alpha=0.3, which="major")
    return ax

