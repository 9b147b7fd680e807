"""Gaussian model of the membrane potential: ``u ~ N(mu, sigma^2)`` (docs §4).

Closed forms through the normal CDF for the rectangle surrogate, scipy quadrature for the rest.
Under this model the factors of different steps are taken as independent and identically
distributed, so the lag profile is geometric: ``relative_k = E[eps^2]^(k/2)`` (docs Eq. 15).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize
from scipy.stats import norm

from .factors import gamma_of, lif_eps
from .surrogates import TheoryError, resolve_alpha, sg_support

__all__ = [
    "fit_gaussian_membrane",
    "gaussian_eps_moments",
    "gaussian_firing_rate",
    "gaussian_lag_profile",
    "gaussian_window_fraction",
]


def gaussian_firing_rate(mu, sigma, *, v_threshold: float = 1.0):
    """``P(u >= theta) = Phi((mu - theta) / sigma)`` for ``u ~ N(mu, sigma^2)`` (docs Eq. 11a).

    mu, sigma: broadcastable arrays; ``sigma = 0`` gives the indicator ``mu >= theta``.
    """
    mu, sigma = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sigma, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = norm.cdf((mu - v_threshold) / sigma)
    return np.where(sigma > 0, p, (mu >= v_threshold).astype(float))[()]


def gaussian_window_fraction(
    mu, sigma, *, v_threshold: float = 1.0, surrogate: str = "rectangle", alpha: float | None = None
):
    """Share of ``u ~ N(mu, sigma^2)`` where ``sg(u - theta) != 0`` (docs Eq. 11b).

        w = Phi((theta + h - mu)/sigma) - Phi((theta - h - mu)/sigma)

    with the support half-width ``h = alpha/2`` (rectangle) or ``1/alpha`` (triangle); the smooth
    surrogates never vanish, so ``w = 1`` for them.

    >>> round(float(gaussian_window_fraction(1.0, 1.0)), 4)   # 2 Phi(0.5) - 1
    0.3829
    """
    h = sg_support(surrogate, alpha)
    mu, sigma = np.broadcast_arrays(np.asarray(mu, float), np.asarray(sigma, float))
    if math.isinf(h):
        return np.ones_like(mu)[()]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = norm.cdf((v_threshold + h - mu) / sigma) - norm.cdf((v_threshold - h - mu) / sigma)
    return np.where(sigma > 0, w, (np.abs(mu - v_threshold) <= h).astype(float))[()]


def gaussian_eps_moments(
    mu: float,
    sigma: float,
    *,
    tau: float,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
) -> tuple[float, float]:
    """``(E[eps], E[eps^2])`` of LIF's factor for ``u ~ N(mu, sigma^2)`` (docs Eq. 12-14).

    Closed forms, with ``w`` the window fraction (Eq. 11b) and ``f`` the firing rate (Eq. 11a):

    * soft, rectangle: ``E eps = gamma (1 - theta w / alpha)``,
      ``E eps^2 = gamma^2 (1 - w (2 theta/alpha - theta^2/alpha^2))``             (Eq. 12)
      (for ``alpha = theta``: ``gamma (1 - w)`` and ``gamma^2 (1 - w)``)
    * soft, detached: ``gamma`` and ``gamma^2``; hard, detached: ``gamma (1-f)``,
      ``gamma^2 (1-f)``                                                           (Eq. 13)
    * otherwise ``E[g(u)] = int g(u) N(u; mu, sigma^2) du`` by adaptive quadrature on
      ``mu +- 12 sigma`` split at ``theta`` and the support edges                   (Eq. 14)
    """
    g = gamma_of(tau)
    theta = float(v_threshold)
    a = resolve_alpha(surrogate, alpha)
    if v_reset is None and detach_reset:
        return g, g * g
    if v_reset is not None and detach_reset:
        f = float(gaussian_firing_rate(mu, sigma, v_threshold=theta))
        return g * (1 - f), g * g * (1 - f)
    if v_reset is None and surrogate == "rectangle":
        w = float(gaussian_window_fraction(mu, sigma, v_threshold=theta, alpha=a))
        return g * (1 - theta * w / a), g * g * (1 - w * (2 * theta / a - theta**2 / a**2))
    kw = dict(tau=tau, v_threshold=theta, surrogate=surrogate, alpha=a, v_reset=v_reset)
    if not sigma > 0:
        e = float(lif_eps(mu, **kw))
        return e, e * e
    lo, hi = mu - 12 * sigma, mu + 12 * sigma
    h = sg_support(surrogate, a)
    cuts = [c for c in (theta - h, theta, theta + h) if math.isfinite(c) and lo < c < hi]
    edges = [lo, *sorted(set(cuts)), hi]

    def moment(power: int) -> float:
        def f(u):
            return float(lif_eps(u, **kw)) ** power * norm.pdf(u, mu, sigma)

        return sum(integrate.quad(f, a0, b0, limit=200, epsabs=1e-13)[0] for a0, b0 in zip(edges[:-1], edges[1:]))

    return moment(1), moment(2)


def gaussian_lag_profile(mu: float, sigma: float, max_lag: int, **factor_kw) -> np.ndarray:
    """Lag profile of the i.i.d. Gaussian membrane model (docs Eq. 15).

        relative_k = sqrt(E[P^2] * E[eps^2]^k / E[P^2]) = E[eps^2]^(k/2),   k = 0..max_lag

    factor_kw: ``tau``, ``v_threshold``, ``surrogate``, ``alpha``, ``v_reset``, ``detach_reset``
    as in :func:`gaussian_eps_moments`. Returns float64 array of length ``max_lag + 1``.
    """
    q = gaussian_eps_moments(mu, sigma, **factor_kw)[1]
    return np.sqrt(q) ** np.arange(int(max_lag) + 1)


def fit_gaussian_membrane(
    firing_rate: float,
    window_fraction: float,
    *,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
) -> tuple[float, float]:
    """Invert Eq. 11: the ``(mu, sigma)`` whose Gaussian has this firing rate and window share.

    With ``z = Phi^{-1}(1 - f) = (theta - mu)/sigma`` fixed by the firing rate ``f``, the window
    fraction ``Phi(z + h/sigma) - Phi(z - h/sigma)`` falls strictly from 1 to 0 as ``sigma``
    grows, so ``sigma`` is the unique root (brentq) and ``mu = theta - z sigma`` (docs Eq. 16).
    Needs ``0 < f < 1``, ``0 < w < 1`` and a surrogate with compact support (rectangle or
    triangle); raises :class:`TheoryError` otherwise.
    """
    h = sg_support(surrogate, alpha)
    f, w = float(firing_rate), float(window_fraction)
    if math.isinf(h):
        raise TheoryError(f"the {surrogate} surrogate never vanishes: its window fraction carries no information")
    if not (0 < f < 1 and 0 < w < 1):
        raise TheoryError(f"Gaussian fit needs 0 < firing rate < 1 and 0 < window fraction < 1, got {f}, {w}", exit_code=1)
    z = norm.isf(f)

    def gap(log_s: float) -> float:
        s = math.exp(log_s)
        return norm.cdf(z + h / s) - norm.cdf(z - h / s) - w

    lo, hi = math.log(h) - 30, math.log(h) + 30
    if gap(lo) * gap(hi) > 0:
        raise TheoryError(f"no Gaussian has firing rate {f} and window fraction {w}", exit_code=1)
    sigma = math.exp(optimize.brentq(gap, lo, hi, xtol=1e-14))
    return float(v_threshold - z * sigma), float(sigma)
