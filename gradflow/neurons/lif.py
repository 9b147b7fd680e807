"""LIF and PLIF (paper Eqs. 1-3): the step, the closed-form Jacobian and the adjoint of one kind.

State ``v`` (the potential after reset). After the shared charge and fire
(:mod:`gradflow.neurons.params`) the reset is::

    v[t] = u[t] - theta * s[t]                          soft (v_reset None, the default)
    v[t] = (1 - s[t]) * u[t] + s[t] * v_reset           hard

with ``s[t]`` detached in this line when ``detach_reset``. Jacobian (``sg = sg(u[t] - theta)``,
``a = gamma``)::

    vu = dv[t]/du[t] = 1 - theta * sg                   soft      (1 with detach_reset)
                     = (1 - s) + (v_reset - u) * sg     hard      (1 - s with detach_reset)
    b  = du[t+1]/dv[t] = a,    D = dv[t+1]/dv[t] at fixed u[t+1] = 0

so the adjoint is ``temporal[t] = vu[t] * G[t]``, ``G[t-1] = a * delta[t]``. For the rectangle
surrogate ``theta * sg`` is computed as ``(theta / alpha) * window``, so that with ``alpha = theta``
``vu`` is exactly 0 inside the window and ``eps = a * vu`` takes only the values 0 and gamma.

PLIF is LIF with ``k = 1/tau = sigmoid(w)`` learned (:class:`PLIFKind`); an IF neuron is LIF with
``tau = inf`` (``k = 0``, ``gamma = 1``).

>>> p = NeuronParams(tau=2.0)
>>> s, st, u = lif_step(torch.tensor([1.2], dtype=torch.float64), LIFState(torch.zeros(1, dtype=torch.float64)), p)
>>> s.item(), st.v.item(), u.item()
(1.0, 0.19999999999999996, 1.2)
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch

from ..surrogate import primitive, surrogate_grad
from .kind import AdjointStep, FusedForward, NeuronKind, buf, delta_from, register_kind
from .params import NeuronParams, Scalar, charge_dk
from .chunks import chunk_slices

__all__ = ["LIFState", "LIFJacobian", "LIFKind", "PLIFKind", "LIF_KIND", "PLIF_KIND", "lif_fire_reset", "lif_step",
           "surrogate_window"]


class LIFState(NamedTuple):
    """LIF (and PLIF) state after reset: ``v`` of shape ``[N, ...]``."""

    v: torch.Tensor


class LIFJacobian(NamedTuple):
    """One-step Jacobian of LIF: ``sg = sg(u - theta)``, ``vu = dv[t]/du[t]``, ``a = du[t+1]/dv[t]``."""

    sg: torch.Tensor
    vu: torch.Tensor
    a: Union[float, torch.Tensor]


def lif_fire_reset(u: torch.Tensor, state: LIFState, p: NeuronParams):
    """Fire and reset one LIF step: ``(s[t], LIFState(v[t]))`` (``state`` unused, uniform signature)."""
    s = LIF_KIND.fire(u, p)
    # reset (detach_reset cuts the gradient of s in this line only)
    sr = s.detach() if p.detach_reset else s
    if p.v_reset is None:
        v = u - p.v_threshold * sr
    else:
        v = (1.0 - sr) * u + sr * p.v_reset
    return s, LIFState(v)


def lif_step(x: torch.Tensor, state: LIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """One LIF step: ``(s[t], LIFState(v[t]), u[t])``; ``inv_tau`` overrides ``1/p.tau`` (PLIF)."""
    return LIF_KIND.step(x, state, p, inv_tau)


def surrogate_window(u: torch.Tensor, p: NeuronParams, ws: Optional[dict] = None):
    """``(sg, theta * sg)`` at ``u`` (any shape). For the rectangle surrogate both come from the window
    indicator ``|u - theta| <= alpha/2``: ``sg = window / alpha``, ``theta * sg = (theta / alpha) *
    window`` (exactly 1 in the window when ``alpha = theta``). ``ws``: a workspace (:func:`~.kind.buf`)."""
    sur, theta = p.surrogate, p.v_threshold
    d = torch.sub(u, theta, out=buf(ws, "d", u))
    if sur.name == "rectangle":
        win = torch.le(d.abs_(), sur.alpha / 2, out=buf(ws, "win", u) if ws is not None else d)
        sg = win if sur.alpha == 1.0 else torch.mul(win, 1.0 / sur.alpha, out=buf(ws, "sg", u))
        ratio = theta / sur.alpha
        return sg, (win if ratio == 1.0 else torch.mul(win, ratio, out=buf(ws, "theta_sg", u)))
    sg = surrogate_grad(d, sur)
    return sg, (sg if theta == 1.0 else torch.mul(sg, theta, out=buf(ws, "theta_sg", u)))


class LIFKind(NeuronKind):
    """LIF: state ``v``, soft or hard reset (module docstring)."""

    name = "lif"
    State = LIFState
    Jacobian = LIFJacobian
    carry_needs_state = False

    def fire_reset(self, u, state, p, k=None):
        return lif_fire_reset(u, state, p)

    # ------------------------------------------------------------------ Jacobian
    def jacobian(self, u: torch.Tensor, prev=None, p: NeuronParams = NeuronParams(), k: Optional[Scalar] = None,
                 ws: Optional[dict] = None):
        """``LIFJacobian(sg, vu, a)`` at ``u`` (any shape); ``prev`` is not needed."""
        sg, theta_sg = surrogate_window(u, p, ws)
        vu = buf(ws, "vu", u)
        if p.v_reset is None:
            if p.detach_reset:
                vu = torch.ones_like(u) if vu is None else vu.fill_(1.0)
            else:  # 1 - theta sg, written as -theta sg + 1 (the same bits)
                vu = torch.neg(theta_sg, out=vu).add_(1.0)
        else:
            s = _fire_into(torch.empty_like(u) if vu is None else vu, u, p)
            vu = torch.neg(s, out=s).add_(1.0)  # 1 - s
            if not p.detach_reset:  # + (v_reset - u) sg
                vu.addcmul_(torch.neg(u, out=buf(ws, "vr_u", u)).add_(p.v_reset), sg)
        return LIFJacobian(sg, vu, self.charge_gain(p, k))

    def dense(self, jac: LIFJacobian):
        return {"vu": jac.vu}

    def vu_window(self, p: NeuronParams) -> Optional[float]:
        """Soft reset: ``vu = 1 - theta sg`` is 1 everywhere with ``detach_reset`` (``inf``), and for the
        rectangle surrogate one value inside its window ``|u - theta| <= alpha/2`` and 1 outside
        (:func:`surrogate_window`); None for other surrogates and for the hard reset (``vu`` then
        depends on ``u`` itself, and for a subclass with its own :meth:`jacobian`, which must answer for
        itself)."""
        if p.v_reset is not None or type(self).jacobian is not LIFKind.jacobian:
            return None
        if p.detach_reset:
            return math.inf
        return p.surrogate.alpha / 2 if p.surrogate.name == "rectangle" else None

    # ------------------------------------------------------------------ adjoint
    def back(self, jac: LIFJacobian, G, P=None, delta=None, out=None, carry_out=None, ws=None) -> AdjointStep:
        temporal = None if G is None else torch.mul(jac.vu, G[0], out=buf(ws, "temporal", G[0]))
        if delta is None:
            delta = delta_from(P, temporal, jac.vu, out)
        gv = delta * jac.a if carry_out is None else torch.mul(delta, jac.a, out=carry_out[0])
        return AdjointStep(temporal, delta, (gv,))

    # ------------------------------------------------------------------ fused backend
    def fused_forward(self, x: torch.Tensor, k: Scalar, p: NeuronParams, want_states: bool) -> FusedForward:
        """Saves ``u`` ``[T, N, ...]`` only; ``prev = LIFState(v[t-1] for every t)`` with ``want_states``
        (``v`` then written into a ``[T + 1, N]`` tensor whose row 0 is the initial state: no copy)."""
        T = x.shape[0]
        flat = x.reshape(T, -1)
        u_all = torch.empty_like(flat, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(u_all)
        v_ext = None
        if want_states:
            v_ext = flat.new_empty((T + 1,) + tuple(u_all.shape[1:]))
            v_ext[0].zero_() if p.v_rest == 0.0 else v_ext[0].fill_(p.v_rest)  # +0.0 for -0.0, as init_state
        fast_soft = p.v_reset is None and not p.smooth
        for sl in chunk_slices(flat):
            n = sl.stop - sl.start
            if v_ext is not None:  # v[t] goes straight into row t + 1
                v, buf_v = v_ext[0, sl], None
            else:
                v = flat.new_full((n,), p.v_rest) if p.v_rest != 0.0 else flat.new_zeros((n,))
                buf_v = torch.empty_like(v)
            tmp = torch.empty_like(u_all[0, sl])
            for t in range(T):
                vbuf = buf_v if v_ext is None else v_ext[t + 1, sl]
                u = _charge_into(u_all[t, sl], flat[t, sl], v, k, p, tmp)
                s = _fire_into(spikes[t, sl], u, p)
                # reset
                if fast_soft:  # theta * s is exact for s in {0, 1}: u - theta s in one pass, same bits
                    v = torch.sub(u, s, alpha=p.v_threshold, out=vbuf)
                elif p.v_reset is None:
                    v = torch.sub(u, torch.mul(s, p.v_threshold, out=tmp), out=vbuf)
                else:  # (1 - s) u + s v_reset
                    torch.neg(s, out=tmp).add_(1.0).mul_(u)  # -s + 1 == 1 - s exactly
                    v = torch.mul(s, p.v_reset, out=vbuf).add_(tmp)
        shape = x.shape
        prev = None if v_ext is None else LIFState(v_ext[:T].view(shape))
        return FusedForward(spikes.view(shape), (u_all.view(shape),), u_all.view(shape), prev)

    def fused_jacobian(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams, k: Scalar,
                       ws: Optional[dict] = None) -> LIFJacobian:
        return self.jacobian(saved[0][t], None, p, k, ws)

    def fused_v_prev(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams) -> torch.Tensor:
        u_all = saved[0]
        if t == 0:
            return torch.full_like(u_all[0], p.v_rest)
        up = u_all[t - 1]
        s = _fire_into(torch.empty_like(up), up, p)
        if p.v_reset is None:
            return up - p.v_threshold * s
        return (1.0 - s) * up + s * p.v_reset


class PLIFKind(LIFKind):
    """PLIF: LIF whose ``k = 1/tau = sigmoid(w)`` is learned (the fused backward returns ``dL/dk``)."""

    name = "plif"
    learned_tau = True


def _charge_into(out: torch.Tensor, x_t: torch.Tensor, v: torch.Tensor, k: Scalar, p: NeuronParams,
                 tmp: torch.Tensor) -> torch.Tensor:
    """:func:`~gradflow.neurons.params.charge` written into ``out``: the same operations in the same
    order (so the same bits); ``tmp`` is scratch of ``out``'s shape."""
    if p.decay_input:  # v + (x - (v - v_rest)) * k
        torch.sub(v, p.v_rest, out=tmp)
        torch.sub(x_t, tmp, out=tmp).mul_(k)
        return torch.add(v, tmp, out=out)
    if p.v_reset is not None:  # v - (v - v_reset) * k + x
        torch.sub(v, p.v_reset, out=tmp).mul_(k)
        return torch.sub(v, tmp, out=out).add_(x_t)
    if isinstance(k, torch.Tensor):  # v * (1 - k) + x
        return torch.mul(v, 1.0 - k, out=out).add_(x_t)
    return torch.add(x_t, v, alpha=1.0 - k, out=out)  # x + gamma v


def _fire_into(out: torch.Tensor, u: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """``s = H(u - theta)`` written into ``out``. ``u >= theta`` equals ``(u - theta) >= 0`` exactly in
    IEEE arithmetic (a rounded difference keeps its sign and is 0 only for equal operands), and a
    float-typed comparison output avoids a slow bool round trip."""
    if p.smooth:
        return out.copy_(primitive(u - p.v_threshold, p.surrogate))
    return (torch.ge if p.fire_at_threshold else torch.gt)(u, p.v_threshold, out=out)


def fused_charge_dk(saved: Sequence[torch.Tensor], x: Optional[torch.Tensor], t: int, kind: LIFKind,
                    p: NeuronParams) -> torch.Tensor:
    """``du[t]/dk`` for the fused backward of a learned tau (``x[t]`` needed with ``decay_input`` only)."""
    return charge_dk(None if x is None else x[t], kind.fused_v_prev(saved, t, p), p)


LIF_KIND = register_kind(LIFKind())
PLIF_KIND = register_kind(PLIFKind())
