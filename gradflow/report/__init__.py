"""Reports of the gradient flow: one page toolkit, and the pages built on it.

The recorder's tables (and its per-sample sums) go in; numbers with 95% intervals, findings in
words, figures and self-contained pages come out::

    from gradflow import report
    summary = report.summarize(tables, rec.samples())      # one row per (run,) layer, with intervals
    report.findings(summary)          # ["sn1: weight temporal projection 12% [9%, 15%], ...", ...]
    report.plot_temporal_share(summary, ax=ax)               # every plot: f(df, ax=None) -> ax
    report.write_report("out/", summary_json={...}, tables=tables, samples=rec.samples())

For a comparison, concatenate the runs' tables with a first column ``run`` (e.g. ``"LIF"``,
``"CLIF"``) and pass ``{run: samples}``; summary, tables and figures then show the runs side by side.

The toolkit: :mod:`.page` (render and embed figures, HTML tables, the stylesheet, JSON, the atomic
directory), :mod:`.style` (colours per neuron kind, matplotlib settings, notes), :mod:`.tables` (the one
Markdown/LaTeX formatter). Numbers and words: :mod:`.summary` (per-layer statistics) on :mod:`.resample`
(the bootstrap), :mod:`.display` (numbers as text, display tables), :mod:`.findings` (sentences). Figures:
:mod:`.plots`, :mod:`.lag_plots`, :mod:`.theory_plots`. Pages: :mod:`.analysis_page` (``gradflow
analyze``), :mod:`.theory_page` (``gradflow theory``), :mod:`.demo_page` (``gradflow demo``),
:mod:`.experiment_page` (helpers of the committed experiment reports). Every column and number is
defined in docs/reference.md.
"""

from .analysis_page import DEFINITIONS, FIGURE_NAMES, write_report
from .display import (
    compare_table,
    decay_table,
    display_summary,
    format_half_life,
    format_interval,
    format_percent,
    separation,
)
from .findings import decay_sentence, findings, statistics_note
from .lag_plots import plot_lag_decay, plot_pair_grid, plot_pair_heatmap
from .plots import plot_norms_grid, plot_norms_over_t, plot_temporal_share, plot_window_firing
from .style import NEURON_COLORS, neuron_color
from .summary import INTERVAL_METRICS, SUMMARY_COLUMNS, Statistics, lag_profile, layer_statistics, summarize
from .tables import escape_latex, escape_markdown, to_latex, to_markdown, write_tables

__all__ = [
    "summarize",
    "layer_statistics",
    "lag_profile",
    "Statistics",
    "findings",
    "decay_sentence",
    "statistics_note",
    "separation",
    "format_percent",
    "format_half_life",
    "format_interval",
    "SUMMARY_COLUMNS",
    "INTERVAL_METRICS",
    "NEURON_COLORS",
    "neuron_color",
    "plot_norms_over_t",
    "plot_norms_grid",
    "plot_temporal_share",
    "plot_pair_heatmap",
    "plot_pair_grid",
    "plot_lag_decay",
    "plot_window_firing",
    "escape_markdown",
    "escape_latex",
    "to_markdown",
    "to_latex",
    "display_summary",
    "compare_table",
    "decay_table",
    "write_tables",
    "write_report",
    "FIGURE_NAMES",
    "DEFINITIONS",
]
