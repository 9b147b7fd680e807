"""CLIF (paper Eq. 19; the official ``ComplementaryLIFNeuron``): step, closed-form Jacobian, adjoint.

State ``(v, m)``: the potential after reset and the complementary potential. After the shared charge
and fire (:mod:`gradflow.neurons.params`), with ``k = 1/tau``::

    m[t] = s[t] + m[t-1] * sigmoid(k u[t])             (one addcmul)
    v[t] = u[t] - s[t] * (sigmoid(m[t]) + theta)        (one addcmul; s detached here with detach_reset)

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
from .kind import AdjointStep, FusedForward, NeuronKind, buf, delta_from, register_kind
from .lif import _charge_into, _fire_into
from .params import NeuronParams, Scalar
from ..surrogate import surrogate_grad

__all__ = ["CLIFState", "CLIFJacobian", "CLIFKind", "CLIF_KIND", "clif_fire_reset", "clif_step"]

def _sigmoid_backward(g: torch.Tensor, y: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``g * (1 - y) * y`` in one pass (into ``out`` when given)."""
    if out is None:
        return torch.ops.aten.sigmoid_backward(g, y)
    return torch.ops.aten.sigmoid_backward(g, y, grad_input=out)


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
    # complementary potential m = s + m[t-1] sigmoid(k u) (one addcmul, as the fused loop)
    m = torch.addcmul(s, state.m, torch.sigmoid(u * k))
    if not p.m_grad:
        m = m.detach()
    # reset v = u - s (sigmoid(m) + theta)
    sr = s.detach() if p.detach_reset else s
    v = torch.addcmul(u, sr, torch.sigmoid(m) + p.v_threshold, value=-1.0)
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
    def _jacobian(self, u, m_prev, m, p, k, q=None, ws=None) -> CLIFJacobian:
        """The Jacobian from ``u``, ``m[t-1]`` (None = 0) and optionally ``m[t]`` and ``q`` (recomputed if
        None); ``ws`` a workspace (:func:`~.kind.buf`)."""
        k = k.detach() if isinstance(k, torch.Tensor) else (p.inv_tau if k is None else k)
        theta = p.v_threshold
        d = torch.sub(u, theta, out=buf(ws, "d", u))
        s = _fire_into(buf(ws, "s", u) if ws is not None else torch.empty_like(u), u, p)
        if p.surrogate.name == "rectangle":  # sg from d in place: |u - theta| <= alpha/2, over alpha
            sg = torch.le(d.abs_(), p.surrogate.alpha / 2, out=d)
            if p.surrogate.alpha != 1.0:
                sg.mul_(1.0 / p.surrogate.alpha)
        else:
            sg = surrogate_grad(d, p.surrogate)
        if q is None:
            q = torch.mul(u, k, out=buf(ws, "q", u)).sigmoid_()
        if m is None:
            m = s if m_prev is None else torch.addcmul(s, m_prev, q, out=buf(ws, "m", u))
        r = torch.sigmoid(m, out=buf(ws, "r", u))
        s_dr = _sigmoid_backward(s, r, buf(ws, "s_dr", u))
        theta_r = None if p.detach_reset else r.add_(theta)
        a = self.charge_gain(p, k)
        if not p.m_grad:  # m is a constant: s_dr = q = 0 and kB = -sg, so that mu = sg + kB = 0
            zero = torch.zeros_like(u)
            return CLIFJacobian(sg, zero, theta_r, -sg, zero, a)
        kB = buf(ws, "kB", u)
        if m_prev is None:
            kB = torch.zeros_like(u) if kB is None else kB.zero_()
        else:
            kB = _sigmoid_backward(m_prev, q, kB).mul_(k)
        return CLIFJacobian(sg, s_dr, theta_r, kB, q, a)

    def jacobian(self, u: torch.Tensor, prev: Optional[CLIFState], p: NeuronParams = NeuronParams(),
                 k: Optional[Scalar] = None, ws: Optional[dict] = None) -> CLIFJacobian:
        """``CLIFJacobian`` at ``u`` and the states ``prev`` before the step (``prev.m`` is ``m[t-1]``)."""
        return self._jacobian(u, None if prev is None else prev.m, None, p, k, ws=ws)

    def dense(self, jac: CLIFJacobian):
        mu = jac.sg + jac.kB
        return {"vu": self._vu(jac, mu), "mu": mu, "vm": -jac.s_dr * jac.q, "mm": jac.q}

    def vu(self, jac: CLIFJacobian, ws: Optional[dict] = None) -> torch.Tensor:
        # the recorder needs dv/du at every step (eps, the window model): without vm, mm
        return self._vu(jac, torch.add(jac.sg, jac.kB, out=buf(ws, "mu", jac.sg)), ws)

    @staticmethod
    def _vu(jac: CLIFJacobian, mu: torch.Tensor, ws: Optional[dict] = None) -> torch.Tensor:
        """``dv[t]/du[t] = 1 - s_dr mu - sg theta_r`` (module docstring), in that order of operations
        (``1 - x`` written as ``-x + 1``: the same bits); ``mu`` is overwritten when ``ws`` is given."""
        vu = torch.mul(jac.s_dr, mu, out=buf(ws, "vu", mu)).neg_().add_(1.0)
        if jac.theta_r is not None:
            vu.sub_(torch.mul(jac.sg, jac.theta_r, out=mu if ws is not None else None))
        return vu

    # ------------------------------------------------------------------ adjoint
    def back(self, jac: CLIFJacobian, G, P=None, delta=None, out=None, carry_out=None, ws=None) -> AdjointStep:
        temporal = None
        c = None
        if G is not None:
            gv, gm = G
            c = torch.addcmul(gm, jac.s_dr, gv, value=-1.0, out=buf(ws, "c", gv))  # c = Gm - s_dr Gv
            e = c if jac.theta_r is None else torch.addcmul(c, jac.theta_r, gv, value=-1.0, out=buf(ws, "e", gv))
            temporal = torch.addcmul(gv, jac.sg, e, out=buf(ws, "temporal", gv))  # Gv + sg e + kB c
            temporal.addcmul_(jac.kB, c)
        if delta is None:
            delta = delta_from(P, temporal, jac.sg, out)
        if carry_out is None:
            gv_prev = delta * jac.a
            gm_prev = torch.zeros_like(delta) if c is None else jac.q * c
        else:
            gv_prev = torch.mul(delta, jac.a, out=carry_out[0])
            gm_prev = carry_out[1].zero_() if c is None else torch.mul(jac.q, c, out=carry_out[1])
        return AdjointStep(temporal, delta, (gv_prev, gm_prev))

    # ------------------------------------------------------------------ fused backend
    def fused_forward(self, x: torch.Tensor, k: Scalar, p: NeuronParams, want_states: bool) -> FusedForward:
        """Saves ``u``, ``m`` (``m[t]`` after step t) and ``q = sigmoid(k u)``, each ``[T, N, ...]`` (so the
        backward needs one sigmoid per step, not two); ``prev`` with ``want_states``.

        With ``want_states`` no state is copied: ``v`` and ``m`` are written into ``[T + 1, N]`` tensors
        whose row 0 is the initial 0, so that rows ``0..T-1`` are the states before each step and
        ``m``'s rows ``1..T`` are what the backward saves (views of one storage)."""
        if isinstance(k, torch.Tensor):
            k = float(k)
        T = x.shape[0]
        flat = x.reshape(T, -1)
        u_all = torch.empty_like(flat, memory_format=torch.contiguous_format)
        spikes, q_all = torch.empty_like(u_all), torch.empty_like(u_all)
        if want_states:  # row 0: the state before step 0
            v_ext, m_ext = (flat.new_empty((T + 1,) + tuple(u_all.shape[1:])) for _ in range(2))
            v_ext[0].zero_()
            m_ext[0].zero_()
            m_all = m_ext[1:]
        else:
            v_ext = m_ext = None
            m_all = torch.empty_like(u_all)
        theta = p.v_threshold
        for sl in chunk_slices(flat):
            n = sl.stop - sl.start
            if want_states:
                v, m, vbuf = v_ext[0, sl], m_ext[0, sl], None
            else:
                v, m = flat.new_zeros((n,)), flat.new_zeros((n,))
                vbuf = torch.empty_like(v)
            tmp = torch.empty_like(u_all[0, sl])
            for t in range(T):
                u = _charge_into(u_all[t, sl], flat[t, sl], v, k, p, tmp)
                s = _fire_into(spikes[t, sl], u, p)
                # complementary potential m = s + m[t-1] sigmoid(u k) (the ops of clif_fire_reset)
                q = torch.mul(u, k, out=q_all[t, sl]).sigmoid_()
                m = torch.addcmul(s, m, q, out=m_all[t, sl])
                # reset v = u - s (sigmoid(m) + theta)
                r = torch.sigmoid(m, out=tmp).add_(theta)
                v = torch.addcmul(u, s, r, value=-1.0, out=vbuf if v_ext is None else v_ext[t + 1, sl])
        shape = x.shape
        prev = None if v_ext is None else CLIFState(v_ext[:T].view(shape), m_ext[:T].view(shape))
        saved = (u_all.view(shape), m_all.view(shape), q_all.view(shape))
        return FusedForward(spikes.view(shape), saved, u_all.view(shape), prev)

    def fused_jacobian(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams, k: Scalar,
                       ws: Optional[dict] = None) -> CLIFJacobian:
        u_all, m_all, q_all = saved
        return self._jacobian(u_all[t], m_all[t - 1] if t > 0 else None, m_all[t], p, k, q=q_all[t], ws=ws)


CLIF_KIND = register_kind(CLIFKind())
