"""Small, seeded sweeps that regenerate the committed reports under ``reports/`` (issue 6).

Each experiment trains (or records) a grid of small networks with :func:`gradflow.train.train`, one run
per configuration and seed, and writes to its output directory:

* ``runs.csv`` -- one row per run: the configuration, ``seed``, final ``test_accuracy`` and ``test_loss``
  (the last epoch's, never the best: no selection on the test set) and ``seconds``;
* ``summary.csv`` and ``summary.md`` -- mean and standard deviation over seeds per configuration;
* further tables (e.g. ``weights.csv``, the recorder's weight split over training) and ``figures/*.png``.

``report.md`` beside them is written by a person from these numbers; the experiment never touches it.
``gradflow experiment NAME --out reports/NAME`` regenerates everything else.

=====================  ==================================================================================
name                   what
=====================  ==================================================================================
lif-vs-clif-delay      accuracy vs the delay D of the delayed-cue task, LIF vs CLIF at equal budget, and the
                       temporal share of each layer's weight gradient over training
lif-vs-clif-delay-lr   the same at D = 4, 5 for three learning rates (is the LIF-CLIF gap an lr effect?)
tau-truncation         LIF accuracy for tau x truncation k (paper Table 3), temporal and static task
tau-truncation-snn5    the static half with the paper's conv net snn5_noAP (tau 1.1/2, k = 1/T)
lif-vs-clif-T          accuracy vs T on the static shapes task (paper Fig. 2b)
lif-vs-clif-T-snn5     the same with the paper's Fig. 2 network snn5_noAP on 32x32 shapes
clif-to-lif            CLIF-trained nets run with LIF neurons and a hard reset, sweeping v_reset (Table 8)
resnet18-gradflow      spiking_resnet18 on 32x32 shapes, LIF vs CLIF, at initialisation and after a short
                       run: per-layer temporal share and lag decay
=====================  ==================================================================================
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import UsageError
from ..train import clif_to_lif, train

__all__ = ["EXPERIMENTS", "run_experiment", "summarize_runs"]

COLORS = {"lif": "#0072B2", "clif": "#D55E00", "plif": "#009E73"}

Log = Optional[Callable[[str], None]]

# configuration keys that go to train(); the others (delay, k, task_name) only label the run
_TRAIN_ARGS = set(inspect.signature(train).parameters)


def summarize_runs(runs: pd.DataFrame, keys: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1) and count of ``value`` over seeds, per configuration ``keys``."""
    g = runs.groupby(list(keys), sort=False, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": f"{value}_mean", "std": f"{value}_std", "count": "seeds"})


def _markdown(df: pd.DataFrame, fmt: str = "{:.3f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [fmt.format(v) if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pm(summary: pd.DataFrame, value: str = "test_accuracy") -> pd.Series:
    return summary.apply(lambda r: f"{r[f'{value}_mean']:.3f} ± {r[f'{value}_std']:.3f}", axis=1)


def _save(fig: Figure, out: str, name: str) -> str:
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    path = os.path.join(out, "figures", f"{name}.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _grid(configs: Iterable[Dict[str, Any]], seeds: Sequence[int], log: Log,
          extra: Optional[Callable[[Dict[str, Any], Any], None]] = None) -> pd.DataFrame:
    """Train every configuration with every seed; one row per run."""
    rows = []
    configs = list(configs)
    n = len(configs) * len(seeds)
    i = 0
    for cfg in configs:
        for seed in seeds:
            i += 1
            kw = {k: v for k, v in cfg.items() if k in _TRAIN_ARGS}
            t0 = time.perf_counter()
            res = train(seed=seed, resample=True, **kw)
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


# ----------------------------------------------------------------------------- lif-vs-clif-delay


def _delay(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
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

    runs = _grid(configs, seeds, log, keep)
    summary = summarize_runs(runs, ["delay", "neuron"])
    wdf = pd.concat(weights, ignore_index=True)
    share = (wdf.groupby(["delay", "neuron", "layer", "epoch"])["temporal_share"]
             .agg(["mean", "std"]).reset_index()
             .rename(columns={"mean": "temporal_share_mean", "std": "temporal_share_std"}))
    cue_df = pd.concat(cue, ignore_index=True)
    cue_sum = (cue_df.groupby(["delay", "neuron", "layer", "epoch"])["cue_gradient_ratio"]
               .agg(["mean", "std"]).reset_index()
               .rename(columns={"mean": "cue_gradient_ratio_mean", "std": "cue_gradient_ratio_std"}))
    # figures: accuracy vs delay; temporal share over training
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    for nk, d in summary.groupby("neuron", sort=False):
        ax.errorbar(d.delay, d.test_accuracy_mean, yerr=d.test_accuracy_std, marker="o", capsize=3,
                    color=COLORS[nk], label=nk.upper())
    ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
    ax.set_xlabel("delay D (time steps between cue and answer)")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title("Delayed cue recall: LIF vs CLIF, same net and budget")
    ax.legend()
    _save(fig, out, "accuracy_vs_delay")
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
                            color=COLORS[nk], label=nk.upper())
            ax.set_title(f"D={dl}, layer {layer}")
            ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("temporal share of weight gradient")
            ax.legend(fontsize="small")
    _save(fig, out, "temporal_share_over_training")
    fig = Figure(figsize=(6.4 * 2, 4))
    for ax, layer in zip(fig.subplots(1, len(layers), sharey=True), layers):
        for nk, mk in (("lif", "o"), ("clif", "s")):
            for ep, alpha in ((0, 0.45), (int(cue_sum.epoch.max()), 1.0)):
                d = cue_sum[(cue_sum.neuron == nk) & (cue_sum.layer == layer) & (cue_sum.epoch == ep)]
                ax.errorbar(d.delay, d.cue_gradient_ratio_mean, yerr=d.cue_gradient_ratio_std, marker=mk, capsize=3,
                            color=COLORS[nk], alpha=alpha, label=f"{nk.upper()}, epoch {ep}")
        ax.set_yscale("log")
        ax.set_xlabel("delay D")
        ax.set_ylabel("||dL/du at cue steps|| / ||dL/du at the scored step||")
        ax.set_title(f"Gradient reaching the cue, layer {layer}")
        ax.legend(fontsize="small")
    _save(fig, out, "cue_gradient_vs_delay")
    return {"runs": runs, "summary": summary, "weights": wdf, "temporal_share": share, "cue_gradient": cue_sum}


def _delay_lr(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Robustness of lif-vs-clif-delay to the learning rate, at the delays where the two differ."""
    delays = (4,) if quick else (4, 5)
    lrs = (3e-3,) if quick else (3e-3, 1e-2, 3e-2)
    base = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, optimizer="adam", batch_size=64,
                n_train=256 if quick else 1024, n_test=256 if quick else 1024, model_kwargs={"widths": [64, 64]})
    configs = [dict(task=f"delay:delay={d}", neuron=nk, delay=d, lr=lr, **base)
               for d in delays for lr in lrs for nk in ("lif", "clif")]
    runs = _grid(configs, seeds, log)
    summary = summarize_runs(runs, ["delay", "lr", "neuron"])
    fig = Figure(figsize=(5.5 * len(delays), 3.8))
    for ax, d in zip(np.atleast_1d(fig.subplots(1, len(delays))), delays):
        for nk in ("lif", "clif"):
            e = summary[(summary.delay == d) & (summary.neuron == nk)]
            ax.errorbar(e.lr, e.test_accuracy_mean, yerr=e.test_accuracy_std, marker="o", capsize=3,
                        color=COLORS[nk], label=nk.upper())
        ax.set_xscale("log")
        ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
        ax.set_xlabel("Adam learning rate")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"delay D={d}")
        ax.legend(fontsize="small")
    _save(fig, out, "accuracy_vs_lr")
    return {"runs": runs, "summary": summary}


# ----------------------------------------------------------------------------- tau-truncation


def _tau_trunc(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
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
    runs = _grid(configs, seeds, log)
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
    _save(fig, out, "accuracy_tau_k")
    return {"runs": runs, "summary": summary}


def _tau_trunc_conv(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """The static half of tau-truncation with the paper's five-layer conv net (snn5_noAP, batch norm)."""
    taus = (1.1, 2.0)
    T = 2 if quick else 4
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=T, arch="snn5_noAP", neuron="lif",
                epochs=1 if quick else 4, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=64 if quick else 768, n_test=64 if quick else 512)
    configs = [dict(task_name="shapes", tau=tau, k=("T" if k == T else k), truncate=None if k == T else k, **base)
               for tau in taus for k in (1, T)]
    runs = _grid(configs, seeds, log)
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
    _save(fig, out, "accuracy_tau_k_snn5")
    return {"runs": runs, "summary": summary}


# ----------------------------------------------------------------------------- lif-vs-clif-T


def _T_sweep(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    Ts = (1, 2) if quick else (1, 2, 4, 8, 16)
    base = dict(task="shapes:num_classes=8,size=16,noise=0.3", arch="mlp", tau=2.0, epochs=2 if quick else 30,
                lr=3e-3, optimizer="adam", n_train=256 if quick else 1024, n_test=256 if quick else 1024,
                model_kwargs={"widths": [128, 128]})
    configs = [dict(T=T, neuron=nk, **base) for T in Ts for nk in ("lif", "clif")]
    runs = _grid(configs, seeds, log)
    summary = summarize_runs(runs, ["T", "neuron"])
    _plot_accuracy_vs_T(summary, out, "Static shapes task: accuracy vs T", "accuracy_vs_T")
    return {"runs": runs, "summary": summary}


def _plot_accuracy_vs_T(summary: pd.DataFrame, out: str, title: str, name: str) -> None:
    """Mean ± std test accuracy against T, one line per neuron type, saved as ``figures/<name>``."""
    fig = Figure(figsize=(6.4, 4))
    ax = fig.subplots()
    for nk, d in summary.groupby("neuron", sort=False):
        ax.errorbar(d["T"], d.test_accuracy_mean, yerr=d.test_accuracy_std, marker="o", capsize=3,
                    color=COLORS[nk], label=nk.upper())
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.set_title(title)
    ax.legend()
    _save(fig, out, name)


def _T_sweep_conv(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs T with the paper's Fig. 2 network itself (snn5_noAP) on 32x32 shapes."""
    Ts = (1, 2) if quick else (1, 2, 4, 8)
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", arch="snn5_noAP", tau=2.0,
                epochs=1 if quick else 3, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=64 if quick else 512, n_test=64 if quick else 256)
    configs = [dict(T=T, neuron=nk, **base) for T in Ts for nk in ("lif", "clif")]
    runs = _grid(configs, seeds, log)
    summary = summarize_runs(runs, ["T", "neuron"])
    _plot_accuracy_vs_T(summary, out, "snn5_noAP on 32x32 shapes: accuracy vs T", "accuracy_vs_T_snn5")
    return {"runs": runs, "summary": summary}


# ----------------------------------------------------------------------------- clif-to-lif


def _clif_to_lif(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    resets = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5)
    common = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, optimizer="adam",
                  n_train=256 if quick else 1024, n_test=256 if quick else 1024)
    tasks = {
        "shapes": dict(task="shapes:num_classes=8,size=16,noise=0.3", T=4, lr=3e-3,
                       model_kwargs={"widths": [128, 128]}),
        "delay": dict(task="delay:delay=3", lr=1e-2, model_kwargs={"widths": [64, 64]}),
    }
    sweeps: List[pd.DataFrame] = []
    ckdir = os.path.join(out, "checkpoints")

    def sweep(row, res):
        from ..train import save_checkpoint

        if row["neuron"] != "clif":
            return
        path = os.path.join(ckdir, f"clif_{row['task_name']}_seed{row['seed']}.pt")
        save_checkpoint(path, res.model, res.task, **{k: v for k, v in res.meta.items()
                                                       if k in ("epoch", "accuracy", "loss", "seed", "loss_kind")})
        df = clif_to_lif(path, resets, n_test=common["n_test"])
        sweeps.append(df.assign(task_name=row["task_name"], seed=row["seed"]))
        os.remove(path)

    configs = [dict(task_name=t, neuron=nk, **tk, **common) for t, tk in tasks.items() for nk in ("clif", "lif")]
    runs = _grid(configs, seeds, log, sweep)
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
                    color=COLORS["lif"], label="CLIF weights, LIF hard reset")
        for setting, color, ls, label in (("CLIF (as trained)", COLORS["clif"], "-", "CLIF (as trained)"),
                                          ("LIF soft reset", COLORS["lif"], "--", "CLIF weights, LIF soft reset")):
            ax.axhline(d[d.setting == setting].accuracy_mean.iloc[0], color=color, ls=ls, label=label)
        lt = lif_trained[lif_trained.task_name == tname].test_accuracy_mean.iloc[0]
        ax.axhline(lt, color="0.3", ls=":", label="LIF trained as LIF")
        ax.set_xlabel("LIF reset value v_reset")
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.set_title(f"CLIF-trained weights run with LIF neurons: {tname} task")
        ax.legend(fontsize="small")
    _save(fig, out, "clif_to_lif")
    return {"runs": runs, "sweep": sw, "summary": summary, "lif_trained": lif_trained}


# ----------------------------------------------------------------------------- resnet18-gradflow


def _resnet(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=2 if quick else 4,
                arch="spiking_resnet18", tau=2.0, epochs=1, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=32 if quick else 256, n_test=32 if quick else 128, record_every=1,
                record_batch=8 if quick else 16)
    tables: Dict[str, List[pd.DataFrame]] = {"weights": [], "lags": [], "per_step": []}

    def keep(row, res):
        for k in tables:
            tables[k].append(res.records[k].assign(neuron_run=row["neuron"], seed=row["seed"]))

    runs = _grid([dict(neuron=nk, **base) for nk in ("lif", "clif")], seeds, log, keep)
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
                        color=COLORS[nk], label=nk.upper())
        ax.set_xlabel("neuron layer (forward order)")
        ax.set_ylabel("temporal share of weight gradient")
        ax.set_title("at initialisation" if ep == 0 else "after one short epoch")
        ax.legend()
    _save(fig, out, "temporal_share_per_layer")
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ep, ax in zip((0, 1), axes):
        for nk in ("lif", "clif"):
            d = lags[(lags.neuron == nk) & (lags.epoch == ep) & (lags.lag == 1)]
            ax.plot(d.layer_index, d.relative_mean, "o-", color=COLORS[nk], label=f"{nk.upper()} lag 1")
            d = lags[(lags.neuron == nk) & (lags.epoch == ep) & (lags.lag == 2)]
            ax.plot(d.layer_index, d.relative_mean, "s--", color=COLORS[nk], label=f"{nk.upper()} lag 2")
        ax.set_yscale("log")
        ax.set_xlabel("neuron layer (forward order)")
        ax.set_ylabel("relative_k = G_k / G_0")
        ax.set_title("lag decay " + ("at initialisation" if ep == 0 else "after one short epoch"))
        ax.legend(fontsize="small")
    _save(fig, out, "lag_decay_per_layer")
    return {"runs": runs, "summary": summary, "temporal_share": share, "lags": lags, "activity": activity,
            "weights": w}


#: Experiments by name.
EXPERIMENTS = {
    "lif-vs-clif-delay": _delay,
    "lif-vs-clif-delay-lr": _delay_lr,
    "tau-truncation": _tau_trunc,
    "tau-truncation-snn5": _tau_trunc_conv,
    "lif-vs-clif-T": _T_sweep,
    "lif-vs-clif-T-snn5": _T_sweep_conv,
    "clif-to-lif": _clif_to_lif,
    "resnet18-gradflow": _resnet,
}


def run_experiment(name: str, out: str, *, seeds: Sequence[int] = (0, 1, 2), quick: bool = False,
                   log: Log = None) -> Dict[str, pd.DataFrame]:
    """Run experiment ``name`` with ``seeds`` and write its tables and figures to ``out``.

    ``quick=True`` shrinks every grid and budget to seconds (for tests; the numbers mean nothing).
    Returns the tables by name; each is also written as ``out/<name>.csv``, and ``summary`` also as
    ``out/summary.md`` with ``mean ± std`` cells.
    """
    if name not in EXPERIMENTS:
        raise UsageError(f"Unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}.")
    if not seeds:
        raise UsageError("Give at least one seed.")
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    tables = EXPERIMENTS[name](out, list(seeds), quick, log)
    for key, df in tables.items():
        df.to_csv(os.path.join(out, f"{key}.csv"), index=False)
    s = tables["summary"].copy()
    value = "accuracy" if "accuracy_mean" in s.columns else "test_accuracy"
    s[value] = _pm(s, value)
    s = s.drop(columns=[f"{value}_mean", f"{value}_std"])
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as fh:
        fh.write(f"# {name}: summary (seeds {', '.join(map(str, seeds))}; "
                 f"{time.perf_counter() - t0:.0f} s)\n\n{_markdown(s)}")
    return tables
