"""CLIF against LIF inside the surrogate window: where CLIF passes more back (docs §3.3).

At the same potential, CLIF's reset factor (docs Eq. 5c) is LIF's soft-reset factor minus a
non-negative term::

    f_CLIF = f_LIF - D,   f_LIF = 1 - theta sg,   D = sg sigma(m[t]) + s sigma'(m[t]) psi[t] >= 0

so ``|f_CLIF| > |f_LIF|`` exactly when ``D > 2 f_LIF`` (Eq. 7b). For the rectangle surrogate
this is a bound on the window width ``alpha`` (Eq. 7c-7d): :func:`clif_window_alpha`. The one-step
factors are ``gamma f`` for both neurons, so the same comparison holds for what one step
transports (the squared factors). Numpy only.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .factors import gamma_of
from .surrogates import heaviside, resolve_alpha, sg

__all__ = ["clif_exceeds_lif", "clif_near_threshold_factor", "clif_window_alpha"]


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
    ``-gamma * sigma'(m) * psi``, with ``0 <= sigma' <= 1/4``; see :func:`clif_jacobian`.
    :func:`clif_exceeds_lif` and :func:`clif_window_alpha` say where CLIF's factor is the larger (Eq. 7b-7d).

    >>> round(float(clif_near_threshold_factor(0.0, tau=2.0)), 6)
    -0.25
    """
    g = gamma_of(tau)
    theta = float(v_threshold)
    a = theta if alpha is None else resolve_alpha("rectangle", alpha)
    return g * (1.0 - (theta + expit(np.asarray(m, dtype=np.float64))) / a)


def _memory(u, m_prev, tau, theta):
    """``(s, q, m, sigma(m), sigma'(m))`` of one CLIF step at ``u`` with memory ``m_prev = m[t-1]``."""
    u = np.asarray(u, dtype=np.float64)
    m_prev = np.asarray(m_prev, dtype=np.float64)
    s = heaviside(u - theta)
    q = expit(u / tau)
    m = m_prev * q + s
    sig = expit(m)
    return s, q, m, sig, sig * (1.0 - sig)


def clif_exceeds_lif(
    u,
    m_prev,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
):
    """Where CLIF's one-step factor exceeds LIF's in magnitude at the same potential (docs Eq. 7b).

    Soft reset, reset not detached. With ``sg = sg(u - theta)``, ``s = H(u - theta)``,
    ``m = m[t] = m_prev sigmoid(u/tau) + s`` and ``psi = dm[t]/du[t]``::

        |xi_CLIF| > |eps_LIF|   <=>   D > 2 (1 - theta sg),   D = sg sigma(m) + s sigma'(m) psi

    i.e. ``sg (2 theta + sigma(m)) > 2`` below threshold and
    ``sg (2 theta + sigma(m) + sigma'(m)) + sigma'(m) m_prev q (1-q)/tau > 2`` at or above it
    (``q = sigmoid(u/tau)``). Outside a compact window ``sg = 0`` and both factors equal ``gamma``:
    False. Returns a boolean array of the broadcast shape.

    >>> clif_exceeds_lif([0.8, 0.8], [0.0, 0.0], alpha=1.0).tolist(), clif_exceeds_lif(0.8, 0.0, alpha=1.6).tolist()
    ([True, True], False)
    """
    theta = float(v_threshold)
    gamma_of(tau)
    a = resolve_alpha(surrogate, alpha)
    s, q, _, sig, dsig = _memory(u, m_prev, tau, theta)
    d = sg(np.asarray(u, dtype=np.float64) - theta, surrogate, a)
    psi = np.asarray(m_prev, dtype=np.float64) * q * (1.0 - q) / tau + d
    D = d * sig + s * dsig * psi
    return D > 2.0 * (1.0 - theta * d)


def clif_window_alpha(u, m_prev, *, tau: float = 2.0, v_threshold: float = 1.0):
    """Rectangle surrogate: the width ``alpha*`` below which CLIF's in-window factor is the larger (Eq. 7c-7d).

    For a potential inside the window (``|u - theta| <= alpha/2``, so ``sg = 1/alpha``), soft reset::

        no spike (u < theta):   |xi_CLIF| > |eps_LIF|  <=>  alpha < theta + sigma(m)/2                      (7c)
        spike (u >= theta):     |xi_CLIF| > |eps_LIF|  <=>  alpha < (2 theta + sigma + sigma') / (2 - sigma' c)  (7d)

    with ``m = m[t]``, ``sigma = sigmoid(m)``, ``sigma' = sigma (1 - sigma)`` and
    ``c = m_prev q (1-q) / tau``, ``q = sigmoid(u/tau)`` (``inf`` where ``sigma' c >= 2``). Since
    ``sigma(m) >= 1/2``, every ``alpha < theta + 1/4`` (the paper's ``alpha = theta`` included) makes
    CLIF's factor the larger everywhere in the window, and below threshold no ``alpha >= theta + 1/2``
    does.

    >>> round(float(clif_window_alpha(0.9, 0.0, tau=2.0)), 6)   # theta + sigmoid(0)/2
    1.25
    """
    theta = float(v_threshold)
    gamma_of(tau)
    s, q, _, sig, dsig = _memory(u, m_prev, tau, theta)
    c = np.asarray(m_prev, dtype=np.float64) * q * (1.0 - q) / tau
    below = theta + sig / 2.0
    den = 2.0 - dsig * c
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(den > 0, (2.0 * theta + sig + dsig) / den, np.inf)
    return np.where(s > 0, above, below)
