"""resnet18-gradflow: spiking_resnet18 on 32x32 shapes, LIF vs CLIF, gradient flow per layer."""

from __future__ import annotations

from typing import Dict, List, Sequence

import pandas as pd
from matplotlib.figure import Figure

from .common import Log, color, grid, save_figure, summarize_runs

__all__ = ["run_resnet18"]


def run_resnet18(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """spiking_resnet18, LIF vs CLIF: per-layer temporal share and lag decay at init and after one epoch."""
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=2 if quick else 4,
                arch="spiking_resnet18", tau=2.0, epochs=1, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=32 if quick else 256, n_test=32 if quick else 128, record_every=1,
                record_batch=8 if quick else 16)
    tables: Dict[str, List[pd.DataFrame]] = {"weights": [], "lags": [], "per_step": []}

    def keep(row, res):
        for k in tables:
            tables[k].append(res.records[k].assign(neuron_run=row["neuron"], seed=row["seed"]))

    runs = grid([dict(neuron=nk, **base) for nk in ("lif", "clif")], seeds, log, keep)
    summary = summarize_runs(runs, ["neuron"])
    w = pd.concat(tables["weights"], ignore_index=True)
    w = w[w.param.str.endswith("weight")]
    # per run: the layer's weight-gradient temporal share (norms summed over its weight tensors)
    share = (w.groupby(["neuron_run", "seed", "epoch", "layer_index", "layer"])
             .apply(lambda d: float(d.temporal_norm.sum() / (d.spatial_norm.sum() + d.temporal_norm.sum())),
                    include_groups=False)
             .rename("temporal_share").reset_index())
    share = (share.groupby(["neuron_run", "epoch", "layer_index", "layer"]).temporal_share.agg(["mean", "std"])
             .reset_index().rename(columns={"neuron_run": "neuron", "mean": "temporal_share_mean",
                                            "std": "temporal_share_std"}))
    ps = pd.concat(tables["per_step"], ignore_index=True)
    activity = (ps.groupby(["neuron_run", "epoch", "layer_index", "layer"])[["firing_rate", "window_fraction",
                                                                           "temporal_zero_fraction"]]
                .mean().reset_index().rename(columns={"neuron_run": "neuron"}))
    lg = pd.concat(tables["lags"], ignore_index=True)
    lags = (lg.groupby(["neuron_run", "epoch", "layer_index", "layer", "lag"]).relative.agg(["mean", "std"])
            .reset_index().rename(columns={"neuron_run": "neuron", "mean": "relative_mean", "std": "relative_std"}))
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ep, ax in zip((0, 1), axes):
        for nk in ("lif", "clif"):
            d = share[(share.neuron == nk) & (share.epoch == ep)]
            ax.errorbar(d.layer_index, d.temporal_share_mean, yerr=d.temporal_share_std, marker="o", capsize=2,
                        color=color(nk), label=nk.upper())
        ax.set_xlabel("neuron layer (forward order)")
        ax.set_ylabel("temporal share of weight gradient")
        ax.set_title("at initialisation" if ep == 0 else "after one short epoch")
        ax.legend()
    save_figure(fig, out, "temporal_share_per_layer")
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ep, ax in zip((0, 1), axes):
        for nk in ("lif", "clif"):
            d = lags[(lags.neuron == nk) & (lags.epoch == ep) & (lags.lag == 1)]
            ax.plot(d.layer_index, d.relative_mean, "o-", color=color(nk), label=f"{nk.upper()} lag 1")
            d = lags[(lags.neuron == nk) & (lags.epoch == ep) & (lags.lag == 2)]
            ax.plot(d.layer_index, d.relative_mean, "s--", color=color(nk), label=f"{nk.upper()} lag 2")
        ax.set_yscale("log")
        ax.set_xlabel("neuron layer (forward order)")
        ax.set_ylabel("relative_k = G_k / G_0")
        ax.set_title("lag decay " + ("at initialisation" if ep == 0 else "after one short epoch"))
        ax.legend(fontsize="small")
    save_figure(fig, out, "lag_decay_per_layer")
    return {"runs": runs, "summary": summary, "temporal_share": share, "lags": lags, "activity": activity,
            "weights": w}

