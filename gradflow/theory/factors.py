"""One-step temporal factors of LIF and CLIF in closed form (docs §2-§3).

Notation (SPEC §1): ``u[t]`` potential after charging, ``s[t] = H(u[t] - theta)``, ``v[t]`` state
after reset, ``m[t]`` CLIF's complementary potential, ``gamma = 1 - 1/tau``. Every quantity is
elementwise: a neuron's state only talks to itself across time, so the "Jacobian" of a layer is
a diagonal per entry and is returned as arrays of the input's shape.

Also here: the exact backward recursions that turn spatial gradients ``P[t]`` into total
gradients ``delta[t]`` and into the ``pair[t, t+k]`` terms of SPEC §2, and a numpy forward
simulation of both neurons (used by the Monte Carlo predictors in :mod:`gradflow.theory.decay`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit

from .surrogates import TheoryError, heaviside, resolve_alpha, sg

__all__ = [
    "ClifJacobian",
    "NeuronTrace",
    "clif_backward",
    "clif_jacobian",
    "clif_near_threshold_factor",
    "gamma_of",
    "lif_backward",
    "lif_eps",
    "pair_factors",
    "simulate_neuron",
]


def gamma_of(tau: float) -> float:
    """Leak factor ``gamma = 1 - 1/tau`` (docs Eq. 2); raises :class:`TheoryError` if tau <= 0."""
    tau = float(tau)
    if not tau > 0:
        raise TheoryError(f"tau must be positive, got {tau!r}")
    return 1.0 - 1.0 / tau


def lif_eps(
    u,
    *,
    tau: float,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    decay_input: bool = False,
):
    """LIF one-step temporal factor ``eps[t] = du[t+1]/du[t]`` at fixed input (docs Eq. 3-4).

    With ``sg = sg(u - theta)`` and ``s = H(u - theta)``:

    * soft reset ``v = u - theta*s``:           ``eps = gamma * (1 - theta * sg)``      (Eq. 3a)
    * soft, ``detach_reset``:                   ``eps = gamma``                          (Eq. 3b)
    * hard reset ``v = (1-s) u + s v_reset``:   ``eps = gamma * (1 - s + (v_reset - u) * sg)`` (Eq. 4a)
    * hard, ``detach_reset``:                   ``eps = gamma * (1 - s)``                (Eq. 4b)

    ``decay_input=True`` charges ``u[t+1] = v + (x - (v - v_reset0)) / tau``, whose derivative in
    ``v`` is again ``1 - 1/tau = gamma``, so the flag does not change ``eps`` (Eq. 2); it is
    accepted so that callers can pass a neuron's options unchanged.

    u: array of pre-reset potentials, any shape. Returns float64 of the same shape. For the
    rectangle surrogate with ``alpha = theta`` and soft reset, eps is exactly 0 inside the window
    ``|u - theta| <= alpha/2`` and ``gamma`` outside.

    >>> lif_eps([0.0, 0.9, 1.2], tau=2.0).tolist()
    [0.5, 0.0, 0.0]
    """
    del decay_input  # same gamma either way (docs Eq. 2)
    g = gamma_of(tau)
    u = np.asarray(u, dtype=np.float64)
    theta = float(v_threshold)
    if v_reset is None:
        # soft reset: dv/du = 1 - theta * sg (the spike is differentiated through sg)
        if detach_reset:
            return np.full_like(u, g)
        return g * (1.0 - theta * sg(u - theta, surrogate, alpha))
    s = heaviside(u - theta)
    if detach_reset:
        return g * (1.0 - s)
    return g * (1.0 - s + (float(v_reset) - u) * sg(u - theta, surrogate, alpha))


class ClifJacobian(NamedTuple):
    """Elementwise one-step Jacobian of CLIF's state ``(u[t], m[t-1]) -> (u[t+1], m[t])``.

    Fields (arrays of the state's shape), at fixed next input ``x[t+1]`` (docs Eq. 6):

    * ``uu = du[t+1]/du[t]``    the u-to-u factor; CLIF's counterpart of LIF's ``eps``
    * ``um = du[t+1]/dm[t-1]``  memory m reaching the next potential through the reset
    * ``mu = dm[t]/du[t]``      the potential feeding the memory (the paper's xi-like term)
    * ``mm = dm[t]/dm[t-1]``    the memory's own decay ``sigmoid(u[t]/tau)`` (psi-like term)
    """

    uu: np.ndarray
    um: np.ndarray
    mu: np.ndarray
    mm: np.ndarray


def _dsigmoid(z):
    """``sigmoid'(z) = sigmoid(z) * (1 - sigmoid(z))``."""
    p = expit(z)
    return p * (1.0 - p)


def clif_jacobian(
    u,
    m_prev,
    *,
    tau: float,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    detach_reset: bool = False,
) -> ClifJacobian:
    """Exact one-step Jacobian of CLIF (SPEC §1, paper Eq. 19) in closed form (docs Eq. 5-6).

    CLIF step: ``m = m_prev * sigmoid(u/tau) + s`` and ``v = u - s * (theta + sigmoid(m))``, then
    ``u[t+1] = gamma * v + x[t+1]``. With ``sg = sg(u - theta)``, ``s = H(u - theta)``,
    ``q = sigmoid(u/tau)``, ``sigma = sigmoid(m)``, ``sigma' = sigma (1 - sigma)``:

        xi  = dm/du      = m_prev * q (1 - q) / tau + sg                            (Eq. 5a)
        psi = dm/dm_prev = q                                                        (Eq. 5b)
        dv/du      = 1 - sg * (theta + sigma) - s * sigma' * xi                     (Eq. 5c)
        dv/dm_prev = - s * sigma' * psi                                             (Eq. 5d)

    and ``uu = gamma * dv/du``, ``um = gamma * dv/dm_prev``, ``mu = xi``, ``mm = psi`` (Eq. 6).
    The term ``- s * sigma' * xi`` is the path ``u[t] -> m[t] -> v[t] -> u[t+1]``; it belongs to
    ``uu`` and must not be counted again through ``dL/dm[t]`` (docs §3.2).

    ``detach_reset=True`` stops the gradient through ``s`` in the reset line only: the
    ``sg * (theta + sigma)`` term of Eq. 5c drops, while ``xi`` keeps its ``sg`` (m still sees it).

    u, m_prev: broadcastable arrays (``m_prev = m[t-1]``). Returns a :class:`ClifJacobian`.
    """
    g = gamma_of(tau)
    theta = float(v_threshold)
    u = np.asarray(u, dtype=np.float64)
    m_prev = np.asarray(m_prev, dtype=np.float64)
    u, m_prev = np.broadcast_arrays(u, m_prev)
    # fire
    s = heaviside(u - theta)
    d = sg(u - theta, surrogate, alpha)
    # memory update m[t] = m[t-1] * sigmoid(u/tau) + s
    q = expit(u / tau)
    m = m_prev * q + s
    xi = m_prev * q * (1.0 - q) / tau + d
    psi = q
    # reset v = u - s * (theta + sigmoid(m)); the reset-line spike may be detached
    ds_reset = 0.0 if detach_reset else d
    dsig = _dsigmoid(m)
    dv_du = 1.0 - ds_reset * (theta + expit(m)) - s * dsig * xi
    dv_dm = -s * dsig * psi
    return ClifJacobian(uu=g * dv_du, um=g * dv_dm, mu=xi, mm=psi)


def clif_near_threshold_factor(
    m,
    *,
    tau: float,
    v_threshold: float = 1.0,
    alpha: float | None = None,
):
    """CLIF's u-to-u factor just below threshold, rectangle surrogate (docs Eq. 7).

    For ``theta - alpha/2 <= u < theta`` (inside the window, no spike, ``m = m[t]``):

        uu = gamma * (1 - (theta + sigmoid(m)) / alpha)                              (Eq. 7)

    which for ``alpha = theta`` (the default here) is ``-gamma * sigmoid(m) / theta``: the factor
    changes sign instead of vanishing. LIF's factor at the same place is
    ``gamma * (1 - theta/alpha) = 0``. Just above threshold (``s = 1``) Eq. 5c adds
    ``-gamma * sigma'(m) * xi``, with ``0 <= sigma' <= 1/4``; see :func:`clif_jacobian`.

    >>> round(float(clif_near_threshold_factor(0.0, tau=2.0)), 6)
    -0.25
    """
    g = gamma_of(tau)
    theta = float(v_threshold)
    a = theta if alpha is None else resolve_alpha("rectangle", alpha)
    return g * (1.0 - (theta + expit(np.asarray(m, dtype=np.float64))) / a)


def lif_backward(P, eps):
    """Total gradients ``delta[t] = dL/du[t]`` of LIF from spatial ones (docs Eq. 8).

        delta[T-1] = P[T-1],   delta[t] = P[t] + eps[t] * delta[t+1]

    P, eps: arrays ``[T, ...]`` (``eps[T-1]`` is unused). Returns delta, same shape.
    """
    P = np.asarray(P, dtype=np.float64)
    eps = np.asarray(eps, dtype=np.float64)
    delta = np.empty_like(P)
    nxt = np.zeros_like(P[0])
    for t in range(P.shape[0] - 1, -1, -1):
        nxt = P[t] + (eps[t] * nxt if t < P.shape[0] - 1 else 0.0)
        delta[t] = nxt
    return delta


def clif_backward(P, jac: ClifJacobian):
    """Exact CLIF backward recursion over the state ``z[t] = (u[t], m[t-1])`` (docs Eq. 9).

        lam_u[t]   = P[t] + uu[t] * lam_u[t+1] + mu[t] * lam_m[t]
        lam_m[t-1] =        um[t] * lam_u[t+1] + mm[t] * lam_m[t]

    with ``lam_u[T] = lam_m[T-1] = 0``. ``lam_u[t] = delta[t] = dL/du[t]``; ``lam_m[t]`` is
    ``dL/dm[t]`` with ``u[t+1]`` held fixed (the path ``m[t] -> v[t] -> u[t+1]`` is inside
    ``uu``/``um``). P: ``[T, ...]``; jac: fields ``[T, ...]`` from :func:`clif_jacobian` on the
    trajectory. Returns ``(delta, lam_m)``, both ``[T, ...]``; ``lam_m[t] = dL/dm[t]``.
    """
    P = np.asarray(P, dtype=np.float64)
    T = P.shape[0]
    delta = np.empty_like(P)
    lam_m = np.empty_like(P)
    lu = np.zeros_like(P[0])  # lam_u[t+1]
    lm = np.zeros_like(P[0])  # lam_m[t]
    for t in range(T - 1, -1, -1):
        lam_m[t] = lm
        new_lu = P[t] + jac.uu[t] * lu + jac.mu[t] * lm
        new_lm = jac.um[t] * lu + jac.mm[t] * lm
        delta[t] = new_lu
        lu, lm = new_lu, new_lm
    return delta, lam_m


def pair_factors(t: int, max_lag: int, *, eps=None, jac: ClifJacobian | None = None):
    """Transport factors ``F[t, t+k]`` with ``pair[t, t+k] = F[t, t+k] * P[t+k]`` (docs Eq. 10).

    LIF (pass ``eps [T, ...]``):  ``F[t, t+k] = prod_{j=t}^{t+k-1} eps[j]``.
    CLIF (pass ``jac``):           ``F[t, t+k] = (J[t+k-1] ... J[t])_{uu}``, the u-to-u entry of the
    ordered product of the 2x2 elementwise Jacobians of :func:`clif_jacobian`, computed by
    pushing the tangent ``(1, 0)`` forward.

    Yields ``(k, F)`` for ``k = 0 .. min(max_lag, T-1-t)``; ``F`` has the state's shape.
    """
    if (eps is None) == (jac is None):
        raise TheoryError("pair_factors needs exactly one of eps= (LIF) or jac= (CLIF)")
    T = (np.shape(eps) if eps is not None else np.shape(jac.uu))[0]
    if eps is not None:
        f = np.ones(np.shape(eps)[1:])
        for k in range(0, min(max_lag, T - 1 - t) + 1):
            if k:
                f = f * eps[t + k - 1]
            yield k, f
        return
    a_u = np.ones(np.shape(jac.uu)[1:])  # tangent along u
    a_m = np.zeros_like(a_u)  # tangent along m
    for k in range(0, min(max_lag, T - 1 - t) + 1):
        if k:
            j = t + k - 1
            a_u, a_m = jac.uu[j] * a_u + jac.um[j] * a_m, jac.mu[j] * a_u + jac.mm[j] * a_m
        yield k, a_u


class NeuronTrace(NamedTuple):
    """Forward trajectory of a neuron layer: ``u``, ``s``, ``m_prev`` arrays ``[T, ...]``.

    ``m_prev[t] = m[t-1]`` for CLIF (zeros at t = 0) and None for LIF/PLIF.
    """

    u: np.ndarray
    s: np.ndarray
    m_prev: np.ndarray | None


def simulate_neuron(
    x,
    *,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = None,
    decay_input: bool = False,
) -> NeuronTrace:
    """Run SPEC §1's forward dynamics in numpy on currents ``x [T, ...]`` from ``v = m = 0``.

    charge ``u = gamma v + x`` (or ``u = v + (x - (v - v_reset0))/tau`` with ``decay_input``),
    fire ``s = H(u - theta)``, reset (LIF soft/hard; CLIF ``m = m sigmoid(u/tau) + s``,
    ``v = u - s (theta + sigmoid(m))``). ``neuron``: ``lif``, ``plif`` (same as lif) or ``clif``;
    CLIF has no hard reset and ignores ``v_reset``... no: it raises if ``v_reset`` is given.
    """
    neuron = _check_neuron(neuron)
    if neuron == "clif" and v_reset is not None:
        raise TheoryError("CLIF has a single reset rule (SPEC §1); v_reset must be None")
    g = gamma_of(tau)
    theta = float(v_threshold)
    vr0 = 0.0 if v_reset is None else float(v_reset)
    x = np.asarray(x, dtype=np.float64)
    u_all = np.empty_like(x)
    s_all = np.empty_like(x)
    m_all = np.zeros_like(x) if neuron == "clif" else None
    v = np.zeros_like(x[0])
    m = np.zeros_like(x[0])
    for t in range(x.shape[0]):
        # charge
        u = v + (x[t] - (v - vr0)) / tau if decay_input else g * v + x[t]
        # fire
        s = heaviside(u - theta)
        # reset
        if neuron == "clif":
            m_all[t] = m
            m = m * expit(u / tau) + s
            v = u - s * (theta + expit(m))
        elif v_reset is None:
            v = u - theta * s
        else:
            v = (1.0 - s) * u + s * vr0
        u_all[t] = u
        s_all[t] = s
    return NeuronTrace(u=u_all, s=s_all, m_prev=m_all)


def _check_neuron(neuron: str) -> str:
    """Normalise a neuron name: ``lif``/``plif`` -> ``lif``-like dynamics, ``clif``."""
    n = str(neuron).lower()
    if n not in ("lif", "plif", "clif"):
        raise TheoryError(f"unknown neuron {neuron!r}; expected 'lif', 'plif' or 'clif'")
    return "clif" if n == "clif" else "lif"
