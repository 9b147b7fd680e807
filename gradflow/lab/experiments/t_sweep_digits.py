"""lif-vs-clif-T-digits: accuracy and measured gradient transport against T, up to T = 64 (paper Fig. 2b).

The CLIF paper reports that LIF's accuracy falls at large T while CLIF's does not, and explains it by
LIF's vanishing temporal gradient. Here an MLP (64-128-128-10) is trained on scikit-learn's real
handwritten digits (:class:`gradflow.tasks.digits.Digits`, static over T) in the paper's regime (SGD with
momentum 0.9, cosine schedule, TET loss, tau 2, threshold 1, rectangle surrogate of width 1, full
BPTT), LIF and CLIF with the same initial weights per seed, for T in 2, 4, ..., 64
(:mod:`.paper_runs`). At initialisation and at the end the gradient flow is recorded on 256 test
images (lags up to ``min(T - 1, 8)``), so the table puts ``relative_1`` and the half-life at the end of
training beside the accuracy.

Outputs: ``runs.csv``, ``summary.csv`` (accuracy mean, std and Student-t interval over seeds per T and
neuron), ``flow.csv``/``profile.csv`` (every run), ``flow_summary.csv`` (means over seeds with
intervals), ``contrasts.csv`` (paired CLIF - LIF accuracy per T), ``figures/t_sweep.png``. Runs are
cached in ``OUT/cache/`` like :mod:`.paper_claim`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Dict, Optional, Sequence

import pandas as pd

from ...errors import UsageError
from .paper_claim import flow_summary, run_grid
from .paper_figures import plot_t_sweep
from .paper_runs import RunSpec, paired, verdict

__all__ = ["run_t_sweep_digits", "T_VALUES"]

#: The time steps of the full sweep.
T_VALUES = (2, 4, 8, 16, 32, 64)


def t_sweep_specs(seeds: Sequence[int], quick: bool, *, data: Optional[str] = None, arch: Optional[str] = None,
                  device: str = "cpu", epochs: Optional[int] = None):
    """The runs: for each T, seed and neuron (LIF, CLIF) one full-BPTT run measured at init and end."""
    base = RunSpec(arch=arch or "mlp", data=data, device=device, alpha=1.0, truncate=None,
                   epochs=int(epochs) if epochs is not None else 15, measure=("init", "end"))
    Ts = T_VALUES
    if quick:
        base = replace(base, n_train=96, n_test=64, probe=32, passes=4, n_resamples=50, widths=(16, 16),
                       epochs=int(epochs) if epochs is not None else 1)
        Ts = (2, 4)
    return [replace(base, T=T, seed=int(seed), variant=v) for T in Ts for seed in seeds for v in ("lif", "clif")]


def run_t_sweep_digits(out: str, seeds: Sequence[int], quick: bool, log, *, data: Optional[str] = None,
                       arch: Optional[str] = None, device: str = "cpu",
                       epochs: Optional[int] = None) -> Dict[str, pd.DataFrame]:
    """The T sweep (module docstring); ``data``, ``arch``, ``device``, ``epochs`` as in :mod:`.paper_claim`."""
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) < 1):
        raise UsageError(f"epochs must be a positive integer, got {epochs!r}.", arguments=("epochs",))
    specs = t_sweep_specs(seeds, quick, data=data, arch=arch, device=device, epochs=epochs)
    tables = run_grid(specs, os.path.join(out, "cache"), log)
    runs = tables["runs"]
    rows, contrasts = [], []
    for T, d in runs.groupby("T", sort=True):
        for variant, dv in d.groupby("variant", sort=False):
            st = paired(dv["test_accuracy"].to_numpy(float))
            rows.append({"T": T, "variant": variant, "neuron": variant, "test_accuracy_mean": st["mean"],
                         "test_accuracy_std": st["sd"], "test_accuracy_ci_low": st["ci_low"],
                         "test_accuracy_ci_high": st["ci_high"], "seeds": st["n"],
                         "seconds_mean": float(dv["seconds"].mean())})
        table = d.pivot_table(index="seed", columns="variant", values="test_accuracy", aggfunc="first")
        if {"lif", "clif"} <= set(table.columns):
            st = paired((table["clif"] - table["lif"]).dropna().to_numpy())
            contrasts.append({"T": T, "contrast": "clif - lif", **st, "verdict": verdict(st["ci_low"], st["ci_high"])})
    summary = pd.DataFrame(rows)
    fs = flow_summary(tables["flow"])
    tables.update(summary=summary, flow_summary=fs, contrasts=pd.DataFrame(contrasts))
    plot_t_sweep(summary, fs, out)
    return tables
