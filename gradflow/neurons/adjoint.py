"""The adjoint recursion of any neuron kind, written once (docs/theory.md, the decomposition).

A kind's :meth:`~gradflow.neurons.kind.NeuronKind.back` is one step of the reverse sweep::

    temporal[t] = c[t] . G[t]            G[t] = dL/dz[t], the gradient w.r.t. the state after step t
    delta[t]    = P[t] + temporal[t]     (or the recorded dL/du[t])
    G[t-1]      = b[t] delta[t] + D[t]^T G[t]

and the loops here run it for the three uses:

* :func:`sweep` — the fused backward (``delta = P + temporal``, :mod:`gradflow.neurons.fused`) and the
  recorder's temporal part of a recorded ``delta`` (:func:`temporal_from_delta`);
* :func:`pair_transport` — ``pair[t, t']``, the part of ``delta[t]`` that starts as ``P[t']`` and travels
  back through the state: the same step, batched over the live sources (``P = 0`` except at the source);
* truncation — ``cut`` holds the steps ``t`` whose incoming state was detached (:func:`cut_steps`):
  nothing is carried from ``t`` to ``t - 1``.

By linearity ``sum_{t' >= t} pair[t, t'] = delta[t]`` and ``pair[t, t] = P[t]``.

>>> from gradflow.neurons.lif import LIF_KIND
>>> from gradflow.neurons.params import NeuronParams
>>> u = torch.tensor([[1.2], [0.3], [1.05]]); p = NeuronParams(tau=2.0)
>>> jac = LIF_KIND.jacobian(u, None, p)                       # sg = [1, 0, 1] (rectangle, alpha 1)
>>> temporal = temporal_from_delta(LIF_KIND, lambda t: jacobian_at(jac, t), torch.tensor([[1.0], [0.5], [1.0]]), ())
>>> [None if z is None else z.tolist() for z in temporal]     # vu = 1 - sg: [0, 1, 0]
[[0.0], [0.5], None]
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from .kind import AdjointStep, NeuronKind, jacobian_at

__all__ = ["cut_steps", "sweep", "temporal_from_delta", "pair_transport", "PairCarry"]


def cut_steps(T: int, truncate: Optional[int]) -> Tuple[int, ...]:
    """The steps ``t`` (``0 < t < T``, ``t % truncate == 0``) whose incoming state is detached.

    >>> cut_steps(7, 3), cut_steps(7, None)
    ((3, 6), ())
    """
    if truncate is None:
        return ()
    return tuple(range(truncate, T, truncate))


def sweep(
    kind: NeuronKind,
    jac_at: Callable[[int], tuple],
    T: int,
    cut: Sequence[int] = (),
    *,
    P_at: Optional[Callable[[int, tuple], torch.Tensor]] = None,
    delta: Optional[torch.Tensor] = None,
    out: Optional[torch.Tensor] = None,
    ws: Optional[dict] = None,
    carry_bufs: Optional[Sequence[Sequence[torch.Tensor]]] = None,
) -> Iterator[Tuple[int, tuple, AdjointStep]]:
    """Run the adjoint from ``t = T-1`` down to 0; yields ``(t, jacobian at t, AdjointStep)``.

    ``jac_at(t)``: the kind's Jacobian at step t; ``P_at(t, jac)``: the spatial part ``P[t]``
    (``delta = P + temporal``), or ``delta`` ``[T, N, ...]``: a recorded ``dL/du`` (the temporal part is
    then computed from it). ``out`` ``[T, N, ...]`` receives ``P + temporal`` where both exist. With a
    workspace ``ws`` and two preallocated carries ``carry_bufs`` (each one tensor per state field) no
    step allocates; the yielded tensors are then valid until the next step.
    """
    cut = frozenset(cut)
    G = None
    for i, t in enumerate(range(T - 1, -1, -1)):
        jac = jac_at(t)
        step = kind.back(
            jac, G,
            P=None if P_at is None else P_at(t, jac),
            delta=None if delta is None else delta[t],
            out=None if out is None else out[t],
            carry_out=None if carry_bufs is None else carry_bufs[i % 2],
            ws=ws,
        )
        yield t, jac, step
        G = None if (t == 0 or t in cut) else step.carry


def temporal_from_delta(
    kind: NeuronKind,
    jac_at: Callable[[int], tuple],
    delta: Sequence[torch.Tensor],
    cut: Sequence[int],
) -> List[Optional[torch.Tensor]]:
    """``temporal[t]`` for ``t = 0..T-1`` from a recorded ``delta = dL/du`` (a ``[T, N, ...]`` tensor or a
    list of T step tensors) and the kind's Jacobian at each step (``jac_at(t)``).

    None stands for an exact 0: at ``t = T-1`` and at ``t - 1`` for every ``t`` in ``cut``. Entries the
    Jacobian cuts come out exactly 0.
    """
    T = len(delta)
    out: List[Optional[torch.Tensor]] = [None] * T
    for t, _, step in sweep(kind, jac_at, T, cut, delta=delta):
        out[t] = step.temporal
    return out


class PairCarry:
    """The pair transport of :func:`pair_transport` one step at a time, for a caller that runs its own
    reverse sweep (the recorder computes each step's Jacobian once, for both uses).

    Call :meth:`step` for ``t = T-1`` down to 0 with the Jacobian at ``t`` and ``P[t]``; it returns
    ``rows`` with ``rows[j] = pair[t, t+1+j]`` (possibly 0 rows) and then starts the source ``P[t]``.
    The carries live in two preallocated buffers of ``K`` rows per state field, shaped like ``like``.
    """

    def __init__(self, kind: NeuronKind, like: torch.Tensor, cut: Sequence[int], K: int):
        self.kind, self.cut, self.K = kind, frozenset(cut), K
        fields = len(kind.State._fields)
        shape = (K + 1,) + tuple(like.shape)
        self.bufs = [tuple(like.new_empty(shape) for _ in range(fields)) for _ in range(2)]
        self.live, self.cur = 0, 0  # rows 0..live-1 of bufs[cur]: the carry of the sources t+1 .. t+live

    def step(self, t: int, jac: tuple, P_t: torch.Tensor) -> torch.Tensor:
        """``pair[t, t+1 ..]`` through the step at ``t``; then ``P[t]`` becomes a live source."""
        kind, bufs, live = self.kind, self.bufs, self.live
        nxt = 1 - self.cur
        if live:
            G = tuple(b[:live] for b in bufs[self.cur])
            rows = kind.back(jac, G, carry_out=tuple(b[1:1 + live] for b in bufs[nxt])).delta
        else:
            rows = P_t.new_empty((0,) + tuple(P_t.shape))
        if t == 0 or t in self.cut or self.K == 0:
            self.live = 0
        else:
            kind.back(jac, None, P=P_t, carry_out=tuple(b[0] for b in bufs[nxt]))  # the new source, lag 0
            self.live, self.cur = min(live, self.K - 1) + 1, nxt  # sources more than K steps away are dropped
        return rows


def pair_transport(
    kind: NeuronKind,
    jac_at: Callable[[int], tuple],
    P: Sequence[torch.Tensor],
    cut: Sequence[int],
    K: int,
    reduce: Callable[[int, torch.Tensor], None],
    collect: Optional[List[Optional[torch.Tensor]]] = None,
) -> None:
    """Carry every source ``P[t']`` back through the state, all live sources at once.

    ``P``: ``[T, N, ...]`` (or a list of T steps); ``K``: the largest lag kept (sources further than K
    steps are dropped). For each ``t`` (from ``T-1`` down) calls ``reduce(t, rows)`` with
    ``rows[j] = pair[t, t+1+j]`` (lags ``1..j_max``, ``j_max = min(K, T-1-t)``; fewer after a cut, the
    missing pairs are 0; possibly 0 rows) - lag 0 is ``P[t]`` itself. With ``collect`` (a list of
    length T), ``collect[t]`` is ``[P[t], rows...]`` stacked. One :class:`PairCarry` step per ``t``.
    """
    T = len(P)
    if T == 0:
        return
    carry = PairCarry(kind, P[0], cut, K)
    for t in range(T - 1, -1, -1):
        rows = carry.step(t, jac_at(t), P[t])
        reduce(t, rows)
        if collect is not None:
            collect[t] = torch.cat([P[t].unsqueeze(0), rows])
