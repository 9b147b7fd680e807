"""tau-truncation and tau-truncation-snn5: LIF accuracy for tau x truncated-BPTT block k (paper Table 3)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import Log, grid, save_figure, summarize_runs

__all__ = ["run_tau_truncation", "run_tau_truncation_snn5"]


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
    summary = summarize_runs(runs, ["task_name", "tau", "k"])
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, len(tasks))
    order = ["1", "2", "3", "T"]
    for ax, tname in zip(axes, tasks):
        d = summary[summary.task_name == tname]
        for i, tau in enumerate(taus):
            e = d[d.tau == tau].set_index("k").reindex(order)
            ax.errorbar(np.arange(4) + (i - 1) * 0.06, e.test_accuracy_mean, yerr=e.test_accuracy_std, marker="o",
                        capsize=3, label=f"tau={tau:g}", color=["#56B4E9", "#0072B2", "#003B5C"][i % 3])
        ax.axhline(runs[runs.task_name == tname].chance.iloc[0], color="0.4", ls=":", label="chance")
        ax.set_xticks(range(4), ["1 (spatial only)", "2", "3", "T (full BPTT)"])
        ax.set_xlabel("truncation block k")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"LIF, {tname} task (T={Ts[tname]})")
        ax.legend(fontsize="small")
    save_figure(fig, out, "accuracy_tau_k")
    return {"runs": runs, "summary": summary}


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
    summary = summarize_runs(runs, ["task_name", "tau", "k"])
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    for i, tau in enumerate(taus):
        e = summary[summary.tau == tau].set_index("k").reindex(["1", "T"])
        ax.errorbar(np.arange(2) + (i - 0.5) * 0.06, e.test_accuracy_mean, yerr=e.test_accuracy_std, marker="o",
                    capsize=3, label=f"tau={tau:g}", color=["#56B4E9", "#003B5C"][i])
    ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
    ax.set_xticks(range(2), ["1 (spatial only)", "T (full BPTT)"])
    ax.set_xlabel("truncation block k")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"LIF snn5_noAP, 32x32 shapes (T={T})")
    ax.legend(fontsize="small")
    save_figure(fig, out, "accuracy_tau_k_snn5")
    return {"runs": runs, "summary": summary}


