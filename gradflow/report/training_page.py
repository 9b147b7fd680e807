"""The report over training: the directory ``gradflow report DIR`` writes for a watched run.

``DIR`` is a run directory of :func:`gradflow.watch` (or of ``gradflow train --record-every``, which
records through it). Layout of ``out_dir`` (default ``DIR/report``; the columns are defined in
docs/reference.md, "Watched runs")::

    summary.json      the run (settings, steps recorded, layers, samples per step), the theory used, versions
    summary.csv       one row per (recorded step, layer): the watch's summary.csv with its 95% intervals,
                      plus the theory's predicted_relative_1, predicted_half_life and theory_error
    theory.csv        measured and predicted relative_k per (recorded step, layer, lag)
    figures/<name>.png  figures/<name>.svg     see FIGURE_NAMES
    report.md         findings in words, the latest step's table, links to the figures
    index.html        one self-contained page (figures embedded), opens offline

Written atomically through :func:`gradflow.report.page.report_directory`, with the page toolkit of
the analysis report (:mod:`gradflow.report.page`, :mod:`gradflow.report.style`).

**Theory.** For each recorded step chosen (every step up to ``max_theory_steps``, else that many
evenly spaced, always the first and the last) the lag profile is predicted from that step's per-step
statistics by :func:`gradflow.theory.theory_table` (its default model; the run's ``transport.csv``
inputs feed the window model where the recorder provides them) and set beside the measurement:
``predicted_relative_1``, ``predicted_half_life`` (:func:`gradflow.stats.half_life` of the predicted
profile) and ``theory_error`` (:func:`gradflow.stats.theory_error`, median over lags 1..4 of
``|predicted - measured| / measured``). A failing prediction never sinks the report: it is named
under "Notes".
"""

from __future__ import annotations

import html
import json
import math
import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import pandas as pd

from .. import __version__, stats, theory
from ..errors import DataError
from ..watch.store import WatchedRun, read_run
from . import page
from .display import format_interval, separation
from .page import FigureSpec, figure_html, html_page, html_table, report_directory, write_json
from .tables import to_markdown
from .training_plots import plot_activity_over_steps, plot_over_steps, plot_relative_heatmap_grid

__all__ = ["write_training_report", "theory_over_steps", "FIGURE_NAMES", "DEFINITIONS"]

#: The figures of the report, in page order (``figures/<name>.png`` and ``.svg``).
FIGURE_NAMES = ("relative_heatmap", "half_life", "relative_1", "weight_temporal_projection", "temporal_share",
                "activity")

#: What the numbers mean (docs/reference.md has more).
DEFINITIONS = (
    ("training step", "the step of the watched loop (one grad-enabled call of the model, or one Watch.step()); "
                      "only every N-th step is recorded."),
    ("relative_k", "sqrt(sum_t ||pair[t, t+k]||^2 / sum_t ||P[t+k]||^2): how much of the spatial gradient of "
                   "the sources that have a step k back survives the k steps through the neuron's state."),
    ("half-life", "the lag at which relative_k first falls to 0.5 (log-linear between lags); inf when it stays "
                  "above 0.5 up to the longest lag recorded."),
    ("weight temporal projection", "<g_t, g> / ||g||^2 for the gradient of the parameters feeding the layer: "
                                   "the signed share of the weight update carried by the temporal part."),
    ("temporal share", "||temporal|| / (||P|| + ||temporal||) of dL/du over the step's samples and time steps "
                       "(sign-blind)."),
    ("window occupancy", "share of elements where the surrogate derivative is non-zero (window_fraction); "
                         "firing rate: share of elements that spiked."),
    ("intervals", "bands and [low, high]: 95% percentile bootstrap intervals over the step's samples (over "
                  "backward passes for the weight projection, which a one-pass step does not have)."),
    ("theory", "the prediction of gradflow.theory's default model from the step's per-step statistics; theory "
               "error = median over lags 1..4 of |predicted - measured| / measured."),
)

_METRICS = (("half_life", "half-life", "steps"), ("weight_temporal_projection", "weight temporal projection", "pct"),
            ("relative_1", "relative_1", "ratio"), ("firing_rate", "firing rate", "pct"),
            ("window_fraction", "window occupancy", "pct"))


# ----------------------------------------------------------------------------- theory


def _chosen_steps(steps: np.ndarray, max_steps: Optional[int]) -> np.ndarray:
    """All steps, or ``max_steps`` of them evenly spaced (first and last always)."""
    steps = np.unique(steps)
    if max_steps is None or len(steps) <= max_steps:
        return steps
    idx = np.unique(np.round(np.linspace(0, len(steps) - 1, max(max_steps, 2))).astype(int))
    return steps[idx]


def _neuron_options(layers: pd.DataFrame) -> dict:
    """``theory_table`` keyword arguments from the recorder's ``layer_info`` rows of one step."""
    first = layers.iloc[0]
    return dict(neuron=None, tau={str(r.layer): float(r.tau) for r in layers.itertuples()},
                v_threshold=float(first["v_threshold"]), surrogate=str(first["surrogate"]),
                alpha=float(first["alpha"]),
                v_reset=None if str(first["reset"]) == "soft" else float(first["v_reset"]),
                detach_reset=bool(first["detach_reset"]), decay_input=bool(first["decay_input"]))


def _transport_of(run: WatchedRun, step) -> Optional[Dict[str, dict]]:
    """The window model's inputs of one recorded step, ``{layer: dict of arrays}``, if the run has them."""
    rows = run.tables.get("transport")
    if rows is None or rows.empty:
        return None
    d = rows[rows["train_step"] == step]
    if d.empty:
        return None
    return {str(r.layer): {k: np.asarray(v) for k, v in json.loads(r.inputs).items()} for r in d.itertuples()}


def theory_over_steps(run: WatchedRun, *, max_steps: Optional[int] = 8) -> Tuple[pd.DataFrame, pd.DataFrame, List[str]]:
    """The theory beside the measurement at the recorded steps (module documentation, "Theory").

    Returns ``(theory, per_layer, notes)``: ``theory`` is ``theory.csv`` (``train_step`` then the
    columns of :func:`gradflow.theory.theory_table`); ``per_layer`` one row per (step, layer) with
    ``predicted_relative_1``, ``predicted_half_life``, ``theory_error``, ``theory_model``; ``notes``
    say what could not be predicted, and why.
    """
    lags, per_step, layers = (run.tables.get(k) for k in ("lags", "per_step", "layers"))
    if lags is None or per_step is None or layers is None or lags.empty:
        return pd.DataFrame(), pd.DataFrame(), ["theory: the run has no lag table"]
    tables, rows, notes = [], [], []
    for step in _chosen_steps(lags["train_step"].to_numpy(), max_steps):
        L = layers[layers["train_step"] == step]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                th = theory.theory_table(lags[lags["train_step"] == step], per_step[per_step["train_step"] == step],
                                         extra_models=(), transport=_transport_of(run, step), **_neuron_options(L))
            for w in caught:
                text = str(w.message)
                if text not in notes:
                    notes.append(text)
        except Exception as err:  # noqa: BLE001 - the theory never sinks a report of measurements
            notes.append(f"theory at training step {step}: {err}")
            continue
        th.insert(0, "train_step", step)
        tables.append(th)
        for layer, d in th.groupby("layer", sort=False):
            d = d.sort_values("lag")
            K1 = int(d["lag"].max()) + 1
            pred, meas = np.full(K1, np.nan), np.full(K1, np.nan)
            pred[d["lag"].to_numpy(int)] = d["predicted_relative"].to_numpy(float)
            meas[d["lag"].to_numpy(int)] = d["measured_relative"].to_numpy(float)
            finite = np.where(np.isfinite(pred), pred, np.nan)
            rows.append({"train_step": step, "layer": layer,
                         "predicted_relative_1": pred[1] if K1 > 1 else math.nan,
                         "predicted_half_life": stats.half_life(finite) if np.isfinite(pred).sum() > 1 else math.nan,
                         "theory_error": stats.theory_error(pred, meas) if K1 > 1 else math.nan,
                         "theory_model": str(d["model"].iloc[0])})
    theory_df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return theory_df, pd.DataFrame(rows), notes


# ----------------------------------------------------------------------------- words


def _triple(row: pd.Series, metric: str) -> Tuple[float, float, float]:
    return tuple(float(row.get(c, math.nan)) for c in (metric, f"{metric}_ci_low", f"{metric}_ci_high"))


def training_findings(summary: pd.DataFrame) -> List[str]:
    """One sentence per layer and metric: first against last recorded step, as a change only when the
    two steps' 95% intervals separate (else "within sampling noise", or "no interval" without one)."""
    out = []
    if summary.empty:
        return out
    first_step, last_step = summary["train_step"].min(), summary["train_step"].max()
    for layer, d in summary.sort_values(["layer_index", "train_step"]).groupby("layer", sort=False):
        a, b = d.iloc[0], d.iloc[-1]
        parts = []
        for metric, name, kind in _METRICS:
            if metric not in d:
                continue
            ta, tb = _triple(a, metric), _triple(b, metric)
            max_lag = float(a.get("max_lag", math.nan))
            fa, fb = (format_interval(*t, kind=kind, max_lag=max_lag) for t in (ta, tb))
            if fa == "n/a" and fb == "n/a":
                continue
            sep = separation(ta, tb)
            if sep is None:
                parts.append(f"{name} {fa} -> {fb} (no interval)")
            else:
                verdict = {1: "fell", -1: "rose", 0: "stayed within sampling noise"}[sep]
                parts.append(f"{name} {verdict}: {fa} -> {fb}")
        if parts:
            out.append(f"Layer {layer} (steps {int(first_step)} -> {int(last_step)}): " + "; ".join(parts) + ".")
    if "theory_error" in summary and np.isfinite(summary["theory_error"].to_numpy(float)).any():
        for layer, d in summary.groupby("layer", sort=False):
            e = d["theory_error"].to_numpy(float)
            e = e[np.isfinite(e)]
            if e.size:
                model = d["theory_model"].dropna().iloc[0] if "theory_model" in d and d["theory_model"].notna().any() else "theory"
                out.append(f"Layer {layer}: the {model} prediction of relative_k is off by a median {100 * np.median(e):.0f}% "
                           f"(lags 1-4, over {e.size} recorded step{'s' if e.size != 1 else ''}).")
    return out


def _latest_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The last recorded step, one row per layer, numbers with their intervals (for the page)."""
    last = summary[summary["train_step"] == summary["train_step"].max()].sort_values("layer_index")
    rows = []
    for _, r in last.iterrows():
        row = {"layer": r["layer"], "neuron": r["neuron"], "samples": r["samples"]}
        for metric, name, kind in _METRICS + (("temporal_share", "temporal share", "pct"),):
            row[name] = format_interval(*_triple(r, metric), kind=kind, max_lag=float(r.get("max_lag", math.nan)))
        if "predicted_half_life" in r:
            row["predicted half-life"] = format_interval(float(r["predicted_half_life"]), math.nan, math.nan, "steps",
                                                         float(r.get("max_lag", math.nan)))
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the page


def _figures(summary: pd.DataFrame, lags: pd.DataFrame) -> List[FigureSpec]:
    n_layers = max(summary["layer"].nunique(), 1)
    rows = math.ceil(n_layers / min(n_layers, 3))
    band = " Bands: 95% bootstrap intervals over the step's samples."

    def one(metric, predicted=None):
        return lambda fig: plot_over_steps(summary, metric, fig.subplots(), predicted=predicted)

    return [
        FigureSpec("relative_heatmap", "relative_k per layer against the training step (x) and the lag k (y), log "
                   "colour scale: how much of the spatial gradient survives k steps back through the neurons' "
                   "state at each recorded step. Grey: no finite value; black: zero.",
                   (max(3.6 * min(n_layers, 3) + 2.0, 8.0), 2.9 * rows + 1.4),
                   lambda fig: plot_relative_heatmap_grid(lags, fig), grid=True),
        FigureSpec("half_life", "Half-life of the temporal gradient per layer over training; dashed: the theory's "
                   "prediction at the steps it was computed for." + band, (8.5, 4.8), one("half_life", "predicted_half_life")),
        FigureSpec("relative_1", "relative_1 (gradient surviving one step back) per layer over training; dashed: "
                   "the theory." + band, (8.5, 4.8), one("relative_1", "predicted_relative_1")),
        FigureSpec("weight_temporal_projection", "Weight temporal projection <g_t, g>/||g||^2 per layer over "
                   "training (negative: the temporal part shrinks the update). Bands only for steps of several "
                   "backward passes.", (8.5, 4.8), one("weight_temporal_projection")),
        FigureSpec("temporal_share", "Temporal share of dL/du per layer over training (sign-blind)." + band,
                   (8.5, 4.8), one("temporal_share")),
        FigureSpec("activity", "Firing rate (solid) and surrogate-window occupancy (dashed) per layer over "
                   "training." + band, (8.5, 4.8), lambda fig: plot_activity_over_steps(summary, fig.subplots())),
    ]


def _meta(run: WatchedRun, run_dir: Path, summary: pd.DataFrame, notes: List[str], max_theory_steps) -> dict:
    state = run.meta
    steps = sorted(summary["train_step"].unique().tolist())
    return {
        "kind": "gradflow training report",
        "run": run_dir.name,
        "recorded_steps": len(steps),
        "first_step": steps[0] if steps else None,
        "last_step": steps[-1] if steps else None,
        "passes": state.get("passes"),
        "layers": summary.drop_duplicates("layer").sort_values("layer_index")["layer"].tolist(),
        "neurons": sorted(summary["neuron"].dropna().unique().tolist()),
        "samples_per_step": float(np.nanmedian(summary["samples"].to_numpy(float))) if len(summary) else None,
        "settings": state.get("settings"),
        "watch_version": state.get("version"),
        "theory": {"max_steps": max_theory_steps,
                   "models": sorted(summary["theory_model"].dropna().unique().tolist())
                   if "theory_model" in summary else []},
        "notes": notes,
        "versions": {"gradflow": __version__},
    }


def _markdown(title: str, meta: dict, found: List[str], latest: pd.DataFrame, figs: List[FigureSpec]) -> str:
    lines = [f"# {title}", "",
             f"Written by gradflow {__version__} from the watched run `{meta['run']}`: {meta['recorded_steps']} recorded "
             f"steps ({meta['first_step']} to {meta['last_step']}), layers {', '.join(meta['layers'])}. Tables: "
             "`summary.csv` (per step and layer, with intervals), `theory.csv`; `index.html` is the same report.", ""]
    lines += ["## Findings", ""] + [f"- {s}" for s in found] + [""]
    lines += ["## Latest recorded step", "", to_markdown(latest), ""]
    lines += ["## Figures", ""]
    for i, f in enumerate(figs, 1):
        lines += [f"### Figure {i}: {f.name.replace('_', ' ')}", "", f"![{f.caption}](figures/{f.name}.png)", "",
                  f"{f.caption} ([SVG](figures/{f.name}.svg))", ""]
    if meta["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    lines += ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS] + [""]
    return "\n".join(lines)


def _html(title: str, meta: dict, found: List[str], latest: pd.DataFrame, figs: List[FigureSpec],
          pngs: Dict[str, bytes]) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>",
            f'<p class="meta">gradflow {e(__version__)} &middot; watched run <code>{e(meta["run"])}</code>: '
            f'{meta["recorded_steps"]} recorded steps ({meta["first_step"]} to {meta["last_step"]}), layers '
            f'{e(", ".join(meta["layers"]))}. Tables in <code>summary.csv</code> and <code>theory.csv</code>.</p>']
    body += ["<h2>Findings</h2>", '<ul class="findings">' + "".join(f"<li>{e(s)}</li>" for s in found) + "</ul>"]
    body += ["<h2>Latest recorded step</h2>", html_table(latest)]
    body.append("<h2>Figures</h2>")
    body += [figure_html(f, pngs[f.name], i) for i, f in enumerate(figs, 1)]
    if meta["notes"]:
        body += ["<h2>Notes</h2>", "<ul>" + "".join(f'<li class="warn">{e(n)}</li>' for n in meta["notes"]) + "</ul>"]
    defs = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in DEFINITIONS)
    body += ["<h2>Definitions</h2>", f'<dl class="defs">{defs}</dl>']
    return html_page(title, body)


def write_training_report(
    run_dir: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike, None] = None,
    *,
    title: Optional[str] = None,
    force: bool = False,
    max_theory_steps: Optional[int] = 8,
) -> Path:
    """Write the report over training of the watched run ``run_dir``; returns the report directory.

    ``out_dir`` defaults to ``run_dir/report``; an existing report there is replaced only with
    ``force``. ``max_theory_steps``: how many recorded steps get the theory's prediction (None: all;
    each costs one :func:`gradflow.theory.theory_table`). Raises :class:`~gradflow.errors.DataError`
    when ``run_dir`` is not a watched run or has no recorded step yet.
    """
    run_dir = Path(run_dir).expanduser()
    run = read_run(run_dir)
    summary = run.summary
    if summary.empty:
        raise DataError(f"{str(run_dir)!r} has no recorded step yet: nothing to report.")
    theory_df, predicted, notes = theory_over_steps(run, max_steps=max_theory_steps)
    if not predicted.empty:
        summary = summary.merge(predicted, on=["train_step", "layer"], how="left")
    out = Path(out_dir).expanduser() if out_dir is not None else run_dir / "report"
    title = title or f"gradflow training report: {run_dir.name}"
    lags = run.tables.get("lags", pd.DataFrame(columns=["train_step", "layer", "layer_index", "lag", "relative"]))
    meta = _meta(run, run_dir, summary, notes, max_theory_steps)
    found = training_findings(summary)
    latest = _latest_table(summary)
    with report_directory(out, force=force) as tmp:
        write_json(tmp / "summary.json", meta)
        summary.to_csv(tmp / "summary.csv", index=False)
        theory_df.to_csv(tmp / "theory.csv", index=False)
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        figs = _figures(summary, lags)
        pngs = {f.name: page.render_figure(f, fig_dir) for f in figs}
        (tmp / "report.md").write_text(_markdown(title, meta, found, latest, figs), encoding="utf-8")
        (tmp / "index.html").write_text(_html(title, meta, found, latest, figs, pngs), encoding="utf-8")
    return out.absolute()
