"""A neuron kind: one object that owns a neuron's step, its one-step Jacobian and its adjoint.

Every kind (LIF, PLIF, CLIF, and any kind added later) is a :class:`NeuronKind` instance registered in
:data:`KINDS`. It provides, for elementwise neurons with state ``z[t]`` (LIF: ``v``; CLIF: ``(v, m)``):

* the **step** ``(x[t], z[t-1]) -> (s[t], z[t], u[t])``, pure and differentiable: charge
  (:func:`~gradflow.neurons.params.charge`, shared), fire and the kind's reset (:meth:`NeuronKind.step`);
* its **closed-form one-step Jacobian** (:meth:`NeuronKind.jacobian`), evaluated elementwise on any
  leading dims (all ``T`` steps at once, or one step), as three pieces::

      b[t] = du[t]/dz[t-1]          (the charge; a = du[t]/dv[t-1] = gamma, 0 for m)
      c[t] = dz[t]/du[t]            (fire and reset)
      D[t] = dz[t]/dz[t-1] at fixed u[t]

  :meth:`NeuronKind.dense` names them (``vu = dv/du``, and for CLIF ``mu``, ``vm``, ``mm``), so tests
  compare them with autograd;
* the **adjoint step** (:meth:`NeuronKind.back`) that both the fused backward
  (:mod:`gradflow.neurons.fused`) and the recorder (:mod:`gradflow.recorder`) run, through the loops
  of :mod:`gradflow.neurons.adjoint`. With ``G[t] = dL/dz[t]`` arriving from later steps::

      temporal[t] = c[t] . G[t]                           (what reaches u[t] through the state)
      delta[t]    = P[t] + temporal[t]                    (or a recorded dL/du[t])
      G[t-1]      = b[t] delta[t] + D[t]^T G[t]

  ``P[t] = g_out[t] * sg(u[t] - theta)`` is the spatial part (docs/reference.md, What is recorded).
* the fused forward loop (:meth:`NeuronKind.fused_forward`, the same operations as :meth:`step` in the
  same order, so that both backends give the same bits) and the Jacobian of one step recomputed from
  what that loop saved (:meth:`NeuronKind.fused_jacobian`).

A kind is stateless: everything it computes comes from its arguments (``p`` a
:class:`~gradflow.neurons.params.NeuronParams`, ``k = 1/tau`` a float or, for a learned tau, a 0-d
tensor). Adding a kind means one new subclass and one :func:`register_kind` call (and its adapter and
theory); the modules, the fused backend and the recorder need no change.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from ..errors import UsageError
from .params import NeuronParams, Scalar, charge, charge_gain, fire, input_gain

__all__ = ["NeuronKind", "AdjointStep", "FusedForward", "KINDS", "register_kind", "get_kind", "jacobian_at", "buf",
           "delta_from", "takes_ws"]


def delta_from(P, temporal: Optional[torch.Tensor], like: torch.Tensor,
               out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``delta = P + temporal`` for an adjoint step. ``P`` is a tensor, None (0: pair transport), or a
    pair ``(g_out, sg)`` meaning ``P = g_out * sg`` (then one ``addcmul`` instead of two passes);
    ``temporal`` None is 0; ``out`` receives the sum when both parts exist (or the product)."""
    if isinstance(P, tuple):
        g, sg = P
        if temporal is None:
            return torch.mul(g, sg, out=out)
        return torch.addcmul(temporal, g, sg, out=out)
    if temporal is None:
        return torch.zeros_like(like) if P is None else P
    if P is None:
        return temporal
    return torch.add(P, temporal, out=out) if out is not None else P + temporal


def buf(ws: Optional[dict], name: str, like: torch.Tensor) -> Optional[torch.Tensor]:
    """The workspace tensor ``name`` shaped like ``like`` (created on first use), or None without a
    workspace. A workspace (a dict) lets the fused backward run every step in the same few
    cache-resident buffers; results written there are valid until the next call that uses ``ws``.
    With a tap, the fused backward points ``ws["temporal"]`` at its output row before each step, so a
    kind whose ``back`` writes the temporal part to ``buf(ws, "temporal", ...)`` writes it in place."""
    if ws is None:
        return None
    t = ws.get(name)
    if t is None or t.shape != like.shape or t.dtype != like.dtype:
        t = ws[name] = torch.empty_like(like, memory_format=torch.contiguous_format)
    return t


def takes_ws(method: Callable) -> bool:
    """Whether a kind's method accepts a workspace ``ws`` (a kind written before workspaces may not)."""
    return _takes_ws(getattr(method, "__func__", method))


@functools.lru_cache(maxsize=None)
def _takes_ws(fn: Callable) -> bool:
    try:
        return "ws" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class AdjointStep(NamedTuple):
    """One step of the reverse sweep (:meth:`NeuronKind.back`), all ``[..., N, ...]`` tensors.

    ``temporal``: ``c[t] . G[t]`` (None when no gradient arrived through the state: it is 0);
    ``delta``: ``dL/du[t]``; ``carry``: ``G[t-1] = dL/dz[t-1]`` through this step, a tuple with one
    tensor per state field (the kind's ``State`` order).
    """

    temporal: Optional[torch.Tensor]
    delta: torch.Tensor
    carry: Tuple[torch.Tensor, ...]


class FusedForward(NamedTuple):
    """What :meth:`NeuronKind.fused_forward` returns.

    ``spikes`` ``[T, N, ...]``; ``saved``: the tensors the backward needs (the kind decides; each
    ``[T, N, ...]``); ``u`` ``[T, N, ...]`` (one of ``saved``); ``prev``: with ``want_states`` a
    ``State`` of ``[T, N, ...]`` tensors, the state before each step, else None.
    """

    spikes: torch.Tensor
    saved: Tuple[torch.Tensor, ...]
    u: torch.Tensor
    prev: Optional[tuple]


def jacobian_at(jac: tuple, t) -> tuple:
    """Step ``t`` (an int or a slice) of a Jacobian evaluated on ``[T, N, ...]``: tensors are indexed on
    their first dim, 0-d tensors and floats (``a``) are kept."""
    return type(jac)(*(f[t] if isinstance(f, torch.Tensor) and f.dim() > 0 else f for f in jac))


class NeuronKind:
    """Base class of the neuron kinds (see the module docstring for the contract).

    Class attributes: ``name`` (the ``neuron`` column value), ``State`` (a NamedTuple of state tensors,
    ``v`` first), ``Jacobian`` (a NamedTuple with at least ``sg`` and ``a``), ``soft_reset_only``,
    ``learned_tau`` (the module learns ``k = 1/tau``; the fused backward then returns ``dL/dk``),
    ``jacobian_needs_prev`` (whether :meth:`jacobian` reads the state before the step),
    ``carry_needs_state`` (False when ``D = 0``: ``G[t-1]`` depends on ``delta[t]`` only, so the
    recorder's temporal part needs no sequential loop).
    """

    name: str = "?"
    State: type = tuple
    Jacobian: type = tuple
    soft_reset_only: bool = False
    learned_tau: bool = False
    jacobian_needs_prev: bool = False
    carry_needs_state: bool = True

    # ------------------------------------------------------------------ the step
    def init_state(self, like: torch.Tensor, p: NeuronParams) -> tuple:
        """The state before step 0, shaped like one step of input: ``v = v_rest`` (0, or ``v_reset``), others 0."""
        v = torch.zeros_like(like) if p.v_rest == 0.0 else torch.full_like(like, p.v_rest)
        zeros = [torch.zeros_like(like) for _ in self.State._fields[1:]]
        return self.State(v, *zeros)

    def charge(self, x: torch.Tensor, state: tuple, p: NeuronParams, k: Optional[Scalar] = None) -> torch.Tensor:
        """Charge ``u[t]`` from ``x[t]`` and the state before the step (shared charge on ``state.v``)."""
        return charge(x, state.v, p, k)

    def fire_reset(self, u: torch.Tensor, state: tuple, p: NeuronParams, k: Optional[Scalar] = None):
        """Fire and reset one step: ``(s[t], State after the step)`` from ``u[t]`` and the state before."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: tuple, p: NeuronParams, k: Optional[Scalar] = None):
        """One step, charge -> fire -> reset: ``(s[t], new_state, u[t])`` (differentiable)."""
        u = self.charge(x, state, p, k)
        s, new = self.fire_reset(u, state, p, k)
        return s, new, u

    def fire(self, u: torch.Tensor, p: NeuronParams) -> torch.Tensor:
        """``s = H(u - theta)`` with the surrogate gradient."""
        return fire(u, p)

    # ------------------------------------------------------------------ Jacobian
    def charge_gain(self, p: NeuronParams, k: Optional[Scalar] = None) -> Scalar:
        """``a = du[t+1]/dv[t]`` (``gamma``)."""
        return charge_gain(p, k)

    def input_gain(self, p: NeuronParams, k: Optional[Scalar] = None) -> Scalar:
        """``du[t]/dx[t]`` (1, or ``1/tau`` with ``decay_input``)."""
        return input_gain(p, k)

    def jacobian(self, u: torch.Tensor, prev: Optional[tuple], p: NeuronParams, k: Optional[Scalar] = None,
                 ws: Optional[dict] = None):
        """The closed-form one-step Jacobian at ``u`` (any shape) and the states ``prev`` before the step.

        Returns the kind's ``Jacobian`` NamedTuple of elementwise tensors (and the scalar ``a``);
        ``prev`` may be None when ``jacobian_needs_prev`` is False; ``ws`` a workspace (:func:`buf`).
        Never uses autograd.
        """
        raise NotImplementedError

    def dense(self, jac: tuple) -> Dict[str, torch.Tensor]:
        """The Jacobian's partials by name: ``vu = dv[t]/du[t]`` and, for a state ``(v, m)``,
        ``mu = dm[t]/du[t]``, ``vm = dv[t]/dm[t-1]``, ``mm = dm[t]/dm[t-1]`` (at fixed ``u[t]``)."""
        raise NotImplementedError

    def vu(self, jac: tuple, ws: Optional[dict] = None) -> torch.Tensor:
        """``dv[t]/du[t]`` alone (``dense(jac)["vu"]``; a kind with several partials may compute just this
        one, into the workspace ``ws`` when given: then valid until the next call with ``ws``)."""
        return self.dense(jac)["vu"]

    def vu_window(self, p: NeuronParams) -> Optional[float]:
        """``w`` when ``dv[t]/du[t]`` depends on ``u[t]`` only through ``|u[t] - theta| <= w`` (one value
        inside, one outside; ``math.inf``: one value everywhere), else None (the default: no such claim).
        The recorder's window sums then weight whole zones instead of elements
        (:func:`gradflow.recorder.transport.zone_vu`); a kind that answers must make it exact."""
        return None

    def eps(self, jac: tuple, ws: Optional[dict] = None) -> torch.Tensor:
        """One-step factor ``eps[t] = du[t+1]/du[t] = a * dv[t]/du[t]`` at fixed input (and fixed
        ``m[t-1]`` for CLIF); for the rectangle surrogate with ``alpha = theta`` LIF's is 0 or gamma.
        With a workspace ``ws`` the result lives in it (valid until the next call with ``ws``)."""
        vu = self.vu(jac, ws) if takes_ws(self.vu) else self.vu(jac)
        return torch.mul(vu, jac.a, out=buf(ws, "eps", vu))

    # ------------------------------------------------------------------ adjoint
    def back(self, jac: tuple, G: Optional[Sequence[torch.Tensor]], P: Optional[torch.Tensor] = None,
             delta: Optional[torch.Tensor] = None, out: Optional[torch.Tensor] = None,
             carry_out: Optional[Sequence[torch.Tensor]] = None, ws: Optional[dict] = None) -> AdjointStep:
        """One adjoint step at step t (module docstring): ``temporal``, ``delta`` and the carry to t-1.

        ``jac``: the Jacobian at step t; ``G``: ``dL/dz[t]`` from step t+1 (a tuple, or None for 0);
        ``delta``: a recorded ``dL/du[t]`` (the recorder), else ``delta = P + temporal`` (``P`` None
        counts as 0: pair transport; a pair ``(g_out, sg)`` stands for ``g_out * sg``, :func:`delta_from`). Leading dims broadcast (a batch of sources against one step).
        ``out`` receives ``P + temporal`` and ``carry_out`` (one tensor per state field) the carry,
        where given (preallocated buffers; the values are the same); ``ws`` a workspace for the
        intermediates (then ``temporal`` lives in it, valid until the next call).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ fused backend
    def fused_forward(self, x: torch.Tensor, k: Scalar, p: NeuronParams, want_states: bool) -> FusedForward:
        """All ``T`` steps without autograd, with exactly the operations of :meth:`step` (same bits)."""
        raise NotImplementedError

    def fused_jacobian(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams, k: Scalar,
                       ws: Optional[dict] = None):
        """The Jacobian at step ``t`` recomputed from the tensors :meth:`fused_forward` saved."""
        raise NotImplementedError

    def fused_v_prev(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams) -> torch.Tensor:
        """``v[t-1]`` recomputed from what :meth:`fused_forward` saved (for the gradient of a learned tau)."""
        raise NotImplementedError

    def check(self, p: NeuronParams) -> None:
        """Raise :class:`~gradflow.UsageError` if ``p`` is not defined for this kind."""
        if self.soft_reset_only and p.v_reset is not None:
            raise UsageError(f"{self.name.upper()} is defined with the soft reset only; leave v_reset unset (None).")
        if not p.m_grad and "m" not in self.State._fields:
            raise UsageError(f"m_grad applies to CLIF's complementary potential; {self.name.upper()} has no m.")

    def __repr__(self) -> str:
        return f"<neuron kind {self.name!r}>"


#: The registered kinds by name (``neuron`` column values).
KINDS: Dict[str, NeuronKind] = {}


def register_kind(kind: NeuronKind) -> NeuronKind:
    """Add ``kind`` to :data:`KINDS` under ``kind.name``; returns it."""
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> NeuronKind:
    """The registered kind called ``name`` (case-insensitive); :class:`~gradflow.UsageError` otherwise."""
    key = str(name).lower()
    if key not in KINDS:
        raise UsageError(f"Unknown neuron {name!r}; choose one of {', '.join(KINDS)}.")
    return KINDS[key]
