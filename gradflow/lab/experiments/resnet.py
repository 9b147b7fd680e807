"""resnet18-gradflow: spiking_resnet18 on 32x32 shapes, LIF vs CLIF, gradient flow per layer (0.2 definitions).

For each seed, LIF and CLIF networks with the same initial weights are recorded at initialisation
(``point = init``), trained briefly (Adam, cross-entropy over time) and recorded again (``point =
after``). A recording is ``passes`` backward passes of ``pass_size`` training images each (the first
``passes * pass_size`` images of the run's training set, the same images at both points), batch norm in
training mode as the training sees it (its running statistics are restored afterwards, no update).

Per neuron layer, from the recorder (docs/reference.md):

* the **weight temporal projection** ``<g_t, g>/||g||^2`` and the **cosine** of ``g_s`` and ``g_t`` of the
  conv/linear weights feeding the layer, taken as one vector: ``inner``, ``spatial_sq`` and ``temporal_sq``
  summed over those weight tensors (batch-norm affine parameters and biases left out) and over the
  passes, then :func:`gradflow.stats.projections`; the 95% interval resamples the backward passes
  (the weight gradient exists only per pass);
* ``weight_temporal_share = ||g_t|| / (||g_s|| + ||g_t||)`` of the same vector, pooled the same way:
  sign-blind, kept only as a secondary number;
* ``relative_k`` (the transport ratio, normalised by the spatial gradient of the same sources),
  ``half_life`` (log-linear crossing of 0.5, ``inf`` if it stays above) and ``decay_rate`` from the
  per-sample ``pair_sq`` of :meth:`Recorder.samples`, pooled over all recorded samples; the 95% interval
  resamples the samples (:func:`gradflow.stats.bootstrap`);
* firing rate and window occupancy from the per-sample counts (intervals over samples) and the share of
  exactly-zero temporal gradient entries (``per_step``, mean over passes).

Across seeds every metric is summarised by its mean with a Student-t 95% interval over the seeds
(``flow_summary``), and CLIF - LIF (same seed: same weights, same images) and after - init (same run)
by paired differences over seeds (``contrasts``).

Outputs: ``runs.csv`` (one row per run: accuracy, seconds, samples), ``summary.csv``/``summary.md``
(accuracy over seeds), ``flow.csv`` (per run, point and layer, with bootstrap intervals),
``profile.csv`` (per lag), ``flow_summary.csv``, ``contrasts.csv``, ``weights.csv`` (the recorder's raw
weight-split rows) and ``figures/``.

>>> sorted(SETTINGS["full"]) == sorted(SETTINGS["quick"])
True
>>> SETTINGS["full"]["passes"] * SETTINGS["full"]["pass_size"]   # recorded samples per run and point
48
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
from torch import nn

from ... import stats
from ...recorder import record
from ...tasks import parse_task
from ...train import build_for_task, evaluate, model_input
from .common import Log, color, pooled_weight_split, save_figure
from .paper_runs import paired, verdict

__all__ = ["run_resnet18", "SETTINGS", "METRICS", "measure", "plot"]

#: The experiment's settings; ``quick`` only tests the pipeline (its numbers mean nothing).
SETTINGS: Dict[str, Dict[str, Any]] = {
    "full": dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=4, arch="spiking_resnet18",
                 tau=2.0, lr=1e-3, batch_size=32, n_train=128, n_test=128, passes=3, pass_size=16,
                 n_resamples=1000),
    "quick": dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", T=2, arch="spiking_resnet18",
                  tau=2.0, lr=1e-3, batch_size=16, n_train=16, n_test=16, passes=2, pass_size=4,
                  n_resamples=50),
}

#: Per-layer metrics with intervals (flow.csv), in the order the report leads with them.
METRICS = ("weight_temporal_projection", "weight_cosine", "weight_temporal_share", "relative_1", "half_life",
           "decay_rate", "firing_rate", "window_fraction")

NEURONS = ("lif", "clif")
POINTS = ("init", "after")


# ----------------------------------------------------------------------------- measurement


def _weight_params(model: nn.Module) -> set:
    """Qualified names of the conv/linear weights (batch-norm parameters and biases excluded)."""
    names = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and getattr(mod, "weight", None) is not None:
            names.add(f"{mname}.weight" if mname else "weight")
    return names


def _interval(ci: stats.Interval, name: str, enough: bool) -> Dict[str, float]:
    return {name: float(ci.estimate), f"{name}_ci_low": float(ci.low) if enough else math.nan,
            f"{name}_ci_high": float(ci.high) if enough else math.nan}


def _lag_metrics(pair_sq: np.ndarray, n_resamples: int, seed: int) -> Tuple[Dict[str, float], List[Dict[str, float]]]:
    """relative_k (every lag), half-life and decay rate pooled over samples; intervals over samples."""
    K1 = pair_sq.shape[-1]
    enough = pair_sq.shape[0] >= 2

    def metric(s):
        rel = stats.relative_from_pair_sq(s)
        return np.concatenate([rel, stats.half_life_many(rel)[:, None], stats.decay_rate_many(rel)[:, None]],
                              axis=1)

    ci = stats.bootstrap(pair_sq, metric, n_resamples=n_resamples, seed=seed)
    row: Dict[str, float] = {}
    profile = []
    for k in range(K1):
        iv = stats.Interval(ci.estimate[k], ci.low[k], ci.high[k], None)
        profile.append(dict(lag=k, **_interval(iv, "relative", enough and k > 0)))
    rel1 = stats.Interval(ci.estimate[1], ci.low[1], ci.high[1], None) if K1 > 1 else None
    row.update(_interval(rel1, "relative_1", enough) if rel1 is not None else
               {"relative_1": math.nan, "relative_1_ci_low": math.nan, "relative_1_ci_high": math.nan})
    row.update(_interval(stats.Interval(ci.estimate[K1], ci.low[K1], ci.high[K1], None), "half_life", enough))
    row.update(_interval(stats.Interval(ci.estimate[K1 + 1], ci.low[K1 + 1], ci.high[K1 + 1], None), "decay_rate",
                         enough))
    return row, profile


def _activity(layer_samples, n_resamples: int, seed: int) -> Dict[str, float]:
    """Firing rate and window occupancy from per-sample counts, intervals over samples."""
    out: Dict[str, float] = {}
    for name, attr in (("firing_rate", "spikes"), ("window_fraction", "window")):
        c = np.asarray(getattr(layer_samples, attr), dtype=np.float64)
        size = np.full(c.shape[0], float(c.shape[1] * int(layer_samples.numel)))
        ci = stats.bootstrap(np.stack([c.sum(axis=1), size], axis=1), lambda s: s[:, 0] / s[:, 1],
                             n_resamples=n_resamples, seed=seed)
        out.update(_interval(ci, name, c.shape[0] >= 2))
    return out


def measure(model: nn.Module, task, x: torch.Tensor, y: torch.Tensor, *, arch: str, passes: int, pass_size: int,
            n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0):
    """Record ``model`` on ``passes`` backward passes of ``pass_size`` images of ``(x, y)`` (module docstring).

    Batch norm runs in training mode; its buffers, the gradients and the training flag are restored.
    Returns ``(flow rows, profile rows, raw weights table)``.
    """
    was = model.training
    buffers = copy.deepcopy(dict(model.named_buffers()))
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        with record(model, pairs=True, weights=True, max_lag=task.T - 1) as rec:
            for i in range(passes):
                sl = slice(i * pass_size, (i + 1) * pass_size)
                logits = model(model_input(x[sl], arch, task))
                task.loss(logits, y[sl], "ce").backward()
                model.zero_grad(set_to_none=True)
        per_step, weights, samples = rec.per_step(), rec.weights(), rec.samples()
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
        model.train(was)
    weights = weights[weights.param.isin(_weight_params(model))]
    flow, profile = [], []
    for (idx, layer), w in weights.groupby(["layer_index", "layer"], sort=True):
        ls = samples[layer]
        row: Dict[str, Any] = {"layer": layer, "layer_index": int(idx), "samples": int(ls.pair_sq.shape[0]),
                               "passes": int(w.step.nunique()),
                               "weight_tensors": int(w.param.nunique())}
        row.update(pooled_weight_split(w, n_resamples, seed))
        lag_row, prof = _lag_metrics(np.asarray(ls.pair_sq, dtype=np.float64), n_resamples, seed)
        row.update(lag_row)
        row.update(_activity(ls, n_resamples, seed))
        row["temporal_zero_fraction"] = float(per_step[per_step.layer == layer].temporal_zero_fraction.mean())
        flow.append(row)
        profile.extend(dict(layer=layer, layer_index=int(idx), **p) for p in prof)
    return flow, profile, weights


# ----------------------------------------------------------------------------- one run


def _run(neuron: str, seed: int, cfg: Dict[str, Any], log: Log):
    """Build (seeded: same weights for both neurons), record, train one epoch, record, evaluate."""
    t0 = time.perf_counter()
    task = parse_task(cfg["task"], T=cfg["T"])
    arch = cfg["arch"]
    torch.manual_seed(seed)
    model = build_for_task(task, arch, neuron, cfg["tau"])
    (xtr, ytr), (xte, yte) = task.splits(cfg["n_train"], cfg["n_test"], seed)
    n_probe = cfg["passes"] * cfg["pass_size"]
    px, py = xtr[:n_probe], ytr[:n_probe]
    kw = dict(arch=arch, passes=cfg["passes"], pass_size=cfg["pass_size"], n_resamples=cfg["n_resamples"],
              seed=seed)
    labels = {"neuron": neuron, "seed": seed}
    flow: List[Dict[str, Any]] = []
    profile: List[Dict[str, Any]] = []
    weights: List[pd.DataFrame] = []

    def at(point: str, epoch: int) -> None:
        f, p, w = measure(model, task, px, py, **kw)
        flow.extend(dict(labels, point=point, epoch=epoch, **r) for r in f)
        profile.extend(dict(labels, point=point, epoch=epoch, **r) for r in p)
        weights.append(w.assign(neuron=neuron, seed=seed, point=point, epoch=epoch))

    at("init", 0)
    t_rec = time.perf_counter() - t0
    # one epoch as gradflow.train.train does it: Adam, shuffled mini-batches (generator seed + 12345), CE
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    order = torch.randperm(cfg["n_train"], generator=torch.Generator().manual_seed(seed + 12345))
    model.train()
    tot, correct = 0.0, 0
    for i in range(0, cfg["n_train"], cfg["batch_size"]):
        idx = order[i:i + cfg["batch_size"]]
        logits = model(model_input(xtr[idx], arch, task))
        loss = task.loss(logits, ytr[idx], "ce")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += float(loss.detach()) * len(idx)
        correct += int((task.predict(logits.detach()) == ytr[idx]).sum())
    t1 = time.perf_counter()
    at("after", 1)
    t_rec += time.perf_counter() - t1
    ev = evaluate(model, task, xte, yte, arch=arch, loss="ce")
    run = dict(labels, test_accuracy=ev["accuracy"], test_loss=ev["loss"], train_accuracy=correct / cfg["n_train"],
               train_loss=tot / cfg["n_train"], chance=task.chance, steps=math.ceil(cfg["n_train"] / cfg["batch_size"]),
               samples=n_probe, passes=cfg["passes"], seconds=time.perf_counter() - t0, record_seconds=t_rec)
    if log:
        log(f"{neuron} seed {seed}: test acc {run['test_accuracy']:.3f} ({run['seconds']:.0f} s, "
            f"recording {t_rec:.0f} s)")
    return run, flow, profile, pd.concat(weights, ignore_index=True)


# ----------------------------------------------------------------------------- summaries


def flow_summary(flow: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds with a Student-t 95% interval, per neuron, point and layer."""
    rows = []
    keys = ["neuron", "point", "epoch", "layer_index", "layer"]
    for key, d in flow.groupby(keys, sort=False):
        row = dict(zip(keys, key), seeds=int(d.seed.nunique()), samples_per_run=int(d.samples.iloc[0]))
        for m in METRICS + ("temporal_zero_fraction",):
            st = paired(d[m].to_numpy(float))
            row.update({m: st["mean"], f"{m}_ci_low": st["ci_low"], f"{m}_ci_high": st["ci_high"],
                        f"{m}_min": float(np.nanmin(d[m])) if np.isfinite(d[m]).any() else math.nan,
                        f"{m}_max": float(np.nanmax(d[m])) if np.isfinite(d[m]).any() else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def contrasts(flow: pd.DataFrame) -> pd.DataFrame:
    """Paired differences over seeds: CLIF - LIF at each point, after - init for each neuron."""
    rows = []
    for (idx, layer), d in flow.groupby(["layer_index", "layer"], sort=True):
        for m in METRICS:
            for point in POINTS:
                t = d[d.point == point].pivot_table(index="seed", columns="neuron", values=m, aggfunc="first")
                if {"lif", "clif"} <= set(t.columns):
                    st = paired((t["clif"] - t["lif"]).dropna().to_numpy())
                    rows.append(dict(layer_index=idx, layer=layer, metric=m, contrast=f"clif - lif at {point}", **st,
                                     verdict=verdict(st["ci_low"], st["ci_high"])))
            for nk in NEURONS:
                t = d[d.neuron == nk].pivot_table(index="seed", columns="point", values=m, aggfunc="first")
                if set(POINTS) <= set(t.columns):
                    st = paired((t["after"] - t["init"]).dropna().to_numpy())
                    rows.append(dict(layer_index=idx, layer=layer, metric=m, contrast=f"after - init, {nk}", **st,
                                     verdict=verdict(st["ci_low"], st["ci_high"])))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- figures


def _per_layer(fs: pd.DataFrame, out: str, metrics: Sequence[Tuple[str, str]], name: str, log_y=False) -> None:
    fig = Figure(figsize=(11, 3.8 * len(metrics)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(metrics), 2, sharey="row"))
    for r, (m, ylabel) in enumerate(metrics):
        for c, point in enumerate(POINTS):
            ax = axes[r, c]
            for j, nk in enumerate(NEURONS):
                d = fs[(fs.neuron == nk) & (fs.point == point)].sort_values("layer_index")
                lo = (d[m] - d[f"{m}_ci_low"]).clip(lower=0).to_numpy()
                hi = (d[f"{m}_ci_high"] - d[m]).clip(lower=0).to_numpy()
                ax.errorbar(d.layer_index + (j - 0.5) * 0.2, d[m], yerr=np.nan_to_num(np.stack([lo, hi])),
                            marker="o", ms=4, capsize=2, color=color(nk), label=nk.upper())
            if m in ("weight_temporal_projection", "weight_cosine"):
                ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel("neuron layer (forward order)")
            ax.set_ylabel(ylabel)
            ax.set_title(("at initialisation" if point == "init" else "after the short run")
                         + " (mean over seeds, 95% t-interval)", fontsize="small")
            ax.legend(fontsize="small")
    save_figure(fig, out, name)


def plot(fs: pd.DataFrame, out: str) -> None:
    """The three figures from ``flow_summary`` (also from a saved ``flow_summary.csv``): the weight
    temporal projection and cosine (the lead), ``relative_1`` and half-life, the sign-blind share."""
    _per_layer(fs, out, [("weight_temporal_projection", "temporal projection <g_t, g>/||g||^2"),
                         ("weight_cosine", "cosine(g_s, g_t)")], "weight_projection_per_layer")
    _per_layer(fs, out, [("relative_1", "relative_1 (transport ratio, lag 1)"),
                         ("half_life", "half-life (steps)")], "transport_per_layer")
    _per_layer(fs, out, [("weight_temporal_share", "temporal share ||g_t||/(||g_s||+||g_t||), sign-blind")],
               "temporal_share_per_layer")


# ----------------------------------------------------------------------------- the experiment


def run_resnet18(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """spiking_resnet18, LIF vs CLIF: per-layer weight temporal projection, cosine and transport
    (relative_k, half-life) with 95% intervals, at initialisation and after one short epoch."""
    cfg = SETTINGS["quick" if quick else "full"]
    runs, flow, profile, weights = [], [], [], []
    n = len(seeds) * len(NEURONS)
    i = 0
    for seed in seeds:
        for nk in NEURONS:
            i += 1
            r, f, p, w = _run(nk, int(seed), cfg, (lambda s, i=i: log(f"[{i}/{n}] {s}")) if log else None)
            runs.append(r)
            flow.extend(f)
            profile.extend(p)
            weights.append(w)
    runs_df, flow_df = pd.DataFrame(runs), pd.DataFrame(flow)
    summary = []
    for nk, d in runs_df.groupby("neuron", sort=False):
        st = paired(d.test_accuracy.to_numpy(float))
        summary.append({"neuron": nk, "test_accuracy_mean": st["mean"], "test_accuracy_std": st["sd"],
                        "test_accuracy_ci_low": st["ci_low"], "test_accuracy_ci_high": st["ci_high"],
                        "seeds": st["n"], "chance": float(d.chance.iloc[0]),
                        "samples_per_run": int(d.samples.iloc[0]), "seconds_mean": float(d.seconds.mean())})
    fs = flow_summary(flow_df)
    plot(fs, out)
    return {"runs": runs_df, "summary": pd.DataFrame(summary), "flow": flow_df,
            "profile": pd.DataFrame(profile), "flow_summary": fs, "contrasts": contrasts(flow_df),
            "weights": pd.concat(weights, ignore_index=True)}
