"""The gradient recorder: exact per-step spatial/temporal decomposition with autograd hooks (SPEC §2-§3).

For one neuron layer with pre-reset potentials ``u[t]`` and loss ``L``:

* ``delta[t] = dL/du[t]`` is read by a tensor hook on ``u[t]`` (what autograd computes, untouched);
* ``P[t] = g_out[t] * sg(u[t] - theta)`` (spatial), with ``g_out`` read by a hook on the layer's
  spike output, i.e. the gradient that reaches ``s[t]`` from the layer's consumers;
* ``temporal[t]``: what reaches ``u[t]`` through the neuron's own state from later steps. It is
  computed from the one-step Jacobian of the neuron (obtained by autograd on the neuron's own
  fire/reset function at the recorded states) applied to the *recorded* ``delta[t+1]``:

      Gv[t]     = a * delta[t+1]                                  (a = du[t+1]/dv[t] = 1 - 1/tau)
      Gm[t]     = Jvm[t+1] Gv[t+1] + Jmm[t+1] Gm[t+1]             (CLIF only)
      temporal[t] = Jvu[t] Gv[t] + Jmu[t] Gm[t]

  where ``J..[t]`` are the elementwise partials of ``(v[t], m[t])`` with respect to
  ``(u[t], m[t-1])``. ``P[t] + temporal[t]`` reproduces ``delta[t]`` up to float rounding, and
  entries the Jacobian cuts (LIF, rectangle surrogate with ``alpha = theta``, inside the window)
  come out exactly zero.
* ``pair[t, t']`` runs the same linear recursion separately for every source ``P[t']``
  (batched over sources), so ``sum_{t' >= t} pair[t, t'] = delta[t]``.
* The weight split back-propagates ``P`` and ``temporal`` (times ``du/dx``) from the layer's input
  current to the parameters between the previous spiking layer and this one.

Everything runs on the model's device; hooks launch only device work (no ``.item()``, no host
transfers). Tables are assembled with one transfer when they are asked for.

>>> import torch, gradflow
>>> lif = gradflow.LIF(tau=2.0)
>>> x = torch.randn(6, 100, requires_grad=True)
>>> with gradflow.record(lif) as rec:
...     lif(x).sum().backward()
>>> rec.per_step().shape[0], sorted(rec.lags().lag.unique().tolist())[:3]
(6, [0, 1, 2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import UsageError
from .neurons import CLIFState, NeuronTrace, SpikingNeuron
from .surrogate import spike, surrogate_grad

__all__ = ["record", "Recorder", "PER_STEP_COLUMNS", "PAIRS_COLUMNS", "LAGS_COLUMNS", "WEIGHTS_COLUMNS"]

#: SPEC §3 columns, in order (extra columns follow them).
PER_STEP_COLUMNS = [
    "step", "layer", "layer_index", "neuron", "t", "firing_rate", "window_fraction",
    "grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "temporal_zero_fraction", "nonfinite",
]
PAIRS_COLUMNS = ["step", "layer", "layer_index", "t", "t_source", "lag", "norm"]
LAGS_COLUMNS = ["step", "layer", "layer_index", "lag", "norm", "relative"]
WEIGHTS_COLUMNS = [
    "step", "layer", "layer_index", "param", "spatial_norm", "temporal_norm", "total_norm", "temporal_share",
]

# per-step statistics, one row per t (sums, so that ranks can be added up)
_NUMEL, _SPIKES, _WINDOW, _SQ_TOTAL, _SQ_SPATIAL, _SQ_TEMPORAL, _TZERO, _NONFINITE, _EPS_SUM, _SQ_EPS = range(10)
_NSTAT = 10


@dataclass
class _Pass:
    """One forward of one neuron layer, waiting for (or done with) its backward."""

    module: SpikingNeuron
    name: str
    index: int
    trace: NeuronTrace
    params: list  # [(qualified name, parameter)] between the previous spiking layer and this one
    deltas: List[Optional[torch.Tensor]]
    g_out: Optional[torch.Tensor] = None
    handles: list = field(default_factory=list)
    arrived: int = 0
    done: bool = False
    step: int = -1
    stats: Optional[torch.Tensor] = None  # [T, _NSTAT] float64
    pair_sq: Optional[torch.Tensor] = None  # [T, K+1] float64: ||pair[t, t+k]||^2
    weight_sq: Optional[torch.Tensor] = None  # [n_params, 3] float64: spatial, temporal, total
    tensors: Optional[dict] = None
    inv_tau: object = None  # 1/tau used by this forward (float, or a device tensor for PLIF)

    def release(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.trace = None  # drop the graph references
        self.deltas = []
        self.g_out = None


class Recorder:
    """Records gradient flow through every gradflow neuron of ``model``; use :func:`record`.

    Parameters
    ----------
    model:
        any ``nn.Module`` containing :class:`~gradflow.neurons.SpikingNeuron` layers (or a neuron).
    pairs:
        compute ``pair[t, t']`` norms and the lag table (cost ``O(T * min(T, max_lag + 1))`` per layer).
    weights:
        compute the spatial/temporal split of parameter gradients (two extra backward passes through
        each layer's input current).
    max_lag:
        only lags ``0..max_lag`` are computed (None = all ``T - 1``).
    layers:
        record only these qualified module names (default: all neuron layers).
    keep_tensors:
        keep ``delta``, ``P``, ``temporal`` and ``eps`` per layer and step (detached, on the model's
        device) for inspection with :meth:`tensors`. Memory grows with every recorded step.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        pairs: bool = True,
        weights: bool = True,
        max_lag: Optional[int] = None,
        layers: Optional[Sequence[str]] = None,
        keep_tensors: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise UsageError(f"gradflow.record expects a torch.nn.Module, got {type(model).__name__}.")
        if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 0):
            raise UsageError(f"max_lag must be a non-negative integer, got {max_lag!r}.")
        self.model = model
        self.pairs_enabled = bool(pairs)
        self.weights_enabled = bool(weights)
        self.max_lag = max_lag
        self.keep_tensors = bool(keep_tensors)
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, SpikingNeuron)]
        if not found:
            hint = ""
            if any("spikingjelly" in type(m).__module__ for m in model.modules()):
                hint = " It holds SpikingJelly neurons: swap them with gradflow.convert(model) first."
            raise UsageError(f"{type(model).__name__} contains no gradflow spiking neurons to record.{hint}")
        if layers is not None:
            names = {n for n, _ in found}
            missing = [n for n in layers if n not in names]
            if missing:
                raise UsageError(f"No neuron layer named {missing[0]!r}; the model has {', '.join(sorted(names))}.")
            found = [(n, m) for n, m in found if n in set(layers)]
        self._neurons = found
        self._names = {id(m): (n or m.kind) for n, m in found}
        self._param_names = {id(p): n for n, p in model.named_parameters()}
        self._handles: list = []
        self._order: Dict[int, int] = {}  # id(module) -> layer_index (forward order)
        self._pending: Dict[int, List[_Pass]] = {}
        self._in_backward: List[_Pass] = []
        self._finished: List[_Pass] = []
        self._spike_fns: Dict[int, object] = {}  # grad_fn of recorded spike outputs
        self._step = 0
        self._callback_queued = False
        self._active = False
        self._saved_flags = None

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "Recorder":
        if self._active:
            raise UsageError("This recorder is already active; nest a new gradflow.record instead.")
        self._saved_flags = (
            {m: m.training for m in self.model.modules()},
            {p: p.requires_grad for p in self.model.parameters()},
        )
        self._active = True
        try:
            for _, module in self._neurons:
                self._handles.append(module.register_step_observer(self._observe))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close()
        if exc_type is not None and self._saved_flags is not None:
            training, req = self._saved_flags
            for m, flag in training.items():
                m.training = flag
            for p, flag in req.items():
                p.requires_grad_(flag)
        return None

    def _close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for passes in self._pending.values():
            for ps in passes:
                ps.release()
        self._pending.clear()
        for ps in self._in_backward:
            ps.release()
        self._in_backward.clear()
        self._spike_fns.clear()
        self._active = False

    @property
    def active(self) -> bool:
        """True inside the ``with`` block (hooks attached)."""
        return self._active

    @property
    def num_hooks(self) -> int:
        """Number of hooks this recorder currently holds on modules and tensors."""
        n = len(self._handles)
        for passes in self._pending.values():
            n += sum(len(p.handles) for p in passes)
        return n + sum(len(p.handles) for p in self._in_backward)

    # ------------------------------------------------------------------ forward side
    def _observe(self, module: SpikingNeuron, trace: NeuronTrace) -> None:
        """Step observer: called after each forward of a recorded neuron."""
        if not trace.spikes.requires_grad:
            return  # no graph (no_grad / frozen), nothing to record
        key = id(module)
        if key not in self._order:
            self._order[key] = len(self._order)
        # A new forward of this module forgets earlier forwards whose backward never started.
        for old in self._pending.pop(key, []):
            old.release()
        if not isinstance(trace.prev[0], CLIFState):
            trace = trace._replace(prev=[trace.prev[0]])  # LIF: only the state type is needed later
        ps = _Pass(
            module=module,
            name=self._names[key],
            index=self._order[key],
            trace=trace,
            params=self._params_between(trace.x) if self.weights_enabled else [],
            deltas=[None] * len(trace.u),
        )
        self._spike_fns[key] = trace.spikes.grad_fn
        ps.handles.append(trace.spikes.register_hook(lambda g, ps=ps: self._on_output_grad(ps, g)))
        if trace.tap is not None:
            # fused backend: one autograd node; its backward hands over g_out, P, temporal and delta
            trace.tap.append(lambda g_out, P, temporal, delta, ps=ps: self._on_tap(ps, g_out, P, temporal, delta))
        else:
            for t, u in enumerate(trace.u):
                if u.requires_grad:
                    ps.handles.append(u.register_hook(lambda g, ps=ps, t=t: self._on_u_grad(ps, t, g)))
        self._pending.setdefault(key, []).append(ps)

    def _params_between(self, x: torch.Tensor) -> list:
        """Parameters reached from ``x`` backwards through the graph before any recorded spike output."""
        stop = {id(fn) for fn in self._spike_fns.values() if fn is not None}
        seen, out, stack = set(), [], [x.grad_fn]
        while stack:
            fn = stack.pop()
            if fn is None or id(fn) in seen or id(fn) in stop:
                continue
            seen.add(id(fn))
            var = getattr(fn, "variable", None)
            if var is not None:  # AccumulateGrad: a leaf
                if isinstance(var, nn.Parameter) and id(var) in self._param_names:
                    out.append((self._param_names[id(var)], var))
                continue
            stack.extend(nxt for nxt, _ in fn.next_functions)
        out.sort(key=lambda item: item[0])
        return out

    # ------------------------------------------------------------------ backward side
    def _ensure_callback(self) -> None:
        if not self._callback_queued:
            self._callback_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    def _on_output_grad(self, ps: _Pass, g: torch.Tensor) -> None:
        self._ensure_callback()
        ps.g_out = g
        key = id(ps.module)
        pend = self._pending.get(key, [])
        if ps in pend:
            pend.remove(ps)
            self._in_backward.append(ps)

    def _on_u_grad(self, ps: _Pass, t: int, g: torch.Tensor) -> None:
        self._ensure_callback()
        if ps.deltas[t] is None:
            ps.arrived += 1
        ps.deltas[t] = g
        if ps.arrived == len(ps.deltas) and not ps.done:
            self._finalize(ps)

    def _on_tap(self, ps: _Pass, g_out, P, temporal, delta) -> None:
        """Fused backend: the neuron's backward computed the split itself (same recursion)."""
        if ps.done or ps.trace is None:
            return
        self._ensure_callback()
        ps.g_out = g_out
        ps.deltas = list(delta.unbind(0))
        ps.arrived = len(ps.deltas)
        self._finalize(ps, given=(P, temporal, delta))

    def _on_backward_end(self) -> None:
        """Engine callback at the end of a backward pass: close the step."""
        self._callback_queued = False
        touched = [ps for ps in self._in_backward if ps.done or ps.arrived > 0 or ps.g_out is not None]
        for ps in touched:
            if not ps.done:
                self._finalize(ps)
            ps.step = self._step
            self._finished.append(ps)
        self._in_backward = [ps for ps in self._in_backward if ps not in touched]
        if touched:
            self._step += 1

    @torch.no_grad()
    def _finalize(self, ps: _Pass, given=None) -> None:
        """All ``delta[t]`` are known: compute statistics, pairs and the weight split (device only).

        ``given = (P, temporal, delta)`` comes from a fused neuron's backward, which computed them.
        """
        trace, mod = ps.trace, ps.module
        p = mod._params
        ps.inv_tau = trace.inv_tau.detach() if isinstance(trace.inv_tau, torch.Tensor) else trace.inv_tau
        T = len(trace.u)
        u = torch.stack([ui.detach() for ui in trace.u])
        ref = u
        zeros = torch.zeros_like(ref)
        sg = surrogate_grad(u - p.v_threshold, p.surrogate)
        jac = _step_jacobian(mod, trace, u, sg)
        a = _charge_gain(trace.inv_tau)
        if given is not None:
            P, temporal, delta = given
        else:
            delta = torch.stack([d if d is not None else zeros for d in ps.deltas])
            g_out = ps.g_out if ps.g_out is not None else zeros
            P = g_out * sg
            temporal = _temporal_from_deltas(delta, jac, a, trace.cut)
        eps = a * jac["vu"]
        if trace.cut:
            eps = eps.clone()
            for t in trace.cut:
                eps[t - 1] = 0.0
        eps[T - 1] = 0.0  # no step after the last

        # per-step sums over all non-time dims. Norms via vector_norm and counts via comparisons
        # written into a float buffer: float64 casts and bool masks are several times slower on CPU.
        T_ = u.shape[0]
        flat = lambda z: z.reshape(T_, -1)  # noqa: E731
        buf = torch.empty_like(u)
        n = float(u[0].numel())
        stats = torch.empty(T, _NSTAT, dtype=torch.float64, device=u.device)
        stats[:, _NUMEL] = n
        stats[:, _SPIKES] = flat(trace.spikes.detach()).sum(1)
        stats[:, _WINDOW] = flat(torch.ne(sg, 0, out=buf)).sum(1)
        stats[:, _SQ_TOTAL] = _sq(delta)
        stats[:, _SQ_SPATIAL] = _sq(P)
        stats[:, _SQ_TEMPORAL] = _sq(temporal)
        stats[:, _TZERO] = n - flat(torch.ne(temporal, 0, out=buf)).sum(1).double()
        stats[:, _NONFINITE] = n - flat(torch.lt(delta.abs(), math.inf, out=buf)).sum(1).double()
        stats[:, _EPS_SUM] = flat(eps).sum(1)
        stats[:, _SQ_EPS] = _sq(eps)
        ps.stats = stats

        pair_vectors = [] if (self.keep_tensors and self.pairs_enabled) else None
        if self.pairs_enabled:
            K = T - 1 if self.max_lag is None else min(self.max_lag, T - 1)
            ps.pair_sq = _pair_norms(P, jac, a, trace.cut, K, pair_vectors)
        if self.weights_enabled and ps.params:
            ps.weight_sq = _weight_split(trace, P, temporal, p, [prm for _, prm in ps.params])
        if self.keep_tensors:
            ps.tensors = {"u": u, "delta": delta, "spatial": P, "temporal": temporal, "eps": eps}
            if pair_vectors is not None:
                ps.tensors["pairs"] = pair_vectors  # pairs[t][k] = pair[t, t+k]
        ps.done = True
        ps.params = [name for name, _ in ps.params]
        ps.release()

    # ------------------------------------------------------------------ tables
    def _collect(self):
        """Finished passes and their statistics reduced over ranks (one host transfer)."""
        passes = sorted(self._finished, key=lambda ps: (ps.step, ps.index))
        if not passes:
            raise UsageError(
                "Nothing was recorded: no backward pass reached a recorded neuron inside the "
                "gradflow.record block (was loss.backward() called, with gradients enabled?)."
            )
        return passes

    @staticmethod
    def _allreduce(t: torch.Tensor) -> torch.Tensor:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = t.clone()
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def per_step(self) -> pd.DataFrame:
        """One row per (step, layer, t): SPEC §3 ``per_step`` columns, then ``eps_mean``, ``eps_rms``.

        ``eps_mean``/``eps_rms`` are the mean and RMS over elements of the one-step factor
        ``eps[t] = a * dv[t]/du[t]`` (``du[t+1]/du[t]`` at fixed input for LIF/PLIF; for CLIF the
        same with ``m[t]`` held fixed); 0 at ``t = T-1``.
        """
        passes = self._collect()
        stats = self._allreduce(torch.cat([ps.stats for ps in passes])).cpu().numpy()
        rows = _id_columns(passes, per_t=True)
        n = stats[:, _NUMEL]
        nz = np.where(n > 0, n, np.nan)
        df = pd.DataFrame(rows)
        df["firing_rate"] = stats[:, _SPIKES] / nz
        df["window_fraction"] = stats[:, _WINDOW] / nz
        df["grad_total_norm"] = np.sqrt(stats[:, _SQ_TOTAL])
        df["grad_spatial_norm"] = np.sqrt(stats[:, _SQ_SPATIAL])
        df["grad_temporal_norm"] = np.sqrt(stats[:, _SQ_TEMPORAL])
        df["temporal_zero_fraction"] = stats[:, _TZERO] / nz
        df["nonfinite"] = stats[:, _NONFINITE].astype(np.int64)
        df["eps_mean"] = stats[:, _EPS_SUM] / nz
        df["eps_rms"] = np.sqrt(stats[:, _SQ_EPS] / nz)
        df["T"] = np.concatenate([np.full(ps.stats.shape[0], ps.stats.shape[0]) for ps in passes])
        df["tau"] = np.concatenate([np.full(ps.stats.shape[0], 1.0 / float(ps.inv_tau)) for ps in passes])
        return df

    def _pair_sq(self):
        passes = self._collect()
        if not self.pairs_enabled:
            raise UsageError("Pairs were not recorded; use gradflow.record(model, pairs=True).")
        flat = self._allreduce(torch.cat([ps.pair_sq.reshape(-1) for ps in passes])).cpu().numpy()
        out, i = [], 0
        for ps in passes:
            n = ps.pair_sq.numel()
            out.append(flat[i:i + n].reshape(ps.pair_sq.shape))
            i += n
        return passes, out

    def pairs(self) -> pd.DataFrame:
        """One row per (step, layer, t, t_source), ``t <= t_source <= t + max_lag``: ``||pair[t, t_source]||``."""
        passes, sq = self._pair_sq()
        frames = []
        for ps, q in zip(passes, sq):
            T, K1 = q.shape
            t, k = np.meshgrid(np.arange(T), np.arange(K1), indexing="ij")
            keep = (t + k) < T
            frames.append(pd.DataFrame({
                "step": ps.step, "layer": ps.name, "layer_index": ps.index,
                "t": t[keep], "t_source": (t + k)[keep], "lag": k[keep], "norm": np.sqrt(q[keep]),
            }))
        return pd.concat(frames, ignore_index=True)[PAIRS_COLUMNS]

    def lags(self) -> pd.DataFrame:
        """One row per (step, layer, lag): ``G_k = sqrt(mean_t ||pair[t, t+k]||^2)``, ``relative = G_k / G_0``."""
        passes, sq = self._pair_sq()
        frames = []
        for ps, q in zip(passes, sq):
            T, K1 = q.shape
            counts = np.maximum(T - np.arange(K1), 1)
            G = np.sqrt(q.sum(axis=0) / counts)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = G / G[0] if G[0] > 0 else np.full_like(G, np.nan)
            frames.append(pd.DataFrame({
                "step": ps.step, "layer": ps.name, "layer_index": ps.index,
                "lag": np.arange(K1), "norm": G, "relative": rel,
            }))
        return pd.concat(frames, ignore_index=True)[LAGS_COLUMNS]

    def weights(self) -> pd.DataFrame:
        """One row per (step, layer, param): norms of the spatial, temporal and total parameter gradient.

        Under ``torch.distributed`` the squared norms of the ranks' gradients are summed before the
        square root (SPEC §2's rule for every norm), i.e. the root-sum-square of per-rank norms, not
        the norm of the all-reduced gradient; ``temporal_share`` is formed from those.
        """
        passes = self._collect()
        if not self.weights_enabled:
            raise UsageError("The weight split was not recorded; use gradflow.record(model, weights=True).")
        with_w = [ps for ps in passes if ps.weight_sq is not None]
        if not with_w:
            return pd.DataFrame(columns=WEIGHTS_COLUMNS)
        sq = self._allreduce(torch.cat([ps.weight_sq for ps in with_w])).cpu().numpy()
        rows, i = [], 0
        for ps in with_w:
            for name in ps.params:
                rows.append((ps.step, ps.name, ps.index, name))
            i += len(ps.params)
        df = pd.DataFrame(rows, columns=["step", "layer", "layer_index", "param"])
        df["spatial_norm"] = np.sqrt(sq[:, 0])
        df["temporal_norm"] = np.sqrt(sq[:, 1])
        df["total_norm"] = np.sqrt(sq[:, 2])
        denom = df["spatial_norm"] + df["temporal_norm"]
        df["temporal_share"] = np.where(denom > 0, df["temporal_norm"] / denom.where(denom > 0, 1.0), np.nan)
        return df[WEIGHTS_COLUMNS]

    def tensors(self, layer: str, step: int = 0) -> dict:
        """The kept tensors (``keep_tensors=True``) of one layer at one step.

        Keys: ``u``, ``delta``, ``spatial``, ``temporal``, ``eps`` (each ``[T, N, ...]``) and, with
        pairs, ``pairs`` (a list over t of ``[K_t, N, ...]`` tensors, row k = ``pair[t, t+k]``).
        """
        if not self.keep_tensors:
            raise UsageError("Tensors were not kept; use gradflow.record(model, keep_tensors=True).")
        for ps in self._finished:
            if ps.name == layer and ps.step == step:
                return dict(ps.tensors)
        raise UsageError(f"No recorded layer {layer!r} at step {step}.")

    @property
    def steps(self) -> int:
        """Number of recorded backward passes so far."""
        return self._step

    def layer_info(self) -> pd.DataFrame:
        """One row per recorded layer: layer, layer_index, neuron, tau, v_threshold, surrogate, alpha, reset."""
        rows = {}
        for ps in self._finished:
            if ps.name not in rows:
                p = ps.module.params
                rows[ps.name] = dict(
                    layer=ps.name, layer_index=ps.index, neuron=ps.module.kind, tau=p.tau,
                    v_threshold=p.v_threshold, surrogate=p.surrogate.name, alpha=p.surrogate.alpha,
                    reset="soft" if p.v_reset is None else "hard", v_reset=p.v_reset,
                    detach_reset=p.detach_reset, decay_input=p.decay_input,
                )
        return pd.DataFrame(list(rows.values())).sort_values("layer_index", ignore_index=True)


def record(
    model: nn.Module,
    *,
    pairs: bool = True,
    weights: bool = True,
    max_lag: Optional[int] = None,
    layers: Optional[Sequence[str]] = None,
    keep_tensors: bool = False,
) -> Recorder:
    """Record the gradient flow of every gradflow neuron in ``model`` while the ``with`` block runs.

    Usage::

        with gradflow.record(model, pairs=True, weights=True) as rec:
            logits = model(x)
            loss = gradflow.losses.ce_over_time(logits, y)
            loss.backward()
        rec.per_step(); rec.pairs(); rec.lags(); rec.weights()

    Hooks are attached on entry and all removed on exit (also on error). Recording never changes a
    gradient. Each backward pass that reaches a recorded layer is one ``step``. See :class:`Recorder`.
    """
    return Recorder(model, pairs=pairs, weights=weights, max_lag=max_lag, layers=layers, keep_tensors=keep_tensors)


# ---------------------------------------------------------------------- numerical pieces


def _sq(x: torch.Tensor, dims=None) -> torch.Tensor:
    """Squared L2 norm over all dims but the first (or over ``dims``), as float64.

    ``vector_norm`` runs in ``x``'s dtype (float64 for float64 models) and is much faster on CPU
    than squaring and summing with a float64 accumulator.
    """
    if dims is None:
        return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1).double().square()
    return torch.linalg.vector_norm(x, dim=dims).double().square()


def _charge_gain(inv_tau) -> object:
    """``a = du[t+1]/dv[t] = 1 - 1/tau`` (same with decay_input); a tensor for PLIF."""
    if isinstance(inv_tau, torch.Tensor):
        return (1.0 - inv_tau).detach()
    return 1.0 - inv_tau


def _step_jacobian(mod: SpikingNeuron, trace: NeuronTrace, u: torch.Tensor, sg: torch.Tensor) -> dict:
    """Elementwise partials of one fire/reset step, evaluated at all recorded steps at once.

    Returns ``vu = dv[t]/du[t]``, and for CLIF also ``mu = dm[t]/du[t]``, ``vm = dv[t]/dm[t-1]``,
    ``mm = dm[t]/dm[t-1]`` (each ``[T, N, ...]``). LIF/PLIF use the closed form
    (soft: ``1 - theta sg``, hard: ``(1 - s) + (v_reset - u) sg``; detached: ``1`` / ``1 - s``);
    CLIF goes through autograd of the neuron's own ``fire_reset`` (so surrogate and
    ``detach_reset`` are exactly the module's): elementwise maps make ``grad(sum(out), in)`` equal to
    the Jacobian's diagonal. ``tests/test_recorder.py`` checks both against autograd of the model.
    """
    p = mod._params
    if not isinstance(trace.prev[0], CLIFState):
        if p.v_reset is None:
            vu = torch.ones_like(u) if p.detach_reset else 1.0 - p.v_threshold * sg
        else:
            s = spike(u - p.v_threshold, p.surrogate, p.smooth)
            vu = 1.0 - s if p.detach_reset else (1.0 - s) + (p.v_reset - u) * sg
        return {"vu": vu}
    inv_tau = trace.inv_tau.detach() if isinstance(trace.inv_tau, torch.Tensor) else trace.inv_tau
    with torch.enable_grad():
        ur = u.detach().clone().requires_grad_(True)
        mr = torch.stack([st.m.detach() for st in trace.prev]).requires_grad_(True)
        state = CLIFState(torch.zeros_like(ur), mr)
        _, new = mod.fire_reset(ur, state, p, inv_tau)
        vu, vm = torch.autograd.grad(new.v.sum(), (ur, mr), retain_graph=True, allow_unused=True)
        mu, mm = torch.autograd.grad(new.m.sum(), (ur, mr), allow_unused=True)
    z = torch.zeros_like(ur)
    fill = lambda g: z if g is None else g.detach()  # noqa: E731
    return {"vu": fill(vu), "vm": fill(vm), "mu": fill(mu), "mm": fill(mm)}


def _temporal_from_deltas(delta: torch.Tensor, jac: dict, a, cut) -> torch.Tensor:
    """``temporal[t]`` from the recorded ``delta[t+1]`` (module docstring, the three-line recursion)."""
    T = delta.shape[0]
    out = torch.zeros_like(delta)
    clif = "mu" in jac
    gm = torch.zeros_like(delta[0]) if clif else None
    gv_next = None
    for t in range(T - 2, -1, -1):
        if (t + 1) in cut:  # the state entering t+1 was detached
            gv = torch.zeros_like(delta[0])
            gm = torch.zeros_like(delta[0]) if clif else None
        else:
            gv = a * delta[t + 1]
            if clif:
                gm = jac["vm"][t + 1] * gv_next + jac["mm"][t + 1] * gm if gv_next is not None else gm
        out[t] = jac["vu"][t] * gv + (jac["mu"][t] * gm if clif else 0.0)
        gv_next = gv
    return out


def _pair_norms(P: torch.Tensor, jac: dict, a, cut, K: int, collect: Optional[list] = None) -> torch.Tensor:
    """``Q[t, k] = ||pair[t, t+k]||^2`` for ``k = 0..K``, batched over the live sources.

    Each source ``t'`` starts with ``D = P[t'], Gv = Gm = 0`` and is carried backwards by
    ``Gv[t] = a D[t+1]``, ``Gm[t] = Jvm[t+1] Gv[t+1] + Jmm[t+1] Gm[t+1]``,
    ``D[t] = Jvu[t] Gv[t] + Jmu[t] Gm[t]``; row ``k`` of the batch is the source ``t + k``.
    With ``collect`` (a list), the vectors are kept too: ``collect[t][k] = pair[t, t+k]``.
    """
    T = P.shape[0]
    clif = "mu" in jac
    dims = tuple(range(1, P.dim()))
    Q = torch.zeros(T, K + 1, dtype=torch.float64, device=P.device)
    D = P[T - 1].unsqueeze(0)  # [k, ...] rows: sources t .. t+k
    Gv = torch.zeros_like(D)
    Gm = torch.zeros_like(D) if clif else None
    Q[T - 1, 0] = _sq(P[T - 1], tuple(range(P.dim() - 1)))
    if collect is not None:
        collect[:] = [None] * T
        collect[T - 1] = D
    for t in range(T - 2, -1, -1):
        if (t + 1) in cut:
            D = D[:0]
            Gv = Gv[:0]
            Gm = Gm[:0] if clif else None
        else:
            gv_new = a * D
            if clif:
                Gm = jac["vm"][t + 1] * Gv + jac["mm"][t + 1] * Gm
                D = jac["vu"][t] * gv_new + jac["mu"][t] * Gm
            else:
                D = jac["vu"][t] * gv_new
            Gv = gv_new
        # add the new source t at lag 0, keep at most K+1 live sources
        D = torch.cat([P[t].unsqueeze(0), D])[: K + 1]
        Gv = torch.cat([torch.zeros_like(P[t]).unsqueeze(0), Gv])[: K + 1]
        if clif:
            Gm = torch.cat([torch.zeros_like(P[t]).unsqueeze(0), Gm])[: K + 1]
        Q[t, : D.shape[0]] = _sq(D, dims)
        if collect is not None:
            collect[t] = D
    return Q


def _weight_split(trace: NeuronTrace, P: torch.Tensor, temporal: torch.Tensor, p, params: list) -> torch.Tensor:
    """Squared norms (spatial, temporal, total) of each parameter's gradient through this layer's input.

    ``dL/dx[t] = delta[t] * du[t]/dx[t]`` with ``du/dx = 1`` (or ``1/tau`` with ``decay_input``);
    ``P`` and ``temporal`` are back-propagated separately from ``x`` with ``retain_graph=True`` (the
    main backward has not reached ``x`` yet when this runs).
    """
    k = trace.inv_tau.detach() if isinstance(trace.inv_tau, torch.Tensor) else trace.inv_tau
    scale = k if p.decay_input else 1.0
    x = trace.x
    try:
        # one vmapped pass for both cotangents (spatial, temporal)
        both = torch.stack([P * scale, temporal * scale]).to(x.dtype)
        grads = torch.autograd.grad(x, params, grad_outputs=both, retain_graph=True, allow_unused=True,
                                    is_grads_batched=True)
        gs = [None if g is None else g[0] for g in grads]
        gt = [None if g is None else g[1] for g in grads]
    except RuntimeError:  # an op without a batching rule: two plain passes
        gs = torch.autograd.grad(x, params, grad_outputs=(P * scale).to(x.dtype), retain_graph=True,
                                 allow_unused=True)
        gt = torch.autograd.grad(x, params, grad_outputs=(temporal * scale).to(x.dtype), retain_graph=True,
                                 allow_unused=True)
    rows = []
    for prm, a, b in zip(params, gs, gt):
        a = torch.zeros_like(prm) if a is None else a
        b = torch.zeros_like(prm) if b is None else b
        rows.append(torch.stack([a.double().square().sum(), b.double().square().sum(), (a + b).double().square().sum()]))
    return torch.stack(rows)


def _id_columns(passes: List[_Pass], per_t: bool) -> dict:
    steps, names, idx, kinds, ts = [], [], [], [], []
    for ps in passes:
        T = ps.stats.shape[0]
        steps.append(np.full(T, ps.step))
        names.extend([ps.name] * T)
        idx.append(np.full(T, ps.index))
        kinds.extend([ps.module.kind] * T)
        ts.append(np.arange(T))
    return {
        "step": np.concatenate(steps), "layer": names, "layer_index": np.concatenate(idx),
        "neuron": kinds, "t": np.concatenate(ts),
    }
