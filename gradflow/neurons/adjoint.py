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
>>> temporal_from_delta(LIF_KIND, jac, torch.tensor([[1.0], [0.5], [1.0]]), ())[:, 0].tolist()
[0.0, 0.5, 0.0]
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from .kind import AdjointStep, NeuronKind, jacobian_at

__all__ = ["cut_steps", "sweep", "temporal_from_delta", "pair_transport"]


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
) -> Iterator[Tuple[int, tuple, AdjointStep]]:
    """Run the adjoint from ``t = T-1`` down to 0; yields ``(t, jacobian at t, AdjointStep)``.

    ``jac_at(t)``: the kind's Jacobian at step t; ``P_at(t, jac)``: the spatial part ``P[t]``
    (``delta = P + temporal``), or ``delta`` ``[T, N, ...]``: a recorded ``dL/du`` (the temporal part is
    then computed from it). ``out`` ``[T, N, ...]`` receives ``P + temporal`` where both exist.
    """
    cut = frozenset(cut)
    G = None
    for t in range(T - 1, -1, -1):
        jac = jac_at(t)
        step = kind.back(
            jac, G,
            P=None if P_at is None else P_at(t, jac),
            delta=None if delta is None else delta[t],
            out=None if out is None else out[t],
        )
        yield t, jac, step
        G = None if (t == 0 or t in cut) else step.carry


def temporal_from_delta(kind: NeuronKind, jac: tuple, delta: torch.Tensor, cut: Sequence[int]) -> torch.Tensor:
    """``temporal[t]`` ``[T, N, ...]`` from a recorded ``delta = dL/du`` and the Jacobian of all steps.

    ``temporal[T-1] = 0``, and ``temporal[t-1] = 0`` for every ``t`` in ``cut``. Entries the Jacobian
    cuts come out exactly 0. A kind without memory at fixed ``u`` (``D = 0``: LIF) needs no sequential
    loop: ``G[t] = a * delta[t+1]`` for all ``t`` at once.
    """
    T = delta.shape[0]
    out = torch.zeros_like(delta)
    if T < 2:
        return out
    if not kind.carry_needs_state:  # D = 0: G[t] depends on delta[t+1] only
        G = kind.back(jacobian_at(jac, slice(1, T)), None, delta=delta[1:]).carry
        step = kind.back(jacobian_at(jac, slice(0, T - 1)), G, delta=delta[:-1])
        out[:-1] = step.temporal
        for t in cut:
            out[t - 1] = 0.0
        return out
    for t, _, step in sweep(kind, lambda i: jacobian_at(jac, i), T, cut, delta=delta):
        if step.temporal is not None:
            out[t] = step.temporal
    return out


def pair_transport(
    kind: NeuronKind,
    jac: tuple,
    P: torch.Tensor,
    cut: Sequence[int],
    K: int,
    reduce: Callable[[int, torch.Tensor], None],
    collect: Optional[List[Optional[torch.Tensor]]] = None,
) -> None:
    """Carry every source ``P[t']`` back through the state; ``reduce(t, rows)`` with ``rows[j] = pair[t, t+j]``.

    ``P`` ``[T, N, ...]``, ``jac`` the Jacobian of all steps, ``K`` the largest lag kept (sources further
    than ``K`` steps are dropped). ``rows`` is ``[j + 1, N, ...]`` with ``j = min(K, T-1-t)``, fewer after a
    cut (the missing pairs are 0). With ``collect`` (a list of length T), ``collect[t] = rows``.
    """
    cut = frozenset(cut)
    T = P.shape[0]
    G = None  # carry of the live sources t+1 .. t+K (leading dim), a tuple like the state
    for t in range(T - 1, -1, -1):
        jt = jacobian_at(jac, t)
        src = kind.back(jt, None, P=P[t])  # the new source at lag 0
        if G is None:
            rows = P[t].unsqueeze(0)
            carry = tuple(c.unsqueeze(0) for c in src.carry)
        else:
            old = kind.back(jt, G)  # temporal = delta = pair[t, t+1 ..]
            rows = torch.cat([P[t].unsqueeze(0), old.delta])
            carry = tuple(torch.cat([a.unsqueeze(0), b]) for a, b in zip(src.carry, old.carry))
        reduce(t, rows)
        if collect is not None:
            collect[t] = rows
        G = None if (t == 0 or t in cut or K == 0) else tuple(c[:K] for c in carry)
