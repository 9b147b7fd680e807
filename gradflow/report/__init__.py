"""Reports of the gradient flow: per-layer summary, findings in words, figures, tables, one HTML page.

The recorder's tables (SPEC §3) go in; a report directory (SPEC §4) comes out::

    from gradflow import report
    summary = report.summarize(per_step, lags, weights, theory)     # one row per (run,) layer
    report.findings(summary)        # ["layer3.1: temporal share 4%, half-life 0.7 steps, ...", ...]
    report.plot_temporal_share(summary, ax=ax)                      # every plot: f(df, ax) -> ax
    report.write_report("out/", summary_json={...}, tables={"per_step": per_step, ...})

For a comparison, concatenate the runs' tables with a first column ``run`` (e.g. ``"LIF"``,
``"CLIF"``); summary, tables and figures then show the runs side by side.

Pieces: :mod:`.summary` (numbers and words), :mod:`.plots` (figures; headless, pyplot only imported
when a plot is called without ``ax``), :mod:`.tables` (CSV, Markdown, LaTeX without optional
packages), :mod:`.writer` (the atomic report directory).
"""

from .plots import (
    NEURON_COLORS,
    neuron_color,
    plot_lag_decay,
    plot_norms_grid,
    plot_norms_over_t,
    plot_pair_grid,
    plot_pair_heatmap,
    plot_temporal_share,
    plot_window_firing,
)
from .summary import (
    SUMMARY_COLUMNS,
    findings,
    format_half_life,
    format_percent,
    half_life,
    lag_profile,
    summarize,
)
from .tables import (
    compare_table,
    display_summary,
    escape_latex,
    escape_markdown,
    to_latex,
    to_markdown,
    write_tables,
)
from .writer import DEFINITIONS, FIGURE_NAMES, write_report

__all__ = [
    "summarize",
    "findings",
    "half_life",
    "lag_profile",
    "format_percent",
    "format_half_life",
    "SUMMARY_COLUMNS",
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
    "write_tables",
    "write_report",
    "FIGURE_NAMES",
    "DEFINITIONS",
]
