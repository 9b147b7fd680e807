"""tau-truncation and tau-truncation-snn5: LIF accuracy for tau x truncated-BPTT block k (paper Table 3).

Besides ``runs.csv`` and ``summary.csv`` (mean, standard deviation and a 95% Student-t interval of the
mean over seeds per setting), both write ``contrasts.csv``: paired differences over seeds (every setting
of a seed starts from the same initial weights and sees the same mini-batches, only the truncation or tau
differs), each with its mean, a 95% Student-t interval over the seeds, the number of seeds with a
positive / negative difference and a verdict (``> 0``, ``< 0`` or ``cannot tell``: the interval
contains 0):

* ``cost``: ``acc(k = T) - acc(k)``, what truncating BPTT to blocks of k steps costs (per task, tau, k);
* ``cost_vs_tau``: ``cost(tau) - cost(tau_ref)`` at ``k = 1`` with ``tau_ref`` the smallest tau: does
  spatial-only training cost more at a larger tau (the paper's Table 3 pattern)?

>>> r = t_interval([0.70, 0.72, 0.74])
>>> round(r["mean"], 3), round(r["ci_low"], 3), round(r["ci_high"], 3), r["n"], r["n_positive"]
(0.72, 0.67, 0.77, 3, 3)
>>> t_interval([0.5])["ci_low"]
nan
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import Log, grid, save_figure, summarize_runs
from .paper_runs import paired as t_interval   # mean over seeds with a Student-t interval, sign counts
from .paper_runs import verdict

__all__ = ["run_tau_truncation", "run_tau_truncation_snn5", "t_interval", "summarize_with_intervals",
           "paired_contrast"]

LEVEL = 0.95
TAU_COLORS = ["#56B4E9", "#0072B2", "#003B5C"]


def summarize_with_intervals(runs: pd.DataFrame, keys: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """:func:`summarize_runs` (mean, std, seeds) plus the 95% Student-t interval of the mean over seeds
    (``<value>_ci_low`` / ``<value>_ci_high``) and the mean training accuracy."""
    summary = summarize_runs(runs, keys, value)
    lows, highs, train = [], [], []
    for _, d in runs.groupby(list(keys), sort=False, dropna=False):
        st = t_interval(d[value].to_numpy(float))
        lows.append(st["ci_low"])
        highs.append(st["ci_high"])
        train.append(float(d["train_accuracy"].mean()) if "train_accuracy" in d else math.nan)
    summary[f"{value}_ci_low"] = lows
    summary[f"{value}_ci_high"] = highs
    summary["train_accuracy_mean"] = train
    return summary


def paired_contrast(a: pd.DataFrame, b: pd.DataFrame, value: str = "test_accuracy") -> Dict[str, object]:
    """``a - b`` paired by ``seed``, with :func:`~.paper_runs.paired` (a Student-t interval) and :func:`~.paper_runs.verdict`."""
    d = a.set_index("seed")[value] - b.set_index("seed")[value]
    st = t_interval(d.dropna().to_numpy(float))
    st["verdict"] = verdict(st["ci_low"], st["ci_high"])
    return st


def _contrasts(runs: pd.DataFrame, taus: Sequence[float], ks: Sequence[str]) -> pd.DataFrame:
    rows: List[Dict[str, object]] = []
    for tname, d in runs.groupby("task_name", sort=False):
        def acc(tau, k):
            return d[(d.tau == tau) & (d.k == k)][["seed", "test_accuracy"]]

        costs = {}
        for tau in taus:
            for k in ks:
                if k == "T":
                    continue
                full = acc(tau, "T").set_index("seed").test_accuracy
                part = acc(tau, k).set_index("seed").test_accuracy
                costs[(tau, k)] = full - part
                rows.append(dict(task_name=tname, contrast="cost", tau=tau, k=k, tau_ref=math.nan,
                                 **paired_contrast(acc(tau, "T"), acc(tau, k))))
        for tau in taus[1:]:
            diff = (costs[(tau, "1")] - costs[(taus[0], "1")]).dropna()
            st = t_interval(diff.to_numpy(float))
            st["verdict"] = verdict(st["ci_low"], st["ci_high"])
            rows.append(dict(task_name=tname, contrast="cost_vs_tau", tau=tau, k="1", tau_ref=taus[0], **st))
    return pd.DataFrame(rows)


def _draw_accuracy(ax, summary: pd.DataFrame, runs: pd.DataFrame, taus: Sequence[float], order: Sequence[str]) -> None:
    n = len(taus)
    for i, tau in enumerate(taus):
        e = summary[summary.tau == tau].set_index("k").reindex(order)
        x = np.arange(len(order)) + (i - (n - 1) / 2) * 0.1
        col = TAU_COLORS[i if n == 3 else (0 if i == 0 else 2)]
        m = e.test_accuracy_mean.to_numpy(float)
        lo, hi = e.test_accuracy_ci_low.to_numpy(float), e.test_accuracy_ci_high.to_numpy(float)
        yerr = np.vstack([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
        ax.errorbar(x, m, yerr=yerr, marker="o", capsize=3, label=f"tau={tau:g}", color=col)
        r = runs[runs.tau == tau]
        for j, k in enumerate(order):
            v = r[r.k == k].test_accuracy.to_numpy(float)
            ax.plot(np.full(v.size, x[j]), v, ".", color=col, alpha=0.35)
    ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
    ax.set_ylabel("test accuracy (mean, 95% t-interval)")


def _draw_cost(ax, contrasts: pd.DataFrame, taus: Sequence[float], order: Sequence[str]) -> None:
    c = contrasts[contrasts.contrast == "cost"]
    n = len(taus)
    ks = [k for k in order if k != "T"]
    for i, tau in enumerate(taus):
        e = c[c.tau == tau].set_index("k").reindex(ks)
        x = np.arange(len(ks)) + (i - (n - 1) / 2) * 0.1
        col = TAU_COLORS[i if n == 3 else (0 if i == 0 else 2)]
        m = e["mean"].to_numpy(float)
        lo, hi = e.ci_low.to_numpy(float), e.ci_high.to_numpy(float)
        yerr = np.vstack([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
        ax.errorbar(x, m, yerr=yerr, marker="s", capsize=3, ls="none", label=f"tau={tau:g}", color=col)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(ks)), [("1 (spatial only)" if k == "1" else k) for k in ks])
    ax.set_xlabel("truncation block k")
    ax.set_ylabel("acc(k = T) - acc(k)\n(paired, 95% t-interval)")


def run_tau_truncation(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """LIF accuracy for tau x truncation block k on the delay task and on static shapes (MLP)."""
    taus = (1.1, 2.0) if quick else (1.1, 1.5, 2.0)
    tasks = {
        "delay": dict(task="delay:delay=2", lr=1e-2, model_kwargs={"widths": [64, 64]}),
        "shapes": dict(task="shapes:num_classes=8,size=16,noise=0.3", T=6, lr=3e-3,
                       model_kwargs={"widths": [128]}),
    }
    Ts = {"delay": 5, "shapes": 6}
    base = dict(arch="mlp", neuron="lif", epochs=2 if quick else 20, optimizer="adam",
                n_train=256 if quick else 1024, n_test=256 if quick else 1024)
    configs = []
    for tname, tk in tasks.items():
        for tau in taus:
            for k in (1, 2, 3, Ts[tname]):
                configs.append(dict(task_name=tname, tau=tau, k=("T" if k == Ts[tname] else k),
                                    truncate=None if k == Ts[tname] else k, **tk, **base))
    runs = grid(configs, seeds, log)
    runs["k"] = runs["k"].astype(str)
    order = ["1", "2", "3", "T"]
    summary = summarize_with_intervals(runs, ["task_name", "tau", "k"])
    contrasts = _contrasts(runs, taus, order)
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, len(tasks), gridspec_kw={"height_ratios": [3, 2]})
    for j, tname in enumerate(tasks):
        ax = axes[0, j]
        _draw_accuracy(ax, summary[summary.task_name == tname], runs[runs.task_name == tname], taus, order)
        ax.set_xticks(range(4), ["1 (spatial only)", "2", "3", "T (full BPTT)"])
        ax.set_title(f"LIF, {tname} task (T={Ts[tname]}, {len(seeds)} seeds)")
        ax.legend(fontsize="small")
        _draw_cost(axes[1, j], contrasts[contrasts.task_name == tname], taus, order)
    save_figure(fig, out, "accuracy_tau_k")
    return {"runs": runs, "summary": summary, "contrasts": contrasts}


def run_tau_truncation_snn5(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """The static half of tau-truncation with the paper's five-layer conv net (snn5_noAP, batch norm)."""
    taus = (1.1, 2.0)
    T = 2 if quick else 4
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=T, arch="snn5_noAP", neuron="lif",
                epochs=1 if quick else 4, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=64 if quick else 768, n_test=64 if quick else 512)
    configs = [dict(task_name="shapes", tau=tau, k=("T" if k == T else k), truncate=None if k == T else k, **base)
               for tau in taus for k in (1, T)]
    runs = grid(configs, seeds, log)
    runs["k"] = runs["k"].astype(str)
    order = ["1", "T"]
    summary = summarize_with_intervals(runs, ["task_name", "tau", "k"])
    contrasts = _contrasts(runs, taus, order)
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _draw_accuracy(ax, summary, runs, taus, order)
    ax.set_xticks(range(2), ["1 (spatial only)", "T (full BPTT)"])
    ax.set_xlabel("truncation block k")
    ax.set_title(f"LIF snn5_noAP, 32x32 shapes (T={T}, {len(seeds)} seeds)")
    ax.legend(fontsize="small")
    _draw_cost(ax2, contrasts, taus, order)
    ax2.set_title("cost of spatial-only training")
    save_figure(fig, out, "accuracy_tau_k_snn5")
    return {"runs": runs, "summary": summary, "contrasts": contrasts}
