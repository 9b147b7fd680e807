"""The analysis report: the directory ``gradflow analyze`` writes, built on the page toolkit.

Layout of ``out_dir`` (every file always present; the columns are defined in docs/reference.md)::

    summary.json                        the caller's run description (model, neuron, T, tau, loss, ...),
                                        plus "layers" (the summary rows) and "statistics" (the intervals)
    per_step.csv pairs.csv lags.csv weights.csv theory.csv     the recorded tables, columns as recorded
    summary.csv                         one row per (run,) layer, with 95% intervals (gradflow.report.summarize)
    lag_profile.csv                     relative_k per (run,) layer and lag, with 95% intervals
    tables/summary.md  tables/summary.tex  tables/theory.md  tables/theory.tex
    tables/comparison.md  tables/comparison.tex                (two or more runs only)
    figures/<name>.png  figures/<name>.svg                     see FIGURE_NAMES
    report.md                           findings in words, tables, links to the figures
    index.html                          one self-contained page: inline CSS, figures as base64 PNG

The directory is written through :func:`gradflow.report.page.report_directory` (atomic: it appears
complete or not at all; an existing directory is replaced only with ``force`` and only if it holds a
previous report).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import pandas as pd

from .. import __version__, stats
from . import lag_plots, page, plots
from ._common import attach_neuron, empty_table, layer_order, ordered_runs, require_columns
from .display import compare_table, decay_table, display_summary
from .findings import findings, statistics_note
from .page import FigureSpec, figure_html, html_page, html_table, report_directory, write_json
from .summary import Statistics, layer_statistics
from .tables import to_markdown, write_tables

__all__ = ["write_report", "FIGURE_NAMES", "DEFINITIONS", "KEY_FIELDS"]

#: The figures of every report, in page order (each as ``figures/<name>.png`` and ``.svg``).
FIGURE_NAMES = (
    "weight_temporal_projection", "temporal_share", "norms_over_t", "lag_decay", "pair_heatmaps",
    "window_firing",
)

#: What the numbers mean, shown at the end of report.md and index.html (docs/reference.md has more).
DEFINITIONS = (
    ("spatial P[t]", "the part of dL/du[t] that reaches the layer through its spike output at the same "
                     "time step (from the next layer or the readout)."),
    ("temporal", "the rest of dL/du[t]: what arrives through the neuron's own state from later time "
                 "steps; it is zero at t = T-1."),
    ("weight temporal projection", "<g_t, g> / ||g||^2 for the gradient g = g_s + g_t of the parameters "
                                   "feeding the layer (all as one vector): the share of the weight update "
                                   "the temporal part carries, signed; negative when it shrinks the update. "
                                   "Mean over backward passes."),
    ("temporal share", "||temporal|| / (||P|| + ||temporal||), norms over all samples and time steps. "
                       "Sign-blind: it cannot say whether the temporal part helps or opposes the spatial "
                       "one; read it with the weight temporal projection."),
    ("pair[t, t']", "the part of dL/du[t] that started as P[t'] and travelled back t' - t steps through "
                    "the neuron's state."),
    ("relative_k", "sqrt(sum_t ||pair[t, t+k]||^2 / sum_t ||P[t+k]||^2): how much of the spatial gradient "
                   "of the sources that have a step k back survives the k steps."),
    ("half-life", "the lag at which relative_k first falls to 0.5, interpolated linearly in log(relative_k); "
                  "'> n' when it stays above 0.5 up to the longest lag n measured. Decay rate: the factor r "
                  "of the fit log(relative_k) = k log(r)."),
    ("theory error", "median over lags 1..4 of |predicted - measured| / measured relative_k."),
    ("intervals", "[low, high] after a number: its 95% percentile bootstrap interval over samples (over "
                  "backward passes for the weight temporal projection)."),
    ("zero temporal entries", "share of temporal entries that are exactly zero, at t = 0..T-2."),
    ("window fraction", "share of elements where the surrogate derivative is non-zero; firing rate: "
                        "share of elements that spiked."),
)

#: The fields of summary.json shown at the top of the report (all fields are in "Run details").
KEY_FIELDS = ("model", "neuron", "T", "tau", "loss", "accuracy", "inputs", "checkpoint")

_WHY = ("One step back, a source keeps the mean squared one-step factor of the neurons that carry its spatial "
        "gradient (the one-step survival), times the leak: relative_1 = gamma * sqrt(survival) exactly "
        "(docs/theory.md, Eq. 33). Where that gradient sits one step earlier, inside the surrogate window or "
        "not, decides the survival; the population's window occupancy alone does not.")

_CAPTIONS = {
    "summary": "Gradient flow per layer, with 95% bootstrap intervals (gradflow).",
    "theory": "Measured vs predicted relative gradient per lag (gradflow).",
    "comparison": "Weight temporal projection, temporal share and half-life per layer, runs side by side (gradflow).",
}


def _prepare(tables: Mapping[str, pd.DataFrame]) -> Dict[str, pd.DataFrame]:
    """Check the tables and fill the missing optional ones with empty tables of their columns."""
    if not isinstance(tables, Mapping):
        raise TypeError("tables must be a dict of name -> DataFrame")
    if tables.get("per_step") is None:
        raise ValueError("tables must contain 'per_step' (docs/reference.md)")
    data = dict(tables)
    for name in ("per_step", "pairs", "lags", "weights"):
        if data.get(name) is None:
            data[name] = empty_table(name)
        require_columns(data[name], name)
    if data.get("theory") is None:
        data["theory"] = empty_table("theory")
    require_columns(data["theory"], "theory", ["layer"] if not data["theory"].empty else [])
    return data


def _figures(data: Dict[str, pd.DataFrame], st: Statistics) -> List[FigureSpec]:
    """The report's figures (:data:`FIGURE_NAMES`), sized for the number of layers and runs."""
    per_step, summary = data["per_step"], st.summary
    pairs = attach_neuron(data["pairs"], per_step)
    profile = st.profile if not st.profile.empty else attach_neuron(data["lags"], per_step)
    theory = data["theory"] if not data["theory"].empty and "predicted_relative" not in profile.columns else None
    n_layers = max(len(layer_order(per_step)), 1)
    n_runs = len(ordered_runs(per_step))
    bar_w = float(np.clip(0.45 * n_layers * n_runs + 3.0, 7.0, 16.0))
    r, c = math.ceil(n_layers / min(n_layers, 4)), min(n_layers, 4)
    pr, pc = math.ceil(n_layers / min(n_layers, 6)) * n_runs, min(n_layers, 6)
    runs_note = " Runs side by side; colour = neuron type." if n_runs > 1 else ""
    ci = " Error bars: 95% bootstrap intervals."

    def one_ax(fn, df, **kw):
        """A draw function that puts ``fn(df, **kw)`` on the figure's single axes."""
        return lambda fig: fn(df, ax=fig.subplots(), **kw)

    return [
        FigureSpec("weight_temporal_projection",
                   "Weight temporal projection per layer: <g_t, g> / ||g||^2 for the gradient of the parameters "
                   "feeding the layer, mean over backward passes; negative where the temporal part shrinks the "
                   "update. Error bars: 95% bootstrap intervals over backward passes." + runs_note,
                   (bar_w, 4.8), one_ax(plots.plot_temporal_share, summary, column="weight_temporal_projection")),
        FigureSpec("temporal_share",
                   "Temporal share of the input-current gradient dL/du per layer: ||temporal|| / "
                   "(||P|| + ||temporal||), norms over all samples and time steps (sign-blind)." + ci + runs_note,
                   (bar_w, 4.8), one_ax(plots.plot_temporal_share, summary)),
        FigureSpec("norms_over_t",
                   "Spatial (solid) and temporal (dashed) gradient norms per time step, one panel per "
                   "layer, mean over backward passes." + runs_note,
                   (max(3.4 * c + 0.9, 8.0), 2.6 * r + 1.6), lambda fig: plots.plot_norms_grid(per_step, fig),
                   grid=True),
        FigureSpec("lag_decay",
                   "relative_k over lag k: measured (markers, 95% bootstrap intervals) and predicted by the "
                   "theory (lines), log scale; darker shades are deeper layers." + runs_note,
                   (8.0, 5.2), one_ax(lag_plots.plot_lag_decay, profile, theory=theory)),
        FigureSpec("pair_heatmaps",
                   "||pair[t, t']||: the part of the gradient at step t (rows) that started as the spatial "
                   "gradient at step t' (columns), relative to each layer's largest cell, log colour scale. "
                   "Grey: not recorded (t' < t); black: zero or below 1e-6."
                   + (" One block of rows per run." if n_runs > 1 else ""),
                   (max(2.6 * pc + 2.2, 8.0), 2.6 * pr + 1.3), lambda fig: lag_plots.plot_pair_grid(pairs, fig),
                   grid=True),
        FigureSpec("window_firing",
                   "Firing rate (solid) and share of elements inside the surrogate window (dashed) per "
                   "layer." + runs_note,
                   (bar_w, 4.6), one_ax(plots.plot_window_firing, summary)),
    ]


# ------------------------------------------------------------------------------------ run information

def _flatten(obj, prefix: str = "", depth: int = 0) -> List[Tuple[str, str]]:
    """``(dotted key, short text)`` pairs of a JSON-like dict, for the run-information table."""
    if isinstance(obj, Mapping) and depth < 3:
        rows: List[Tuple[str, str]] = []
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return rows
    if isinstance(obj, list) and not obj:
        text = "none"
    elif isinstance(obj, list) and all(not isinstance(v, (Mapping, list)) for v in obj):
        text = ", ".join("n/a" if v is None else str(v) for v in obj)
    elif isinstance(obj, float):
        text = f"{obj:.6g}"
    elif obj is None:
        text = "n/a"
    elif isinstance(obj, (Mapping, list)):
        text = json.dumps(obj)
    else:
        text = str(obj)
    return [(prefix, text[:297] + "..." if len(text) > 300 else text)]


def _run_tables(doc: Mapping) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The run information as (key fields, all fields) tables of text.

    With ``doc["runs"]`` a dict of per-run dicts (comparisons), the runs are columns side by side and the
    other top-level fields follow as rows with one value; otherwise there is one ``Value`` column.
    """
    doc = {k: v for k, v in doc.items() if k not in ("layers", "statistics")}
    runs = doc.get("runs")
    if isinstance(runs, Mapping) and runs and all(isinstance(v, Mapping) for v in runs.values()):
        names = [str(r) for r in runs]
        per_run = {str(r): dict(_flatten(v)) for r, v in runs.items()}
        keys: List[str] = []
        for flat in per_run.values():
            keys += [k for k in flat if k not in keys]
        full = pd.DataFrame({"Field": keys, **{n: [per_run[n].get(k, "") for k in keys] for n in names}})
        key = full[full["Field"].isin(KEY_FIELDS)]
        rest = _flatten({k: v for k, v in doc.items() if k != "runs"})
        if rest:
            extra = pd.DataFrame({"Field": [k for k, _ in rest],
                                  **{n: [v for _, v in rest] if i == 0 else [""] * len(rest)
                                     for i, n in enumerate(names)}})
            full = pd.concat([full, extra], ignore_index=True)
    else:
        flat = _flatten(doc) if doc else []
        full = pd.DataFrame({"Field": [k for k, _ in flat], "Value": [v for _, v in flat]})
        key = full[full["Field"].isin(KEY_FIELDS)]
    return key.reset_index(drop=True), full


# ------------------------------------------------------------------------------------------- the page

def _markdown(title: str, info, found: List[str], note: str, data: Dict[str, pd.DataFrame], st: Statistics,
              figs: List[FigureSpec]) -> str:
    """report.md: the same sections as index.html, figures linked."""
    lines = [f"# {title}", "",
             f"Written by gradflow {__version__}. The tables are in the CSV files beside this file "
             "(`per_step.csv`, `pairs.csv`, `lags.csv`, `weights.csv`, `theory.csv`, `summary.csv`, "
             "`lag_profile.csv`); `index.html` is the same report as one page.", ""]
    key, full = info
    if len(key):
        lines += ["## Run", "", to_markdown(key), ""]
    lines += ["## Samples and intervals", "", note, ""]
    lines += ["## Findings", ""] + [f"- {s}" for s in found] + [""]
    lines += ["## Per layer", "", to_markdown(display_summary(st.summary)), ""]
    cmp = compare_table(st.summary)
    if cmp is not None:
        lines += ["## Runs side by side", "", to_markdown(cmp), ""]
    why = decay_table(st.summary)
    if why is not None:
        lines += ["## Why the gradient decays", "", _WHY, "", to_markdown(why), ""]
    lines += ["## Figures", ""]
    for i, f in enumerate(figs, 1):
        lines += [f"### Figure {i}: {f.name.replace('_', ' ')}", "",
                  f"![{f.caption}](figures/{f.name}.png)", "",
                  f"{f.caption} ([SVG](figures/{f.name}.svg))", ""]
    if not data["theory"].empty:
        lines += ["## Theory vs measurement", "", to_markdown(data["theory"]), ""]
    if len(full):
        lines += ["## Run details", "", to_markdown(full), ""]
    lines += ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS] + [""]
    return "\n".join(lines)


def _html(title: str, info, found: List[str], note: str, data: Dict[str, pd.DataFrame], st: Statistics,
          figs: List[FigureSpec], pngs: Dict[str, bytes]) -> str:
    """index.html: the same sections as report.md, figures embedded."""
    e = html.escape
    body = [
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">gradflow {e(__version__)} &middot; gradient-flow report. The tables are also '
        "in the CSV files beside this page (<code>per_step.csv</code>, <code>pairs.csv</code>, "
        "<code>lags.csv</code>, <code>weights.csv</code>, <code>theory.csv</code>, "
        "<code>summary.csv</code>, <code>lag_profile.csv</code>).</p>",
    ]
    key, full = info
    if len(key):
        body += ["<h2>Run</h2>", html_table(key, "info")]
    body += ["<h2>Samples and intervals</h2>", f"<p>{e(note)}</p>"]
    items = "".join(f'<li{" class=warn" if s.startswith("Warning") else ""}>{e(s)}</li>' for s in found)
    body += ["<h2>Findings</h2>", f'<ul class="findings">{items}</ul>']
    body += ["<h2>Per layer</h2>", html_table(display_summary(st.summary))]
    cmp = compare_table(st.summary)
    if cmp is not None:
        body += ["<h2>Runs side by side</h2>", html_table(cmp)]
    why = decay_table(st.summary)
    if why is not None:
        body += ["<h2>Why the gradient decays</h2>", f"<p>{html.escape(_WHY)}</p>", html_table(why)]
    body.append("<h2>Figures</h2>")
    body += [figure_html(f, pngs[f.name], i) for i, f in enumerate(figs, 1)]
    theory = data["theory"]
    if not theory.empty:
        body += ["<h2>Theory vs measurement</h2>",
                 f"<details><summary>Measured and predicted relative gradient per layer and lag "
                 f"({len(theory)} rows)</summary>{html_table(theory)}</details>"]
    if len(full):
        body += ["<h2>Run details</h2>",
                 f"<details><summary>Everything in summary.json ({len(full)} fields)</summary>"
                 f"{html_table(full, 'info')}</details>"]
    defs = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in DEFINITIONS)
    body += ["<h2>Definitions</h2>", f'<dl class="defs">{defs}</dl>']
    return html_page(title, body)


def _write_all(tmp: Path, title: str, summary_json: Mapping, data: Dict[str, pd.DataFrame],
               st: Statistics) -> None:
    """Every file of the report into the temporary directory ``tmp``."""
    doc = write_json(tmp / "summary.json", dict(summary_json, statistics=st.settings,
                                                layers=st.summary.to_dict(orient="records")))
    csv_tables = {k: data[k] for k in ("per_step", "pairs", "lags", "weights", "theory")}
    csv_tables.update(summary=st.summary, lag_profile=st.profile)
    csv_tables.update({k: v for k, v in data.items() if k not in csv_tables and isinstance(v, pd.DataFrame)})
    formatted = {"summary": display_summary(st.summary), "theory": data["theory"]}
    cmp = compare_table(st.summary)
    if cmp is not None:
        formatted["comparison"] = cmp
    write_tables(csv_tables, tmp, formatted=formatted, captions=_CAPTIONS)
    fig_dir = tmp / "figures"
    fig_dir.mkdir()
    figs = _figures(data, st)
    pngs = {f.name: page.render_figure(f, fig_dir) for f in figs}   # module attribute: patchable in tests
    found, note = findings(st.summary, data.get("layers")), statistics_note(st.summary, st.settings)
    info = _run_tables(doc)
    (tmp / "report.md").write_text(_markdown(title, info, found, note, data, st, figs), encoding="utf-8")
    (tmp / "index.html").write_text(_html(title, info, found, note, data, st, figs, pngs), encoding="utf-8")


def write_report(
    out_dir: Union[str, os.PathLike],
    *,
    summary_json: Mapping,
    tables: Mapping[str, pd.DataFrame],
    samples: Optional[Mapping] = None,
    transport: Optional[Mapping] = None,
    title: str = "gradflow report",
    force: bool = False,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write the report directory atomically (layout in the module documentation); returns its path.

    ``tables`` holds the recorder's DataFrames under ``per_step`` (required), ``pairs``, ``lags``,
    ``weights`` and ``theory`` (missing ones are written as empty CSVs with their columns), and any
    further tables, written as ``<name>.csv``. A precomputed ``summary`` (and ``lag_profile``) from
    :func:`~gradflow.report.layer_statistics` is used as given, so the bootstrap runs once; then
    ``n_resamples`` and ``seed`` should be the ones it was made with (the page quotes them). ``samples`` is ``Recorder.samples()`` (or, for a
    comparison, ``{run: Recorder.samples()}``): the per-sample sums the intervals resample; without it
    the intervals resample backward passes. ``transport``: the theory's ``window`` inputs per layer
    (``Recorder.transport_inputs()``, see :func:`~gradflow.report.layer_statistics`). A ``run`` column
    with two or more runs makes it a
    comparison report. ``summary_json`` is written to ``summary.json`` (numpy numbers converted, NaN/Inf
    as null) with ``layers`` (the summary rows) and ``statistics`` (level, resamples, seed) added.
    ``n_resamples``, ``seed``: the bootstrap (:func:`gradflow.report.summarize`).

    Raises :class:`~gradflow.errors.UsageError` when ``out_dir`` exists and ``force`` is false, when it
    exists but is not a previous report (even with ``force``), or when its parent is not writable.
    """
    if not isinstance(summary_json, Mapping):
        raise TypeError("summary_json must be a dict")
    data = _prepare(tables)
    if data.get("summary") is not None:
        settings = {"method": "percentile bootstrap", "level": stats.DEFAULT_LEVEL, "n_resamples": int(n_resamples),
                    "seed": int(seed)}
        profile = data.pop("lag_profile", None)
        st = Statistics(data.pop("summary"), profile if profile is not None else pd.DataFrame(), settings)
    else:
        st = layer_statistics(data, samples, theory=data["theory"] if not data["theory"].empty else None,
                              transport=transport, n_resamples=n_resamples, seed=seed)
    with report_directory(out_dir, force=force) as tmp:
        _write_all(tmp, title, summary_json, data, st)
    return Path(out_dir).expanduser().absolute()
