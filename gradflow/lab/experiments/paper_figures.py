"""Figures of the paper-claim experiments (``figures/*.png`` beside the tables).

Every figure shows means over seeds with Student-t 95% intervals (the ``*_ci_low``/``*_ci_high``
columns of the tables), so what is drawn is what the tables say.

* ``accuracy.png``: test accuracy of each neuron variant, spatial-only (``k = 1``, open markers) and
  full BPTT (filled), one panel per (architecture, T, alpha);
* ``contrasts.png``: the paired accuracy contrasts P1-P4 (in accuracy points) with their intervals;
* ``relative_1.png``: each layer's measured ``relative_1`` at initialisation, half-way and the end;
* ``t_sweep.png``: accuracy and end-of-training ``relative_1`` against T (the T sweep).
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...schema import neuron_color
from .common import save_figure
from .paper_runs import POINTS, VARIANTS, paired

__all__ = ["plot_paper_claim", "plot_t_sweep", "variant_style"]

#: Short tick labels of the variants.
SHORT = {"lif": "LIF", "clif": "CLIF", "lif_dr": "LIF\n+dr", "clif_nom": "CLIF\nno m"}

#: Contrasts drawn in ``contrasts.png``, top to bottom.
SHOWN_CONTRASTS = ("P1", "P2", "P3", "P4", "edge_full")


def variant_style(variant: str) -> Dict[str, object]:
    """Colour of the neuron kind; the gradient-ablated variants dashed with square markers."""
    ablated = variant in ("lif_dr", "clif_nom")
    return {"color": neuron_color(VARIANTS[variant].kind), "ls": "--" if ablated else "-",
            "marker": "s" if ablated else "o"}


def _panel_title(key) -> str:
    arch, T, alpha = key
    return f"{arch}, T={T}, alpha={alpha:g}"


def _t_interval(values: np.ndarray):
    st = paired(values)
    return st["mean"], st["ci_low"], st["ci_high"]


def _accuracy(runs: pd.DataFrame, out: str) -> None:
    groups = list(runs.groupby(["arch", "T", "alpha"], sort=False))
    fig = Figure(figsize=(3.4 * len(groups), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)[0])
    for ax, (key, d) in zip(axes, groups):
        for i, variant in enumerate(VARIANTS):
            st = variant_style(variant)
            for j, bptt in enumerate(("k1", "full")):
                v = d[(d.variant == variant) & (d.bptt == bptt)]["test_accuracy"].to_numpy(float)
                if not v.size:
                    continue
                x = i + (j - 0.5) * 0.3
                m, lo, hi = _t_interval(v)
                ax.plot(np.full(v.size, x), v, ".", color=st["color"], alpha=0.35)
                yerr = None if not np.isfinite(lo) else [[m - lo], [hi - m]]
                ax.errorbar([x], [m], yerr=yerr, marker=st["marker"], color=st["color"], capsize=3,
                            mfc=st["color"] if bptt == "full" else "white")
        ax.set_xticks(range(len(VARIANTS)))
        ax.set_xticklabels([SHORT.get(v, v) for v in VARIANTS], fontsize=8)
        ax.set_title(_panel_title(key), fontsize=9)
    axes[0].set_ylabel("test accuracy (open: k=1, filled: full BPTT)")
    save_figure(fig, out, "accuracy")


def _contrasts(contrasts: pd.DataFrame, out: str) -> None:
    c = contrasts[contrasts.contrast.isin(SHOWN_CONTRASTS)]
    groups = list(c.groupby(["arch", "T", "alpha"], sort=False))
    if not groups:
        return
    fig = Figure(figsize=(3.4 * len(groups), 3.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False, sharex=True)[0])
    for ax, (key, d) in zip(axes, groups):
        d = d.set_index("contrast").reindex(SHOWN_CONTRASTS).dropna(subset=["mean"])
        y = np.arange(len(d))[::-1]
        m = 100 * d["mean"].to_numpy(float)
        lo, hi = 100 * d["ci_low"].to_numpy(float), 100 * d["ci_high"].to_numpy(float)
        err = np.where(np.isfinite(lo), [m - lo, hi - m], 0.0)
        ax.errorbar(m, y, xerr=err, fmt="o", color="0.2", capsize=3)
        ax.axvline(0, color="0.6", lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels(d.index, fontsize=8)
        ax.set_title(_panel_title(key), fontsize=9)
        ax.set_xlabel("paired difference (accuracy points)")
    save_figure(fig, out, "contrasts")


def _relative_1(fs: pd.DataFrame, out: str) -> None:
    fs = fs[fs.bptt == "full"]
    groups = list(fs.groupby(["arch", "T", "alpha"], sort=False))
    if not groups:
        return
    n_layers = int(fs.layer_index.max()) + 1
    fig = Figure(figsize=(3.8 * n_layers, 2.8 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), n_layers, squeeze=False)
    for r, (key, d) in enumerate(groups):
        for li, dl in d.groupby("layer_index"):
            ax = axes[r, int(li)]
            for variant, dv in dl.groupby("variant", sort=False):
                dv = dv.set_index("point").reindex([p for p in POINTS if p in set(dv.point)])
                x = np.arange(len(dv))
                st = variant_style(variant)
                ax.plot(x, dv.relative_1, color=st["color"], ls=st["ls"], marker=st["marker"],
                        label=VARIANTS[variant].label)
                ax.fill_between(x, dv.relative_1_ci_low, dv.relative_1_ci_high, color=st["color"], alpha=0.15)
                ax.set_xticks(x)
                ax.set_xticklabels(dv.index)
            ax.set_title(f"{_panel_title(key)}, {dl.layer.iloc[0]}", fontsize=8)
            ax.set_ylabel("relative_1 (full BPTT)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, out, "relative_1")


def plot_paper_claim(tables: Dict[str, pd.DataFrame], out: str) -> None:
    """Write ``accuracy.png``, ``contrasts.png`` and ``relative_1.png`` of the ablation to ``out/figures``."""
    _accuracy(tables["runs"], out)
    _contrasts(tables["contrasts"], out)
    _relative_1(tables["flow_summary"], out)


def plot_t_sweep(summary: pd.DataFrame, flow_summary: pd.DataFrame, out: str) -> None:
    """``t_sweep.png``: accuracy vs T and end-of-training ``relative_1`` per layer vs T, LIF vs CLIF."""
    end = flow_summary[flow_summary.point == "end"]
    n_layers = int(end.layer_index.max()) + 1 if len(end) else 0
    fig = Figure(figsize=(4.0 * (1 + n_layers), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 1 + n_layers, squeeze=False)[0])
    for variant, d in summary.groupby("variant", sort=False):
        st = variant_style(variant)
        lo, hi = d.test_accuracy_ci_low.to_numpy(float), d.test_accuracy_ci_high.to_numpy(float)
        m = d.test_accuracy_mean.to_numpy(float)
        axes[0].errorbar(d["T"], m, yerr=np.where(np.isfinite(lo), [m - lo, hi - m], 0.0), color=st["color"],
                         marker=st["marker"], capsize=3, label=VARIANTS[variant].label)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("time steps T")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8)
    for li, dl in end.groupby("layer_index"):
        ax = axes[1 + int(li)]
        for variant, dv in dl.groupby("variant", sort=False):
            st = variant_style(variant)
            ax.plot(dv["T"], dv.relative_1, color=st["color"], marker=st["marker"], label=VARIANTS[variant].label)
            ax.fill_between(dv["T"], dv.relative_1_ci_low, dv.relative_1_ci_high, color=st["color"], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps T")
        ax.set_ylabel(f"relative_1 at the end, {dl.layer.iloc[0]}")
    save_figure(fig, out, "t_sweep")
