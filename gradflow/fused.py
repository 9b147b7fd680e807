"""Fused multi-step LIF/PLIF and CLIF: one autograd node for all ``T`` steps (SPEC §1).

The autograd path of :mod:`gradflow.neurons` (``backend='torch'``) records every elementwise op of
every step: each step saves several ``[N, ...]`` tensors and the backward walks a graph of ``~10 T``
nodes. The functions here run the same equations with the graph switched off and differentiate them
by hand:

* **forward** runs the ``T`` steps with exactly the ops (and op order) of the step functions in
  :mod:`gradflow.neurons`, so outputs are bit-identical. It saves only ``u[t]`` (LIF, PLIF) or
  ``u[t]`` and ``m[t]`` (CLIF, with ``m[-1] = 0`` in front), each ``[T, N, ...]``; everything else
  (spikes, surrogate, sigmoids, Jacobians) is recomputed step by step in the backward.
* **backward** is the recursion of :mod:`gradflow.recorder`, with the closed-form partials of one
  step (``x = u[t] - theta``, ``sg = sg(x)``, ``s = H(x)``, ``a = du[t+1]/dv[t] = 1 - 1/tau``)::

      P[t]        = g_out[t] * sg                                    (spatial)
      temporal[t] = Jvu[t] Gv[t] + Jmu[t] Gm[t]                      (0 at t = T-1)
      delta[t]    = P[t] + temporal[t]                               (= dL/du[t])
      Gv[t-1]     = a * delta[t]                                     (= dL/dv[t-1])
      Gm[t-1]     = Jvm[t] Gv[t] + Jmm[t] Gm[t]                      (CLIF: dL/dm[t-1])
      grad_x[t]   = delta[t] * du/dx                                 (1, or 1/tau with decay_input)

  LIF: ``Jvu = 1 - theta sg`` (soft), ``(1 - s) + (v_reset - u) sg`` (hard); with
  ``detach_reset`` the ``sg`` terms of the reset drop out (``1`` and ``1 - s``).
  CLIF, with ``q = sigmoid(u/tau)``, ``m = m[t-1] q + s``, ``r = sigmoid(m)``, ``r' = r (1 - r)``:
  ``Jmu = m[t-1] q (1 - q) / tau + sg``, ``Jmm = q``, ``Jvu = 1 - sg_r (theta + r) - s r' Jmu``,
  ``Jvm = -s r' q``, where ``sg_r = 0`` with ``detach_reset`` and ``sg`` without. The code
  evaluates them rearranged, with ``B = m[t-1] q (1 - q)`` (so ``Jmu = sg + B/tau``),
  ``c = Gm - s r' Gv`` and ``e = c - (theta + r) Gv`` (``e = c`` with ``detach_reset``):
  ``temporal = Gv + sg e + B c / tau`` and ``Gm[t-1] = q c`` (fewer passes over memory; equal up
  to rounding).
  PLIF's ``k = 1/tau = sigmoid(w)`` is a tensor input: ``dL/dk = sum_t delta[t] du[t]/dk`` with
  ``du/dk = -v[t-1]`` (or ``x[t] - (v[t-1] - v_reset0)`` with ``decay_input``).

``truncate=k`` cuts ``Gv`` and ``Gm`` at every step ``t > 0`` with ``t % k == 0`` (the state entering
that step was detached in the autograd path).

A *tap* (a plain list, possibly empty when the function is called and filled later) lets an observer
see the decomposition without hooks: after the backward has computed everything it calls every
``fn`` in the list as ``fn(g_out, P, temporal, delta)`` (device tensors ``[T, N, ...]``; no host
synchronisation).

>>> import torch
>>> from gradflow.neurons import NeuronParams
>>> x = torch.tensor([[1.2], [0.2], [0.9]], requires_grad=True)
>>> s = lif_multistep(x, 0.5, NeuronParams(tau=2.0))
>>> s[:, 0].tolist()
[1.0, 0.0, 1.0]
>>> s.sum().backward(); x.grad[:, 0].tolist()          # same as LIF(tau=2.0) through autograd
[1.0, 0.5, 1.0]
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from .neurons import NeuronParams
from .surrogate import Surrogate, primitive, surrogate_grad

__all__ = ["lif_multistep", "clif_multistep", "FusedLIF", "FusedCLIF", "cut_steps"]

Scalar = Union[float, torch.Tensor]


def cut_steps(T: int, truncate: Optional[int]) -> Tuple[int, ...]:
    """The steps ``t`` (``0 < t < T``, ``t % truncate == 0``) whose incoming state is detached."""
    if truncate is None:
        return ()
    return tuple(range(truncate, T, truncate))


# ----------------------------------------------------------------------------- shared pieces
# Every forward expression below is written exactly as in gradflow.neurons (same ops, same order),
# so the fused forward reproduces the autograd forward bit for bit.


def _charge(x: torch.Tensor, v: torch.Tensor, k: Scalar, decay_input: bool, v0: float) -> torch.Tensor:
    # charge: u = v (1 - k) + x, or u = v + (x - (v - v0)) k with decay_input
    if decay_input:
        return v + (x - (v - v0)) * k
    return v * (1.0 - k) + x


def _fire(xt: torch.Tensor, sur: Surrogate, smooth: bool) -> torch.Tensor:
    # fire: s = H(u - theta) (or the surrogate's primitive with smooth_forward)
    if smooth:
        return primitive(xt, sur)
    return (xt >= 0).to(xt.dtype)


def _lif_reset(u: torch.Tensor, s: torch.Tensor, theta: float, v_reset: Optional[float]) -> torch.Tensor:
    # reset: soft v = u - theta s, hard v = (1 - s) u + s v_reset
    if v_reset is None:
        return u - theta * s
    return (1.0 - s) * u + s * v_reset


def _dudk(x_t: Optional[torch.Tensor], v_prev: torch.Tensor, decay_input: bool, v0: float) -> torch.Tensor:
    """``du[t]/dk`` at fixed ``x[t]`` and ``v[t-1]`` (PLIF's gradient of ``k = 1/tau``)."""
    if decay_input:
        return x_t - (v_prev - v0)
    return -v_prev


def _run_taps(tap, g, P, temporal, delta) -> None:
    if tap:
        for fn in list(tap):
            fn(g, P, temporal, delta)


# ----------------------------------------------------------------------------- LIF / PLIF
# The loops below write into preallocated buffers (``out=``, in-place ops): on CPU a large part of
# the cost of the autograd path is allocation and extra memory passes. Where an op is rewritten
# for speed in the *forward*, the result is still bit-identical (noted at each place); the
# backward only has to agree to rounding, but it computes ``delta = P + temporal`` the same way
# whether or not a tap is attached, so a tap never changes a gradient bit.


def _fire_into(out: torch.Tensor, u: torch.Tensor, theta: float, sur: Surrogate, smooth: bool) -> torch.Tensor:
    """``s = H(u - theta)`` written into ``out``. ``u >= theta`` equals ``(u - theta) >= 0`` exactly in
    IEEE arithmetic (a rounded difference keeps its sign and is zero only for equal operands), and a
    float-typed comparison output avoids the slow bool round trip."""
    if smooth:
        return out.copy_(primitive(u - theta, sur))
    return torch.ge(u, theta, out=out)


def _sg_scratch(xt: torch.Tensor, sur: Surrogate) -> torch.Tensor:
    """``sg(xt)``; may overwrite ``xt`` (a scratch tensor). Same values as :func:`surrogate_grad`."""
    if sur.name == "rectangle":
        torch.le(xt.abs_(), sur.alpha / 2, out=xt)
        scale = 1.0 / sur.alpha
        return xt if scale == 1.0 else xt.mul_(scale)
    return surrogate_grad(xt, sur)


def _charge_into(out: torch.Tensor, x_t: torch.Tensor, v: torch.Tensor, k: Scalar, decay_input: bool, v0: float):
    """Charge written into ``out``, with the ops of :func:`_charge` in the same order (bit-identical)."""
    if decay_input:
        return torch.add(v, (x_t - (v - v0)) * k, out=out)
    torch.mul(v, 1.0 - k, out=out)
    return out.add_(x_t)


class FusedLIF(torch.autograd.Function):
    """All ``T`` steps of LIF (PLIF when ``k`` is a tensor that requires grad) in one autograd node.

    ``apply(x, k, p, cut, want_states, tap)``: ``x`` ``[T, N, ...]``; ``k = 1/tau`` (float, or a 0-d
    tensor for PLIF); ``p`` a :class:`NeuronParams` (its ``tau`` is ignored, ``k`` is used);
    ``cut`` the truncation steps (:func:`cut_steps`); ``want_states`` adds the detached ``u``
    ``[T, N, ...]`` and the states before each step ``v_prev`` ``[T, N, ...]`` to the outputs;
    ``tap`` a list of callables or None. Returns ``spikes`` or ``(spikes, u, v_prev)``.
    """

    @staticmethod
    def forward(ctx, x, k, p: NeuronParams, cut: Tuple[int, ...], want_states: bool, tap):
        T = x.shape[0]
        theta, vr = p.v_threshold, p.v_reset
        v0 = 0.0 if vr is None else vr
        u_all = torch.empty_like(x, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(u_all)
        v_prev = torch.empty_like(u_all) if want_states else None
        v = torch.zeros_like(u_all[0])
        if v_prev is not None:
            v_prev[0].zero_()
        buf = torch.empty_like(v)
        fast_soft = vr is None and not p.smooth
        for t in range(T):
            u = _charge_into(u_all[t], x[t], v, k, p.decay_input, v0)
            s = _fire_into(spikes[t], u, theta, p.surrogate, p.smooth)
            dest = v_prev[t + 1] if (v_prev is not None and t + 1 < T) else buf
            if fast_soft:
                # reset u - theta*s in one pass: theta*s is exact for s in {0, 1}, so bit-identical
                v = torch.sub(u, s, alpha=theta, out=dest)
            else:
                v = dest.copy_(_lif_reset(u, s, theta, vr))
        k_is_tensor = isinstance(k, torch.Tensor)
        need_x = k_is_tensor and p.decay_input
        ctx.save_for_backward(u_all, k if k_is_tensor else None, x if need_x else None)
        ctx.k = None if k_is_tensor else k
        ctx.p, ctx.cut, ctx.tap = p, frozenset(cut), tap
        if want_states:
            ctx.mark_non_differentiable(u_all, v_prev)
            return spikes, u_all, v_prev
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, g, *_unused):
        u_all, k_t, x_saved = ctx.saved_tensors
        p, cut, tap = ctx.p, ctx.cut, ctx.tap
        k = ctx.k if k_t is None else k_t.detach()
        theta, vr, sur = p.v_threshold, p.v_reset, p.surrogate
        v0 = 0.0 if vr is None else vr
        a = 1.0 - k  # du[t+1]/dv[t], also with decay_input
        need_k = k_t is not None and ctx.needs_input_grad[1]
        T = u_all.shape[0]
        keep = bool(tap)
        delta = torch.empty_like(u_all)
        P_all = torch.empty_like(u_all) if keep else None
        temp_all = torch.zeros_like(u_all) if keep else None
        grad_k = torch.zeros((), dtype=torch.float64, device=u_all.device) if need_k else None
        scratch, tbuf, gbuf = (torch.empty_like(u_all[0]) for _ in range(3))
        s = torch.empty_like(u_all[0]) if vr is not None else None
        gv = None  # dL/dv[t]: gradient arriving from step t+1 through the state (None = 0)
        for t in range(T - 1, -1, -1):
            u = u_all[t]
            sg = _sg_scratch(torch.sub(u, theta, out=scratch), sur)
            d = delta[t]
            P = torch.mul(g[t], sg, out=P_all[t] if keep else d)
            if gv is not None:
                # temporal = Jvu Gv
                tb = temp_all[t] if keep else tbuf
                if vr is None:
                    if p.detach_reset:  # Jvu = 1
                        temporal = tb.copy_(gv)
                    else:  # Jvu = 1 - theta sg
                        temporal = torch.mul(gv, sg, out=tb)
                        torch.sub(gv, temporal, alpha=theta, out=temporal)
                else:  # Jvu = (1 - s) + (v_reset - u) sg
                    _fire_into(s, u, theta, sur, p.smooth)
                    jvu = 1.0 - s
                    if not p.detach_reset:
                        jvu = jvu + (vr - u) * sg
                    temporal = torch.mul(gv, jvu, out=tb)
                torch.add(P, temporal, out=d)
            elif keep:
                d.copy_(P)
            if need_k:
                if t > 0:
                    up = u_all[t - 1]
                    v_prev = _lif_reset(up, _fire_into(torch.empty_like(up), up, theta, sur, p.smooth), theta, vr)
                else:
                    v_prev = torch.zeros_like(u)
                xk = x_saved[t] if p.decay_input else None
                grad_k += (d * _dudk(xk, v_prev, p.decay_input, v0)).sum(dtype=torch.float64)
            gv = None if (t == 0 or t in cut) else torch.mul(d, a, out=gbuf)
        grad_x = delta * k if p.decay_input else delta
        if keep:
            _run_taps(tap, g, P_all, temp_all, delta)
        gk = grad_k.to(k_t.dtype) if need_k else None
        return grad_x, gk, None, None, None, None


# ----------------------------------------------------------------------------- CLIF


class FusedCLIF(torch.autograd.Function):
    """All ``T`` steps of CLIF (paper Eq. 19, soft reset) in one autograd node.

    ``apply(x, k, p, cut, want_states, tap)`` as :class:`FusedLIF` (``k`` a float); with
    ``want_states`` returns ``(spikes, u, v_prev, m_prev)``. Saves ``u`` ``[T, N, ...]`` and the
    history ``m[-1..T-1]`` ``[T+1, N, ...]`` (so that backward reads both ``m[t-1]`` and ``m[t]``).
    """

    @staticmethod
    def forward(ctx, x, k: float, p: NeuronParams, cut: Tuple[int, ...], want_states: bool, tap):
        T = x.shape[0]
        theta = p.v_threshold
        u_all = torch.empty_like(x, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(u_all)
        m_hist = x.new_empty((T + 1,) + tuple(x.shape[1:]))  # m_hist[t] = m[t-1], saved for backward
        v_prev = torch.empty_like(u_all) if want_states else None
        m_hist[0].zero_()
        v = torch.zeros_like(u_all[0])
        if v_prev is not None:
            v_prev[0].zero_()
        q, v_buf = torch.empty_like(v), torch.empty_like(v)
        for t in range(T):
            u = _charge_into(u_all[t], x[t], v, k, p.decay_input, 0.0)
            s = _fire_into(spikes[t], u, theta, p.surrogate, p.smooth)
            # complementary potential m = m[t-1] sigmoid(u k) + s (mul, then add: as in clif_fire_reset)
            torch.mul(u, k, out=q).sigmoid_()
            m = torch.mul(m_hist[t], q, out=m_hist[t + 1])
            m.add_(s)
            # reset v = u - s (theta + sigmoid(m)); + and * are commutative, so bit-identical
            r = torch.sigmoid(m, out=q).add_(theta).mul_(s)
            v = torch.sub(u, r, out=v_prev[t + 1] if (v_prev is not None and t + 1 < T) else v_buf)
        ctx.save_for_backward(u_all, m_hist)
        ctx.k, ctx.p, ctx.cut, ctx.tap = k, p, frozenset(cut), tap
        if want_states:
            m_prev = m_hist[:T]
            ctx.mark_non_differentiable(u_all, v_prev, m_prev)
            return spikes, u_all, v_prev, m_prev
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, g, *_unused):
        u_all, m_hist = ctx.saved_tensors
        k, p, cut, tap = ctx.k, ctx.p, ctx.cut, ctx.tap
        theta, sur = p.v_threshold, p.surrogate
        a = 1.0 - k
        T = u_all.shape[0]
        keep = bool(tap)
        delta = torch.empty_like(u_all)
        P_all = torch.empty_like(u_all) if keep else None
        temp_all = torch.zeros_like(u_all) if keep else None
        b_sg, b_s, b_q, b_r, b_c, b_e, b_t, b_gv, b_gm = (torch.empty_like(u_all[0]) for _ in range(9))
        sig_bwd = torch.ops.aten.sigmoid_backward  # sigmoid_backward(g, y) = g (1 - y) y
        gv = gm = None  # dL/dv[t], dL/dm[t] arriving from step t+1 (None = 0)
        for t in range(T - 1, -1, -1):
            u, mp = u_all[t], m_hist[t]
            sg = _sg_scratch(torch.sub(u, theta, out=b_sg), sur)
            d = delta[t]
            P = torch.mul(g[t], sg, out=P_all[t] if keep else d)
            c = None
            if gv is not None:
                # recompute the step: s, q = sigmoid(u k), r = sigmoid(m[t]); s r' = s r (1 - r);
                # B = m[t-1] q (1 - q), so that Jmu = sg + k B
                s = _fire_into(b_s, u, theta, sur, p.smooth)
                q = torch.mul(u, k, out=b_q).sigmoid_()
                r = torch.sigmoid(m_hist[t + 1], out=b_r)
                s_dr = sig_bwd(s, r)
                B = sig_bwd(mp, q)
                # c = Gm - s r' Gv;  e = c - (theta + r) Gv (the sg_r term; e = c with detach_reset)
                if gm is None:
                    c = torch.mul(gv, s_dr, out=b_c).neg_()
                else:
                    c = torch.addcmul(gm, gv, s_dr, value=-1.0, out=b_c)
                e = c if p.detach_reset else torch.addcmul(c, gv, r.add_(theta), value=-1.0, out=b_e)
                # temporal = Jvu Gv + Jmu Gm = Gv + sg e + k B c
                tb = temp_all[t] if keep else b_t
                temporal = torch.addcmul(gv, sg, e, out=tb)
                temporal.addcmul_(B, c, value=k)
                torch.add(P, temporal, out=d)
            elif keep:
                d.copy_(P)
            if t == 0 or t in cut:
                gv = gm = None
            else:
                # to step t-1: Gm[t-1] = Jvm Gv + Jmm Gm = q c, Gv[t-1] = a delta[t]
                gm = torch.mul(q, c, out=b_gm) if c is not None else None
                gv = torch.mul(d, a, out=b_gv)
        grad_x = delta * k if p.decay_input else delta
        if keep:
            _run_taps(tap, g, P_all, temp_all, delta)
        return grad_x, None, None, None, None, None


# ----------------------------------------------------------------------------- entry points


def lif_multistep(
    x: torch.Tensor,
    k: Scalar,
    p: NeuronParams,
    truncate: Optional[int] = None,
    want_states: bool = False,
    tap: Optional[list] = None,
):
    """Fused LIF/PLIF over ``x`` ``[T, N, ...]``: spikes, or ``(spikes, u, v_prev)`` with ``want_states``.

    ``k = 1/tau`` (a float, or PLIF's ``sigmoid(w)``); ``p`` the constants (``p.tau`` unused);
    ``truncate`` as in :class:`~gradflow.neurons.SpikingNeuron`; ``tap`` see the module docstring.
    """
    return FusedLIF.apply(x, k, p, cut_steps(x.shape[0], truncate), bool(want_states), tap)


def clif_multistep(
    x: torch.Tensor,
    k: float,
    p: NeuronParams,
    truncate: Optional[int] = None,
    want_states: bool = False,
    tap: Optional[list] = None,
):
    """Fused CLIF over ``x`` ``[T, N, ...]``: spikes, or ``(spikes, u, v_prev, m_prev)`` with ``want_states``."""
    if isinstance(k, torch.Tensor):
        k = float(k)
    return FusedCLIF.apply(x, k, p, cut_steps(x.shape[0], truncate), bool(want_states), tap)
