"""The report directory of SPEC §4, written atomically.

Layout of ``out_dir`` (every file always present)::

    summary.json                        the caller's run description (model, neuron, T, tau, loss, ...)
    per_step.csv pairs.csv lags.csv weights.csv theory.csv     the recorded tables, columns as recorded
    summary.csv                         one row per (run,) layer (gradflow.report.summarize)
    tables/summary.md  tables/summary.tex  tables/theory.md  tables/theory.tex
    tables/comparison.md  tables/comparison.tex                (two or more runs only)
    figures/<name>.png  figures/<name>.svg                     see FIGURE_NAMES
    report.md                           findings in words, tables, links to the figures
    index.html                          one self-contained page: inline CSS, figures as base64 PNG

Atomicity (issue 7): everything is written into ``.<name>.tmp-XXXX`` beside ``out_dir`` and renamed
into place only when complete. Any exception, KeyboardInterrupt, or SIGTERM (turned into ``SystemExit``
while writing, when called from the main thread with the default SIGTERM handler) removes the temporary
directory and propagates. An existing ``out_dir`` is refused unless ``force=True``; even then it is only
replaced if it is empty or holds a previous report (``summary.json`` or ``index.html``), and only after
the new report is complete.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple, Union

import numpy as np
import pandas as pd

from ..io.atomic import atomic_directory
from . import plots
from ._common import (
    attach_neuron,
    empty_table,
    layer_order,
    ordered_runs,
    require_columns,
)
from .summary import findings, summarize
from .tables import (
    _right_aligned,
    compare_table,
    display_summary,
    to_markdown,
    write_tables,
)

__all__ = ["write_report", "FIGURE_NAMES", "DEFINITIONS", "KEY_FIELDS"]

#: The figures of every report, in page order (each as ``figures/<name>.png`` and ``.svg``).
FIGURE_NAMES = (
    "temporal_share", "weight_temporal_share", "norms_over_t", "lag_decay", "pair_heatmaps",
    "window_firing",
)

#: What the numbers mean, shown at the end of report.md and index.html.
DEFINITIONS = (
    ("spatial P[t]", "the part of dL/du[t] that reaches the layer through its spike output at the same "
                     "time step (from the next layer or the readout)."),
    ("temporal", "the rest of dL/du[t]: what arrives through the neuron's own state from later time "
                 "steps; it is zero at t = T-1."),
    ("temporal share", "||temporal|| / (||P|| + ||temporal||), norms over all time steps of one recorded "
                       "batch, averaged over batches."),
    ("weight temporal share", "the same split for the gradient of the weights feeding the layer."),
    ("pair[t, t']", "the part of dL/du[t] that started as P[t'] and travelled back t' - t steps through "
                    "the neuron's state."),
    ("G_k, relative", "G_k is the RMS of ||pair[t, t+k]|| over t and batches; relative = G_k / G_0."),
    ("half-life", "the lag k at which G_k / G_0 first falls to 0.5 (linear interpolation); '> n' when "
                  "it stays above 0.5 up to the longest lag n measured."),
    ("zero temporal entries", "share of temporal entries that are exactly zero, at t = 0..T-2."),
    ("window fraction", "share of elements where the surrogate derivative is non-zero; firing rate: "
                        "share of elements that spiked."),
)

_RC = {
    "font.size": 11,
    "axes.titlesize": "large",
    "axes.labelsize": "medium",
    "xtick.labelsize": "small",
    "ytick.labelsize": "small",
    "legend.fontsize": "small",
    "figure.titlesize": "x-large",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "svg.hashsalt": "gradflow",    # reproducible SVG ids, so committed reports diff cleanly
    "hatch.linewidth": 0.6,
}
_PNG_DPI = 110


@dataclass
class _Figure:
    name: str
    caption: str
    size: Tuple[float, float]
    draw: Callable[[object], object]
    grid: bool = False


def _prepare(tables: Mapping[str, pd.DataFrame]) -> Dict[str, pd.DataFrame]:
    """Check the tables, fill the missing optional ones, compute the summary if absent."""
    if not isinstance(tables, Mapping):
        raise TypeError("tables must be a dict of name -> DataFrame")
    if "per_step" not in tables:
        raise ValueError("tables must contain 'per_step' (SPEC §3)")
    data = dict(tables)
    for name in ("per_step", "pairs", "lags", "weights"):
        if data.get(name) is None:
            data[name] = empty_table(name)
        require_columns(data[name], name)
    if data.get("theory") is None:
        data["theory"] = empty_table("theory")
    require_columns(data["theory"], "theory", ["layer"] if not data["theory"].empty else [])
    if data.get("summary") is None:
        data["summary"] = summarize(data["per_step"], data["lags"], data["weights"],
                                    data["theory"] if not data["theory"].empty else None)
    return data


def _figures(data: Dict[str, pd.DataFrame]) -> List[_Figure]:
    per_step, summary = data["per_step"], data["summary"]
    lags = attach_neuron(data["lags"], per_step)
    pairs = attach_neuron(data["pairs"], per_step)
    weights_summary = summary
    theory = data["theory"] if not data["theory"].empty else None
    n_layers = max(len(layer_order(per_step)), 1)
    n_runs = len(ordered_runs(per_step))
    bar_w = float(np.clip(0.45 * n_layers * n_runs + 3.0, 7.0, 16.0))
    r, c = math.ceil(n_layers / min(n_layers, 4)), min(n_layers, 4)
    pr, pc = math.ceil(n_layers / min(n_layers, 6)) * n_runs, min(n_layers, 6)
    runs_note = " Runs side by side; colour = neuron type." if n_runs > 1 else ""

    def one_ax(fn, df, **kw):
        return lambda fig: fn(df, ax=fig.subplots(), **kw)

    return [
        _Figure("temporal_share",
                "Temporal share of the input-current gradient dL/du per layer: ||temporal|| / "
                "(||P|| + ||temporal||), norms over all time steps, mean over batches." + runs_note,
                (bar_w, 4.8), one_ax(lambda *a, **k: plots.plot_temporal_share(*a, **k), summary)),
        _Figure("weight_temporal_share",
                "Temporal share of the weight gradient per layer (parameters feeding the layer, "
                "pooled)." + runs_note,
                (bar_w, 4.8), one_ax(lambda *a, **k: plots.plot_temporal_share(*a, **k), weights_summary,
                                     column="weight_temporal_share")),
        _Figure("norms_over_t",
                "Spatial (solid) and temporal (dashed) gradient norms per time step, one panel per "
                "layer, mean over batches." + runs_note,
                (max(3.4 * c + 0.9, 8.0), 2.6 * r + 1.6), lambda fig: plots.plot_norms_grid(per_step, fig), grid=True),
        _Figure("lag_decay",
                "Relative gradient G_k / G_0 over lag k: measured (markers) and predicted by the theory "
                "(lines), log scale; darker shades are deeper layers." + runs_note,
                (8.0, 5.2), one_ax(lambda *a, **k: plots.plot_lag_decay(*a, **k), lags, theory=theory)),
        _Figure("pair_heatmaps",
                "||pair[t, t']||: the part of the gradient at step t (rows) that started as the spatial "
                "gradient at step t' (columns), relative to each layer's largest cell, log colour scale. "
                "Grey: not recorded (t' < t); black: zero or below 1e-6."
                + (" One block of rows per run." if n_runs > 1 else ""),
                (max(2.6 * pc + 2.2, 8.0), 2.6 * pr + 1.3), lambda fig: plots.plot_pair_grid(pairs, fig), grid=True),
        _Figure("window_firing",
                "Firing rate (solid) and share of elements inside the surrogate window (dashed) per "
                "layer." + runs_note,
                (bar_w, 4.6), one_ax(lambda *a, **k: plots.plot_window_firing(*a, **k), summary)),
    ]


def _render(spec: _Figure, fig_dir: Path) -> bytes:
    """Draw one figure on an Agg canvas, save PNG and SVG, return the PNG bytes. Closes the figure."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constrained_layout.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onstrained [Ll]ayout.*")
        # Grids lay themselves out with fixed margins (constrained layout costs seconds per save with
        # dozens of axes); single-axes figures use constrained layout, computed once for the PNG and
        # then frozen for the SVG.
        fig = Figure(figsize=spec.size, layout=None if spec.grid else "constrained")
        FigureCanvasAgg(fig)
        try:
            spec.draw(fig)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=_PNG_DPI, metadata={"Software": None})
            png = buf.getvalue()
            (fig_dir / f"{spec.name}.png").write_bytes(png)
            if not spec.grid:
                fig.set_layout_engine("none")
            fig.savefig(fig_dir / f"{spec.name}.svg", format="svg", metadata={"Date": None})
        finally:
            del fig      # no pyplot registry: dropping the reference frees the figure
    return png


# ------------------------------------------------------------------------------------------ JSON/text

def _jsonable(obj):
    """``obj`` with numpy scalars as Python numbers, non-finite floats as None, paths as strings."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (int, str)):
        return obj
    return str(obj)


def _flatten(obj, prefix: str = "", depth: int = 0) -> List[Tuple[str, str]]:
    """``(dotted key, short text)`` pairs of a JSON-like dict, for the run-information table."""
    rows: List[Tuple[str, str]] = []
    if isinstance(obj, Mapping) and depth < 3:
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        return rows
    if isinstance(obj, list) and all(not isinstance(v, (Mapping, list)) for v in obj):
        text = ", ".join("n/a" if v is None else str(v) for v in obj)
    elif isinstance(obj, float):
        text = f"{obj:.6g}"
    elif obj is None:
        text = "n/a"
    elif isinstance(obj, (Mapping, list)):
        text = json.dumps(obj)
    else:
        text = str(obj)
    if isinstance(obj, list) and not obj:
        text = "none"
    if len(text) > 300:
        text = text[:297] + "..."
    return [(prefix, text)]


#: The fields of summary.json shown at the top of the report (all fields are in "Run details").
KEY_FIELDS = ("model", "neuron", "T", "tau", "loss", "accuracy", "inputs", "checkpoint")


def _run_tables(doc: Mapping) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The run information as (key fields, all fields) tables of text.

    With ``doc["runs"]`` a dict of per-run dicts (comparisons), the runs are columns side by side and the
    other top-level fields follow as rows with one value; otherwise there is one ``Value`` column.
    """
    runs = doc.get("runs") if isinstance(doc, Mapping) else None
    if isinstance(runs, Mapping) and runs and all(isinstance(v, Mapping) for v in runs.values()):
        names = [str(r) for r in runs]
        per_run = {str(r): dict(_flatten(v)) for r, v in runs.items()}
        keys: List[str] = []
        for flat in per_run.values():
            keys += [k for k in flat if k not in keys]
        full = pd.DataFrame({"Field": keys, **{n: [per_run[n].get(k, "") for k in keys] for n in names}})
        key = full[full["Field"].isin(KEY_FIELDS)]
        rest = [(k, v) for k, v in _flatten({k: v for k, v in doc.items() if k != "runs"})]
        if rest:
            extra = pd.DataFrame({"Field": [k for k, _ in rest], **{n: [v for _, v in rest] if i == 0 else
                                                                     [""] * len(rest) for i, n in enumerate(names)}})
            full = pd.concat([full, extra], ignore_index=True)
    else:
        flat = _flatten(doc) if doc else []
        full = pd.DataFrame({"Field": [k for k, _ in flat], "Value": [v for _, v in flat]})
        key = full[full["Field"].isin(KEY_FIELDS)]
    return key.reset_index(drop=True), full


def _markdown(title: str, info, found: List[str], data: Dict[str, pd.DataFrame],
              figs: List[_Figure]) -> str:
    from .. import __version__

    lines = [f"# {title}", "",
             f"Written by gradflow {__version__}. The tables are in the CSV files beside this file "
             "(`per_step.csv`, `pairs.csv`, `lags.csv`, `weights.csv`, `theory.csv`, `summary.csv`); "
             "`index.html` is the same report as one page.", ""]
    key, full = info
    if len(key):
        lines += ["## Run", "", to_markdown(key), ""]
    lines += ["## Findings", ""] + [f"- {s}" for s in found] + [""]
    lines += ["## Per layer", "", to_markdown(display_summary(data["summary"])), ""]
    cmp = compare_table(data["summary"])
    if cmp is not None:
        lines += ["## Runs side by side", "", to_markdown(cmp), ""]
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


# ----------------------------------------------------------------------------------------------- HTML

_CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9d9de; --stripe: #f6f6f8; --warn: #fff4e5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 16px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 36px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0 0 12px; }
ul.findings li { margin: 3px 0; }
li.warn, p.warn { background: var(--warn); border-left: 4px solid #e8710a; padding: 4px 10px;
                  list-style: none; margin-left: -14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { text-align: left; background: #fafafa; border-bottom: 2px solid #bbb; white-space: normal;
     vertical-align: bottom; min-width: 4em; max-width: 9em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: var(--stripe); }
table.info td { white-space: normal; max-width: 46em; overflow-wrap: anywhere; }
table.info td:first-child { color: var(--muted); white-space: nowrap; }
figure { margin: 22px 0 30px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.92rem; margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); }
dl.defs dt { font-weight: 600; margin-top: 6px; }
dl.defs dd { margin: 0 0 0 18px; color: #333; }
code { font-size: 0.9em; }
"""


def _html_cell(v) -> str:
    if v is None or (isinstance(v, (float, np.floating)) and math.isnan(v)) or v is pd.NA:
        return "n/a"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return "&infin;" if v > 0 else "-&infin;"
        return html.escape(format(float(v), ".4g"))
    return html.escape(str(v))


def _html_table(df: pd.DataFrame, cls: str = "") -> str:
    num = [_right_aligned(df[c]) for c in df.columns]
    head = "".join(f'<th{" class=num" if n else ""}>{html.escape(str(c))}</th>' for c, n in zip(df.columns, num))
    body = []
    for row in df.itertuples(index=False, name=None):
        cells = "".join(f'<td{" class=num" if n else ""}>{_html_cell(v)}</td>' for v, n in zip(row, num))
        body.append(f"<tr>{cells}</tr>")
    return (f'<div class="scroll"><table{f" class={cls}" if cls else ""}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _html(title: str, info, found: List[str], data: Dict[str, pd.DataFrame], figs: List[_Figure],
          pngs: Dict[str, bytes]) -> str:
    from .. import __version__

    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>", "<main>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">gradflow {e(__version__)} &middot; gradient-flow report. The tables are also '
        "in the CSV files beside this page (<code>per_step.csv</code>, <code>pairs.csv</code>, "
        "<code>lags.csv</code>, <code>weights.csv</code>, <code>theory.csv</code>, "
        "<code>summary.csv</code>).</p>",
    ]
    key, full = info
    if len(key):
        parts += ["<h2>Run</h2>", _html_table(key, "info")]
    items = "".join(f'<li{" class=warn" if s.startswith("Warning") else ""}>{e(s)}</li>' for s in found)
    parts += ["<h2>Findings</h2>", f'<ul class="findings">{items}</ul>']
    parts += ["<h2>Per layer</h2>", _html_table(display_summary(data["summary"]))]
    cmp = compare_table(data["summary"])
    if cmp is not None:
        parts += ["<h2>Runs side by side</h2>", _html_table(cmp)]
    parts.append("<h2>Figures</h2>")
    for i, f in enumerate(figs, 1):
        b64 = base64.b64encode(pngs[f.name]).decode("ascii")
        parts.append(f'<figure id="fig-{e(f.name)}"><img src="data:image/png;base64,{b64}" '
                     f'alt="{e(f.caption)}"><figcaption><b>Figure {i}.</b> {e(f.caption)}</figcaption></figure>')
    theory = data["theory"]
    if not theory.empty:
        parts += ["<h2>Theory vs measurement</h2>",
                  f"<details><summary>Measured and predicted relative gradient per layer and lag "
                  f"({len(theory)} rows)</summary>{_html_table(theory)}</details>"]
    if len(full):
        parts += ["<h2>Run details</h2>",
                  f"<details><summary>Everything in summary.json ({len(full)} fields)</summary>"
                  f"{_html_table(full, 'info')}</details>"]
    defs = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in DEFINITIONS)
    parts += ["<h2>Definitions</h2>", f'<dl class="defs">{defs}</dl>', "</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _write_all(tmp: Path, title: str, summary_json: Mapping, data: Dict[str, pd.DataFrame]) -> None:
    doc = _jsonable(summary_json)
    (tmp / "summary.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    csv_tables = {k: data[k] for k in ("per_step", "pairs", "lags", "weights", "theory", "summary")}
    csv_tables.update({k: v for k, v in data.items() if k not in csv_tables and isinstance(v, pd.DataFrame)})
    write_tables(csv_tables, tmp, formatted=("summary", "theory"))

    fig_dir = tmp / "figures"
    fig_dir.mkdir()
    figs = _figures(data)
    pngs = {f.name: _render(f, fig_dir) for f in figs}

    found = findings(data["summary"])
    info = _run_tables(doc)
    (tmp / "report.md").write_text(_markdown(title, info, found, data, figs), encoding="utf-8")
    (tmp / "index.html").write_text(_html(title, info, found, data, figs, pngs), encoding="utf-8")


def write_report(
    out_dir: Union[str, os.PathLike],
    *,
    summary_json: Mapping,
    tables: Mapping[str, pd.DataFrame],
    title: str = "gradflow report",
    force: bool = False,
) -> Path:
    """Write the SPEC §4 report directory atomically; returns its path.

    ``tables`` holds the recorder's DataFrames under ``per_step`` (required), ``pairs``, ``lags``,
    ``weights`` and ``theory`` (missing ones are written as empty CSVs with their columns), optionally a
    precomputed ``summary`` (else :func:`~gradflow.report.summarize`) and any further tables, which are
    written as ``<name>.csv``. A ``run`` column with two or more runs makes it a comparison report.
    ``summary_json`` is written to ``summary.json`` (numpy numbers converted, NaN/Inf as null).

    Raises :class:`~gradflow.errors.UsageError` when ``out_dir`` exists and ``force`` is false, when it
    exists but is not a previous report (even with ``force``), or when its parent is not writable.
    See the module documentation for the layout and the atomicity guarantees.
    """
    if not isinstance(summary_json, Mapping):
        raise TypeError("summary_json must be a dict")
    data = _prepare(tables)
    out = Path(out_dir).expanduser().absolute()
    with atomic_directory(out, force=force) as tmp:
        _write_all(tmp, title, summary_json, data)
    return out
