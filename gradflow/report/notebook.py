"""A recorder in a notebook: a compact per-layer table as HTML, and the report's figures on demand.

The recorder package attaches these as methods, so in Jupyter::

    with gradflow.record(net) as rec:
        loss_fn(net(x), y).backward()
    rec                    # shows recorder_html(rec): one row per layer, 95% intervals
    rec.plot("lags")       # plot_recorder(rec, "lags"): a matplotlib Figure

Both are built from the analysis report's pieces (:func:`gradflow.report.layer_statistics`,
:func:`gradflow.report.display_summary`, :func:`gradflow.report.page.html_table` and the plot
functions of :mod:`gradflow.report.plots` and :mod:`gradflow.report.lag_plots`), so a notebook shows
the numbers and figures ``gradflow analyze`` would write for the same recording. They only call the
recorder's public table methods (``per_step``, ``lags``, ``pairs``, ``weights``, ``samples``, ``steps``).

>>> import gradflow, torch
>>> net = gradflow.models.build("mlp", neuron="clif", in_features=4, num_classes=3, widths=(8,), T=3)
>>> with gradflow.record(net) as rec:
...     gradflow.losses.ce_over_time(net(torch.rand(16, 4)), torch.randint(0, 3, (16,))).backward()
>>> "<table" in recorder_html(rec), type(plot_recorder(rec, "norms")).__name__
(True, 'Figure')
"""

from __future__ import annotations

import html
import math
from typing import Callable, Dict, Tuple

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from ..errors import GradflowError, UsageError
from . import lag_plots, plots
from ._common import attach_neuron
from .display import display_summary
from .page import html_table
from .style import RC
from .summary import Statistics, layer_statistics

__all__ = ["PLOT_KINDS", "recorder_tables", "recorder_statistics", "recorder_html", "plot_recorder"]


def recorder_tables(rec) -> Dict[str, pd.DataFrame]:
    """The recorder's tables by name (``per_step`` always; ``pairs``, ``lags``, ``weights`` when recorded)."""
    tables = {"per_step": rec.per_step()}
    for name in ("pairs", "lags", "weights"):
        try:
            tables[name] = getattr(rec, name)()
        except UsageError:   # not recorded (pairs=False / weights=False)
            pass
    return tables


def recorder_statistics(rec, *, n_resamples: int = 1000, seed: int = 0) -> Tuple[Dict[str, pd.DataFrame], Statistics]:
    """The tables and their per-layer statistics (:func:`gradflow.report.layer_statistics`) of ``rec``."""
    tables = recorder_tables(rec)
    samples = rec.samples() if hasattr(rec, "samples") else None
    return tables, layer_statistics(tables, samples, n_resamples=n_resamples, seed=seed)


def recorder_html(rec, *, n_resamples: int = 1000, seed: int = 0) -> str:
    """The recorder as a compact HTML summary: what was recorded, then one row per layer with intervals.

    Never raises (a notebook cell showing a recorder must not fail): a recorder that has not seen a
    backward pass yet, or whose tables cannot be built, says so in one line.
    """
    e = html.escape
    steps = getattr(rec, "steps", 0)
    if not steps:
        return "<p><b>gradflow Recorder</b>: nothing recorded yet (no backward pass reached a neuron).</p>"
    try:
        tables, st = recorder_statistics(rec, n_resamples=n_resamples, seed=seed)
    except GradflowError as err:
        return f"<p><b>gradflow Recorder</b>: {e(str(err))}</p>"
    s = st.summary
    samples = float(s["samples"].max()) if "samples" in s and len(s) else math.nan
    head = (f"<p><b>gradflow Recorder</b>: {steps} backward pass{'es' if steps != 1 else ''}, "
            f"{len(s)} layer{'s' if len(s) != 1 else ''}, T = {int(s['T'].max()) if len(s) else 'n/a'}"
            + (f", {int(samples)} samples" if math.isfinite(samples) else "")
            + f"; [low, high]: 95% bootstrap intervals ({n_resamples} resamples).</p>")
    return head + html_table(display_summary(s))


def _figure(size: Tuple[float, float], draw: Callable[[Figure], object], grid: bool = False) -> Figure:
    """A headless Figure drawn under the report's matplotlib settings."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=size, layout=None if grid else "constrained")
        draw(fig)
    return fig


def _grid_size(n: int, per_row: int, w: float, h: float) -> Tuple[float, float]:
    rows, cols = plots.grid_shape(n, None, per_row)
    return max(w * cols + 1.0, 6.0), h * rows + 1.4


PLOT_KINDS = {
    "lags": "relative_k over lag k per layer, measured with 95% intervals (lag_plots.plot_lag_decay)",
    "pairs": "||pair[t, t']|| heatmaps, one per layer (lag_plots.plot_pair_grid)",
    "norms": "spatial and temporal gradient norms over t, one panel per layer (plots.plot_norms_grid)",
    "share": "temporal share of dL/du per layer (plots.plot_temporal_share)",
    "projection": "weight temporal projection per layer (plots.plot_temporal_share)",
    "activity": "firing rate and surrogate-window fraction per layer (plots.plot_window_firing)",
}


def plot_recorder(rec, kind: str = "lags", **options) -> Figure:
    """A figure of ``rec`` as the analysis report draws it; ``kind`` is one of :data:`PLOT_KINDS`.

    ``options`` go to the plot function (e.g. ``layers=[...]`` for ``lags``, ``logy=True`` for
    ``norms``). Returns a :class:`matplotlib.figure.Figure` (headless; Jupyter shows it).
    """
    if kind not in PLOT_KINDS:
        raise UsageError(f"Unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}.", arguments=("kind",))
    if kind in ("norms", "pairs"):
        tables = recorder_tables(rec)
        if kind == "pairs" and "pairs" not in tables:
            raise UsageError("Pairs were not recorded; use gradflow.record(model, pairs=True).", arguments=("kind",))
        df = tables["per_step" if kind == "norms" else "pairs"]
        n = df["layer"].nunique()
        if kind == "norms":
            return _figure(_grid_size(n, 4, 3.4, 2.6), lambda fig: plots.plot_norms_grid(df, fig, **options), grid=True)
        pairs = attach_neuron(df, tables["per_step"])
        return _figure(_grid_size(n, 6, 2.6, 2.6), lambda fig: lag_plots.plot_pair_grid(pairs, fig, **options),
                       grid=True)
    _, st = recorder_statistics(rec)
    if kind == "lags":
        if st.profile.empty:
            raise UsageError("Lags were not recorded; use gradflow.record(model, pairs=True).", arguments=("kind",))
        return _figure((7.5, 5.0), lambda fig: lag_plots.plot_lag_decay(st.profile, fig.subplots(), **options))
    width = max(0.45 * len(st.summary) + 3.0, 6.5)
    if kind == "activity":
        return _figure((width, 4.4), lambda fig: plots.plot_window_firing(st.summary, fig.subplots(), **options))
    column = "temporal_share" if kind == "share" else "weight_temporal_projection"
    return _figure((width, 4.4),
                   lambda fig: plots.plot_temporal_share(st.summary, fig.subplots(), column=column, **options))
