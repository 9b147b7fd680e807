"""The decomposition of one recorded layer, on the device: temporal part, statistics, pairs, weight split.

For one neuron layer and one backward pass (docs/reference.md, What is recorded)::

    delta[t]    = dL/du[t]                                    (autograd's, read by a hook; or the fused tap)
    P[t]        = g_out[t] * sg(u[t] - theta)                 (spatial)
    temporal[t] = from the recorded delta[t+1] through the kind's closed-form Jacobian and adjoint
                  (gradflow.neurons.adjoint.temporal_from_delta), exactly 0 where the Jacobian cuts
    pair[t, t'] = P[t'] carried back to step t by the same adjoint (pair_transport, PairCarry)

Everything is kept **per sample** (the batch dim is dim 1 of ``[T, N, ...]``), as float64 sums over the
sample's other elements, so that every reported number can be resampled over samples
(:func:`gradflow.stats.bootstrap`)::

    per_sample [5, T, n]:  ||P[t]_i||^2, ||temporal[t]_i||^2, ||delta[t]_i||^2, spikes, window count
    pair_sq    [T, K+1, n]: ||pair[t, t+k]_i||^2
    per_t      [T, 4]:      exact zeros of temporal, non-finite delta, sum and sum of squares of eps

Memory per sample and layer: ``8 (5 T + T (K + 1))`` bytes (:func:`sample_bytes`). The weight split
back-propagates ``P * du/dx`` through the layer's region without hooks (:mod:`.region`); the total
comes from the main backward (a node hook on the region's parameter nodes), the temporal part is the
difference. No function here synchronises with the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Union

import torch

from ..neurons import NeuronKind, NeuronParams, NeuronTrace, SpikingNeuron, sweep
from ..neurons.adjoint import PairCarry
from ..neurons.kind import takes_ws
from .region import Region, RegionError
from .transport import transport_bytes, transport_sums, zone_vu

__all__ = ["LayerPass", "finalize", "start_weight_split", "finish_weight_split", "sample_bytes",
           "SPATIAL", "TEMPORAL", "TOTAL", "SPIKES", "WINDOW"]

#: Rows of ``LayerPass.per_sample``.
SPATIAL, TEMPORAL, TOTAL, SPIKES, WINDOW = range(5)
#: Columns of ``LayerPass.per_t``.
TZERO, NONFINITE, EPS_SUM, EPS_SQ = range(4)


def sample_bytes(T: int, max_lag: Optional[int], pairs: bool, transport: bool = False) -> int:
    """Bytes the recorder keeps per sample, layer and backward pass: ``8 (5 T + T (K + 1))`` with pairs,
    plus :func:`~gradflow.recorder.transport.transport_bytes` with the window model's inputs.

    >>> sample_bytes(6, None, True)       # 8 * (30 + 36)
    528
    """
    K = (T - 1) if max_lag is None else min(max_lag, T - 1)
    return 8 * (5 * T + (T * (K + 1) if pairs else 0)) + (transport_bytes(T) if transport else 0)


@dataclass
class LayerPass:
    """One forward of one recorded neuron layer, waiting for (or done with) its backward.

    Identity: ``module``, ``name``, ``index`` (layer_index), ``kind``, ``params``, ``k`` (``1/tau``,
    detached), ``cut``, ``T``, ``n`` (samples), ``E`` (elements per sample and step). While waiting:
    ``trace`` (graph references), ``region``, ``deltas``, ``g_out``, ``handles``. Results (device
    tensors, float64): ``per_sample``, ``per_t``, ``pair_sq`` and the weight split ``weight_sq``
    ``[params, 3]`` = (``||g_s||^2``, ``||g_t||^2``, ``<g_s, g_t>``).
    """

    module: SpikingNeuron
    name: str
    index: int
    kind: NeuronKind
    params: NeuronParams
    k: object
    cut: tuple
    T: int
    n: int
    E: int
    trace: Optional[NeuronTrace] = None
    region: Optional[Region] = None
    shared: bool = False
    deltas: List[Optional[torch.Tensor]] = field(default_factory=list)
    g_out: Optional[torch.Tensor] = None
    handles: list = field(default_factory=list)
    arrived: int = 0
    done: bool = False
    step: int = -1
    per_sample: Optional[torch.Tensor] = None
    per_t: Optional[torch.Tensor] = None
    pair_sq: Optional[torch.Tensor] = None
    weight_names: List[str] = field(default_factory=list)
    weight_parts: Optional[list] = None  # [(g_s, g_t or None)] until the backward ends
    weight_totals: Optional[list] = None  # main-backward gradients captured per parameter
    weight_sq: Optional[torch.Tensor] = None
    weight_error: Optional[str] = None
    tensors: Optional[dict] = None
    transport: Optional[dict] = None  # per-sample window-model sums (:mod:`.transport`), when asked

    def remove_hooks(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def release(self) -> None:
        """Drop every hook and graph reference (the statistics stay)."""
        self.remove_hooks()
        self.trace = None
        self.region = None
        self.deltas = []
        self.g_out = None
        self.weight_parts = None
        self.weight_totals = None


# ----------------------------------------------------------------------------- reductions
# Reductions run in the tensors' own dtype and only their small results become float64: a float64
# reduction of a float32 tensor would first copy it. Counts use comparisons written into a float
# scratch tensor, several times faster on a CPU than bool masks.


def _norms(z: torch.Tensor, n: int) -> torch.Tensor:
    """L2 norm per sample ``[n]`` of one step ``[N, ...]``."""
    return torch.linalg.vector_norm(z.reshape(n, -1), dim=1)


def _row_norms(z: torch.Tensor, n: int) -> torch.Tensor:
    """L2 norm per row and sample ``[L, n]`` of ``[L, N, ...]``."""
    return torch.linalg.vector_norm(z.reshape(z.shape[0], n, -1), dim=2)


def _count(mask_fn, z: torch.Tensor, buf: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
    """Number of elements where ``mask_fn`` holds (per sample with ``n``), via a float scratch ``buf``."""
    m = mask_fn(z, buf)
    return m.reshape(n, -1).sum(1) if n is not None else m.sum()


def _window_count(sg: torch.Tensor, p: NeuronParams, buf: torch.Tensor, n: int) -> torch.Tensor:
    """Elements per sample with ``sg != 0``; for the rectangle surrogate ``sg = window / alpha``, so
    the count is ``round(alpha * sum(sg))`` (exact for counts below 2**22 per sample and step)."""
    if p.surrogate.name == "rectangle":
        total = sg.reshape(n, -1).sum(1)
        return total if p.surrogate.alpha == 1.0 else (total * p.surrogate.alpha).round_()
    return _count(lambda z, b: torch.ne(z, 0, out=b), sg, buf, n)


def _finite_count(z: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """Finite elements of ``z`` (no host sync)."""
    return _count(lambda v, b: torch.lt(torch.abs(v, out=b), math.inf, out=b), z, buf)


def _finite_counts(deltas: List[torch.Tensor], norms: List[torch.Tensor], buf: torch.Tensor) -> torch.Tensor:
    """Finite elements of each step's ``delta`` ``[T]``, on the CPU (where reading a value back costs no
    device sync): finite per-sample ``norms`` of a step prove all its elements finite (an inf or NaN
    would make its norm non-finite), so one check covers the pass and only a step with a non-finite
    norm is counted."""
    ok = torch.isfinite(torch.stack(norms)).all(dim=1)
    full = torch.full((len(deltas),), float(deltas[0].numel()), dtype=buf.dtype)
    if not bool(ok.all()):
        for t in torch.nonzero(~ok).flatten().tolist():
            full[t] = _finite_count(deltas[t], buf)
    return full


def stack_steps(tensors: List[torch.Tensor]) -> torch.Tensor:
    """``[T, ...]`` detached; without a copy when the T tensors are consecutive views of one tensor."""
    first = tensors[0]
    base = first._base
    if (base is not None and base.dim() == first.dim() + 1 and base.shape[0] == len(tensors)
            and all(t._base is base and t.data_ptr() == base[i].data_ptr() for i, t in enumerate(tensors))):
        return base.detach()
    return torch.stack([t.detach() for t in tensors])


# ----------------------------------------------------------------------------- finalize


@torch.no_grad()
def finalize(ps: LayerPass, *, pairs: bool, max_lag: Optional[int], keep: bool, given=None,
             transport: Union[bool, str] = False, need_temporal: bool = True):
    """All ``delta[t]`` of the pass are known: compute everything on the device (no host sync).

    One reverse sweep over the steps (``t = T-1`` down to 0), on the tensors of each step (no copy of
    the whole sequence): the Jacobian of step ``t`` is computed when the sweep reaches it, into a
    workspace that every step reuses (when the kind's ``jacobian`` takes ``ws``), and serves the
    temporal part, the statistics and the pair transport of that step. ``given = (g_out, P, temporal,
    delta)`` ``[T, N, ...]`` comes from a fused neuron's backward (the same adjoint). With
    ``transport``, the window model's per-sample sums (:func:`.transport.transport_sums`) are kept too
    (``"pooled"``: summed over the pass's samples).
    Returns ``(P, temporal)``: lists of T step tensors (``temporal[t]`` None where it is exactly 0), or
    ``temporal`` None when ``need_temporal`` is False (the weight split of an unshared region).
    """
    trace, kind, p, k, T, n = ps.trace, ps.kind, ps.params, ps.k, ps.T, ps.n
    us = [u.detach() for u in trace.u]
    fields = kind.State._fields
    prevs = ([kind.State(*(getattr(s, f).detach() for f in fields)) for s in trace.prev]
             if kind.jacobian_needs_prev else [None] * T)
    ws_jac = {} if takes_ws(kind.jacobian) else None
    if ws_jac is not None:
        jac_at = lambda t: kind.jacobian(us[t], prevs[t], p, k, ws=ws_jac)  # noqa: E731
    else:
        jac_at = lambda t: kind.jacobian(us[t], prevs[t], p, k)  # noqa: E731
    ws_eps = {} if takes_ws(kind.eps) else None

    def workspace_copy(v: torch.Tensor) -> torch.Tensor:
        """``v`` itself, or a copy when it lives in one of the workspaces (valid for one step only)."""
        for ws in (ws_jac, ws_eps, ws_back):
            if ws and any(v.data_ptr() == b.data_ptr() for b in ws.values()):
                return v.clone()
        return v

    buf = torch.empty_like(us[0])
    numel = float(n * ps.E)
    spikes = trace.spikes.detach()
    rows = {i: [None] * T for i in (SPATIAL, TEMPORAL, TOTAL, WINDOW)}
    host = buf.device.type == "cpu"
    tzero, finite, eps_sum, eps_sq = [None] * T, [None] * T, [None] * T, [None] * T
    no_step = set(ps.cut) | {T}  # eps[t] = 0 where no step follows (t + 1 in cut, or t = T-1)
    eps_kept: List[Optional[torch.Tensor]] = [None] * T
    vus: List[Optional[torch.Tensor]] = [None] * T
    # the window sums need f = dv/du per element, or per zone where the kind's f is one value per zone
    f_zone = zone_vu(kind, p, k, us[0]) if transport else None
    K = T - 1 if max_lag is None else min(max_lag, T - 1)
    pair_carry = PairCarry(kind, us[0], ps.cut, K) if pairs else None
    pair_rows: List[Optional[torch.Tensor]] = [None] * T
    collected: Optional[List[Optional[torch.Tensor]]] = [None] * T if (keep and pairs) else None

    def account(t: int, jac: tuple, P: torch.Tensor, delta: torch.Tensor, temporal: Optional[torch.Tensor]):
        """Every statistic of step ``t`` and its pairs (the workspace tensors are valid only now)."""
        rows[SPATIAL][t] = _norms(P, n)
        rows[TOTAL][t] = _norms(delta, n)
        rows[WINDOW][t] = _window_count(jac.sg, p, buf, n)
        if temporal is None:
            rows[TEMPORAL][t] = torch.zeros_like(rows[SPATIAL][t])
            tzero[t] = torch.full((), numel, dtype=buf.dtype, device=buf.device)
        else:
            rows[TEMPORAL][t] = _norms(temporal, n)
            tzero[t] = numel - _count(lambda z, b: torch.ne(z, 0, out=b), temporal, buf)
        if not host:
            finite[t] = _finite_count(delta, buf)
        if t + 1 in no_step:
            eps_sum[t] = eps_sq[t] = torch.zeros((), dtype=buf.dtype, device=buf.device)
        else:
            e = kind.eps(jac) if ws_eps is None else kind.eps(jac, ws_eps)
            eps_sum[t] = e.sum()
            eps_sq[t] = torch.linalg.vector_norm(e).square()
            eps_kept[t] = workspace_copy(e) if keep else None
        if transport and f_zone is None:
            vus[t] = workspace_copy(kind.vu(jac))
        if pair_carry is not None:
            pr = pair_carry.step(t, jac, P)  # pair[t, t+1 ..]
            if pr.shape[0]:
                pair_rows[t] = _row_norms(pr, n)
            if collected is not None:
                collected[t] = torch.cat([P.unsqueeze(0), pr])

    ws_back: Optional[dict] = None
    if given is not None:
        _, P_all, temp_all, delta_all = given
        Ps, deltas = list(P_all.unbind(0)), list(delta_all.unbind(0))
        temps = list(temp_all.unbind(0))
        temps[T - 1] = None
        for t in ps.cut:
            temps[t - 1] = None
        for t in range(T - 1, -1, -1):
            account(t, jac_at(t), Ps[t], deltas[t], temps[t])
    else:
        zero = None
        if ps.g_out is None or any(d is None for d in ps.deltas):
            zero = torch.zeros_like(us[0])
        deltas = [zero if d is None else d for d in ps.deltas]
        Ps = [None] * T
        # the T spatial parts as views of one tensor: the weight split (and keep) take it without a copy
        P_all = None if ps.g_out is None else torch.empty(
            (T,) + tuple(us[0].shape), dtype=torch.promote_types(us[0].dtype, ps.g_out[0].dtype), device=buf.device)
        temps = [None] * T
        ws_back = {}
        carry = [tuple(torch.empty_like(us[0]) for _ in fields) for _ in range(2)]
        for t, jac, step in sweep(kind, jac_at, T, ps.cut, delta=deltas, ws=ws_back, carry_bufs=carry):
            Ps[t] = zero if P_all is None else torch.mul(jac.sg, ps.g_out[t], out=P_all[t])
            account(t, jac, Ps[t], deltas[t], step.temporal)
            if step.temporal is not None and (need_temporal or keep):
                temps[t] = step.temporal.clone()

    # spike counts of all steps at once (sums of 0/1 values: exact in any order)
    rows[SPIKES] = spikes.reshape(T, n, -1).sum(2)
    per_sample = torch.stack([torch.stack(rows[i]) if i != SPIKES else rows[i] for i in range(5)]).double()
    per_sample[:3].square_()
    finite_all = _finite_counts(deltas, rows[TOTAL], buf) if host else torch.stack(finite)
    per_t = torch.stack([torch.stack(tzero), numel - finite_all, torch.stack(eps_sum),
                         torch.stack(eps_sq)], dim=1).double()
    ps.per_sample, ps.per_t = per_sample, per_t
    if pairs:
        pair_sq = torch.zeros(T, K + 1, n, dtype=torch.float64, device=buf.device)
        pair_sq[:, 0] = per_sample[SPATIAL]
        for t, r in enumerate(pair_rows):
            if r is not None:
                pair_sq[t, 1:1 + r.shape[0]] = r.double().square()
        ps.pair_sq = pair_sq
    if transport:
        ps.transport = transport_sums(
            us, Ps, vus, ps.cut, n=n, v_threshold=p.v_threshold,
            surrogate=p.surrogate.name, alpha=p.surrogate.alpha, pooled=transport == "pooled", f_zone=f_zone,
        )
    if keep:
        z = torch.zeros_like(us[0])
        ps.tensors = {"u": torch.stack(us), "delta": torch.stack(deltas), "spatial": torch.stack(Ps),
                      "temporal": torch.stack([z if v is None else v for v in temps]),
                      "eps": torch.stack([z if v is None else v for v in eps_kept])}
        if collected is not None:
            ps.tensors["pairs"] = collected  # pairs[t][k] = pair[t, t+k]
    ps.done = True
    return Ps, (temps if (need_temporal or given is not None) else None)


# ----------------------------------------------------------------------------- weight split


def start_weight_split(ps: LayerPass, P: List[torch.Tensor], temporal: List[Optional[torch.Tensor]]) -> None:
    """Back-propagate ``P du/dx`` through the region (no hooks); with a region shared by another
    recorded layer also ``temporal du/dx`` (the main backward's total would mix the layers).

    Must run before the main backward reaches the region. Records an error message instead of raising
    when the region cannot be split (:class:`~.region.RegionError`, or its graph already freed).
    """
    region = ps.region
    ps.weight_names = [name for name, _ in region.params]
    gain = ps.kind.input_gain(ps.params, ps.k)
    x = ps.trace.x
    z = torch.zeros_like(x[0])
    P = stack_steps(P)            # no copy when the steps are views of one tensor (finalize's P)
    if not (isinstance(gain, float) and gain == 1.0):
        P = P * gain
    try:
        g_s = region.vjp(P.to(x.dtype))
        g_t = None
        if ps.shared:
            temporal = torch.stack([z if v is None else v for v in temporal])
            g_t = region.vjp((temporal * gain).to(x.dtype))
    except (RegionError, RuntimeError) as err:
        ps.weight_error = str(err).splitlines()[0]
        return
    ps.weight_parts = [(a, None if g_t is None else g_t[i]) for i, a in enumerate(g_s)]
    if not ps.shared:
        ps.weight_totals = [None] * len(region.params)
        for node, edges in region.param_edges.items():
            ps.handles.append(node.register_hook(_total_hook(ps, edges)))


def _total_hook(ps: LayerPass, edges):
    """Node post-hook: add the main backward's gradient of each parameter edge to the pass's totals."""

    def hook(grad_inputs, grad_outputs):
        totals = ps.weight_totals
        if totals is None:
            return None
        for j, i in edges:
            g = grad_inputs[j]
            if g is not None:
                totals[i] = g if totals[i] is None else totals[i] + g
        return None

    return hook


@torch.no_grad()
def finish_weight_split(ps: LayerPass) -> None:
    """At the end of the backward: ``[params, 3]`` float64 (``||g_s||^2``, ``||g_t||^2``, ``<g_s, g_t>``),
    ``g_t = total - g_s``; NaN rows where the split could not be made."""
    if ps.region is None and ps.weight_parts is None:
        return
    names = ps.weight_names or ([name for name, _ in ps.region.params] if ps.region is not None else [])
    ps.weight_names = names
    device = ps.per_sample.device if ps.per_sample is not None else None
    if ps.weight_parts is None:
        ps.weight_sq = torch.full((len(names), 3), math.nan, dtype=torch.float64, device=device)
        return
    rows = []
    for i, (g_s, g_t) in enumerate(ps.weight_parts):
        total = ps.weight_totals[i] if ps.weight_totals is not None else None
        if g_t is None:
            if total is None and g_s is None:
                rows.append(torch.zeros(3, dtype=torch.float64, device=device))
                continue
            g_s = torch.zeros_like(total) if g_s is None else g_s
            g_t = (total - g_s) if total is not None else torch.zeros_like(g_s)
        else:
            g_s = torch.zeros_like(g_t) if g_s is None else g_s
        # reductions in the gradients' dtype (cascade sums), only the three results in float64
        rows.append(torch.stack([torch.linalg.vector_norm(g_s).square(), torch.linalg.vector_norm(g_t).square(),
                                 (g_s * g_t).sum()]).double())
    ps.weight_sq = torch.stack(rows) if rows else torch.zeros(0, 3, dtype=torch.float64, device=device)
