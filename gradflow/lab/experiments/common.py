"""What every experiment shares: the training grid and summaries over seeds; figures, colours and
``summary.md`` come from the report toolkit (:mod:`gradflow.report.experiment_page`)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import pandas as pd

from ...report.experiment_page import plot_mean_std, save_figure, write_summary_md
from ...report.style import neuron_color as color
from ...train import TrainConfig, train

__all__ = ["Log", "grid", "summarize_runs", "save_figure", "write_summary", "color", "plot_mean_std",
           "TRAIN_FIELDS"]

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
