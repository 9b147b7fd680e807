"""What every experiment shares: the training grid and summaries over seeds; figures, colours and
``summary.md`` come from the report toolkit (:mod:`gradflow.report.experiment_page`)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import math

import numpy as np
import pandas as pd

from ... import stats
from ...report.experiment_page import plot_mean_std, save_figure, write_summary_md
from ...report.style import neuron_color as color
from ...train import TrainConfig, train

__all__ = ["Log", "grid", "summarize_runs", "save_figure", "write_summary", "color", "plot_mean_std",
           "TRAIN_FIELDS", "pooled_weight_split"]

Log = Optional[Callable[[str], None]]

#: Configuration keys that go to :func:`gradflow.train.train`; the others (delay, k, task_name) only
#: label the run.
TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def summarize_runs(runs: pd.DataFrame, keys: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1) and count of ``value`` over seeds, per configuration ``keys``."""
    g = runs.groupby(list(keys), sort=False, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": f"{value}_mean", "std": f"{value}_std", "count": "seeds"})


def grid(configs: Iterable[Dict[str, Any]], seeds: Sequence[int], log: Log,
         extra: Optional[Callable[[Dict[str, Any], Any], None]] = None) -> pd.DataFrame:
    """Train every configuration with every seed (fresh training data every epoch); one row per run.

    ``extra(row, result)`` sees every run's row and :class:`gradflow.train.TrainResult`.
    """
    rows = []
    configs = list(configs)
    n = len(configs) * len(seeds)
    i = 0
    for cfg in configs:
        for seed in seeds:
            i += 1
            kw = {k: v for k, v in cfg.items() if k in TRAIN_FIELDS}
            t0 = time.perf_counter()
            res = train(TrainConfig(seed=seed, resample=True, **kw))
            last = res.history.iloc[-1]
            row = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
            row.update(seed=seed, test_accuracy=float(last.test_accuracy), test_loss=float(last.test_loss),
                       train_accuracy=float(last.train_accuracy), chance=res.task.chance,
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            if extra is not None:
                extra(dict(row), res)
            if log:
                log(f"[{i}/{n}] {kw.get('task')} {kw.get('neuron', 'lif')} T={res.task.T} seed {seed}: "
                    f"test acc {row['test_accuracy']:.3f} ({row['seconds']:.0f} s)")
    return pd.DataFrame(rows)


def write_summary(summary: pd.DataFrame, out: str, title: str) -> str:
    """``out/summary.md``: ``title`` and the summary with ``mean ± std`` cells; returns the path."""
    return str(write_summary_md(summary, os.path.join(out, "summary.md"), title))


def pooled_weight_split(w: pd.DataFrame, n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> Dict[str, float]:
    """One layer's weight split pooled into one vector: projection, cosine and sign-blind share.

    ``w``: the layer's ``weights`` rows of the parameters to pool (the recorder's ``spatial_sq``,
    ``temporal_sq``, ``inner``, any number of backward passes in ``step``). The sums over parameters
    and passes give ``<g_t, g>/||g||^2``, ``<g_s, g_t>/(||g_s|| ||g_t||)`` and ``||g_t||/(||g_s||+||g_t||)``
    (:func:`gradflow.stats.projections`); their 95% intervals resample the passes (a weight gradient
    exists only per pass), NaN with fewer than two passes. Keys: ``weight_temporal_projection``,
    ``weight_cosine``, ``weight_temporal_share``, each with ``_ci_low`` / ``_ci_high``.

    >>> w = pd.DataFrame({"step": [0, 0, 1], "spatial_sq": [1.0, 0.0, 1.0], "temporal_sq": [0.0, 1.0, 1.0],
    ...                   "inner": [0.0, 0.0, 0.0]})
    >>> r = pooled_weight_split(w, n_resamples=50)
    >>> r["weight_temporal_projection"], r["weight_cosine"], round(r["weight_temporal_share"], 6)
    (0.5, 0.0, 0.5)
    """
    per_pass = w.groupby("step")[["spatial_sq", "temporal_sq", "inner"]].sum().to_numpy(np.float64)
    names = ("weight_temporal_projection", "weight_cosine", "weight_temporal_share")
    if not len(per_pass):
        return {f"{n}{c}": math.nan for n in names for c in ("", "_ci_low", "_ci_high")}

    def metric(s):
        p = stats.projections(s[:, 0], s[:, 1], s[:, 2])
        ss, tt = np.sqrt(s[:, 0]), np.sqrt(s[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(ss + tt > 0, tt / (ss + tt), np.nan)
        return np.stack([np.asarray(p.temporal_projection, dtype=np.float64),
                         np.asarray(p.cosine, dtype=np.float64), share], axis=1)

    ci = stats.bootstrap(per_pass, metric, n_resamples=n_resamples, seed=seed)
    enough = per_pass.shape[0] >= 2
    out: Dict[str, float] = {}
    for j, name in enumerate(names):
        out[name] = float(ci.estimate[j])
        out[f"{name}_ci_low"] = float(ci.low[j]) if enough else math.nan
        out[f"{name}_ci_high"] = float(ci.high[j]) if enough else math.nan
    return out
