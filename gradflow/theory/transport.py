"""The exact factorisation of a layer's measured transport into leak, reset survival and m path (docs §5).

For one neuron layer with pre-reset potentials ``u[t]`` and spatial gradients ``P[t]`` (both
``[T, N, ...]``, float64), the part of ``delta[t]`` that starts as ``P[t']`` and travels back to
``t`` through the neuron's own state is (docs Eq. 26)::

    pair[t, t'] = F[t, t'] * P[t'],   F[t, t'] = (J[t'-1] ... J[t])_{uu}

elementwise, with ``J`` the one-step Jacobian. For LIF/PLIF ``J`` is the scalar
``gamma * f[j]`` and ``F = gamma^(t'-t) * prod_{j=t}^{t'-1} f[j]``, where ``f = dv/du`` is the reset
factor of :func:`gradflow.theory.factors.reset_factor`. Hence (docs Eq. 27)::

    relative_k^2 = gamma^(2k) * survival_k^2,
    survival_k^2 = sum_{t'} sum_n P[t',n]^2 prod_{i=1}^{k} f[t'-i,n]^2 / sum_{t'} ||P[t']||^2

(sums over the sources ``t' = k..T-1``): the leak times the ``P^2``-weighted mean of what the
neuron's own resets let through in the k steps before the source. With the rectangle surrogate at
``alpha = theta``, ``f`` is 0 in the window and 1 outside, so ``survival_k^2`` is exactly the share
of the sources' squared spatial gradient on neurons that stayed outside the window for the k steps
before (docs Eq. 28). For CLIF the Jacobian is 2x2; its ``v`` path is ``prod xi[j] = gamma^k prod
f[j]`` and everything else passes through the complementary potential ``m`` at least once (docs
Eq. 29).

:func:`exact_transport` computes every factor from arrays; the recorder's torch port computes the
same sums on the device. This module is numpy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .factors import NeuronConfig, clif_memory, reset_factor
from .surrogates import TheoryError, sg_support

__all__ = ["TransportFactors", "exact_transport", "one_step_jacobian"]


class TransportFactors(NamedTuple):
    """Exact transport of one layer, by lag ``k = 0..K`` (each field ``[K+1]`` unless stated).

    * ``relative``: the measured ``relative_k`` (docs Eq. 17), ``relative_0 = 1``
    * ``leak``: ``gamma^k``
    * ``survival``: ``sqrt`` of the ``P^2``-weighted mean of ``prod f^2`` over the k steps before
      the source (the reset / window survival factor, Eq. 27); for CLIF along the ``v`` path only
    * ``m_path``: ``relative_k^2 - (leak_k survival_k)^2``, the complementary potential's
      contribution to ``relative_k^2`` (cross terms included, so it may be negative; 0 for LIF)
    * ``out_share``: share of the sources' squared spatial gradient on neurons outside the
      surrogate's window at all k steps before (Eq. 28); NaN for surrogates without compact support
    * ``pair_sq``: ``[T, K+1]``, ``pair_sq[t, k] = ||pair[t, t+k]||^2`` (0 where ``t + k >= T``)
    * ``source_sq``: ``sum_{t'=k}^{T-1} ||P[t']||^2``, the denominator of ``relative_k``

    ``relative``, ``survival`` and ``out_share`` are NaN where ``source_sq`` is 0.
    """

    relative: np.ndarray
    leak: np.ndarray
    survival: np.ndarray
    m_path: np.ndarray
    out_share: np.ndarray
    pair_sq: np.ndarray
    source_sq: np.ndarray


def _flat(a, name: str) -> np.ndarray:
    """``[T, ...]`` float64 -> ``[T, M]``; raises on fewer than one step or dimension."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2 or a.shape[0] < 1:
        raise TheoryError(f"{name} must have shape [T, N, ...] with T >= 1, got {a.shape}")
    return a.reshape(a.shape[0], -1)


def one_step_jacobian(u, cfg: NeuronConfig, cut=()):
    """The one-step Jacobian along a trajectory: ``(f, jac)`` with arrays ``[T, M]``.

    ``f[j] = dv[j]/du[j]`` (the reset factor; CLIF: at fixed ``m[j-1]``). ``jac`` is None for
    LIF/PLIF and CLIF's :class:`~gradflow.theory.factors.ClifJacobian` otherwise, with ``m[j-1]``
    rebuilt from ``u`` (:func:`~gradflow.theory.factors.clif_memory`). ``cut``: steps ``t`` whose
    incoming state was detached (truncated BPTT); the whole step ``t-1 -> t`` is zeroed there.
    """
    u = _flat(u, "u")
    T = u.shape[0]
    jac = None
    if cfg.neuron == "clif":
        jac = cfg.jac(u, clif_memory(u, tau=cfg.tau, v_threshold=cfg.v_threshold))
        f = jac.uu / cfg.gamma
    else:
        f = reset_factor(u, **cfg.factor_kw())
    for t in cut:
        if not 1 <= int(t) <= T - 1:
            raise TheoryError(f"cut steps must lie in 1..T-1 = {T - 1}, got {t}")
        f[int(t) - 1] = 0.0
        if jac is not None:
            for a in jac:
                a[int(t) - 1] = 0.0
    return f, jac


def exact_transport(
    u,
    P,
    *,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    m_grad: bool = True,
    max_lag: int | None = None,
    cut=(),
) -> TransportFactors:
    """Exact transport factors of one layer from its potentials and spatial gradients (docs Eq. 26-29).

    u, P: ``[T, N, ...]`` (batch and neuron dimensions after ``T``; float64 is used throughout).
    The neuron options are the layer's (PLIF: pass its learned ``tau``; CLIF's ``m_grad=False``
    ablation has no ``m`` path). ``max_lag``: largest lag
    K (default ``T - 1``). ``cut``: steps whose incoming state was detached (truncated BPTT).

    The pair norms are exact, not estimates: ``pair_sq[t, k]`` equals ``||pair[t, t+k]||^2`` as
    autograd through the neuron computes it (tests check it to 1e-12 in float64), and
    ``relative = leak * sqrt(survival^2 + m_path / leak^2)``. Cost ``O(T K N)``.

    >>> u = np.array([[[0.2]], [[0.3]], [[1.1]]])           # T = 3, one neuron: out, out, window
    >>> P = np.array([[[0.0]], [[0.0]], [[2.0]]])           # the source is at t' = 2
    >>> tf = exact_transport(u, P, tau=2.0)
    >>> tf.relative.tolist(), tf.leak.tolist(), tf.survival.tolist()
    ([1.0, 0.5, 0.25], [1.0, 0.5, 0.25], [1.0, 1.0, 1.0])
    """
    cfg = NeuronConfig(neuron, tau, v_threshold, surrogate, alpha, v_reset, detach_reset, m_grad=m_grad)
    u2, P2 = _flat(u, "u"), _flat(P, "P")
    if u2.shape != P2.shape:
        raise TheoryError(f"u and P must have the same shape, got {np.shape(u)} and {np.shape(P)}")
    T = u2.shape[0]
    K = T - 1 if max_lag is None else int(max_lag)
    if not 0 <= K <= T - 1:
        raise TheoryError(f"max_lag must lie in 0..T-1 = {T - 1}, got {max_lag}")
    f, jac = one_step_jacobian(u2, cfg, cut)
    f2 = f * f
    w = P2 * P2
    compact = np.isfinite(sg_support(cfg.surrogate, cfg.alpha))
    out = (cfg.sg(u2) == 0).astype(np.float64) if compact else None
    g = cfg.gamma

    pair_sq = np.zeros((T, K + 1))
    v_num = np.zeros(K + 1)
    out_num = np.zeros(K + 1)
    source_sq = np.array([w[k:].sum() for k in range(K + 1)])
    pair_sq[:, 0] = w.sum(axis=1)
    v_num[0] = out_num[0] = source_sq[0]
    # running products over the k steps before each source t' = t + k, indexed by t = 0..T-1-k
    prod_v = np.ones_like(u2)
    prod_out = np.ones_like(u2)
    a_u, a_m = np.ones_like(u2), np.zeros_like(u2)  # CLIF tangent (du, dm) pushed from t forward
    for k in range(1, K + 1):
        n = T - k
        j = slice(k - 1, k - 1 + n)  # step j = t + k - 1 for t = 0..n-1
        prod_v = prod_v[:n] * f2[j]
        v_num[k] = np.sum(w[k:] * prod_v)
        if compact:
            prod_out = prod_out[:n] * out[j]
            out_num[k] = np.sum(w[k:] * prod_out)
        if jac is None:
            pair_sq[:n, k] = g ** (2 * k) * np.sum(w[k:] * prod_v, axis=1)
        else:
            a_u, a_m = (jac.uu[j] * a_u[:n] + jac.um[j] * a_m[:n],
                        jac.mu[j] * a_u[:n] + jac.mm[j] * a_m[:n])
            pair_sq[:n, k] = np.sum(w[k:] * a_u * a_u, axis=1)
    lags = np.arange(K + 1)
    leak = g ** lags
    num = np.array([pair_sq[: T - k, k].sum() for k in range(K + 1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = source_sq > 0
        relative = np.where(ok, np.sqrt(num / source_sq), np.nan)
        survival = np.where(ok, np.sqrt(v_num / source_sq), np.nan)
        m_path = np.where(ok, (num - leak**2 * v_num) / source_sq, np.nan)
        out_share = np.where(ok, out_num / source_sq, np.nan) if compact else np.full(K + 1, np.nan)
    if jac is None:
        m_path = np.where(ok, 0.0, np.nan)
    return TransportFactors(relative, leak, survival, m_path, out_share, pair_sq, source_sq)
