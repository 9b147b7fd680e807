"""lif-vs-clif-T and lif-vs-clif-T-snn5: accuracy vs the number of time steps T (paper Fig. 2b).

Besides ``runs.csv`` and ``summary.csv`` (mean, standard deviation and a 95% Student-t interval of the
mean over seeds per T and neuron), both write ``contrasts.csv``: paired differences over seeds (at each
seed LIF and CLIF start from the same initial weights and see the same mini-batches), each with its mean,
a 95% Student-t interval over the seeds, the counts of seeds with a positive / negative difference and a
verdict (``> 0``, ``< 0`` or ``cannot tell``: the interval contains 0):

* ``clif_minus_lif``: ``acc(CLIF, T) - acc(LIF, T)`` at every T;
* ``change_from_first``: ``acc(neuron, T) - acc(neuron, T_min)`` for every ``T`` above the smallest
  swept ``T_min``: do more time steps help at all?
* ``change_from_ref``: ``acc(neuron, T) - acc(neuron, T_ref)`` for every ``T > T_ref`` (``T_ref = 4``
  when swept, else the smallest T): does a neuron lose accuracy beyond a moderate T?
* ``gap_change``: ``(CLIF - LIF)(T) - (CLIF - LIF)(T_ref)``: does CLIF pull ahead as T grows (the
  paper's Fig. 2b pattern)?

>>> reference_T([1, 2, 4, 8, 16]), reference_T([1, 2])
(4, 1)
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import Log, color, grid, save_figure
from .truncation import summarize_with_intervals, t_interval, verdict

__all__ = ["run_T_sweep", "run_T_sweep_snn5", "reference_T"]


def reference_T(Ts: Sequence[int]) -> int:
    """The moderate T that later T are compared with: 4 when swept, else the smallest T."""
    return 4 if 4 in Ts else min(Ts)


def _contrasts(runs: pd.DataFrame, Ts: Sequence[int]) -> pd.DataFrame:
    acc = {(T, nk): d.set_index("seed").test_accuracy for (T, nk), d in runs.groupby(["T", "neuron"])}
    ref = reference_T(Ts)
    rows: List[Dict[str, object]] = []

    def add(contrast, T, neuron, diff):
        st = t_interval(diff.dropna().to_numpy(float))
        t_ref = {"clif_minus_lif": T, "change_from_first": min(Ts)}.get(contrast, ref)
        rows.append(dict(contrast=contrast, T=T, T_ref=t_ref, neuron=neuron,
                         **st, verdict=verdict(st["ci_low"], st["ci_high"])))

    for T in Ts:
        add("clif_minus_lif", T, "clif-lif", acc[(T, "clif")] - acc[(T, "lif")])
    first = min(Ts)
    for nk in ("lif", "clif"):
        for T in Ts:
            if T > first:
                add("change_from_first", T, nk, acc[(T, nk)] - acc[(first, nk)])
        for T in Ts:
            if T > ref:
                add("change_from_ref", T, nk, acc[(T, nk)] - acc[(ref, nk)])
    for T in Ts:
        if T > ref:
            add("gap_change", T, "clif-lif",
                (acc[(T, "clif")] - acc[(T, "lif")]) - (acc[(ref, "clif")] - acc[(ref, "lif")]))
    return pd.DataFrame(rows)


def _sweep(out: str, seeds: Sequence[int], log: Log, Ts: Sequence[int], base: Dict, title: str,
           name: str) -> Dict[str, pd.DataFrame]:
    configs = [dict(T=T, neuron=nk, **base) for T in Ts for nk in ("lif", "clif")]
    runs = grid(configs, seeds, log)
    summary = summarize_with_intervals(runs, ["T", "neuron"])
    contrasts = _contrasts(runs, Ts)
    _plot_accuracy_vs_T(summary, runs, contrasts, out, f"{title} ({len(seeds)} seeds)", name)
    return {"runs": runs, "summary": summary, "contrasts": contrasts}


def _errorbars(ax, x, m, lo, hi, **kw) -> None:
    m, lo, hi = (np.asarray(a, float) for a in (m, lo, hi))
    yerr = np.vstack([np.where(np.isfinite(lo), m - lo, 0.0), np.where(np.isfinite(hi), hi - m, 0.0)])
    ax.errorbar(x, m, yerr=yerr, capsize=3, **kw)


def _plot_accuracy_vs_T(summary: pd.DataFrame, runs: pd.DataFrame, contrasts: pd.DataFrame, out: str, title: str,
                        name: str) -> None:
    """Left: test accuracy against T (mean with its 95% t-interval over seeds, seeds as dots), one line per
    neuron; right: the paired difference CLIF - LIF with its interval. Saved as ``figures/<name>``."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    Ts = sorted(summary["T"].unique())
    pos = {T: i for i, T in enumerate(Ts)}
    for i, nk in enumerate(("lif", "clif")):
        d = summary[summary.neuron == nk].sort_values("T")
        x = np.array([pos[T] for T in d["T"]]) + (i - 0.5) * 0.08
        _errorbars(ax, x, d.test_accuracy_mean, d.test_accuracy_ci_low, d.test_accuracy_ci_high, marker="o",
                   color=color(nk), label=nk.upper())
        r = runs[runs.neuron == nk]
        ax.plot(np.array([pos[T] for T in r["T"]]) + (i - 0.5) * 0.08, r.test_accuracy, ".", color=color(nk),
                alpha=0.35)
    ax.axhline(runs.chance.iloc[0], color="0.4", ls=":", label="chance")
    ax.set_xticks(range(len(Ts)), [str(T) for T in Ts])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (mean, 95% t-interval)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    c = contrasts[contrasts.contrast == "clif_minus_lif"].sort_values("T")
    _errorbars(ax2, [pos[T] for T in c["T"]], c["mean"], c.ci_low, c.ci_high, marker="s", ls="none",
               color=color("clif"))
    ax2.axhline(0.0, color="0.4", lw=0.8)
    ax2.set_xticks(range(len(Ts)), [str(T) for T in Ts])
    ax2.set_xlabel("time steps T")
    ax2.set_ylabel("acc(CLIF) - acc(LIF) (paired, 95% t-interval)")
    ax2.set_title("CLIF - LIF, paired by seed")
    save_figure(fig, out, name)


def run_T_sweep(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs T on the static 16x16 shapes task with an MLP, LIF vs CLIF."""
    Ts = (1, 2) if quick else (1, 2, 4, 8, 16)
    base = dict(task="shapes:num_classes=8,size=16,noise=0.3", arch="mlp", tau=2.0, epochs=2 if quick else 30,
                lr=3e-3, optimizer="adam", n_train=256 if quick else 1024, n_test=256 if quick else 1024,
                model_kwargs={"widths": [128, 128]})
    return _sweep(out, seeds, log, Ts, base, "Static shapes task: accuracy vs T", "accuracy_vs_T")


def run_T_sweep_snn5(out: str, seeds: Sequence[int], quick: bool, log: Log) -> Dict[str, pd.DataFrame]:
    """Accuracy vs T with the paper's Fig. 2 network itself (snn5_noAP) on 32x32 shapes."""
    Ts = (1, 2) if quick else (1, 2, 4, 8)
    base = dict(task="shapes:num_classes=8,size=32,channels=3,noise=0.3", arch="snn5_noAP", tau=2.0,
                epochs=1 if quick else 3, lr=1e-3, optimizer="adam", batch_size=32,
                n_train=64 if quick else 512, n_test=64 if quick else 256)
    return _sweep(out, seeds, log, Ts, base, "snn5_noAP on 32x32 shapes: accuracy vs T", "accuracy_vs_T_snn5")
