"""A lecture demo in one self-contained HTML page: why LIF forgets its past gradients and CLIF less so.

:func:`run_demo` computes everything the page shows and returns it as a :class:`DemoResult`; the page
itself, ``DIR/index.html`` (figures embedded as base64 PNG, opens offline), is written by the report
toolkit (:func:`gradflow.report.demo_page.write_demo_page`) in a few seconds on a laptop CPU. The page
has four parts:

1. **One neuron, one input** (the CLIF paper's Fig. 7): the same input current drives a LIF and a CLIF
   neuron; the traces show the potential ``u[t]`` against the threshold, the spikes ``s[t]`` and CLIF's
   complementary potential ``m[t]`` (docs/reference.md, Neurons).
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
>>> out = run_demo(os.path.join(tempfile.mkdtemp(), "demo"), T_trace=12, batch=16, width=16, T=3, dpi=30)
>>> os.path.basename(out.path)
'index.html'
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, NamedTuple, Tuple, Union

import numpy as np
import pandas as pd
import torch

from . import models
from .errors import UsageError
from .neurons import build_neuron
from .recorder import record
from .report.demo_page import write_demo_page
from .report.page import check_output
from .tasks import make_task
from .theory import clif_jacobian, lif_eps, predict_lags

__all__ = ["DemoResult", "neuron_traces", "run_demo"]


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
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1, 1)
    rows: List[pd.DataFrame] = []
    for kind in ("lif", "clif"):
        neuron = build_neuron(kind, tau=tau, v_threshold=v_threshold, alpha=v_threshold)
        with torch.no_grad():
            st = neuron(xt, return_states=True)
        u = st.u[:, 0].numpy()
        if kind == "lif":
            m = np.full_like(u, np.nan)
            factor = lif_eps(u, tau=tau, v_threshold=v_threshold, alpha=v_threshold)
        else:
            m = st.m[:, 0].numpy()
            m_prev = np.concatenate([[0.0], m[:-1]])
            factor = clif_jacobian(u, m_prev, tau=tau, v_threshold=v_threshold, alpha=v_threshold).uu
        rows.append(pd.DataFrame({
            "neuron": kind, "t": np.arange(len(u)), "x": xt[:, 0].numpy(), "u": u,
            "s": st.spikes[:, 0].numpy(), "v": st.v[:, 0].numpy(), "m": m, "factor": np.asarray(factor),
        }))
    return pd.concat(rows, ignore_index=True)


def _record_mlps(task, xb, yb, *, tau: float, v_threshold: float, width: int, seed: int) -> Tuple[dict, ...]:
    """Record an untrained ``width``-``width`` MLP of each neuron kind on one batch; per kind the
    ``per_step``, ``pairs`` and ``lags`` tables and the theory's predicted lags."""
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
        theo[kind] = predict_lags(per_step[kind], neuron=kind, tau=tau, v_threshold=v_threshold, alpha=v_threshold)
    return per_step, pairs, lags, theo


def _numbers(traces: pd.DataFrame, per_step: dict, lags: dict, *, tau: float, T_trace: int, task,
             layer: str = "sn1") -> Dict[str, Any]:
    """The numbers the page quotes: spikes, zero and negative factors, relative_1 and temporal fraction."""
    def lag1(kind: str) -> float:
        """relative_1 of ``layer`` in the recorded ``lags`` table of ``kind``."""
        d = lags[kind]
        return float(d[(d.layer == layer) & (d.lag == 1)].relative.iloc[0])

    def share(kind: str) -> float:
        """``||temporal|| / ||delta||`` of ``layer``, squared norms summed over t (the page's temporal fraction)."""
        d = per_step[kind][per_step[kind].layer == layer]
        return float(np.sqrt((d.grad_temporal_norm ** 2).sum() / (d.grad_total_norm ** 2).sum()))

    tr = {k: traces[traces.neuron == k] for k in ("lif", "clif")}
    return {
        "tau": tau, "gamma": 1 - 1 / tau, "T_trace": T_trace, "task": task.config, "T": task.T,
        "spikes": {k: int(d.s.sum()) for k, d in tr.items()},
        "zero_factor_fraction": {k: float((d.factor[:-1] == 0).mean()) for k, d in tr.items()},
        "negative_factor_fraction": {k: float((d.factor[:-1] < 0).mean()) for k, d in tr.items()},
        "relative_lag1_sn1": {k: lag1(k) for k in lags},
        "temporal_fraction_sn1": {k: share(k) for k in lags},
    }


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
    force: bool = False,
) -> DemoResult:
    """Compute the demo, write its page to ``out/index.html`` and return a :class:`DemoResult`.

    ``tau``, ``v_threshold``: neuron constants (rectangle surrogate with ``alpha = v_threshold``).
    ``T_trace``: steps of the single-neuron traces (input ``0.6 + 0.4 * N(0, 1)``, seeded).
    ``T``, ``batch``, ``width``: the recorded MLPs (``width``-``width`` hidden, untrained, ``T`` steps)
    and the batch of 16x16 shapes images they see. Everything is seeded by ``seed``. ``dpi``: figure
    resolution. ``out`` is written atomically; an existing ``out`` is replaced only with ``force`` (and
    only if it holds a previous page), else :class:`~gradflow.errors.UsageError`.
    """
    t_start = time.perf_counter()
    if T_trace < 2:
        raise UsageError(f"T_trace must be at least 2, got {T_trace}.", arguments=("T_trace",))
    check_output(out, force)                      # refuse before computing anything
    rng = np.random.default_rng(seed)
    traces = neuron_traces(0.6 + 0.4 * rng.standard_normal(T_trace), tau=tau, v_threshold=v_threshold)
    task = make_task("shapes", T=T, size=16)
    xb, yb = task.sample(batch, seed)
    per_step, pairs, lags, theo = _record_mlps(task, xb.flatten(1), yb, tau=tau, v_threshold=v_threshold,
                                               width=width, seed=seed)
    summary = _numbers(traces, per_step, lags, tau=tau, T_trace=T_trace, task=task)
    params = dict(tau=tau, v_threshold=v_threshold, T_trace=T_trace, batch=batch, width=width, seed=seed)
    path = write_demo_page(out, traces=traces, pairs=pairs, lags=lags, theory=theo, summary=summary,
                           params=params, dpi=dpi, force=force, started=t_start)
    tables = {
        "traces": traces,
        "per_step": pd.concat(per_step.values(), ignore_index=True),
        "pairs": pd.concat([d.assign(neuron=k) for k, d in pairs.items()], ignore_index=True),
        "lags": pd.concat([d.assign(neuron=k) for k, d in lags.items()], ignore_index=True),
        "theory": pd.concat([d.assign(neuron=k) for k, d in theo.items()], ignore_index=True),
    }
    summary["seconds"] = time.perf_counter() - t_start
    return DemoResult(str(path), summary, tables)
