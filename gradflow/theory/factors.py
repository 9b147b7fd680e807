"""One-step temporal factors of LIF and CLIF in closed form (docs §2-§3).

Notation (docs/reference.md, Neurons): ``u[t]`` potential after charging, ``s[t] = H(u[t] - theta)``, ``v[t]`` state
after reset, ``m[t]`` CLIF's complementary potential, ``gamma = 1 - 1/tau``. Every quantity is
elementwise: a neuron's state only talks to itself across time, so the "Jacobian" of a layer is
a diagonal per entry and is returned as arrays of the input's shape.

Also here: the exact backward recursions that turn spatial gradients ``P[t]`` into total
gradients ``delta[t]`` and into the ``pair[t, t+k]`` terms (docs/theory.md §3), a numpy forward
simulation of both neurons (used by the Monte Carlo predictors in :mod:`gradflow.theory.decay`),
and :class:`NeuronConfig`, every gradient-changing option of one layer validated once.

CLIF's symbols follow the paper (Huang et al., ICML 2024): ``xi = du[t+1]/du[t]`` (paper Eq. 22)
and ``psi = dm[t]/du[t]`` (paper Eq. 23).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import expit

from .surrogates import TheoryError, heaviside, resolve_alpha, sg

__all__ = [
    "ClifJacobian",
    "MembraneTrajectory",
    "NeuronConfig",
    "clif_backward",
    "clif_jacobian",
    "clif_memory",
    "gamma_of",
    "lif_backward",
    "lif_eps",
    "pair_factors",
    "reset_factor",
    "simulate_neuron",
]


def gamma_of(tau: float) -> float:
    """Leak factor ``gamma = 1 - 1/tau`` (docs Eq. 2); raises :class:`TheoryError` if tau <= 0."""
    tau = float(tau)
    if not tau > 0:
        raise TheoryError(f"tau must be positive, got {tau!r}")
    return 1.0 - 1.0 / tau


def reset_factor(
    u,
    m_prev=None,
    *,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    m_grad: bool = True,
):
    """The reset factor ``f[t] = dv[t]/du[t]``: what the neuron's own fire/reset passes on (docs Eq. 3, 5c).

    The one-step factor is ``du[t+1]/du[t] = gamma * f[t]`` (LIF ``eps``, CLIF ``xi``): the leak
    ``gamma`` times ``f``. With ``sg = sg(u - theta)``, ``s = H(u - theta)``:

    * LIF/PLIF soft reset ``v = u - theta s``:            ``f = 1 - theta sg``               (Eq. 3a)
    * soft, ``detach_reset``:                             ``f = 1``                          (Eq. 3b)
    * hard reset ``v = (1-s) u + s v_reset``:             ``f = 1 - s + (v_reset - u) sg``   (Eq. 4a)
    * hard, ``detach_reset``:                             ``f = 1 - s``                      (Eq. 4b)
    * CLIF, at fixed ``m[t-1]``:   ``f = 1 - sg (theta + sigma(m[t])) - s sigma'(m[t]) psi[t]``  (Eq. 5c)

    ``m_grad=False`` (CLIF's ablation that detaches ``m``) drops the last CLIF term and the ``m`` path.

    u: potentials ``[...]`` (any shape, float64 result of the same shape). m_prev: CLIF's
    ``m[t-1]`` (same shape; required for CLIF, ignored otherwise; :func:`clif_memory` computes it
    from a trajectory of ``u``). With the rectangle surrogate at ``alpha = theta`` and the soft
    reset, LIF's ``f`` is exactly 0 inside the window ``|u - theta| <= alpha/2`` and 1 outside.

    >>> reset_factor([0.2, 0.9, 1.2]).tolist()          # LIF, rectangle alpha = theta = 1
    [1.0, 0.0, 0.0]
    """
    cfg = NeuronConfig(neuron, tau, v_threshold, surrogate, alpha, v_reset, detach_reset, m_grad=m_grad)
    u = np.asarray(u, dtype=np.float64)
    if cfg.neuron == "clif":
        if m_prev is None:
            raise TheoryError("CLIF's reset factor needs m_prev = m[t-1] (see clif_memory)")
        return cfg.jac(u, m_prev).uu / cfg.gamma
    theta = cfg.v_threshold
    if cfg.v_reset is None:
        # soft reset: dv/du = 1 - theta * sg (the spike is differentiated through sg)
        if cfg.detach_reset:
            return np.ones_like(u)
        return 1.0 - theta * sg(u - theta, cfg.surrogate, cfg.alpha)
    s = heaviside(u - theta)
    if cfg.detach_reset:
        return 1.0 - s
    return 1.0 - s + (cfg.v_reset - u) * sg(u - theta, cfg.surrogate, cfg.alpha)


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
    """LIF one-step temporal factor ``eps[t] = du[t+1]/du[t] = gamma * f[t]`` at fixed input (docs Eq. 3-4).

    ``f`` is the reset factor of :func:`reset_factor`; with ``sg = sg(u - theta)``, ``s = H(u - theta)``:

    * soft reset ``v = u - theta*s``:           ``eps = gamma * (1 - theta * sg)``      (Eq. 3a)
    * soft, ``detach_reset``:                   ``eps = gamma``                          (Eq. 3b)
    * hard reset ``v = (1-s) u + s v_reset``:   ``eps = gamma * (1 - s + (v_reset - u) * sg)`` (Eq. 4a)
    * hard, ``detach_reset``:                   ``eps = gamma * (1 - s)``                (Eq. 4b)

    ``decay_input=True`` charges ``u[t+1] = v + (x - (v - v_reset0)) / tau``, and the hard reset
    leaks toward ``v_reset``; the derivative in ``v`` is ``1 - 1/tau = gamma`` either way, so neither
    changes ``eps`` (Eq. 2). The flag is accepted so that callers can pass a neuron's options unchanged.

    u: array of pre-reset potentials, any shape. Returns float64 of the same shape. For the
    rectangle surrogate with ``alpha = theta`` and soft reset, eps is exactly 0 inside the window
    ``|u - theta| <= alpha/2`` and ``gamma`` outside.

    >>> lif_eps([0.0, 0.9, 1.2], tau=2.0).tolist()
    [0.5, 0.0, 0.0]
    """
    del decay_input  # same gamma either way (docs Eq. 2)
    return gamma_of(tau) * reset_factor(u, tau=tau, v_threshold=v_threshold, surrogate=surrogate,
                                        alpha=alpha, v_reset=v_reset, detach_reset=detach_reset)


class ClifJacobian(NamedTuple):
    """Elementwise one-step Jacobian of CLIF's state ``(u[t], m[t-1]) -> (u[t+1], m[t])`` (docs Eq. 6).

    Fields (arrays of the state's shape), at fixed next input ``x[t+1]``:

    * ``uu = du[t+1]/du[t]``    at fixed ``m[t-1]``: the paper's ``xi`` (paper Eq. 22), CLIF's
      counterpart of LIF's ``eps``; also :attr:`xi`
    * ``um = du[t+1]/dm[t-1]``  the memory reaching the next potential through the reset
    * ``mu = dm[t]/du[t]``      the potential feeding the memory: the paper's ``psi`` (paper Eq. 23);
      also :attr:`psi`
    * ``mm = dm[t]/dm[t-1]``    the memory's own decay ``sigmoid(u[t]/tau)``
    """

    uu: np.ndarray
    um: np.ndarray
    mu: np.ndarray
    mm: np.ndarray

    @property
    def xi(self) -> np.ndarray:
        """``xi = du[t+1]/du[t]`` at fixed ``m[t-1]`` (paper Eq. 22), the field ``uu``."""
        return self.uu

    @property
    def psi(self) -> np.ndarray:
        """``psi = dm[t]/du[t]`` (paper Eq. 23), the field ``mu``."""
        return self.mu


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
    m_grad: bool = True,
) -> ClifJacobian:
    """Exact one-step Jacobian of CLIF (docs/reference.md, paper Eq. 19) in closed form (docs Eq. 5-6).

    CLIF step: ``m = m_prev * sigmoid(u/tau) + s`` and ``v = u - s * (theta + sigmoid(m))``, then
    ``u[t+1] = gamma * v + x[t+1]``. With ``sg = sg(u - theta)``, ``s = H(u - theta)``,
    ``q = sigmoid(u/tau)``, ``sigma = sigmoid(m)``, ``sigma' = sigma (1 - sigma)``:

        psi = dm/du      = m_prev * q (1 - q) / tau + sg                            (Eq. 5a)
        dm/dm_prev       = q                                                        (Eq. 5b)
        dv/du      = 1 - sg * (theta + sigma) - s * sigma' * psi                    (Eq. 5c)
        dv/dm_prev = - s * sigma' * q                                               (Eq. 5d)

    and ``uu = xi = gamma * dv/du``, ``um = gamma * dv/dm_prev``, ``mu = psi``, ``mm = q`` (Eq. 6).
    ``psi`` and ``xi`` are the paper's names (paper Eqs. 23 and 22). The term ``- s * sigma' * psi`` is
    the path ``u[t] -> m[t] -> v[t] -> u[t+1]``; it belongs to ``uu`` and must not be counted again
    through ``dL/dm[t]`` (docs §3.2).

    ``detach_reset=True`` stops the gradient through ``s`` in the reset line only: the
    ``sg * (theta + sigma)`` term of Eq. 5c drops, while ``psi`` keeps its ``sg`` (m still sees it).
    ``m_grad=False`` (the neuron's ablation that detaches ``m``) leaves ``uu = gamma (1 - sg (theta +
    sigma))`` and zeroes ``um``, ``mu`` and ``mm``: no gradient passes through the memory.

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
    psi = m_prev * q * (1.0 - q) / tau + d
    # reset v = u - s * (theta + sigmoid(m)); the reset-line spike may be detached
    ds_reset = 0.0 if detach_reset else d
    if not m_grad:  # m is a constant for the gradient
        zero = np.zeros_like(u)
        return ClifJacobian(uu=g * (1.0 - ds_reset * (theta + expit(m))), um=zero, mu=zero, mm=zero)
    dsig = _dsigmoid(m)
    dv_du = 1.0 - ds_reset * (theta + expit(m)) - s * dsig * psi
    dv_dm = -s * dsig * q
    return ClifJacobian(uu=g * dv_du, um=g * dv_dm, mu=psi, mm=q)


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


class MembraneTrajectory(NamedTuple):
    """A simulated forward trajectory of one neuron layer: ``u``, ``s``, ``m_prev`` arrays ``[T, ...]``.

    ``u[t]`` pre-reset potential, ``s[t]`` spike, ``m_prev[t] = m[t-1]`` for CLIF (zeros at t = 0)
    and None for LIF/PLIF. (Not to be confused with :class:`gradflow.neurons.NeuronTrace`, the
    live autograd tensors a torch neuron shows its observers.)
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
) -> MembraneTrajectory:
    """Run the forward dynamics of docs/reference.md (Neurons) in numpy on currents ``x [T, ...]``.

    charge ``u = gamma v + x`` (soft reset), ``u = v - (v - v_reset)/tau + x`` (hard reset: the
    potential leaks toward ``v_reset``), or ``u = v + (x - (v - v_reset0))/tau`` with
    ``decay_input``; fire ``s = H(u - theta)``; reset (LIF soft/hard; CLIF
    ``m = m sigmoid(u/tau) + s``, ``v = u - s (theta + sigmoid(m))``). The state starts at
    ``v = 0`` (``v_reset`` for a hard reset) and ``m = 0``. ``neuron``: ``lif``, ``plif`` (same
    dynamics as lif) or ``clif``; CLIF has the soft reset only and raises if ``v_reset`` is given.
    """
    neuron = _check_neuron(neuron)
    if neuron == "clif" and v_reset is not None:
        raise TheoryError("CLIF has a single reset rule (the soft reset); v_reset must be None")
    g = gamma_of(tau)
    theta = float(v_threshold)
    vr0 = 0.0 if v_reset is None else float(v_reset)
    x = np.asarray(x, dtype=np.float64)
    u_all = np.empty_like(x)
    s_all = np.empty_like(x)
    m_all = np.zeros_like(x) if neuron == "clif" else None
    v = np.full_like(x[0], vr0)
    m = np.zeros_like(x[0])
    for t in range(x.shape[0]):
        # charge
        u = v + (x[t] - (v - vr0)) / tau if decay_input else g * (v - vr0) + vr0 + x[t]
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
    return MembraneTrajectory(u=u_all, s=s_all, m_prev=m_all)


def clif_memory(u, *, tau: float = 2.0, v_threshold: float = 1.0) -> np.ndarray:
    """CLIF's complementary potential one step back, ``m_prev[t] = m[t-1]``, from the potentials alone.

    ``m[t] = m[t-1] sigmoid(u[t]/tau) + H(u[t] - theta)`` with ``m[-1] = 0`` (paper Eq. 19) depends
    on nothing but the trajectory of ``u``, so a recorded ``u [T, ...]`` fixes it. Returns float64
    ``[T, ...]`` with ``m_prev[0] = 0``; feed it to :func:`clif_jacobian` or :func:`reset_factor`.

    >>> clif_memory([[1.2], [0.0], [1.0]])[:, 0].tolist()   # m[0] = 1 (spike), m[1] = 1 * sigmoid(0)
    [0.0, 1.0, 0.5]
    """
    gamma_of(tau)
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros_like(u)
    m = np.zeros_like(u[0])
    for t in range(u.shape[0]):
        out[t] = m
        m = m * expit(u[t] / tau) + heaviside(u[t] - float(v_threshold))
    return out


def _check_neuron(neuron: str) -> str:
    """Normalise a neuron name: ``lif``/``plif``/``if`` -> ``lif``-like dynamics, ``clif``.

    ``if`` (integrate-and-fire) is LIF without leak: its layers carry ``tau = inf``, so ``gamma = 1``.
    """
    n = str(neuron).lower()
    if n not in ("lif", "plif", "if", "clif"):
        raise TheoryError(f"unknown neuron {neuron!r}; expected 'lif', 'plif', 'if' or 'clif'")
    return "clif" if n == "clif" else "lif"


@dataclass(frozen=True)
class NeuronConfig:
    """Every gradient-changing option of one neuron layer, validated once.

    ``neuron`` is normalised to ``lif`` (also for ``plif``: same dynamics, its learned ``tau`` is
    passed as ``tau``) or ``clif``; ``alpha=None`` becomes the surrogate's default. ``m_grad``
    (CLIF only; False detaches ``m``, an ablation) is ignored for LIF. Raises
    :class:`TheoryError` for an unknown neuron or surrogate, ``tau <= 0`` or a CLIF hard reset.

    >>> NeuronConfig("plif", 3.0).gamma
    0.6666666666666667
    """

    neuron: str = "lif"
    tau: float = 2.0
    v_threshold: float = 1.0
    surrogate: str = "rectangle"
    alpha: float | None = None
    v_reset: float | None = None
    detach_reset: bool = False
    decay_input: bool = False
    m_grad: bool = True

    def __post_init__(self):
        object.__setattr__(self, "neuron", _check_neuron(self.neuron))
        object.__setattr__(self, "alpha", resolve_alpha(self.surrogate, self.alpha))
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "v_threshold", float(self.v_threshold))
        object.__setattr__(self, "m_grad", bool(self.m_grad))
        if self.v_reset is not None:
            object.__setattr__(self, "v_reset", float(self.v_reset))
        gamma_of(self.tau)
        if self.neuron == "clif" and self.v_reset is not None:
            raise TheoryError("CLIF has a single reset rule (the soft reset); v_reset must be None")

    @property
    def gamma(self) -> float:
        """Leak ``gamma = 1 - 1/tau`` (docs Eq. 2)."""
        return gamma_of(self.tau)

    def sg(self, u):
        """``sg(u - theta)`` with this layer's surrogate (docs Eq. 1)."""
        return sg(np.asarray(u, dtype=np.float64) - self.v_threshold, self.surrogate, self.alpha)

    def eps(self, u):
        """LIF factor, :func:`lif_eps` with these options."""
        return lif_eps(u, tau=self.tau, v_threshold=self.v_threshold, surrogate=self.surrogate,
                       alpha=self.alpha, v_reset=self.v_reset, detach_reset=self.detach_reset)

    def jac(self, u, m_prev):
        """CLIF Jacobian, :func:`clif_jacobian` with these options."""
        return clif_jacobian(u, m_prev, tau=self.tau, v_threshold=self.v_threshold, surrogate=self.surrogate,
                             alpha=self.alpha, detach_reset=self.detach_reset, m_grad=self.m_grad)

    def factor_kw(self) -> dict:
        """Keyword arguments of :func:`reset_factor` (and the transport functions) for this layer."""
        return dict(neuron=self.neuron, tau=self.tau, v_threshold=self.v_threshold,
                    surrogate=self.surrogate, alpha=self.alpha, v_reset=self.v_reset,
                    detach_reset=self.detach_reset, m_grad=self.m_grad)
