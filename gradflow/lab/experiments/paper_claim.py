"""paper-claim: does LIF lose accuracy because its temporal gradient vanishes? A four-neuron ablation.

The CLIF paper's claim: inside the surrogate window LIF's one-step factor ``du[t+1]/du[t]`` is exactly 0,
so its temporal gradient vanishes; CLIF's complementary potential ``m`` keeps it alive, and that is
why CLIF trains better. If so, on the same data and initial weights:

1. the accuracy gained by full BPTT over spatial-only training (``truncate=1``) is larger for CLIF
   than for LIF (contrast ``P1 = gain(clif) - gain(lif)``, gain = acc(full) - acc(k=1));
2. LIF with ``detach_reset=True`` (factor always ``gamma``) recovers much of it
   (``P2 = gain(lif_dr) - gain(lif)``);
3. CLIF without its ``m`` gradient loses its advantage (``P3 = acc(clif, full) - acc(clif_nom, full)``);
4. if CLIF is better already at ``k = 1`` (``P4 = acc(clif, k1) - acc(lif, k1)``), that part of its
   edge comes from its forward dynamics, not from the gradient.

Every contrast is a paired difference per seed (same initial weights, data order and test set),
reported as the mean over seeds with a Student-t 95% interval (``t_{0.975, n-1} * sd / sqrt(n)``), and
the number of seeds on each side of 0. The gradient flow of every run (:mod:`.paper_runs`) is measured
at initialisation, half-way and at the end, and the same paired contrasts are formed for
``relative_1`` and the weight temporal projection of each layer.

Outputs (besides ``runs.csv``, ``summary.csv``, ``summary.md``): ``flow.csv`` (one row per run, point
and layer, with bootstrap intervals), ``profile.csv`` (per lag), ``contrasts.csv`` (accuracy contrasts),
``flow_contrasts.csv`` (gradient contrasts), ``flow_summary.csv`` (gradient metrics averaged over seeds)
and ``figures/``. Runs are cached in ``OUT/cache/`` (one JSON per run): an interrupted run resumes, and
runs started in separate processes (e.g. one per ``--arch``) are merged by running the full command
again.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from ...errors import UsageError
from . import paper_figures
from .paper_runs import VARIANTS, RunResult, RunSpec, paired, spec_dict, train_and_measure, verdict

__all__ = ["run_paper_claim", "run_grid", "paired", "accuracy_contrasts", "flow_contrasts", "CONTRASTS",
           "verdict"]

#: Accuracy contrasts: name -> ({(variant, bptt): coefficient}, what it tests).
CONTRASTS: Dict[str, Tuple[Dict[Tuple[str, str], float], str]] = {
    "gain_lif": ({("lif", "full"): 1, ("lif", "k1"): -1}, "BPTT gain, LIF"),
    "gain_clif": ({("clif", "full"): 1, ("clif", "k1"): -1}, "BPTT gain, CLIF"),
    "gain_lif_dr": ({("lif_dr", "full"): 1, ("lif_dr", "k1"): -1}, "BPTT gain, LIF + detach_reset"),
    "gain_clif_nom": ({("clif_nom", "full"): 1, ("clif_nom", "k1"): -1}, "BPTT gain, CLIF without m gradient"),
    "P1": ({("clif", "full"): 1, ("clif", "k1"): -1, ("lif", "full"): -1, ("lif", "k1"): 1},
           "P1: gain(CLIF) - gain(LIF) > 0"),
    "P2": ({("lif_dr", "full"): 1, ("lif_dr", "k1"): -1, ("lif", "full"): -1, ("lif", "k1"): 1},
           "P2: gain(LIF+dr) - gain(LIF) > 0"),
    "P2_full": ({("lif_dr", "full"): 1, ("lif", "full"): -1}, "P2': acc(LIF+dr) - acc(LIF), full BPTT"),
    "P3": ({("clif", "full"): 1, ("clif_nom", "full"): -1}, "P3: acc(CLIF) - acc(CLIF no m), full BPTT > 0"),
    "P3_gain": ({("clif", "full"): 1, ("clif", "k1"): -1, ("clif_nom", "full"): -1, ("clif_nom", "k1"): 1},
                "P3': gain(CLIF) - gain(CLIF no m)"),
    "edge_full": ({("clif", "full"): 1, ("lif", "full"): -1}, "acc(CLIF) - acc(LIF), full BPTT"),
    "P4": ({("clif", "k1"): 1, ("lif", "k1"): -1}, "P4: acc(CLIF) - acc(LIF) at k = 1 (forward dynamics)"),
}

#: Gradient contrasts: (variant a, variant b) compared at the same bptt, point and layer.
FLOW_PAIRS = (("clif", "lif"), ("lif_dr", "lif"), ("clif_nom", "clif"), ("clif_nom", "lif"))
FLOW_METRICS = ("relative_1", "half_life", "weight_temporal_projection", "window_fraction", "firing_rate",
                "window_persistence")
GROUP = ["arch", "T", "alpha"]


# ----------------------------------------------------------------------------- contrasts over seeds


def accuracy_contrasts(runs: pd.DataFrame, value: str = "test_accuracy") -> pd.DataFrame:
    """One row per (arch, T, alpha, contrast): the paired statistics of :data:`CONTRASTS` over seeds."""
    rows = []
    for key, d in runs.groupby(GROUP, sort=False):
        table = d.pivot_table(index="seed", columns=["variant", "bptt"], values=value, aggfunc="first")
        for name, (coef, about) in CONTRASTS.items():
            if not all(c in table.columns for c in coef):
                continue
            per_seed = sum(w * table[c] for c, w in coef.items()).dropna()
            st = paired(per_seed.to_numpy())
            rows.append(dict(zip(GROUP, key), contrast=name, about=about, **st,
                             verdict=verdict(st["ci_low"], st["ci_high"])))
    return pd.DataFrame(rows)


def flow_contrasts(flow: pd.DataFrame) -> pd.DataFrame:
    """Paired differences between variants of the gradient metrics, per bptt, point and layer."""
    rows = []
    keys = GROUP + ["bptt", "point", "layer_index", "layer"]
    for key, d in flow.groupby(keys, sort=False):
        for metric in FLOW_METRICS:
            table = d.pivot_table(index="seed", columns="variant", values=metric, aggfunc="first")
            for a, b in FLOW_PAIRS:
                if a in table.columns and b in table.columns:
                    st = paired((table[a] - table[b]).dropna().to_numpy())
                    rows.append(dict(zip(keys, key), metric=metric, a=a, b=b, **st,
                                     verdict=verdict(st["ci_low"], st["ci_high"])))
    return pd.DataFrame(rows)


def flow_summary(flow: pd.DataFrame) -> pd.DataFrame:
    """Gradient metrics per configuration, point and layer: mean over seeds with a Student-t interval."""
    rows = []
    keys = GROUP + ["variant", "bptt", "point", "epoch", "layer_index", "layer"]
    for key, d in flow.groupby(keys, sort=False):
        row = dict(zip(keys, key), seeds=int(d["seed"].nunique()))
        for metric in FLOW_METRICS + ("temporal_share", "decay_rate"):
            st = paired(d[metric].to_numpy(float))
            row.update({metric: st["mean"], f"{metric}_ci_low": st["ci_low"], f"{metric}_ci_high": st["ci_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- running the grid


def _cached(spec: RunSpec, cache: Optional[str], log) -> RunResult:
    """The run's result from ``cache/<key>.json`` when its settings match, else train and store it."""
    path = None if cache is None else os.path.join(cache, spec.key() + ".json")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
        if saved.get("spec") == json.loads(json.dumps(spec_dict(spec))):
            return RunResult(saved["run"], saved["flow"], saved["profile"])
    res = train_and_measure(spec, log)
    if path:
        os.makedirs(cache, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"spec": spec_dict(spec), **res._asdict()}, fh)
        os.replace(tmp, path)
    return res


def run_grid(specs: Iterable[RunSpec], cache: Optional[str], log=None) -> Dict[str, pd.DataFrame]:
    """Run (or load from ``cache``) every spec; returns ``runs``, ``flow`` and ``profile`` tables."""
    specs = list(specs)
    runs, flow, profile = [], [], []
    for i, spec in enumerate(specs, 1):
        res = _cached(spec, cache, (lambda s, i=i: log(f"[{i}/{len(specs)}] {s}")) if log else None)
        runs.append(res.run)
        flow.extend(res.flow)
        profile.extend(res.profile)
    return {"runs": pd.DataFrame(runs), "flow": pd.DataFrame(flow), "profile": pd.DataFrame(profile)}


def _blocks(quick: bool, arch: Optional[str], data: Optional[str]) -> List[Dict[str, Any]]:
    """The grid's blocks: (arch, T, alphas, epochs) combinations (module docstring of the report)."""
    if quick:
        blocks = [dict(arch="mlp", T=3, alphas=(1.0,), epochs=1)]
    elif data is not None and data.split(":")[0].lower() in ("cifar10", "cifar100"):
        blocks = [dict(arch=arch or "spiking_resnet18", T=6, alphas=(1.0, 2.0), epochs=100)]
    else:
        blocks = [dict(arch="mlp", T=6, alphas=(1.0, 2.0), epochs=15),
                  dict(arch="digits_cnn", T=6, alphas=(1.0, 2.0), epochs=8),
                  dict(arch="mlp", T=16, alphas=(1.0,), epochs=15)]
    if arch is not None:
        blocks = [b for b in blocks if b["arch"] == arch] or [dict(blocks[0], arch=arch)]
    return blocks


def paper_specs(seeds: Sequence[int], quick: bool, *, data: Optional[str] = None, arch: Optional[str] = None,
                device: str = "cpu", epochs: Optional[int] = None) -> List[RunSpec]:
    """Every run of the experiment, grouped so that the paired runs of one seed are adjacent."""
    base = RunSpec(data=data, device=device)
    if quick:
        base = replace(base, n_train=96, n_test=64, probe=32, passes=4, n_resamples=50, widths=(16, 16))
    specs = []
    for b in _blocks(quick, arch, data):
        for alpha in b["alphas"]:
            for seed in seeds:
                for variant in VARIANTS:
                    for trunc in (1, None):
                        specs.append(replace(base, arch=b["arch"], T=b["T"], alpha=alpha, seed=int(seed),
                                             variant=variant, truncate=trunc,
                                             epochs=int(epochs) if epochs is not None else b["epochs"]))
    return specs


def run_paper_claim(out: str, seeds: Sequence[int], quick: bool, log, *, data: Optional[str] = None,
                    arch: Optional[str] = None, device: str = "cpu",
                    epochs: Optional[int] = None) -> Dict[str, pd.DataFrame]:
    """The four-neuron ablation (module docstring) on digits, or on ``data`` (e.g. ``cifar10:DIR``) with
    ``arch`` (e.g. ``spiking_resnet18``) on ``device``; ``epochs`` overrides the budget of every block."""
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) < 1):
        raise UsageError(f"epochs must be a positive integer, got {epochs!r}.", arguments=("epochs",))
    specs = paper_specs(seeds, quick, data=data, arch=arch, device=device, epochs=epochs)
    tables = run_grid(specs, os.path.join(out, "cache"), log)
    runs, flow = tables["runs"], tables["flow"]
    summary = (runs.groupby(GROUP + ["variant", "bptt"], sort=False)["test_accuracy"]
               .agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"mean": "test_accuracy_mean", "std": "test_accuracy_std", "count": "seeds"}))
    tables.update(summary=summary, contrasts=accuracy_contrasts(runs), flow_summary=flow_summary(flow),
                  flow_contrasts=flow_contrasts(flow))
    paper_figures.plot_paper_claim(tables, out)
    return tables
