"""Tables behind the ``gradflow theory`` figures: no checkpoint needed, seconds to compute.

Each function returns a tidy (long) DataFrame; plotting lives elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import stats
from .decay import decay_rate, predict_relative, rate_horizon, simulate_currents, transport_factors
from .factors import NeuronConfig, clif_jacobian, lif_eps
from .surrogates import SURROGATES, resolve_alpha

__all__ = ["eps_curves", "half_life_table", "lag_curves"]


def eps_curves(
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    u=None,
    m_values: Sequence[float] = (0.0, 1.0, 3.0),
) -> pd.DataFrame:
    """One-step u-to-u factor against the potential: LIF's ``eps(u)`` and CLIF's ``uu(u; m_prev)``.

    LIF rows use Eq. 3-4 (``v_reset`` applies to LIF only; CLIF has one reset rule); CLIF rows use
    Eq. 6 at each ``m_prev`` in ``m_values``. u: grid of potentials (default 801 points on
    ``theta +- 2``). Returns ``neuron, m_prev, u, eps`` (``m_prev`` NaN for LIF).
    """
    grid = np.linspace(v_threshold - 2, v_threshold + 2, 801) if u is None else np.asarray(u, float)
    a = resolve_alpha(surrogate, alpha)
    parts = [pd.DataFrame(dict(neuron="lif", m_prev=np.nan, u=grid, eps=lif_eps(
        grid, tau=tau, v_threshold=v_threshold, surrogate=surrogate, alpha=a, v_reset=v_reset,
        detach_reset=detach_reset)))]
    for m in m_values:
        jac = clif_jacobian(grid, float(m), tau=tau, v_threshold=v_threshold, surrogate=surrogate,
                            alpha=a, detach_reset=detach_reset)
        parts.append(pd.DataFrame(dict(neuron="clif", m_prev=float(m), u=grid, eps=jac.uu)))
    return pd.concat(parts, ignore_index=True)


def lag_curves(
    taus: Sequence[float] = (1.5, 2.0, 3.0, 4.0),
    *,
    neuron: str = "lif",
    mean: float = 0.5,
    std: float = 0.5,
    T: int = 8,
    max_lag: int | None = None,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    decay_input: bool = False,
    models: Sequence[str] = ("independent", "simulation"),
    n: int = 50_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted ``relative_k`` for several tau, for a layer fed i.i.d. ``N(mean, std^2)`` currents.

    The spatial norms are those of a unit-variance readout, ``||P[t]||^2 = n E[sg(u[t]-theta)^2]``
    (the scale cancels in the relative), and the transport factors come from Eq. 18-21 on one
    simulation per tau. (The ``window`` model needs a recorded layer; it is not drawn here.) Returns ``tau, model, lag, predicted_relative``.
    """
    rows = []
    for tau in taus:
        cfg = NeuronConfig(neuron, float(tau), v_threshold, surrogate, alpha, v_reset, detach_reset, decay_input)
        trace = simulate_currents(mean, std, T=T, n=n, neuron=cfg.neuron, tau=cfg.tau, v_threshold=v_threshold,
                                  v_reset=v_reset, decay_input=decay_input, seed=seed)
        sp2 = (cfg.sg(trace.u) ** 2).sum(axis=1)
        for model in models:
            C = transport_factors(trace, model=model, neuron=cfg.neuron, tau=cfg.tau, v_threshold=v_threshold,
                                  surrogate=surrogate, alpha=cfg.alpha, v_reset=v_reset, detach_reset=detach_reset)
            rel = predict_relative(sp2, C, max_lag)
            rows += [(float(tau), model, k, float(r)) for k, r in enumerate(rel)]
    return pd.DataFrame(rows, columns=["tau", "model", "lag", "predicted_relative"])


def half_life_table(
    taus: Sequence[float] = (1.1, 1.5, 2.0, 3.0, 4.0),
    surrogates: Sequence[str] = SURROGATES,
    *,
    neuron: str = "lif",
    mean: float = 0.5,
    std: float = 0.5,
    T: int = 8,
    model: str = "simulation",
    **kw,
) -> pd.DataFrame:
    """The tau x surrogate map: decay rate, half-life and 1% horizon of the predicted profile.

    For every pair, :func:`lag_curves` with one model (default alphas); then the decay rate (Eq. 22),
    the half-life of the profile (:func:`gradflow.stats.half_life`, the log-linear crossing of 1/2,
    Eq. 24; ``inf`` if the profile stays above 1/2 up to lag ``T - 1``) and the 1% horizon of the
    rate (Eq. 23).
    kw: further options of :func:`lag_curves` (``v_threshold``, ``v_reset``, ``detach_reset``,
    ``n``, ``seed``...). Returns ``tau, surrogate, alpha, decay_rate, half_life, horizon``.
    """
    rows = []
    for sur in surrogates:
        curves = lag_curves(taus, neuron=neuron, mean=mean, std=std, T=T, surrogate=sur,
                            models=(model,), **kw)
        for tau, d in curves.groupby("tau", sort=True):
            d = d.sort_values("lag")
            r = decay_rate(d["lag"], d["predicted_relative"])
            hl = stats.half_life(d["predicted_relative"].to_numpy(float), d["lag"].to_numpy(float))
            rows.append((float(tau), sur, resolve_alpha(sur, kw.get("alpha")), r, hl, rate_horizon(r)))
    return pd.DataFrame(rows, columns=["tau", "surrogate", "alpha", "decay_rate", "half_life", "horizon"])
