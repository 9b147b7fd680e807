"""lif-vs-clif-T and lif-vs-clif-T-snn5: accuracy vs the number of time steps T (paper Fig. 2b)."""

from __future__ import annotations

from typing import Dict, Sequence

import pandas as pd
from matplotlib.figure import Figure

from .common import Log, grid, plot_mean_std, save_figure, summarize_runs

__all__ = ["run_T_sweep", "run_T_sweep_snn5"]


def run_T_sweep(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs T on the static 16x16 shapes task with an MLP, LIF vs CLIF."""
    Ts = (1, 2) if quick else (1, 2, 4, 8, 16)
    base = dict(task="shapes:num_classes=8,size=16,noise=0.3", arch="mlp", tau=2.0, epochs=2 if quick else 30,
                lr=3e-3, optimizer="adam", n_train=256 if quick else 1024, n_test=256 if quick else 1024,
                model_kwargs={"widths": [128, 128]})
    configs = [dict(T=T, neuron=nk, **base) for T in Ts for nk in ("lif", "clif")]
    runs = grid(configs, seeds, log)
    summary = summarize_runs(runs, ["T", "neuron"])
    _plot_accuracy_vs_T(summary, out, "Static shapes task: accuracy vs T", "accuracy_vs_T")
    return {"runs": runs, "summary": summary}


def _plot_accuracy_vs_T(summary: pd.DataFrame, out: str, title: str, name: str) -> None:
    """Mean ± std test accuracy against T, one line per neuron type, saved as ``figures/<name>``."""
    fig = Figure(figsize=(6.4, 4))
    plot_mean_std(summary, "T", fig.subplots(), xlabel="time steps T", title=title)
    save_figure(fig, out, name)


def run_T_sweep_snn5(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs T with the paper's Fig. 2 network itself (snn5_noAP) on 32x32 shapes."""
    Ts = (1, 2) if quick else (1, 2, 4, 8)
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", arch="snn5_noAP", tau=2.0,
                epochs=1 if quick else 3, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=64 if quick else 512, n_test=64 if quick else 256)
    configs = [dict(T=T, neuron=nk, **base) for T in Ts for nk in ("lif", "clif")]
    runs = grid(configs, seeds, log)
    summary = summarize_runs(runs, ["T", "neuron"])
    _plot_accuracy_vs_T(summary, out, "snn5_noAP on 32x32 shapes: accuracy vs T", "accuracy_vs_T_snn5")
    return {"runs": runs, "summary": summary}


