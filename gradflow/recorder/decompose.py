"""The decomposition of one recorded layer, on the device: temporal part, statistics, pairs, weight split.

For one neuron layer and one backward pass (docs/reference.md, What is recorded)::

    delta[t]    = dL/du[t]                                    (autograd's, read by a hook; or the fused tap)
    P[t]        = g_out[t] * sg(u[t] - theta)                 (spatial)
    temporal[t] = from the recorded delta[t+1] through the kind's closed-form Jacobian and adjoint
                  (gradflow.neurons.adjoint.temporal_from_delta), exactly 0 where the Jacobian cuts
    pair[t, t'] = P[t'] carried back to step t by the same adjoint (pair_transport)

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
from typing import List, Optional

import torch

from ..neurons import NeuronKind, NeuronParams, NeuronTrace, SpikingNeuron, pair_transport, temporal_from_delta
from .region import Region, RegionError

__all__ = ["LayerPass", "finalize", "start_weight_split", "finish_weight_split", "sample_bytes",
           "SPATIAL", "TEMPORAL", "TOTAL", "SPIKES", "WINDOW"]

#: Rows of ``LayerPass.per_sample``.
SPATIAL, TEMPORAL, TOTAL, SPIKES, WINDOW = range(5)
#: Columns of ``LayerPass.per_t``.
TZERO, NONFINITE, EPS_SUM, EPS_SQ = range(4)


def sample_bytes(T: int, max_lag: Optional[int], pairs: bool) -> int:
    """Bytes the recorder keeps per sample, layer and backward pass: ``8 (5 T + T (K + 1))`` with pairs.

    >>> sample_bytes(6, None, True)       # 8 * (30 + 36)
    528
    """
    K = (T - 1) if max_lag is None else min(max_lag, T - 1)
    return 8 * (5 * T + (T * (K + 1) if pairs else 0))


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


def _sample_sq(z: torch.Tensor, n: int) -> torch.Tensor:
    """``[L, n]`` float64 squared L2 norms per leading index and sample of ``z`` ``[L, n, ...]``."""
    flat = z.reshape(z.shape[0], n, -1)
    return torch.linalg.vector_norm(flat, dim=2).double().square()


def _sample_count(z: torch.Tensor, n: int) -> torch.Tensor:
    """``[L, n]`` float64 counts of non-zero elements per leading index and sample."""
    return torch.count_nonzero(z.reshape(z.shape[0], n, -1), dim=2).double()


def stack_steps(tensors: List[torch.Tensor]) -> torch.Tensor:
    """``[T, ...]`` detached; without a copy when the T tensors are consecutive views of one tensor."""
    first = tensors[0]
    base = first._base
    if (base is not None and base.dim() == first.dim() + 1 and base.shape[0] == len(tensors)
            and all(t._base is base and t.data_ptr() == base[i].data_ptr() for i, t in enumerate(tensors))):
        return base.detach()
    return torch.stack([t.detach() for t in tensors])


def _prev_states(kind: NeuronKind, trace: NeuronTrace):
    if not kind.jacobian_needs_prev:
        return None
    return kind.State(*(stack_steps([getattr(s, f) for s in trace.prev]) for f in kind.State._fields))


# ----------------------------------------------------------------------------- finalize


@torch.no_grad()
def finalize(ps: LayerPass, *, pairs: bool, max_lag: Optional[int], keep: bool, given=None):
    """All ``delta[t]`` of the pass are known: compute everything on the device (no host sync).

    ``given = (g_out, P, temporal, delta)`` comes from a fused neuron's backward (the same adjoint).
    Returns ``(P, temporal)`` for the weight split.
    """
    trace, kind, p, k, T, n = ps.trace, ps.kind, ps.params, ps.k, ps.T, ps.n
    u = stack_steps(trace.u)
    jac = kind.jacobian(u, _prev_states(kind, trace), p, k)
    if given is not None:
        _, P, temporal, delta = given
    else:
        zeros = None
        if any(d is None for d in ps.deltas):
            zeros = torch.zeros_like(u)
        delta = torch.stack([zeros[t] if d is None else d for t, d in enumerate(ps.deltas)])
        P = jac.sg * ps.g_out if ps.g_out is not None else torch.zeros_like(u)
        temporal = temporal_from_delta(kind, jac, delta, ps.cut)
    eps = kind.eps(jac)
    eps[T - 1] = 0.0  # no step after the last
    for t in ps.cut:
        eps[t - 1] = 0.0

    per_sample = torch.empty(5, T, n, dtype=torch.float64, device=u.device)
    per_sample[SPATIAL] = _sample_sq(P, n)
    per_sample[TEMPORAL] = _sample_sq(temporal, n)
    per_sample[TOTAL] = _sample_sq(delta, n)
    per_sample[SPIKES] = trace.spikes.detach().reshape(T, n, -1).sum(2, dtype=torch.float64)
    per_sample[WINDOW] = _sample_count(jac.sg, n)
    numel = n * ps.E
    flat = lambda z: z.reshape(T, -1)  # noqa: E731
    per_t = torch.empty(T, 4, dtype=torch.float64, device=u.device)
    per_t[:, TZERO] = numel - torch.count_nonzero(flat(temporal), dim=1).double()
    per_t[:, NONFINITE] = numel - flat(torch.isfinite(delta)).sum(1, dtype=torch.float64)
    per_t[:, EPS_SUM] = flat(eps).sum(1, dtype=torch.float64)
    per_t[:, EPS_SQ] = torch.linalg.vector_norm(flat(eps), dim=1).double().square()
    ps.per_sample, ps.per_t = per_sample, per_t

    collected = [None] * T if (keep and pairs) else None
    if pairs:
        K = T - 1 if max_lag is None else min(max_lag, T - 1)
        pair_sq = torch.zeros(T, K + 1, n, dtype=torch.float64, device=u.device)

        def reduce(t, rows):
            pair_sq[t, : rows.shape[0]] = _sample_sq(rows, n)

        pair_transport(kind, jac, P, ps.cut, K, reduce, collected)
        ps.pair_sq = pair_sq
    if keep:
        ps.tensors = {"u": u, "delta": delta, "spatial": P, "temporal": temporal, "eps": eps}
        if collected is not None:
            ps.tensors["pairs"] = collected  # pairs[t][k] = pair[t, t+k]
    ps.done = True
    return P, temporal


# ----------------------------------------------------------------------------- weight split


def start_weight_split(ps: LayerPass, P: torch.Tensor, temporal: torch.Tensor) -> None:
    """Back-propagate ``P du/dx`` through the region (no hooks); with a region shared by another
    recorded layer also ``temporal du/dx`` (the main backward's total would mix the layers).

    Must run before the main backward reaches the region. Records an error message instead of raising
    when the region cannot be split (:class:`~.region.RegionError`, or its graph already freed).
    """
    region = ps.region
    ps.weight_names = [name for name, _ in region.params]
    gain = ps.kind.input_gain(ps.params, ps.k)
    scale = (lambda z: z) if (isinstance(gain, float) and gain == 1.0) else (lambda z: z * gain)  # noqa: E731
    try:
        g_s = region.vjp(scale(P))
        g_t = region.vjp(scale(temporal)) if ps.shared else None
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
        a, b = g_s.reshape(-1).double(), g_t.reshape(-1).double()
        rows.append(torch.stack([torch.dot(a, a), torch.dot(b, b), torch.dot(a, b)]))
    ps.weight_sq = torch.stack(rows) if rows else torch.zeros(0, 3, dtype=torch.float64, device=device)
