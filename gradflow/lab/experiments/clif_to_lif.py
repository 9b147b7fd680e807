"""clif-to-lif: CLIF-trained networks run with LIF neurons and a hard reset, sweeping v_reset (Table 8)."""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...io import checkpoints
from ...transfer import DEFAULT_RESETS, clif_to_lif
from .common import Log, color, grid, save_figure, summarize_runs

__all__ = ["run_clif_to_lif"]


def run_clif_to_lif(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Train CLIF and LIF nets on two tasks; run every CLIF net with LIF neurons over the reset values."""
    resets = DEFAULT_RESETS
    budget = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, optimizer="adam",
                  n_train=256 if quick else 1024, n_test=256 if quick else 1024)
    tasks = {
        "shapes": dict(task="shapes:num_classes=8,size=16,noise=0.3", T=4, lr=3e-3,
                       model_kwargs={"widths": [128, 128]}),
        "delay": dict(task="delay:delay=3", lr=1e-2, model_kwargs={"widths": [64, 64]}),
    }
    sweeps: List[pd.DataFrame] = []
    ckdir = os.path.join(out, "checkpoints")

    def sweep(row, res):
        if row["neuron"] != "clif":
            return
        path = os.path.join(ckdir, f"clif_{row['task_name']}_seed{row['seed']}.pt")
        checkpoints.save_checkpoint(res.model, path, **res.meta)
        df = clif_to_lif(path, resets, n_test=budget["n_test"])
        sweeps.append(df.assign(task_name=row["task_name"], seed=row["seed"]))
        os.remove(path)

    configs = [dict(task_name=t, neuron=nk, **tk, **budget) for t, tk in tasks.items() for nk in ("clif", "lif")]
    runs = grid(configs, seeds, log, sweep)
    if os.path.isdir(ckdir) and not os.listdir(ckdir):
        os.rmdir(ckdir)
    sw = pd.concat(sweeps, ignore_index=True)
    sw["setting"] = np.where(sw.reset == "hard", "LIF hard v_reset=" + sw.v_reset.map("{:g}".format),
                             np.where(sw.reset == "soft", "LIF soft reset", "CLIF (as trained)"))
    summary = summarize_runs(sw, ["task_name", "setting", "reset", "v_reset"], "accuracy")
    rate = summarize_runs(sw, ["task_name", "setting"], "firing_rate")
    summary = summary.merge(rate[["task_name", "setting", "firing_rate_mean"]], on=["task_name", "setting"])
    lif_trained = summarize_runs(runs[runs.neuron == "lif"], ["task_name", "neuron"])
    fig = Figure(figsize=(11, 4))
    for ax, tname in zip(fig.subplots(1, len(tasks)), tasks):
        d = summary[summary.task_name == tname]
        hard = d[d.reset == "hard"]
        ax.errorbar(hard.v_reset, hard.accuracy_mean, yerr=hard.accuracy_std, marker="o", capsize=3,
                    color=color("lif"), label="CLIF weights, LIF hard reset")
        for setting, kind, ls, label in (("CLIF (as trained)", "clif", "-", "CLIF (as trained)"),
                                         ("LIF soft reset", "lif", "--", "CLIF weights, LIF soft reset")):
            ax.axhline(d[d.setting == setting].accuracy_mean.iloc[0], color=color(kind), ls=ls, label=label)
        lt = lif_trained[lif_trained.task_name == tname].test_accuracy_mean.iloc[0]
        ax.axhline(lt, color="0.3", ls=":", label="LIF trained as LIF")
        ax.set_xlabel("LIF reset value v_reset")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(f"CLIF-trained weights run with LIF neurons: {tname} task")
        ax.legend(fontsize="small")
    save_figure(fig, out, "clif_to_lif")
    return {"runs": runs, "sweep": sw, "summary": summary, "lif_trained": lif_trained}


