"""lif-vs-clif-delay and lif-vs-clif-delay-lr: the delayed-cue task, LIF vs CLIF at equal budget.

``lif-vs-clif-delay`` trains a 64-64 spiking MLP on ``delay:delay=D`` (:class:`gradflow.tasks.DelayedCue`,
loss at the last step only) for each delay D, LIF and CLIF with the same initial weights and batches per
seed (Adam, :func:`gradflow.train.train`'s training loop), and measures the gradient flow of every run
before training and every ``record_every`` epochs on a fixed probe: the first ``N`` test samples of the
run's seed, in ``passes`` backward passes of ``N / passes`` samples (:func:`measure`). Per run, point and
neuron layer (gradflow 0.2 definitions, docs/reference.md):

* ``weight_temporal_projection`` and ``weight_cosine``: the signed split of the gradient of the layer's
  weights (every parameter feeding the layer whose name ends in ``weight``): per backward pass the
  recorder's ``spatial_sq``, ``temporal_sq`` and ``inner`` are summed over those weights, the sums are
  added over the passes and :func:`gradflow.stats.projections` is applied to the totals; the 95%
  percentile-bootstrap interval resamples passes (the weight gradient exists only per pass);
* ``cue_gradient``: ``sqrt( sum_i sum_{t < cue_len} ||dL/du_i[t]||^2 / sum_i ||dL/du_i[T-1]||^2 )``, the
  size of the gradient that reaches the cue steps relative to the scored step (i: probe samples), with
  a bootstrap interval over samples;
* ``relative_1``, ``half_life``, ``decay_rate``, ``temporal_share`` (sign-blind) and the per-pass mean
  ``weight_temporal_projection`` of :func:`gradflow.report.layer_statistics`, with their intervals
  (``gf_`` prefix in ``flow.csv``).

Across seeds every number is the mean with a Student-t 95% interval over seeds
(:func:`.paper_runs.paired`), and LIF vs CLIF is a paired difference per seed (same initial weights and
data) with its t-interval and a verdict (``> 0``, ``< 0`` or ``cannot tell``).

Outputs: ``runs.csv`` (one row per run), ``summary.csv``/``summary.md`` (accuracy over seeds),
``flow.csv`` (every run, point and layer, with bootstrap intervals), ``flow_summary.csv`` (means over
seeds with t-intervals), ``contrasts.csv`` (paired CLIF - LIF of accuracy and of the flow metrics),
``figures/``. ``lif-vs-clif-delay-lr`` repeats the accuracy part at D = 4, 5 for three learning rates
(no recording) with the same statistics over seeds.

>>> sorted(DELAYS), QUICK_DELAYS
([1, 2, 3, 4, 5, 6, 8], (1, 2))
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ... import report, stats
from ...recorder import record
from ...train import TrainConfig, _Run, model_input
from .common import TRAIN_FIELDS, Log, color, pooled_weight_split, save_figure
from .paper_runs import paired, verdict

__all__ = ["run_delay", "run_delay_lr", "measure", "train_and_measure", "DELAYS", "QUICK_DELAYS",
           "FLOW_METRICS"]

#: Delays of the full run and of ``--quick``.
DELAYS = (1, 2, 3, 4, 5, 6, 8)
QUICK_DELAYS = (1, 2)
#: The per-run gradient metrics that are averaged over seeds and compared between the neurons.
FLOW_METRICS = ("weight_temporal_projection", "weight_cosine", "cue_gradient", "relative_1", "half_life",
                "decay_rate", "temporal_share")
NEURONS = ("lif", "clif")


# ----------------------------------------------------------------------------- one run


def _interval(ci, prefix: str) -> Dict[str, float]:
    return {prefix: float(ci.estimate), f"{prefix}_ci_low": float(ci.low), f"{prefix}_ci_high": float(ci.high)}


def measure(model: torch.nn.Module, task, probe: Tuple[torch.Tensor, torch.Tensor], passes: int,
            n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> List[Dict[str, Any]]:
    """Record the gradient flow of a copy of ``model`` on ``probe`` in ``passes`` backward passes.

    Returns one row per neuron layer with the metrics of the module docstring and their 95% bootstrap
    intervals (``<metric>_ci_low``/``_ci_high``), ``samples`` and ``passes``.
    """
    net = copy.deepcopy(model)
    net.eval()
    x, y = probe
    n = int(y.shape[0])
    size = max(1, math.ceil(n / passes))
    with record(net, pairs=True, weights=True) as rec:
        for i in range(0, n, size):
            logits = net(model_input(x[:, i:i + size], "mlp", task))
            task.loss(logits, y[i:i + size], "ce").backward()
            net.zero_grad(set_to_none=True)
    tables = {"per_step": rec.per_step(), "lags": rec.lags(), "weights": rec.weights()}
    samples = rec.samples()
    st = report.layer_statistics(tables, samples, n_resamples=n_resamples, seed=seed)
    w = tables["weights"]
    w = w[w.param.str.endswith("weight")]
    rows = []
    for _, r in st.summary.iterrows():
        layer = r["layer"]
        row: Dict[str, Any] = {"layer": layer, "layer_index": int(r["layer_index"]), "samples": n,
                               "passes": int(r["steps"])}
        # weight split of the layer's weights, pooled: sums per pass, projections of the totals
        split = pooled_weight_split(w[w.layer == layer], n_resamples, seed)
        row.update({k: v for k, v in split.items() if not k.startswith("weight_temporal_share")})
        ps = samples[layer]
        tot = np.asarray(ps.total_sq, dtype=np.float64)            # [n, T]
        units = np.stack([tot[:, :task.cue_len].sum(axis=1), tot[:, task.T - 1]], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ci = stats.bootstrap(units, lambda s: np.sqrt(np.where(s[:, 1] > 0, s[:, 0] / s[:, 1], np.nan)),
                                 n_resamples=n_resamples, seed=seed)
        row.update(_interval(ci, "cue_gradient"))
        for m in ("relative_1", "half_life", "decay_rate", "temporal_share"):
            row.update({m: float(r[m]), f"{m}_ci_low": float(r[f"{m}_ci_low"]),
                        f"{m}_ci_high": float(r[f"{m}_ci_high"])})
        row.update({"gf_weight_temporal_projection": float(r["weight_temporal_projection"]),
                    "gf_weight_temporal_projection_ci_low": float(r["weight_temporal_projection_ci_low"]),
                    "gf_weight_temporal_projection_ci_high": float(r["weight_temporal_projection_ci_high"]),
                    "firing_rate": float(r["firing_rate"])})
        rows.append(row)
    return rows


def train_and_measure(cfg: Dict[str, Any], seed: int, *, record_epochs: Sequence[int], probe_samples: int,
                      passes: int, n_resamples: int) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Train one run as :func:`gradflow.train.train` does (same initial weights, data and batch order for
    a seed) and :func:`measure` it before training and after each epoch in ``record_epochs``.

    Returns the run's row (labels, last epoch's accuracies, seconds) and its flow rows.
    """
    t0 = time.perf_counter()
    kw = {k: v for k, v in cfg.items() if k in TRAIN_FIELDS}
    run = _Run.start(TrainConfig(seed=seed, resample=True, **kw))
    task = run.task
    probe = task.sample(probe_samples, seed, "test")
    labels = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    flow: List[Dict[str, Any]] = []

    def point(epoch: int) -> None:
        if epoch in record_epochs:
            for r in measure(run.model, task, probe, passes, n_resamples, seed):
                flow.append(dict(labels, seed=seed, epoch=epoch, **r))

    row = run.test_row(0, math.nan, math.nan, 0.0)
    point(0)
    for epoch in range(1, run.cfg.epochs + 1):
        row = run.epoch(epoch, None)
        point(epoch)
    out = dict(labels, seed=seed, test_accuracy=float(row["test_accuracy"]), test_loss=float(row["test_loss"]),
               train_accuracy=float(row["train_accuracy"]), chance=task.chance, T=task.T,
               seconds=time.perf_counter() - t0)
    return out, flow


# ----------------------------------------------------------------------------- statistics over seeds


def accuracy_summary(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Test accuracy per configuration: mean, sd, Student-t 95% interval over seeds and their number."""
    rows = []
    for key, d in runs.groupby(list(keys), sort=False):
        st = paired(d["test_accuracy"].to_numpy(float))
        rows.append(dict(zip(keys, key if isinstance(key, tuple) else (key,)), test_accuracy_mean=st["mean"],
                         test_accuracy_std=st["sd"], test_accuracy_ci_low=st["ci_low"],
                         test_accuracy_ci_high=st["ci_high"], seeds=st["n"]))
    return pd.DataFrame(rows)


def accuracy_contrasts(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Paired CLIF - LIF test accuracy per configuration ``keys`` (same seed = same initial weights)."""
    rows = []
    for key, d in runs.groupby(list(keys), sort=False):
        table = d.pivot_table(index="seed", columns="neuron", values="test_accuracy", aggfunc="first")
        if set(NEURONS) <= set(table.columns):
            st = paired((table["clif"] - table["lif"]).dropna().to_numpy())
            rows.append(dict(zip(keys, key if isinstance(key, tuple) else (key,)), metric="test_accuracy",
                             contrast="clif - lif", **st, verdict=verdict(st["ci_low"], st["ci_high"])))
    return pd.DataFrame(rows)


def flow_summary(flow: pd.DataFrame) -> pd.DataFrame:
    """Each flow metric per (delay, neuron, layer, epoch): mean over seeds with a Student-t interval."""
    rows = []
    keys = ["delay", "neuron", "layer_index", "layer", "epoch"]
    for key, d in flow.groupby(keys, sort=True):
        row = dict(zip(keys, key), seeds=int(d["seed"].nunique()), samples=int(d["samples"].iloc[0]),
                   passes=int(d["passes"].iloc[0]))
        for m in FLOW_METRICS:
            st = paired(d[m].to_numpy(float))
            row.update({m: st["mean"], f"{m}_ci_low": st["ci_low"], f"{m}_ci_high": st["ci_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def flow_contrasts(flow: pd.DataFrame) -> pd.DataFrame:
    """Paired CLIF - LIF of each flow metric per (delay, layer, epoch), over seeds."""
    rows = []
    keys = ["delay", "layer_index", "layer", "epoch"]
    for key, d in flow.groupby(keys, sort=True):
        for m in FLOW_METRICS:
            table = d.pivot_table(index="seed", columns="neuron", values=m, aggfunc="first")
            if set(NEURONS) <= set(table.columns):
                st = paired((table["clif"] - table["lif"]).replace([np.inf, -np.inf], np.nan).dropna().to_numpy())
                rows.append(dict(zip(keys, key), metric=m, contrast="clif - lif", **st,
                                 verdict=verdict(st["ci_low"], st["ci_high"])))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- experiments


def run_delay(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs delay D, LIF vs CLIF, with the signed weight split and the gradient reaching the cue."""
    delays = QUICK_DELAYS if quick else DELAYS
    epochs = 2 if quick else 20
    record_epochs = (0, 1, 2) if quick else (0, 10, 20)
    probe_samples, passes, n_resamples = (32, 4, 100) if quick else (512, 16, 1000)
    base = dict(arch="mlp", tau=2.0, epochs=epochs, lr=1e-2, optimizer="adam", batch_size=64,
                n_train=256 if quick else 1024, n_test=256 if quick else 1024, backend="fused",
                model_kwargs={"widths": [64, 64]})
    configs = [dict(task=f"delay:delay={d}", neuron=nk, delay=d, **base) for d in delays for nk in NEURONS]
    rows, flow = [], []
    n = len(configs) * len(seeds)
    i = 0
    for cfg in configs:
        for seed in seeds:
            i += 1
            row, f = train_and_measure(cfg, int(seed), record_epochs=record_epochs, probe_samples=probe_samples,
                                       passes=passes, n_resamples=n_resamples)
            rows.append(row)
            flow.extend(f)
            if log:
                log(f"[{i}/{n}] {cfg['task']} {cfg['neuron']} seed {seed}: test acc {row['test_accuracy']:.3f} "
                    f"({row['seconds']:.0f} s)")
    runs = pd.DataFrame(rows)
    flow_df = pd.DataFrame(flow)
    summary = accuracy_summary(runs, ["delay", "neuron"])
    summary.insert(1, "T", [int(runs.loc[runs.delay == d, "T"].iloc[0]) for d in summary.delay])
    fs = flow_summary(flow_df)
    contrasts = pd.concat([accuracy_contrasts(runs, ["delay"]), flow_contrasts(flow_df)], ignore_index=True)
    _plot_accuracy(summary, float(runs.chance.iloc[0]), out)
    _plot_projection(fs, delays, out)
    _plot_cue(fs, out)
    return {"runs": runs, "summary": summary, "flow": flow_df, "flow_summary": fs, "contrasts": contrasts}


def _errorbar(ax, d: pd.DataFrame, x: str, m: str, **kw) -> None:
    """Mean with its interval as asymmetric error bars (missing bounds drawn without a bar)."""
    lo = (d[m] - d[f"{m}_ci_low"]).to_numpy(float)
    hi = (d[f"{m}_ci_high"] - d[m]).to_numpy(float)
    yerr = np.vstack([np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=0.0)])
    ax.errorbar(d[x].to_numpy(), d[m].to_numpy(float), yerr=yerr, marker=kw.pop("marker", "o"), capsize=3, **kw)


def _plot_accuracy(summary: pd.DataFrame, chance: float, out: str) -> None:
    """figures/accuracy_vs_delay.png: mean test accuracy with its t-interval over seeds, per neuron."""
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    for nk in NEURONS:
        d = summary[summary.neuron == nk].rename(columns={"test_accuracy_mean": "acc",
                                                          "test_accuracy_ci_low": "acc_ci_low",
                                                          "test_accuracy_ci_high": "acc_ci_high"})
        _errorbar(ax, d.sort_values("delay"), "delay", "acc", color=color(nk), label=nk.upper())
    ax.axhline(chance, color="0.4", ls=":", label="chance")
    ax.set_xlabel("delay D (time steps between cue and answer)")
    ax.set_ylabel("test accuracy (mean, 95% t-interval over seeds)")
    ax.set_title("Delayed cue recall: LIF vs CLIF, same net and budget")
    ax.legend(fontsize="small")
    save_figure(fig, out, "accuracy_vs_delay")


def _plot_projection(fs: pd.DataFrame, delays: Sequence[int], out: str) -> None:
    """figures/temporal_projection_over_training.png: each layer's weight temporal projection by epoch."""
    layers = sorted(fs.layer.unique())
    shown = [d for d in delays if d in (1, 4, 5, 6)] or list(delays[:3])
    fig = Figure(figsize=(3.6 * len(shown), 3.2 * len(layers)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(layers), len(shown), sharey=True, squeeze=False))
    for i, layer in enumerate(layers):
        for j, dl in enumerate(shown):
            ax = axes[i, j]
            for k, nk in enumerate(NEURONS):
                d = fs[(fs.delay == dl) & (fs.neuron == nk) & (fs.layer == layer)].sort_values("epoch").copy()
                d["epoch"] = d["epoch"] + (k - 0.5) * 0.4
                _errorbar(ax, d, "epoch", "weight_temporal_projection", color=color(nk), label=nk.upper())
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_title(f"D={dl}, layer {layer}")
            ax.set_xlabel("epoch")
            if j == 0:
                ax.set_ylabel("weight temporal projection")
            ax.legend(fontsize="small")
    save_figure(fig, out, "temporal_projection_over_training")


def _plot_cue(fs: pd.DataFrame, out: str) -> None:
    """figures/cue_gradient_vs_delay.png: the gradient reaching the cue steps, before and after training."""
    layers = sorted(fs.layer.unique())
    fig = Figure(figsize=(6.4 * len(layers), 4), layout="constrained")
    last = int(fs.epoch.max())
    for ax, layer in zip(np.atleast_1d(fig.subplots(1, len(layers), sharey=True)), layers):
        for nk, mk in (("lif", "o"), ("clif", "s")):
            for ep, alpha in ((0, 0.45), (last, 1.0)):
                d = fs[(fs.neuron == nk) & (fs.layer == layer) & (fs.epoch == ep)].sort_values("delay")
                _errorbar(ax, d, "delay", "cue_gradient", marker=mk, color=color(nk), alpha=alpha,
                          label=f"{nk.upper()}, epoch {ep}")
        ax.set_yscale("log")
        ax.set_xlabel("delay D")
        ax.set_ylabel("cue gradient (mean, 95% t-interval over seeds)")
        ax.set_title(f"Gradient reaching the cue, layer {layer}")
        ax.legend(fontsize="small")
    save_figure(fig, out, "cue_gradient_vs_delay")


def run_delay_lr(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Robustness of lif-vs-clif-delay to the learning rate, at the delays where the two differ."""
    from .common import grid

    delays = (4,) if quick else (4, 5)
    lrs = (3e-3,) if quick else (3e-3, 1e-2, 3e-2)
    base = dict(arch="mlp", tau=2.0, epochs=2 if quick else 20, optimizer="adam", batch_size=64,
                n_train=256 if quick else 1024, n_test=256 if quick else 1024, backend="fused",
                model_kwargs={"widths": [64, 64]})
    configs = [dict(task=f"delay:delay={d}", neuron=nk, delay=d, lr=lr, **base)
               for d in delays for lr in lrs for nk in NEURONS]
    runs = grid(configs, seeds, log)
    summary = accuracy_summary(runs, ["delay", "lr", "neuron"])
    contrasts = accuracy_contrasts(runs, ["delay", "lr"])
    fig = Figure(figsize=(5.5 * len(delays), 3.8), layout="constrained")
    for ax, d in zip(np.atleast_1d(fig.subplots(1, len(delays))), delays):
        for k, nk in enumerate(NEURONS):
            e = summary[(summary.delay == d) & (summary.neuron == nk)].rename(
                columns={"test_accuracy_mean": "acc", "test_accuracy_ci_low": "acc_ci_low",
                         "test_accuracy_ci_high": "acc_ci_high"}).copy()
            e["lr"] = e["lr"] * (1.0 + 0.06 * (k - 0.5))
            _errorbar(ax, e, "lr", "acc", color=color(nk), label=nk.upper())
        ax.set_xscale("log")
        ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
        ax.set_xlabel("Adam learning rate")
        ax.set_ylabel("test accuracy (mean, 95% t-interval)")
        ax.set_title(f"delay D={d}")
        ax.legend(fontsize="small")
    save_figure(fig, out, "accuracy_vs_lr")
    return {"runs": runs, "summary": summary, "contrasts": contrasts}
