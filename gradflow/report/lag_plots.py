"""Figures of the gradient's path back in time: pair heatmaps and the lag decay with its intervals.

``f(df, ax=None, **options) -> ax`` like :mod:`gradflow.report.plots` (a colour bar goes into an inset
of ``ax``, never a new figure axes; ``ax=None`` draws on a new headless Figure);
:func:`plot_pair_grid` fills a Figure with one heatmap per layer.

>>> import pandas as pd
>>> prof = pd.DataFrame({"layer": "sn1", "layer_index": 0, "neuron": "lif", "lag": [0, 1, 2],
...     "relative": [1.0, 0.4, 0.15], "relative_ci_low": [1.0, 0.35, 0.1],
...     "relative_ci_high": [1.0, 0.45, 0.2], "predicted_relative": [1.0, 0.5, 0.25]})
>>> ax = plot_lag_decay(prof)
>>> ax.get_yscale(), len(ax.containers)       # measured markers carry error bars
('log', 1)
"""

from __future__ import annotations

from typing import Hashable, List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter

from ._common import as_float, finite_or_nan, layer_order, ordered_runs, pick_layer, run_keys, select_run
from .plots import fixed_margins, grid_shape
from .style import add_figure_note, add_note, axes, count_nonfinite, left_out, nothing, run_styles, shade

__all__ = ["plot_pair_heatmap", "plot_pair_grid", "plot_lag_decay", "measured_profile"]


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
    """A log colour scale from ``floor`` times the largest positive value up to it (None: nothing positive)."""
    pos = values[np.isfinite(values) & (values > 0)]
    if pos.size == 0:
        return None
    vmax = float(pos.max())
    vmin = max(float(pos.min()), vmax * floor)
    if vmin >= vmax:
        vmin = vmax / 10.0
    return mcolors.LogNorm(vmin=vmin, vmax=vmax)


def _cmap():
    """viridis with light grey for cells not recorded or not finite and black for zeros."""
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
    ax = axes(ax)
    runs = ordered_runs(pairs)
    run = run if run is not None else runs[0]
    d, layer = pick_layer(select_run(pairs, run), layer)
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
        nothing(ax, "no positive finite pair norms" if m.size else "no pair data")
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
    text = left_out(n_bad)
    if text and note:
        add_note(ax, text)
    return ax


def plot_pair_grid(pairs: pd.DataFrame, fig, *, ncols: Optional[int] = None, relative: bool = True) -> List:
    """Fill ``fig`` with :func:`plot_pair_heatmap` axes: one per layer, a block of rows per run.

    With ``relative=True`` (default) each map is divided by its largest cell and all maps share one log
    colour scale and one colour bar, so the decay away from the diagonal compares across layers and runs.
    Returns the axes used.
    """
    runs = ordered_runs(pairs)
    layers = layer_order(pairs)
    nrows_run, ncols = grid_shape(len(layers), ncols, 6)
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
    fixed = fixed_margins(fig, left=1.25 if len(runs) > 1 else 0.95, right=1.3 if relative else 0.9,
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
        nothing(grid.flat[0], "no pair data recorded")
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
    n_bad = count_nonfinite(pairs, ["norm"])
    if n_bad:
        add_figure_note(fig, f"red cross: only non-finite values "
                          f"({n_bad} non-finite value{'s' if n_bad != 1 else ''} not drawn)")
    return used


# ------------------------------------------------------------------------------------------ lag decay

def measured_profile(df: pd.DataFrame) -> pd.DataFrame:
    """The measured lag profile of ``df`` as ``[run,] layer, layer_index, [neuron,] lag, relative[, ci]``.

    ``df`` is a profile (:func:`~gradflow.report.lag_profile`, returned as is), a theory table
    (``measured_relative`` renamed) or a ``lags`` table (the mean of ``relative`` over steps, no
    interval).
    """
    if "measured_relative" in df.columns and "relative" not in df.columns:
        return df.rename(columns={"measured_relative": "relative"})
    if "step" not in df.columns or df.empty:
        return df
    keys = run_keys(df) + ["layer"]
    d = df.assign(_rel=finite_or_nan(df["relative"]), _lag=as_float(df["lag"]), _li=as_float(df["layer_index"]))
    extra = ["neuron"] if "neuron" in df.columns else []
    g = d.groupby(keys + ["_lag"] + extra, sort=False, dropna=False).agg(
        layer_index=("_li", "min"), relative=("_rel", "mean")).reset_index()
    return g.rename(columns={"_lag": "lag"})


def _with_neuron(df: Optional[pd.DataFrame], ref: pd.DataFrame) -> Optional[pd.DataFrame]:
    """``df`` with the ``neuron`` column of ``ref`` (by run and layer) when it has none."""
    if df is None or "neuron" in df.columns or "neuron" not in ref.columns:
        return df
    keys = [k for k in run_keys(ref) if k in df.columns] + ["layer"]
    return df.merge(ref[keys + ["neuron"]].drop_duplicates(keys), on=keys, how="left")


def _draw_profile(ax, r: pd.DataFrame, col: str, kind: str, color, marker: str, label: str) -> Tuple[int, int, int]:
    """Measured markers (with interval bars when ``relative_ci_*`` exist) or predicted line of one layer.

    Returns (drawn, non-finite, non-positive) counts.
    """
    k, v = as_float(r["lag"]), as_float(r[col])
    fin = np.isfinite(k) & np.isfinite(v)
    ok = fin & (v > 0)
    if not ok.any():
        return 0, int((~fin).sum()), int((fin & (v <= 0)).sum())
    order = np.argsort(k[ok], kind="stable")
    kk, vv = k[ok][order], v[ok][order]
    if kind == "predicted":
        ax.plot(kk, vv, linestyle="-", color=color, lw=1.5, zorder=2, label="_predicted")
    elif "relative_ci_low" in r.columns:
        lo = as_float(r["relative_ci_low"])[ok][order]
        hi = as_float(r["relative_ci_high"])[ok][order]
        have = np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
        err = np.vstack([np.where(have, vv - lo, 0), np.where(have, hi - vv, 0)]).clip(min=0)
        ax.errorbar(kk, vv, yerr=err, linestyle="none", marker=marker, markersize=6, color=color,
                    markeredgecolor="white", markeredgewidth=0.5, ecolor=color, elinewidth=1.1, capsize=2.5,
                    label=label, zorder=3)
    else:
        ax.plot(kk, vv, linestyle="none", marker=marker, markersize=6, color=color, markeredgecolor="white",
                markeredgewidth=0.5, label=label, zorder=3)
    return 1, int((~fin).sum()), int((fin & (v <= 0)).sum())


def plot_lag_decay(
    df: pd.DataFrame,
    ax=None,
    *,
    theory: Optional[pd.DataFrame] = None,
    layers: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    legend: Optional[bool] = None,
):
    """Measured (markers, with 95% interval bars) vs predicted (lines) ``relative_k`` over lag k, log y.

    ``df`` is a profile from :func:`~gradflow.report.lag_profile` (``relative`` with
    ``relative_ci_low``/``_high`` and ``predicted_relative``), a theory table (``measured_relative``,
    ``predicted_relative``) or a ``lags`` table (:func:`measured_profile`). ``theory`` supplies the
    predicted lines when ``df`` has none. Layers are shades of their neuron colour, darker for deeper
    layers; ``layers`` restricts the plot. A per-layer legend is drawn for up to 8 curves (``legend``
    forces it on or off); otherwise a style legend explains markers and lines.
    """
    ax = axes(ax)
    measured = measured_profile(df)
    predicted = theory if theory is not None else (df if "predicted_relative" in df.columns else None)
    predicted = _with_neuron(predicted, measured)
    all_layers = layer_order(measured) if not measured.empty else []
    if predicted is not None and not predicted.empty:
        all_layers += [l for l in layer_order(predicted) if l not in all_layers]
    if layers is not None:
        all_layers = [l for l in all_layers if l in set(layers)]
    styles = run_styles(measured if not measured.empty or predicted is None else predicted)
    per_layer_legend = legend if legend is not None else len(all_layers) * max(len(styles), 1) <= 8
    n_bad = n_nonpos = drawn = 0
    for st in styles:
        for j, layer in enumerate(all_layers):
            color = shade(st["color"], j / max(len(all_layers) - 1, 1)) if len(all_layers) > 1 else st["color"]
            label = f"{st['label'] + ' ' if len(styles) > 1 else ''}{layer}"
            for src, col, kind in ((measured, "relative", "measured"), (predicted, "predicted_relative", "predicted")):
                if src is None or src.empty or col not in src.columns:
                    continue
                r = select_run(src, st["run"]) if "run" in src.columns else src
                d, b, z = _draw_profile(ax, r[r["layer"] == layer], col, kind, color, st["marker"], label)
                drawn, n_bad, n_nonpos = drawn + d, n_bad + b, n_nonpos + z
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(NullFormatter())      # unlabelled minor ticks: a readable axis, a fast draw
    ax.set_xlabel("lag k = t' - t (time steps)")
    ax.set_ylabel("relative gradient relative_k (log scale)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title if title is not None else "Lag decay: measured (markers) vs predicted (lines)")
    if not drawn:
        nothing(ax)
    else:
        _lag_legend(ax, styles, per_layer_legend, "relative_ci_low" in measured.columns)
    text = left_out(n_bad, n_nonpos, "values <= 0 (log axis)")
    if text:
        add_note(ax, text)
    ax.grid(alpha=0.3, which="major")
    return ax


def _lag_legend(ax, styles: List[dict], per_layer: bool, intervals: bool) -> None:
    """The half-life level and a legend: one entry per layer curve (``per_layer``) or per run colour,
    then what markers, lines and the dotted level mean."""
    ax.axhline(0.5, color="0.6", lw=0.8, linestyle=":", zorder=1)
    handles = [Line2D([], [], color="0.3", marker="o", linestyle="none",
                      label="measured" + (" (95% interval)" if intervals else "")),
               Line2D([], [], color="0.3", lw=1.5, label="predicted"),
               Line2D([], [], color="0.6", lw=0.8, linestyle=":", label="0.5 (half-life)")]
    if per_layer:
        labelled = [h for h in ax.get_legend_handles_labels()[0]
                    if h.get_label() and not h.get_label().startswith("_")]
        handles = labelled + handles
    else:
        handles += [Patch(color=st["color"], label=f"{st['label']} (darker = deeper layer)") for st in styles]
    ax.legend(handles=handles, fontsize="x-small", frameon=False, loc="lower left", ncol=2 if len(handles) > 6 else 1)
