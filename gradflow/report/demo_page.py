"""The lecture demo page (``gradflow demo``): one self-contained HTML page, built on the page toolkit.

:func:`gradflow.demo.run_demo` computes the data (single-neuron traces, recorded MLPs, the theory's
prediction); :func:`write_demo_page` draws the four figures and writes ``DIR/index.html`` through
:func:`gradflow.report.page.report_directory` (atomic: the directory appears complete or not at all).

>>> sorted(FIGURES)
['factor', 'lags', 'pairs', 'traces']
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.figure import Figure

from ..theory import eps_curves
from . import page
from .lag_plots import plot_lag_decay, plot_pair_heatmap
from .page import FigureSpec, figure_html, html_page, html_table, report_directory
from .style import PNG_DPI, neuron_color

__all__ = ["write_demo_page", "FIGURES"]

#: The page's figures: name -> (size in inches, caption).
FIGURES = {
    "traces": ((10, 5.2), "The same input current x[t] drives a LIF and a CLIF neuron: potential before "
                          "reset u[t] against the threshold, spikes, and CLIF's complementary potential m[t]."),
    "factor": ((10, 3.4), "The one-step temporal factor du[t+1]/du[t] along that trajectory (left) and its "
                          "closed form against the potential (right)."),
    "pairs": ((10, 4.2), "||pair[t, t']|| of the first layer, relative to its largest cell, log colour scale."),
    "lags": ((10, 3.8), "relative_k of the first layers: measured (markers) and the plug-in prediction (lines)."),
}


def _draw_traces(fig: Figure, tr: pd.DataFrame, v_threshold: float) -> None:
    """Potential, spikes and CLIF's m of the two neurons on the same input."""
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1, 2]})
    for kind, d in tr.groupby("neuron", sort=False):
        c = neuron_color(kind)
        axes[0].plot(d.t, d.u, "-o", color=c, ms=3, label=f"{kind.upper()} u[t]")
        spk = d[d.s > 0]
        off = 0.15 if kind == "lif" else -0.15
        axes[1].vlines(spk.t + off, 0, 1, color=c, lw=2, label=f"{kind.upper()} spikes")
        if kind == "clif":
            axes[2].plot(d.t, d.m, "-o", color=c, ms=3, label="CLIF m[t]")
    d0 = tr[tr.neuron == "lif"]
    axes[0].step(d0.t, d0.x, where="mid", color="0.5", lw=1, label="input x[t]")
    axes[0].axhline(v_threshold, color="k", ls="--", lw=1, label="threshold")
    axes[0].set_ylabel("potential u (a.u.)")
    axes[0].legend(loc="upper left", fontsize="small", ncol=4)
    axes[0].set_title("Same input, two neurons: membrane potential before reset, spikes, CLIF's m")
    axes[1].set_yticks([])
    axes[1].set_ylabel("spikes")
    axes[1].legend(loc="upper left", fontsize="small", ncol=2)
    axes[2].set_ylabel("m (a.u.)")
    axes[2].set_xlabel("time step t")
    axes[2].legend(loc="upper left", fontsize="small")


def _draw_factor(fig: Figure, tr: pd.DataFrame, tau: float, v_threshold: float) -> None:
    """The one-step factor along the trajectory, and its closed form against u."""
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for kind, d in tr.groupby("neuron", sort=False):
        ax.plot(d.t[:-1], d.factor[:-1], "-o", ms=3, color=neuron_color(kind),
                label=f"{kind.upper()}: " + ("eps[t]" if kind == "lif" else "du[t+1]/du[t]"))
    gamma = 1 - 1 / tau
    ax.axhline(gamma, color="0.4", ls=":", lw=1)
    ax.text(0, gamma, f" gamma = {gamma:.2f}", va="bottom", fontsize="small", color="0.3")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("time step t")
    ax.set_ylabel("one-step factor")
    ax.set_title("Temporal factor along the trajectory above")
    ax.legend(fontsize="small")
    curves = eps_curves(tau=tau, v_threshold=v_threshold, alpha=v_threshold)
    for (kind, mp), d in curves.groupby(["neuron", "m_prev"], dropna=False, sort=False):
        lab = "LIF eps(u)" if kind == "lif" else f"CLIF, m[t-1]={mp:g}"
        ls = "-" if kind == "lif" else ["--", "-.", ":"][int(list(curves[curves.neuron == 'clif'].m_prev.unique()).index(mp)) % 3]
        ax2.plot(d.u, d.eps, ls, color=neuron_color(kind), lw=1.4, label=lab)
    ax2.axvline(v_threshold, color="k", ls="--", lw=0.8)
    ax2.set_xlabel("potential u (a.u.)")
    ax2.set_title("Closed form vs u")
    ax2.legend(fontsize="x-small")


def _draw_pairs(fig: Figure, pairs: Dict[str, pd.DataFrame], layer: str) -> None:
    """``||pair[t, t']||`` of one layer for each neuron kind, on one shared log colour scale."""
    axes = fig.subplots(1, len(pairs))
    lows = []
    for df in pairs.values():
        d = df[df.layer == layer]
        v = d.norm.to_numpy() / d.norm.max()
        lows.append(v[v > 0].min())
    shared = mcolors.LogNorm(vmin=max(min(lows), 1e-6), vmax=1.0)
    for ax, (kind, df) in zip(np.atleast_1d(axes), pairs.items()):
        plot_pair_heatmap(df, ax=ax, layer=layer, relative=True, norm=shared, colorbar=kind == list(pairs)[-1],
                          title=f"{kind.upper()} {layer}: ||pair[t, t']|| / largest")


def _draw_lags(fig: Figure, lags: Dict[str, pd.DataFrame], theory_df: Dict[str, pd.DataFrame]) -> None:
    """Measured and predicted relative_k for each neuron kind."""
    axes = fig.subplots(1, len(lags), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), lags):
        plot_lag_decay(lags[kind], ax=ax, theory=theory_df[kind],
                       title=f"{kind.upper()}: measured (markers) vs predicted (lines)")



def _lag_table(lags: Mapping[str, pd.DataFrame], theory: Mapping[str, pd.DataFrame], layer: str) -> pd.DataFrame:
    """Measured and predicted relative_k of ``layer`` per lag, the neuron kinds side by side."""
    parts = []
    for kind in lags:
        m = lags[kind][lags[kind].layer == layer][["lag", "relative"]]
        p = theory[kind][theory[kind].layer == layer][["lag", "predicted_relative"]]
        parts.append(m.merge(p, on="lag").assign(neuron=kind.upper()))
    tab = pd.concat(parts).pivot(index="lag", columns="neuron").reset_index()
    tab.columns = ["lag k"] + [f"{b} {'measured' if a == 'relative' else 'predicted'}" for a, b in tab.columns[1:]]
    return tab


def _body(s: Mapping, p: Mapping, figs: Mapping[str, str], lag_table: str, seconds: float) -> str:
    """The page's text around the figures; ``s``: the numbers quoted, ``p``: the demo's parameters."""
    return f"""
<h1>Spiking neurons and their memory of gradients: LIF vs CLIF</h1>
<p>Training a spiking network by back-propagation through time sends each step's error back to earlier
steps through the neuron's own state. This page shows, on one neuron and then on a small network, how
much of that error survives the trip for the leaky integrate-and-fire (LIF) neuron and for the
complementary LIF (CLIF) neuron of Huang et al. (ICML 2024). Neurons: tau = {p['tau']:g}
(gamma = 1 - 1/tau = {s['gamma']:.2f}), threshold {p['v_threshold']:g}, soft reset, rectangle surrogate of width
{p['v_threshold']:g}.</p>

<h2>1. One neuron, the same input</h2>
<p>Both neurons receive the same noisy current x[t]. LIF charges <code>u[t] = gamma v[t-1] + x[t]</code>,
spikes when u reaches the threshold and subtracts the threshold. CLIF also keeps a complementary
potential <code>m[t] = m[t-1] sigmoid(u[t]/tau) + s[t]</code>, which grows with recent spikes and makes
the reset deeper (<code>v = u - s (theta + sigmoid(m))</code>), so it fires less after a burst
(LIF {s['spikes']['lif']} spikes, CLIF {s['spikes']['clif']} in {p['T_trace']} steps).</p>
{figs['traces']}

<h2>2. The one-step temporal factor</h2>
<p>How much of the gradient at step t+1 passes to step t through the neuron is the factor
<code>du[t+1]/du[t]</code>. For LIF it is <code>eps = gamma (1 - theta sg(u - theta))</code>: gamma when u is
far from the threshold and exactly 0 inside the surrogate window, so every step near the threshold
cuts the temporal path completely (here {s['zero_factor_fraction']['lif']:.0%} of the steps). CLIF's
factor is never cut in this way ({s['zero_factor_fraction']['clif']:.0%} zeros); near the threshold it
turns negative (about <code>-gamma sigmoid(m)</code>) on {s['negative_factor_fraction']['clif']:.0%} of
the steps, and its memory m adds a second path back in time.</p>
{figs['factor']}

<h2>3. Where a layer's gradient comes from</h2>
<p>A two-layer spiking MLP ({p['width']}-{p['width']}, untrained, same initial weights for both neuron types) sees
a batch of {p['batch']} images of the shapes task (16x16 disks, squares, triangles, crosses), each shown at
all T = {s['T']} steps and scored at every step (cross-entropy over time). The recorder splits each
step's gradient <code>dL/du[t]</code> of the first layer into parts <code>pair[t, t']</code> that started
as a spatial gradient at a later step t' and travelled back through the neuron's state. Bright
off-diagonal cells are long-range temporal credit.</p>
{figs['pairs']}

<h2>4. Decay with the lag</h2>
<p>The RMS size of <code>pair[t, t+k]</code> relative to lag 0. In the first layer one step back keeps
{s['relative_lag1_sn1']['lif']:.2f} (LIF) and {s['relative_lag1_sn1']['clif']:.2f} (CLIF) of the
spatial size; the temporal part is {s['temporal_fraction_sn1']['lif']:.0%} (LIF) and
{s['temporal_fraction_sn1']['clif']:.0%} (CLIF) of that layer's total gradient (root of the ratio of
summed squared norms). Lines: the plug-in prediction of <code>gradflow.theory.predict_lags</code>, which
uses only the measured per-step window fractions and spatial norms and treats steps as independent.
Where markers fall below the lines, that assumption fails: with the same image at every step, a neuron
inside the surrogate window at step t+1 (where its spatial gradient lives) is likely to have been
inside it at step t too, where LIF's factor is exactly 0, so less gradient survives than the
independent model expects.</p>
{figs['lags']}
{lag_table}
<p class="note">Regenerate: <code>gradflow demo --out DIR --tau {p['tau']:g} --T {s['T']} --seed {p['seed']}</code>.
Untrained networks, one batch: the shape of the curves is the point, not the third digit.
Built in {seconds:.1f} s.</p>
"""


def write_demo_page(
    out: Union[str, os.PathLike],
    *,
    traces: pd.DataFrame,
    pairs: Mapping[str, pd.DataFrame],
    lags: Mapping[str, pd.DataFrame],
    theory: Mapping[str, pd.DataFrame],
    summary: Mapping,
    params: Mapping,
    dpi: int = PNG_DPI,
    force: bool = False,
    started: Optional[float] = None,
) -> Path:
    """Write ``out/index.html`` atomically; returns its path.

    ``traces``: :func:`gradflow.demo.neuron_traces`; ``pairs``, ``lags``, ``theory``: the recorded
    ``pairs`` and ``lags`` tables and the predicted ``theory`` table per neuron kind (``lif``,
    ``clif``); ``summary``: the numbers quoted (``gamma``, ``T``, ``spikes``, ``zero_factor_fraction``,
    ``negative_factor_fraction``, ``relative_lag1_sn1``, ``temporal_fraction_sn1``); ``params``: ``tau``,
    ``v_threshold``, ``T_trace``, ``batch``, ``width``, ``seed``. ``dpi``: figure resolution.
    ``started``: a ``time.perf_counter()`` value, for the "built in" note. An existing ``out`` is
    replaced only with ``force`` and only if it is a previous page.
    """
    page.check_output(out, force)
    draw = {
        "traces": lambda fig: _draw_traces(fig, traces, params["v_threshold"]),
        "factor": lambda fig: _draw_factor(fig, traces, params["tau"], params["v_threshold"]),
        "pairs": lambda fig: _draw_pairs(fig, pairs, "sn1"),
        "lags": lambda fig: _draw_lags(fig, lags, theory),
    }
    specs = [FigureSpec(name, caption, size, draw[name]) for name, (size, caption) in FIGURES.items()]
    figs = {f.name: figure_html(f, page.render_figure(f, dpi=dpi)) for f in specs}
    table = html_table(_lag_table(lags, theory, "sn1"), floatfmt=".3g")
    seconds = time.perf_counter() - started if started is not None else 0.0
    text = html_page("gradflow demo: LIF vs CLIF", [_body(summary, params, figs, table, seconds)])
    with report_directory(out, force=force) as tmp:
        (tmp / "index.html").write_text(text, encoding="utf-8")
    return Path(out).expanduser().absolute() / "index.html"
