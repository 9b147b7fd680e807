"""What an analysis returns: :class:`Analysis` (tables, per-layer statistics, metadata) and :func:`combine`."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
import pandas as pd
import scipy
import torch

from .. import __version__, report
from .config import AnalysisConfig

__all__ = ["Analysis", "combine", "versions"]


@dataclass
class Analysis:
    """The result of :func:`analyze`: tables, the per-layer summary and the run's metadata.

    ``tables``: the recorder's ``per_step``, ``pairs``, ``lags``, ``weights``, the ``theory`` comparison
    and ``layers`` (each recorded layer's neuron options); with several runs each has a last column
    ``run``. ``meta``: what ``summary.json`` holds besides the per-layer summary (model, neuron, T, tau,
    loss, accuracy, inputs, samples, settings, versions; with several runs ``meta["runs"]`` holds each
    run's own). ``samples``: the recorder's per-sample sums that the intervals resample (None when the
    recorder does not provide them: backward passes are resampled instead). ``transport``: the window
    model's per-sample inputs (``Recorder.transport_inputs()``; ``{run: ...}`` in comparisons), resampled
    with the samples so that ``theory_error`` carries the prediction's noise. ``warnings``: sentences
    about what may make numbers unreliable (non-finite gradients, a skipped theory comparison).
    ``config``: the settings it was recorded with.
    """

    tables: Dict[str, pd.DataFrame]
    meta: Dict[str, Any]
    samples: Optional[dict] = None
    transport: Optional[dict] = None
    warnings: List[str] = field(default_factory=list)
    config: AnalysisConfig = field(default_factory=AnalysisConfig)

    @cached_property
    def statistics(self) -> "report.Statistics":
        """Per-layer summary and lag profile with 95% bootstrap intervals
        (:func:`gradflow.report.layer_statistics`), computed once."""
        return report.layer_statistics(self.tables, self.samples, transport=self.transport,
                                       n_resamples=self.config.resamples, seed=self.config.seed)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (run,) layer with intervals (columns in docs/reference.md)."""
        return self.statistics.summary

    def findings(self) -> List[str]:
        """The report's findings in words, one sentence per layer or comparison."""
        return report.findings(self.summary, self.tables.get("layers"))

    @property
    def title(self) -> str:
        """``"gradflow: LIF (mlp) vs CLIF (mlp)"`` for a comparison, ``"gradflow: mlp"`` for one run."""
        runs = self.meta.get("runs")
        if runs:
            return "gradflow: " + " vs ".join(f"{name} ({r['model']})" for name, r in runs.items())
        return f"gradflow: {self.meta.get('model', 'model')}"

    def write(self, out: Union[str, Path], *, force: bool = False, title: Optional[str] = None) -> Path:
        """Write the report directory ``out`` atomically (layout in ``docs/reference.md``); returns its path.

        Raises :class:`UsageError` when ``out`` exists and ``force`` is false, or when it exists but is
        not a previous report.
        """
        st = self.statistics
        return report.write_report(out, summary_json=self.meta, samples=self.samples, transport=self.transport,
                                   title=title or self.title,
                                   tables=dict(self.tables, summary=st.summary, lag_profile=st.profile),
                                   force=force, n_resamples=self.config.resamples, seed=self.config.seed)


# ----------------------------------------------------------------------------- helpers


def versions() -> Dict[str, str]:
    """Versions of gradflow and the libraries that shape its numbers."""
    return {
        "gradflow": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "pandas": pd.__version__, "python": platform.python_version(),
    }



def combine(results: Mapping[str, Analysis]) -> Analysis:
    """Several analyses side by side: every table gets a last column ``run`` (extra columns follow the
    documented ones); ``meta["runs"]`` holds each run's metadata and the shared settings are repeated
    at the top level. One analysis is returned as it is."""
    if len(results) == 1:
        return next(iter(results.values()))
    tables: Dict[str, pd.DataFrame] = {}
    for name in dict.fromkeys(k for res in results.values() for k in res.tables):
        parts = [res.tables[name].assign(run=run) for run, res in results.items() if name in res.tables]
        tables[name] = pd.concat(parts, ignore_index=True)
    first = next(iter(results.values())).meta
    meta: Dict[str, Any] = {"runs": {run: res.meta for run, res in results.items()}, "versions": versions()}
    for key in ("T", "inputs", "samples", "batch_size", "batches", "seed", "mode", "device"):
        meta[key] = first.get(key)
    for key in ("model", "neuron"):
        meta[key] = " vs ".join(str(r.meta[key]) for r in results.values())
    for key in ("tau", "loss", "accuracy"):
        meta[key] = {run: r.meta[key] for run, r in results.items()}
    warnings = [f"{run}: {w}" for run, r in results.items() for w in r.warnings]
    meta["warnings"] = warnings
    samples = transport = None
    if all(r.samples is not None for r in results.values()):
        samples = {run: r.samples for run, r in results.items()}
    if all(r.transport is not None for r in results.values()):
        transport = {run: r.transport for run, r in results.items()}
    return Analysis(tables=tables, meta=meta, samples=samples, transport=transport, warnings=warnings,
                    config=next(iter(results.values())).config)
