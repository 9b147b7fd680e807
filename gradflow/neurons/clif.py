"""CLIF (paper Eq. 19; the official ``ComplementaryLIFNeuron``): step, closed-form Jacobian, adjoint.

State ``(v, m)``: the potential after reset and the complementary potential. After the shared charge
and fire (:mod:`gradflow.neurons.params`), with ``k = 1/tau``::

    m[t] = m[t-1] * sigmoid(k u[t]) + s[t]
    v[t] = u[t] - s[t] * (theta + sigmoid(m[t]))        (s detached here with detach_reset)

Soft reset only. With ``m_grad=False`` (an ablation) ``m`` is computed as above but detached: no
gradient flows through it (``mu = vm = mm = 0``, ``vu = 1 - sg theta_r``). Jacobian, with ``q = sigmoid(k u)``, ``r = sigmoid(m[t])``, ``s_dr = s r (1 - r)``,
``kB = k m[t-1] q (1 - q)``, ``theta_r = theta + r`` (dropped with ``detach_reset``)::

    mu = dm[t]/du[t]   = sg + kB              mm = dm[t]/dm[t-1] = q
    vu = dv[t]/du[t]   = 1 - sg theta_r - s_dr mu
    vm = dv[t]/dm[t-1] = -s_dr q
    b  = (du[t+1]/dv[t], du[t+1]/dm[t]) = (a, 0)

The adjoint evaluates ``c . G`` and ``D^T G`` rearranged, with ``c_m = Gm - s_dr Gv`` shared::

    temporal[t] = Gv + sg (c_m - theta_r Gv) + kB c_m
    G[t-1]      = (a delta[t], q c_m)

(the same numbers as ``vu Gv + mu Gm`` and ``(a delta, vm Gv + mm Gm)``, in fewer passes over memory).
``eps[t] = a * vu[t]`` holds ``m[t-1]`` fixed.

>>> p = NeuronParams(tau=2.0)
>>> z = torch.zeros(1)
>>> s, st, u = clif_step(torch.tensor([1.2]), CLIFState(z, z), p)
>>> s.item(), round(st.m.item(), 4), round(st.v.item(), 4)      # m = 1, v = 1.2 - (1 + sigmoid(1))
(1.0, 1.0, -0.5311)
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch

from .chunks import chunk_slices
from .kind import AdjointStep, FusedForward, NeuronKind, register_kind
from .lif import _charge_into, _fire_into
from .params import NeuronParams, Scalar
from ..surrogate import surrogate_grad

__all__ = ["CLIFState", "CLIFJacobian", "CLIFKind", "CLIF_KIND", "clif_fire_reset", "clif_step"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward  # sigmoid_backward(g, y) = g * (1 - y) * y


class CLIFState(NamedTuple):
    """CLIF state after reset: membrane ``v`` and complementary potential ``m``, both ``[N, ...]``."""

    v: torch.Tensor
    m: torch.Tensor


class CLIFJacobian(NamedTuple):
    """One-step Jacobian of CLIF in factored form (module docstring); ``theta_r`` is None with
    ``detach_reset``; ``a = du[t+1]/dv[t]``."""

    sg: torch.Tensor
    s_dr: torch.Tensor
    theta_r: Optional[torch.Tensor]
    kB: torch.Tensor
    q: torch.Tensor
    a: Union[float, torch.Tensor]


def clif_fire_reset(u: torch.Tensor, state: CLIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """Fire and reset one CLIF step (paper Eq. 19): ``(s[t], CLIFState(v[t], m[t]))``.

    ``detach_reset`` detaches ``s`` in the ``v`` line only (the ``m`` line keeps it); ``m_grad=False``
    detaches ``m``.
    """
    k = p.inv_tau if inv_tau is None else inv_tau
    s = CLIF_KIND.fire(u, p)
    # complementary potential
    m = state.m * torch.sigmoid(u * k) + s
    if not p.m_grad:
        m = m.detach()
    # reset
    sr = s.detach() if p.detach_reset else s
    v = u - sr * (p.v_threshold + torch.sigmoid(m))
    return s, CLIFState(v, m)


def clif_step(x: torch.Tensor, state: CLIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """One CLIF step: ``(s[t], CLIFState(v[t], m[t]), u[t])``."""
    return CLIF_KIND.step(x, state, p, inv_tau)


class CLIFKind(NeuronKind):
    """CLIF: state ``(v, m)``, soft reset (module docstring)."""

    name = "clif"
    State = CLIFState
    Jacobian = CLIFJacobian
    soft_reset_only = True
    jacobian_needs_prev = True

    def fire_reset(self, u, state, p, k=None):
        return clif_fire_reset(u, state, p, k)

    # ------------------------------------------------------------------ Jacobian
    def _jacobian(self, u, m_prev, m, p, k, q=None) -> CLIFJacobian:
        """The Jacobian from ``u``, ``m[t-1]`` (None = 0) and optionally ``m[t]`` and ``q`` (recomputed if None)."""
        k = k.detach() if isinstance(k, torch.Tensor) else (p.inv_tau if k is None else k)
        sg = surrogate_grad(u - p.v_threshold, p.surrogate)
        s = _fire_into(torch.empty_like(u), u, p)
        if q is None:
            q = torch.mul(u, k).sigmoid_()
        if m is None:
            m = s if m_prev is None else torch.mul(m_prev, q).add_(s)
        r = torch.sigmoid(m)
        s_dr = _sigmoid_backward(s, r)
        theta_r = None if p.detach_reset else r.add_(p.v_threshold)
        if not p.m_grad:  # m is a constant: s_dr = q = 0 and kB = -sg, so that mu = sg + kB = 0
            zero = torch.zeros_like(u)
            return CLIFJacobian(sg, zero, theta_r, -sg, zero, self.charge_gain(p, k))
        if m_prev is None:
            kB = torch.zeros_like(u)
        else:
            kB = _sigmoid_backward(m_prev, q).mul_(k)
        return CLIFJacobian(sg, s_dr, theta_r, kB, q, self.charge_gain(p, k))

    def jacobian(self, u: torch.Tensor, prev: Optional[CLIFState], p: NeuronParams = NeuronParams(),
                 k: Optional[Scalar] = None) -> CLIFJacobian:
        """``CLIFJacobian`` at ``u`` and the states ``prev`` before the step (``prev.m`` is ``m[t-1]``)."""
        return self._jacobian(u, None if prev is None else prev.m, None, p, k)

    def dense(self, jac: CLIFJacobian):
        mu = jac.sg + jac.kB
        vu = 1.0 - jac.s_dr * mu
        if jac.theta_r is not None:
            vu = vu - jac.sg * jac.theta_r
        return {"vu": vu, "mu": mu, "vm": -jac.s_dr * jac.q, "mm": jac.q}

    # ------------------------------------------------------------------ adjoint
    def back(self, jac: CLIFJacobian, G, P=None, delta=None, out=None) -> AdjointStep:
        temporal = None
        c = None
        if G is not None:
            gv, gm = G
            c = gm - jac.s_dr * gv
            e = c if jac.theta_r is None else c - jac.theta_r * gv
            temporal = gv + jac.sg * e
            temporal = temporal.addcmul_(jac.kB, c)
        if delta is None:
            if temporal is None:
                delta = torch.zeros_like(jac.sg) if P is None else P
            elif P is None:
                delta = temporal
            else:
                delta = torch.add(P, temporal, out=out) if out is not None else P + temporal
        gm_prev = torch.zeros_like(delta) if c is None else jac.q * c
        return AdjointStep(temporal, delta, (delta * jac.a, gm_prev))

    # ------------------------------------------------------------------ fused backend
    def fused_forward(self, x: torch.Tensor, k: Scalar, p: NeuronParams, want_states: bool) -> FusedForward:
        """Saves ``u`` and ``m`` ``[T, N, ...]`` (``m[t]`` after step t); ``prev`` with ``want_states``."""
        if isinstance(k, torch.Tensor):
            k = float(k)
        T = x.shape[0]
        flat = x.reshape(T, -1)
        u_all = torch.empty_like(flat, memory_format=torch.contiguous_format)
        spikes, m_all = torch.empty_like(u_all), torch.empty_like(u_all)
        v_prev = torch.empty_like(u_all) if want_states else None
        m_prev_all = torch.empty_like(u_all) if want_states else None
        theta = p.v_threshold
        for sl in chunk_slices(flat):
            n = sl.stop - sl.start
            v, m = flat.new_zeros((n,)), flat.new_zeros((n,))
            q, vbuf, tmp = (torch.empty_like(v) for _ in range(3))
            for t in range(T):
                if v_prev is not None:
                    v_prev[t, sl].copy_(v)
                    m_prev_all[t, sl].copy_(m)
                u = _charge_into(u_all[t, sl], flat[t, sl], v, k, p, tmp)
                s = _fire_into(spikes[t, sl], u, p)
                # complementary potential m = m[t-1] sigmoid(u k) + s (mul, then add, as clif_fire_reset)
                torch.mul(u, k, out=q).sigmoid_()
                m = torch.mul(m, q, out=m_all[t, sl]).add_(s)
                # reset v = u - s (theta + sigmoid(m)): + and * commute, so the same bits
                r = torch.sigmoid(m, out=tmp).add_(theta).mul_(s)
                v = torch.sub(u, r, out=vbuf)
        shape = x.shape
        prev = None if v_prev is None else CLIFState(v_prev.view(shape), m_prev_all.view(shape))
        return FusedForward(spikes.view(shape), (u_all.view(shape), m_all.view(shape)), u_all.view(shape), prev)

    def fused_jacobian(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams, k: Scalar) -> CLIFJacobian:
        u_all, m_all = saved
        return self._jacobian(u_all[t], m_all[t - 1] if t > 0 else None, m_all[t], p, k)


CLIF_KIND = register_kind(CLIFKind())
