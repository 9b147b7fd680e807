"""A lecture demo in one self-contained HTML page: why LIF forgets its past gradients and CLIF less so.

:func:`run_demo` writes ``DIR/index.html`` (figures embedded as base64 PNG, opens offline) in a few
seconds on a laptop CPU. The page has four parts:

1. **One neuron, one input** (the CLIF paper's Fig. 7): the same input current drives a LIF and a CLIF
   neuron; the traces show the potential ``u[t]`` against the threshold, the spikes ``s[t]`` and CLIF's
   complementary potential ``m[t]`` (SPEC §1).
2. **The one-step temporal factor along that trajectory**: LIF's ``eps[t] = du[t+1]/du[t]``
   (:func:`gradflow.theory.lif_eps`) and CLIF's u-to-u factor (:func:`gradflow.theory.clif_jacobian`).
   With the rectangle surrogate and ``alpha = theta``, LIF's factor is ``gamma`` below the window and
   exactly 0 inside it; CLIF's factor near the threshold is negative instead of 0.
3. **Where the gradient of a whole layer comes from**: an untrained two-layer MLP of each neuron type on
   a batch of the static shapes task (:mod:`gradflow.tasks`), recorded with :func:`gradflow.record`; the
   heatmap of ``||pair[t, t']||`` (the part of step t's gradient that started at step t').
4. **How fast it decays with the lag** ``k = t' - t``: measured ``relative_k`` and the plug-in prediction
   of :func:`gradflow.theory.predict_lags`.

>>> import tempfile, os
>>> out = run_demo(tempfile.mkdtemp(), T_trace=12, batch=16, width=16, T=3)
>>> os.path.basename(out.path)
'index.html'
"""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
import time
from typing import Any, Dict, List, NamedTuple, Union

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .errors import UsageError
from .neurons import build_neuron

__all__ = ["DemoResult", "neuron_traces", "run_demo"]

COLORS = {"lif": "#0072B2", "clif": "#D55E00"}


class DemoResult(NamedTuple):
    """``path``: the written ``index.html``; ``summary``: the numbers quoted on the page;
    ``tables``: ``traces``, ``per_step``, ``pairs``, ``lags``, ``theory`` (with a ``neuron`` column)."""

    path: str
    summary: Dict[str, Any]
    tables: Dict[str, pd.DataFrame]


def neuron_traces(x: Union[np.ndarray, torch.Tensor], *, tau: float = 2.0, v_threshold: float = 1.0) -> pd.DataFrame:
    """Run one LIF and one CLIF neuron (rectangle surrogate, ``alpha = theta``) on the current ``x[t]``.

    Returns one row per (neuron, t): ``neuron, t, x, u, s, v, m, factor``, where ``factor`` is the
    one-step temporal factor ``du[t+1]/du[t]`` at the recorded state (LIF: ``eps``; CLIF: the u-to-u
    entry of the exact Jacobian at ``m[t-1]``); ``m`` is NaN for LIF.
    """
    from . import theory

    xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1, 1)
    rows: List[pd.DataFrame] = []
    for kind in ("lif", "clif"):
        neuron = build_neuron(kind, tau=tau, v_threshold=v_threshold, alpha=v_threshold)
        with torch.no_grad():
            st = neuron(xt, return_states=True)
        u = st.u[:, 0].numpy()
        if kind == "lif":
            m = np.full_like(u, np.nan)
            factor = theory.lif_eps(u, tau=tau, v_threshold=v_threshold, alpha=v_threshold)
        else:
            m = st.m[:, 0].numpy()
            m_prev = np.concatenate([[0.0], m[:-1]])
            factor = theory.clif_jacobian(u, m_prev, tau=tau, v_threshold=v_threshold, alpha=v_threshold).uu
        rows.append(pd.DataFrame({
            "neuron": kind, "t": np.arange(len(u)), "x": xt[:, 0].numpy(), "u": u,
            "s": st.spikes[:, 0].numpy(), "v": st.v[:, 0].numpy(), "m": m, "factor": np.asarray(factor),
        }))
    return pd.concat(rows, ignore_index=True)


# ----------------------------------------------------------------------------- figures


def _png(fig: Figure, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fig_traces(tr: pd.DataFrame, v_threshold: float) -> Figure:
    fig = Figure(figsize=(10, 5.2))
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1, 2]})
    for kind, d in tr.groupby("neuron", sort=False):
        c = COLORS[kind]
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
    return fig


def _fig_factor(tr: pd.DataFrame, tau: float, v_threshold: float) -> Figure:
    from . import theory

    fig = Figure(figsize=(10, 3.4))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for kind, d in tr.groupby("neuron", sort=False):
        ax.plot(d.t[:-1], d.factor[:-1], "-o", ms=3, color=COLORS[kind],
                label=f"{kind.upper()}: " + ("eps[t]" if kind == "lif" else "du[t+1]/du[t]"))
    gamma = 1 - 1 / tau
    ax.axhline(gamma, color="0.4", ls=":", lw=1)
    ax.text(0, gamma, f" gamma = {gamma:.2f}", va="bottom", fontsize="small", color="0.3")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("time step t")
    ax.set_ylabel("one-step factor")
    ax.set_title("Temporal factor along the trajectory above")
    ax.legend(fontsize="small")
    curves = theory.eps_curves(tau=tau, v_threshold=v_threshold, alpha=v_threshold)
    for (kind, mp), d in curves.groupby(["neuron", "m_prev"], dropna=False, sort=False):
        lab = "LIF eps(u)" if kind == "lif" else f"CLIF, m[t-1]={mp:g}"
        ls = "-" if kind == "lif" else ["--", "-.", ":"][int(list(curves[curves.neuron == 'clif'].m_prev.unique()).index(mp)) % 3]
        ax2.plot(d.u, d.eps, ls, color=COLORS.get(kind, "0.3"), lw=1.4, label=lab)
    ax2.axvline(v_threshold, color="k", ls="--", lw=0.8)
    ax2.set_xlabel("potential u (a.u.)")
    ax2.set_title("Closed form vs u")
    ax2.legend(fontsize="x-small")
    return fig


def _fig_pairs(pairs: Dict[str, pd.DataFrame], layer: str) -> Figure:
    from matplotlib import colors as mcolors

    from .report.plots import plot_pair_heatmap

    fig = Figure(figsize=(10, 4.2))
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
    return fig


def _fig_lags(lags: Dict[str, pd.DataFrame], theory_df: Dict[str, pd.DataFrame]) -> Figure:
    from .report.plots import plot_lag_decay

    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, len(lags), sharey=True)
    for ax, kind in zip(np.atleast_1d(axes), lags):
        plot_lag_decay(lags[kind], ax=ax, theory=theory_df[kind],
                       title=f"{kind.upper()}: measured (markers) vs predicted (lines)")
    return fig


# ----------------------------------------------------------------------------- page

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;
margin:2em auto;padding:0 1em;line-height:1.5;color:#222}img{max-width:100%;height:auto}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2em}.note{color:#555;font-size:.9em}"""


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0)


def _write_atomic(path: str, text: str) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".html", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_demo(
    out: Union[str, os.PathLike] = "gradflow-demo",
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    T_trace: int = 30,
    T: int = 8,
    batch: int = 256,
    width: int = 128,
    seed: int = 0,
    dpi: int = 110,
) -> DemoResult:
    """Write the demo page to ``out/index.html`` and return a :class:`DemoResult`.

    ``tau``, ``v_threshold``: neuron constants (rectangle surrogate with ``alpha = v_threshold``).
    ``T_trace``: steps of the single-neuron traces (input ``0.6 + 0.4 * N(0, 1)``, seeded).
    ``T``, ``batch``, ``width``: the recorded MLPs (``width``-``width`` hidden, untrained, ``T`` steps)
    and the batch of 16x16 shapes images they see. Everything is seeded by ``seed``. ``dpi``: figure
    resolution.
    """
    from . import models, record, theory
    from .tasks import make_task

    t_start = time.perf_counter()
    if T_trace < 2:
        raise UsageError(f"T_trace must be at least 2, got {T_trace}.")
    out = os.fspath(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"Cannot create the output directory {out!r}: {err.strerror}.") from None

    # 1-2: one neuron, same input
    rng = np.random.default_rng(seed)
    x = 0.6 + 0.4 * rng.standard_normal(T_trace)
    traces = neuron_traces(x, tau=tau, v_threshold=v_threshold)

    # 3-4: recorded untrained MLPs on a batch of the shapes task
    task = make_task("shapes", T=T, size=16)
    xb, yb = task.sample(batch, seed)
    xb = xb.flatten(1)
    pairs, lags, per_step, theo = {}, {}, {}, {}
    for kind in ("lif", "clif"):
        torch.manual_seed(seed)
        net = models.build("mlp", neuron=kind, in_features=task.in_features, widths=(width, width),
                           num_classes=task.num_classes, T=task.T, tau=tau, v_threshold=v_threshold,
                           alpha=v_threshold)
        with record(net, pairs=True, weights=False) as rec:
            task.loss(net(xb), yb).backward()
        per_step[kind], pairs[kind] = rec.per_step(), rec.pairs()
        lags[kind] = rec.lags().assign(neuron=kind)
        theo[kind] = theory.predict_lags(per_step[kind], neuron=kind, tau=tau, v_threshold=v_threshold,
                                         alpha=v_threshold)

    # numbers quoted on the page
    def lag1(kind: str, layer: str = "sn1") -> float:
        d = lags[kind]
        return float(d[(d.layer == layer) & (d.lag == 1)].relative.iloc[0])

    def share(kind: str, layer: str = "sn1") -> float:
        d = per_step[kind]
        d = d[d.layer == layer]
        return float(np.sqrt((d.grad_temporal_norm ** 2).sum() / (d.grad_total_norm ** 2).sum()))

    lif_tr, clif_tr = traces[traces.neuron == "lif"], traces[traces.neuron == "clif"]
    summary = {
        "tau": tau, "gamma": 1 - 1 / tau, "T_trace": T_trace, "task": task.config, "T": task.T,
        "spikes": {"lif": int(lif_tr.s.sum()), "clif": int(clif_tr.s.sum())},
        "zero_factor_fraction": {"lif": float((lif_tr.factor[:-1] == 0).mean()),
                                 "clif": float((clif_tr.factor[:-1] == 0).mean())},
        "negative_factor_fraction": {"lif": float((lif_tr.factor[:-1] < 0).mean()),
                                     "clif": float((clif_tr.factor[:-1] < 0).mean())},
        "relative_lag1_sn1": {k: lag1(k) for k in lags},
        "temporal_fraction_sn1": {k: share(k) for k in lags},
    }
    lag_tab = []
    for kind in lags:
        m = lags[kind][lags[kind].layer == "sn1"][["lag", "relative"]]
        p = theo[kind][theo[kind].layer == "sn1"][["lag", "predicted_relative"]]
        lag_tab.append(m.merge(p, on="lag").assign(neuron=kind.upper()))
    lag_tab = pd.concat(lag_tab).pivot(index="lag", columns="neuron").reset_index()
    lag_tab.columns = ["lag k"] + [f"{b} {'measured' if a == 'relative' else 'predicted'}" for a, b in lag_tab.columns[1:]]

    figs = {
        "traces": _png(_fig_traces(traces, v_threshold), dpi),
        "factor": _png(_fig_factor(traces, tau, v_threshold), dpi),
        "pairs": _png(_fig_pairs(pairs, "sn1"), dpi),
        "lags": _png(_fig_lags(lags, theo), dpi),
    }
    s = summary
    g = s["gamma"]
    body = f"""
<h1>Spiking neurons and their memory of gradients: LIF vs CLIF</h1>
<p>Training a spiking network by back-propagation through time sends each step's error back to earlier
steps through the neuron's own state. This page shows, on one neuron and then on a small network, how
much of that error survives the trip for the leaky integrate-and-fire (LIF) neuron and for the
complementary LIF (CLIF) neuron of Huang et al. (ICML 2024). Neurons: tau = {tau:g}
(gamma = 1 - 1/tau = {g:.2f}), threshold {v_threshold:g}, soft reset, rectangle surrogate of width
{v_threshold:g}.</p>

<h2>1. One neuron, the same input</h2>
<p>Both neurons receive the same noisy current x[t]. LIF charges <code>u[t] = gamma v[t-1] + x[t]</code>,
spikes when u reaches the threshold and subtracts the threshold. CLIF also keeps a complementary
potential <code>m[t] = m[t-1] sigmoid(u[t]/tau) + s[t]</code>, which grows with recent spikes and makes
the reset deeper (<code>v = u - s (theta + sigmoid(m))</code>), so it fires less after a burst
(LIF {s['spikes']['lif']} spikes, CLIF {s['spikes']['clif']} in {T_trace} steps).</p>
<img alt="traces" src="data:image/png;base64,{figs['traces']}">

<h2>2. The one-step temporal factor</h2>
<p>How much of the gradient at step t+1 passes to step t through the neuron is the factor
<code>du[t+1]/du[t]</code>. For LIF it is <code>eps = gamma (1 - theta sg(u - theta))</code>: gamma when u is
far from the threshold and exactly 0 inside the surrogate window, so every step near the threshold
cuts the temporal path completely (here {s['zero_factor_fraction']['lif']:.0%} of the steps). CLIF's
factor is never cut in this way ({s['zero_factor_fraction']['clif']:.0%} zeros); near the threshold it
turns negative (about <code>-gamma sigmoid(m)</code>) on {s['negative_factor_fraction']['clif']:.0%} of
the steps, and its memory m adds a second path back in time.</p>
<img alt="factor" src="data:image/png;base64,{figs['factor']}">

<h2>3. Where a layer's gradient comes from</h2>
<p>A two-layer spiking MLP ({width}-{width}, untrained, same initial weights for both neuron types) sees
a batch of {batch} images of the shapes task (16x16 disks, squares, triangles, crosses), each shown at
all T = {task.T} steps and scored at every step (cross-entropy over time). The recorder splits each
step's gradient <code>dL/du[t]</code> of the first layer into parts <code>pair[t, t']</code> that started
as a spatial gradient at a later step t' and travelled back through the neuron's state. Bright
off-diagonal cells are long-range temporal credit.</p>
<img alt="pairs" src="data:image/png;base64,{figs['pairs']}">

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
<img alt="lags" src="data:image/png;base64,{figs['lags']}">
{_table(lag_tab)}
<p class="note">Regenerate: <code>gradflow demo --out DIR --tau {tau:g} --T {task.T} --seed {seed}</code>.
Untrained networks, one batch: the shape of the curves is the point, not the third digit.
Built in {time.perf_counter() - t_start:.1f} s.</p>
"""
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape('gradflow demo: LIF vs CLIF')}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")
    path = os.path.join(out, "index.html")
    _write_atomic(path, page)
    tables = {
        "traces": traces,
        "per_step": pd.concat(per_step.values(), ignore_index=True),
        "pairs": pd.concat([d.assign(neuron=k) for k, d in pairs.items()], ignore_index=True),
        "lags": pd.concat([d.assign(neuron=k) for k, d in lags.items()], ignore_index=True),
        "theory": pd.concat([d.assign(neuron=k) for k, d in theo.items()], ignore_index=True),
    }
    summary["seconds"] = time.perf_counter() - t_start
    return DemoResult(path, summary, tables)
