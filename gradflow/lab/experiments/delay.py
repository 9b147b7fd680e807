"""lif-vs-clif-delay and lif-vs-clif-delay-lr: the delayed-cue task, LIF vs CLIF at equal budget."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import Log, color, grid, plot_mean_std, save_figure, summarize_runs

__all__ = ["run_delay", "run_delay_lr"]


def run_delay(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs delay D, LIF vs CLIF, with the weight split and the gradient reaching the cue."""
    delays = (1, 2) if quick else (1, 2, 3, 4, 5, 6, 8)
    base = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, lr=1e-2, optimizer="adam", batch_size=64,
                n_train=256 if quick else 1024, n_test=256 if quick else 1024, record_every=5,
                record_batch=64, model_kwargs={"widths": [64, 64]})
    configs = [dict(task=f"delay:delay={d}", neuron=nk, delay=d, **base) for d in delays for nk in ("lif", "clif")]
    weights: List[pd.DataFrame] = []
    cue: List[pd.DataFrame] = []

    def keep(row, res):
        w = res.records["weights"]
        w = w[w.param.str.endswith("weight")].assign(neuron=row["neuron"], delay=row["delay"], seed=row["seed"])
        weights.append(w)
        # gradient that reaches the cue steps, relative to the gradient at the scored step
        ps = res.records["per_step"]
        cue_len, T = res.task.cue_len, res.task.T
        for (layer, epoch), d in ps.groupby(["layer", "epoch"]):
            at_cue = float(np.sqrt((d[d.t < cue_len].grad_total_norm ** 2).sum()))
            at_end = float(d[d.t == T - 1].grad_total_norm.iloc[0])
            cue.append(pd.DataFrame([{"delay": row["delay"], "neuron": row["neuron"], "seed": row["seed"],
                                      "layer": layer, "epoch": epoch,
                                      "cue_gradient_ratio": at_cue / at_end if at_end > 0 else np.nan}]))

    runs = grid(configs, seeds, log, keep)
    summary = summarize_runs(runs, ["delay", "neuron"])
    wdf = pd.concat(weights, ignore_index=True)
    share = (wdf.groupby(["delay", "neuron", "layer", "epoch"])["temporal_share"]
             .agg(["mean", "std"]).reset_index()
             .rename(columns={"mean": "temporal_share_mean", "std": "temporal_share_std"}))
    cue_df = pd.concat(cue, ignore_index=True)
    cue_sum = (cue_df.groupby(["delay", "neuron", "layer", "epoch"])["cue_gradient_ratio"]
               .agg(["mean", "std"]).reset_index()
               .rename(columns={"mean": "cue_gradient_ratio_mean", "std": "cue_gradient_ratio_std"}))
    _plot_accuracy(summary, runs.chance.iloc[0], out)
    _plot_share(share, delays, out)
    _plot_cue(cue_sum, out)
    return {"runs": runs, "summary": summary, "weights": wdf, "temporal_share": share, "cue_gradient": cue_sum}


def _plot_accuracy(summary: pd.DataFrame, chance: float, out: str) -> None:
    """figures/accuracy_vs_delay.png: mean ± std test accuracy against the delay, per neuron."""
    fig = Figure(figsize=(6.4, 4))
    plot_mean_std(summary, "delay", fig.subplots(), chance=chance,
                  xlabel="delay D (time steps between cue and answer)",
                  title="Delayed cue recall: LIF vs CLIF, same net and budget")
    save_figure(fig, out, "accuracy_vs_delay")


def _plot_share(share: pd.DataFrame, delays: Sequence[int], out: str) -> None:
    """figures/temporal_share_over_training.png: each layer's weight-gradient temporal share by epoch."""
    layers = sorted(share.layer.unique())
    fig = Figure(figsize=(4 * len(delays[:3]), 3.4 * len(layers)))
    shown = [d for d in delays if d in (1, 2, 4)] or list(delays[:3])
    axes = np.atleast_2d(fig.subplots(len(layers), len(shown), sharey=True, squeeze=False))
    for i, layer in enumerate(layers):
        for j, dl in enumerate(shown):
            ax = axes[i, j]
            for nk in ("lif", "clif"):
                d = share[(share.delay == dl) & (share.neuron == nk) & (share.layer == layer)]
                ax.errorbar(d.epoch, d.temporal_share_mean, yerr=d.temporal_share_std, marker="o", capsize=3,
                            color=color(nk), label=nk.upper())
            ax.set_title(f"D={dl}, layer {layer}")
            ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("temporal share of weight gradient")
            ax.legend(fontsize="small")
    save_figure(fig, out, "temporal_share_over_training")


def _plot_cue(cue_sum: pd.DataFrame, out: str) -> None:
    """figures/cue_gradient_vs_delay.png: the gradient reaching the cue steps, before and after training."""
    layers = sorted(cue_sum.layer.unique())
    fig = Figure(figsize=(6.4 * 2, 4))
    for ax, layer in zip(fig.subplots(1, len(layers), sharey=True), layers):
        for nk, mk in (("lif", "o"), ("clif", "s")):
            for ep, alpha in ((0, 0.45), (int(cue_sum.epoch.max()), 1.0)):
                d = cue_sum[(cue_sum.neuron == nk) & (cue_sum.layer == layer) & (cue_sum.epoch == ep)]
                ax.errorbar(d.delay, d.cue_gradient_ratio_mean, yerr=d.cue_gradient_ratio_std, marker=mk, capsize=3,
                            color=color(nk), alpha=alpha, label=f"{nk.upper()}, epoch {ep}")
        ax.set_yscale("log")
        ax.set_xlabel("delay D")
        ax.set_ylabel("||dL/du at cue steps|| / ||dL/du at the scored step||")
        ax.set_title(f"Gradient reaching the cue, layer {layer}")
        ax.legend(fontsize="small")
    save_figure(fig, out, "cue_gradient_vs_delay")


def run_delay_lr(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Robustness of lif-vs-clif-delay to the learning rate, at the delays where the two differ."""
    delays = (4,) if quick else (4, 5)
    lrs = (3e-3,) if quick else (3e-3, 1e-2, 3e-2)
    base = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, optimizer="adam", batch_size=64,
                n_train=256 if quick else 1024, n_test=256 if quick else 1024, model_kwargs={"widths": [64, 64]})
    configs = [dict(task=f"delay:delay={d}", neuron=nk, delay=d, lr=lr, **base)
               for d in delays for lr in lrs for nk in ("lif", "clif")]
    runs = grid(configs, seeds, log)
    summary = summarize_runs(runs, ["delay", "lr", "neuron"])
    fig = Figure(figsize=(5.5 * len(delays), 3.8))
    for ax, d in zip(np.atleast_1d(fig.subplots(1, len(delays))), delays):
        for nk in ("lif", "clif"):
            e = summary[(summary.delay == d) & (summary.neuron == nk)]
            ax.errorbar(e.lr, e.test_accuracy_mean, yerr=e.test_accuracy_std, marker="o", capsize=3,
                        color=color(nk), label=nk.upper())
        ax.set_xscale("log")
        ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
        ax.set_xlabel("Adam learning rate")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"delay D={d}")
        ax.legend(fontsize="small")
    save_figure(fig, out, "accuracy_vs_lr")
    return {"runs": runs, "summary": summary}


