"""Comparison models of the temporal gradient's decay with the lag k (docs §4, §8-§9).

The measured quantity (docs Eq. 17) is, for one layer,

    relative_k^2 = sum_{t=0}^{T-1-k} ||pair[t, t+k]||^2 / sum_{t=0}^{T-1-k} ||P[t+k]||^2,

with ``pair[t, t+k] = F[t, t+k] * P[t+k]`` and the transport factor ``F`` of
:func:`gradflow.theory.factors.pair_factors`. The models here write it as

    relative_k^2 ~= sum_t ||P[t+k]||^2 C[t, k] / sum_t ||P[t+k]||^2,    C[t, k] = E_w[F[t, t+k]^2],

plugging in the recorded spatial norms ``||P[t+k]||`` and taking the expectation ``E_w`` weighted
by where the spatial gradient lives (``sg(u[t+k] - theta)^2``). They differ only in ``C``, and
none of them sees which neurons carry the gradient; the default ``window`` model
(:mod:`gradflow.theory.window`) does, one step back, and is the one that explains trained
networks. The models here stay for comparison:

* ``independent`` -- factors of different steps independent of each other and of ``P``:
  ``C[t, k] = prod_{j=t}^{t+k-1} E[eps[j]^2]`` (Eq. 18). For the rectangle surrogate with soft
  reset, and for detached resets, ``E[eps^2]`` is a function of the recorded window fraction or
  firing rate alone, so this model needs nothing but the per-step table ("plug-in").
* ``markov`` -- LIF, rectangle, soft reset: window membership is a two-state Markov chain whose
  transition probabilities come from a simulation of the fitted current model (Eq. 19).
* ``simulation`` -- the exact ``C`` under i.i.d. Gaussian input currents ``x ~ N(mean, std^2)``
  fitted to the recorded firing rates and window fractions, by Monte Carlo over simulated
  membrane trajectories (Eq. 20-21); also the semi-analytical CLIF predictor.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.stats import norm

from .. import stats
from .factors import MembraneTrajectory, NeuronConfig, simulate_neuron
from .gaussian import fit_gaussian_membrane
from .surrogates import TheoryError, sg_support

__all__ = [
    "MODELS",
    "CurrentModel",
    "decay_rate",
    "fit_current_model",
    "half_life",
    "horizon",
    "predict_lags",
    "predict_relative",
    "rate_half_life",
    "rate_horizon",
    "simulate_currents",
    "transport_factors",
]

#: Names of the lag models: the default ``window`` (docs §6), then the comparison models here.
MODELS = ("window", "independent", "markov", "simulation")

#: The models :func:`predict_lags` computes from the ``per_step`` table alone.
TABLE_MODELS = MODELS[1:]

PER_STEP_COLUMNS = ("layer", "layer_index", "t", "firing_rate", "window_fraction", "grad_spatial_norm")


def _table_q(cfg: NeuronConfig, firing_rate, window_fraction):
    """``E[eps^2]`` per step from the table alone, or None where it needs a model (Eq. 12-13)."""
    if cfg.neuron == "clif":
        return None
    g2 = cfg.gamma**2
    if cfg.detach_reset and cfg.v_reset is None:
        return np.full(np.shape(firing_rate), g2)
    if cfg.detach_reset:
        return g2 * (1.0 - np.asarray(firing_rate, float))
    if cfg.v_reset is None and cfg.surrogate == "rectangle":
        r = cfg.v_threshold / cfg.alpha
        return g2 * (1.0 - np.asarray(window_fraction, float) * (2 * r - r * r))
    return None


class CurrentModel(NamedTuple):
    """I.i.d. Gaussian input currents ``x[t] ~ N(mean, std^2)`` fitted to a layer's statistics.

    ``rmse``: root mean square misfit over the per-step firing rates (and window fractions,
    for surrogates with compact support) that were fitted.
    """

    mean: float
    std: float
    rmse: float


def simulate_currents(
    mean: float,
    std: float,
    *,
    T: int,
    n: int = 50_000,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = None,
    decay_input: bool = False,
    seed: int = 0,
) -> MembraneTrajectory:
    """Simulate ``n`` independent neurons for ``T`` steps on currents ``x ~ N(mean, std^2)``.

    Wrapper of :func:`gradflow.theory.factors.simulate_neuron` with a seeded generator.
    """
    x = np.random.default_rng(seed).standard_normal((int(T), int(n))) * std + mean
    return simulate_neuron(x, neuron=neuron, tau=tau, v_threshold=v_threshold, v_reset=v_reset,
                           decay_input=decay_input)


def _trace_stats(trace: MembraneTrajectory, cfg: NeuronConfig):
    """Per-step firing rate and window fraction of a simulated trace."""
    return trace.s.mean(axis=1), (cfg.sg(trace.u) != 0).mean(axis=1)


def fit_current_model(
    firing_rate,
    window_fraction=None,
    *,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    decay_input: bool = False,
    n: int = 20_000,
    seed: int = 0,
) -> CurrentModel:
    """Fit i.i.d. Gaussian currents ``N(mean, std^2)`` to per-step statistics (docs Eq. 20).

    firing_rate, window_fraction: arrays ``[T]`` (t = 0..T-1). Least squares over all steps of
    the simulated firing rate and, when the surrogate has compact support (rectangle, triangle),
    the window fraction; the simulation uses common random numbers so the objective is a fixed
    function of ``(mean, log std)``, minimised by Nelder-Mead. Start: at t = 0 the neuron starts
    from rest (``v_reset`` for a hard reset), so ``u[0]`` is exactly Gaussian and Eq. 16 inverts ``(f[0], w[0])`` in closed form;
    where that is impossible, a grid over ``std`` with the mean that reproduces ``f[0]`` (smooth
    surrogates), or a coarse 2-D grid (``f[0]`` of 0 or 1).

    For the smooth surrogates the window fraction is 1 and only the firing-rate transient over t
    identifies ``std``: the fit is weaker there (docs §9, A4).
    """
    cfg = NeuronConfig(neuron, tau, v_threshold, surrogate, alpha, v_reset, False, decay_input)
    fr = np.asarray(firing_rate, float)
    T = fr.shape[0]
    informative = window_fraction is not None and math.isfinite(sg_support(surrogate, cfg.alpha))
    wf = np.asarray(window_fraction, float) if informative else None
    z = np.random.default_rng(seed).standard_normal((T, int(n)))

    def misfit(p):
        mean, std = p[0], math.exp(p[1])
        trace = simulate_neuron(z * std + mean, neuron=cfg.neuron, tau=tau, v_threshold=v_threshold,
                                v_reset=v_reset, decay_input=decay_input)
        f_sim, w_sim = _trace_stats(trace, cfg)
        r = [f_sim - fr] + ([w_sim - wf] if informative else [])
        r = np.concatenate(r)
        return float(np.nanmean(r**2))

    start = None
    if informative:
        try:
            m0, s0 = fit_gaussian_membrane(fr[0], wf[0], v_threshold=v_threshold,
                                           surrogate=surrogate, alpha=cfg.alpha)
            # the state starts at v_reset0: u[0] = v_reset0 + x[0], or v_reset0 + x[0]/tau with decay_input
            vr0 = 0.0 if v_reset is None else float(v_reset)
            start = (tau * (m0 - vr0), math.log(tau * s0)) if decay_input else (m0 - vr0, math.log(s0))
        except TheoryError:
            start = None
    if start is None:
        # threshold of x[0] at which u[0] = theta: x = theta (or tau*theta - v_reset0)
        vr0 = 0.0 if v_reset is None else float(v_reset)
        x_theta = tau * (v_threshold - vr0) if decay_input else v_threshold - vr0
        if 0 < fr[0] < 1:  # f[0] = P(x[0] >= x_theta) pins the mean given the std
            zq = float(norm.isf(fr[0]))
            grid = [(x_theta - zq * sd, math.log(sd)) for sd in np.geomspace(0.02, 10.0, 40)]
        else:
            grid = [(mu, math.log(sd)) for mu in np.linspace(x_theta - 3, x_theta + 2, 21)
                    for sd in np.geomspace(0.05, 5.0, 15)]
        start = min(grid, key=misfit)
    res = optimize.minimize(misfit, np.array(start), method="Nelder-Mead",
                            options=dict(xatol=1e-4, fatol=1e-10, maxiter=400))
    best = res.x if res.fun <= misfit(start) else np.array(start)
    return CurrentModel(mean=float(best[0]), std=float(math.exp(best[1])), rmse=math.sqrt(misfit(best)))


def transport_factors(trace: MembraneTrajectory, *, model: str = "simulation", **neuron_kw) -> np.ndarray:
    """Expected squared transport factors ``C[t, k]`` over a simulated trace (docs Eq. 18-21).

    Returns ``C`` of shape ``[T, T]``, ``C[t, k]`` for ``t + k <= T-1`` and NaN elsewhere, with
    ``C[t, 0] = 1``:

    * ``simulation``: ``C[t,k] = E[sg(u[t+k]-theta)^2 F[t,t+k]^2] / E[sg(u[t+k]-theta)^2]``  (Eq. 21)
    * ``independent``, LIF: ``prod_j E[eps[j]^2]``; CLIF: ``Sigma[t+k]_{uu}`` where
      ``Sigma[j+1] = E[J[j] Sigma[j] J[j]^T]``, ``Sigma[t] = e_u e_u^T``               (Eq. 18)
    * ``markov`` (LIF, rectangle, soft reset): ``C[t,k] = pi[t]^T D Q[t] D ... D Q[t+k-1] e_in
      / pi[t+k](in)``, membership chain ``b[j] = 1{sg(u[j]-theta) != 0}`` with
      ``D = diag(eps_out^2, eps_in^2)`` and ``Q[j]`` its empirical transitions          (Eq. 19)

    trace: from :func:`simulate_currents`; neuron_kw: ``neuron``, ``tau``, ``v_threshold``,
    ``surrogate``, ``alpha``, ``v_reset``, ``detach_reset``.
    """
    cfg = NeuronConfig(**neuron_kw)
    if model not in TABLE_MODELS:
        raise TheoryError(f"unknown model {model!r}; expected one of {TABLE_MODELS}")
    u = trace.u
    T = u.shape[0]
    C = np.full((T, T), np.nan)
    C[:, 0] = 1.0
    if model == "markov":
        return _markov_factors(cfg, u, C)
    w_end = cfg.sg(u) ** 2  # where P lives
    if cfg.neuron == "lif":
        eps2 = cfg.eps(u) ** 2
        for t in range(T):
            if model == "independent":
                C[t, 1:T - t] = np.cumprod(eps2[t:T - 1].mean(axis=1))
                continue
            f2 = np.ones(u.shape[1])
            for k in range(1, T - t):
                f2 = f2 * eps2[t + k - 1]
                C[t, k] = _ratio(np.mean(w_end[t + k] * f2), np.mean(w_end[t + k]))
        return C
    J = cfg.jac(u, trace.m_prev)
    M = np.stack([np.stack([J.uu, J.um]), np.stack([J.mu, J.mm])])  # [2, 2, T, n]
    for t in range(T):
        if model == "independent":
            S = np.array([[1.0, 0.0], [0.0, 0.0]])
            for k in range(1, T - t):
                Mj = M[:, :, t + k - 1]
                S = np.einsum("abn,bd,cdn->ac", Mj, S, Mj) / u.shape[1]
                C[t, k] = S[0, 0]
            continue
        a_u, a_m = np.ones(u.shape[1]), np.zeros(u.shape[1])
        for k in range(1, T - t):
            j = t + k - 1
            a_u, a_m = J.uu[j] * a_u + J.um[j] * a_m, J.mu[j] * a_u + J.mm[j] * a_m
            C[t, k] = _ratio(np.mean(w_end[t + k] * a_u**2), np.mean(w_end[t + k]))
    return C


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def _markov_factors(cfg: NeuronConfig, u: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Two-state chain over window membership (docs Eq. 19); see :func:`transport_factors`."""
    if cfg.neuron != "lif" or cfg.surrogate != "rectangle" or cfg.v_reset is not None:
        raise TheoryError("the markov model needs LIF with the rectangle surrogate and soft reset")
    T = u.shape[0]
    inside = cfg.sg(u) != 0
    g2 = cfg.gamma**2
    e_in = 1.0 if cfg.detach_reset else 1.0 - cfg.v_threshold / cfg.alpha  # eps_in / gamma
    D = np.array([g2, g2 * e_in**2])  # eps^2 outside, inside
    pi = np.stack([1.0 - inside.mean(axis=1), inside.mean(axis=1)], axis=1)  # [T, 2]
    Q = np.zeros((T, 2, 2))
    for j in range(T - 1):
        for b in (0, 1):
            sel = inside[j] == b
            p_in = inside[j + 1][sel].mean() if sel.any() else pi[j + 1, 1]
            Q[j, b] = (1.0 - p_in, p_in)
    for t in range(T):
        vec = pi[t]
        for k in range(1, T - t):
            vec = (vec * D) @ Q[t + k - 1]
            C[t, k] = _ratio(vec[1], pi[t + k, 1])
    return C


def predict_relative(spatial_sq, C, max_lag: int | None = None) -> np.ndarray:
    """Predicted ``relative_k`` from spatial norms and transport factors (docs Eq. 17).

        relative_k^2 = sum_{t=0}^{T-1-k} spatial_sq[t+k] C[t, k] / sum_{t=0}^{T-1-k} spatial_sq[t+k]

    the definition of the measured ``relative_k`` (docs Eq. 17) with ``||pair[t, t+k]||^2``
    replaced by ``spatial_sq[t+k] C[t, k]``. spatial_sq: ``[T]`` squared spatial norms
    ``||P[t]||^2``; C: ``[T, T]``, or ``[T]`` of per-step ``E[eps^2]`` (then
    ``C[t,k] = prod_{j=t}^{t+k-1} q[j]``). A step with zero spatial norm adds nothing to either
    sum. Returns ``[max_lag + 1]`` (default ``T - 1``); NaN at lags without a source.

    >>> predict_relative([0.0, 0.0, 4.0], [0.25, 0.25, 0.0]).tolist()   # one source, eps^2 = 1/4
    [1.0, 0.5, 0.25]
    """
    sp = np.asarray(spatial_sq, float)
    T = sp.shape[0]
    C = np.asarray(C, float)
    if C.ndim == 1:
        q = C
        C = np.full((T, T), np.nan)
        for t in range(T):
            C[t, : T - t] = np.concatenate([[1.0], np.cumprod(q[t:T - 1])])
    K = T - 1 if max_lag is None else min(int(max_lag), T - 1)
    rel = np.full(K + 1, np.nan)
    for k in range(K + 1):
        den = sp[k:].sum()
        if den > 0:
            num = np.where(sp[k:] == 0, 0.0, sp[k:] * C[: T - k, k]).sum()
            rel[k] = math.sqrt(num / den)
    return rel


def _layer_stats(df: pd.DataFrame):
    """Average one layer's rows over ``step``: ``[T]`` arrays sp^2, f, w, eps^2 (t sorted).

    The last is the mean of ``eps_rms^2`` where the table has gradflow's extra ``eps_rms``
    column, else None.
    """
    d = df.assign(_sp2=df["grad_spatial_norm"].astype(float) ** 2)
    cols = ["_sp2", "firing_rate", "window_fraction"]
    if "eps_rms" in d.columns:
        d = d.assign(_eps2=d["eps_rms"].astype(float) ** 2)
        cols.append("_eps2")
    g = d.groupby("t", sort=True)[cols].mean()
    t = g.index.to_numpy()
    if not np.array_equal(t, np.arange(len(t))):
        raise TheoryError(f"per_step t values must be 0..T-1 for each layer, got {t.tolist()}", exit_code=1)
    eps2 = g["_eps2"].to_numpy() if "_eps2" in g.columns else None
    return g["_sp2"].to_numpy(), g["firing_rate"].to_numpy(), g["window_fraction"].to_numpy(), eps2


def predict_lags(
    per_step: pd.DataFrame,
    *,
    neuron: str | None = None,
    tau: float | Mapping[str, float] | None = None,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    max_lag: int | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    decay_input: bool = False,
    model: str = "independent",
    n_sim: int = 50_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Predicted ``relative_k`` per layer from the recorder's ``per_step`` table (docs §8).

    per_step: the recorder's ``per_step`` table (docs/reference.md); several steps and layers are
    allowed, and the statistics are averaged over ``step`` per ``(layer, t)``: squared spatial
    norms, firing rates, window fractions.
    neuron: ``lif``/``plif``/``clif``; None takes each layer's ``neuron`` column. tau: one value,
    a mapping from layer name to tau, or None to read each layer's ``tau`` column (gradflow's
    recorder adds it; PLIF's learned value, averaged over steps).

    model: one of ``independent``, ``markov``, ``simulation`` (the ``window`` model needs the
    transport inputs of :func:`gradflow.theory.transport_inputs`; :func:`gradflow.theory.theory_table`
    takes them). ``independent`` (the default here) is the plug-in of Eq. 18. For
    LIF/PLIF it needs no input model: ``E[eps[t]^2]`` is the table's ``eps_rms[t]^2`` where
    gradflow's recorder provides that column, else the closed form in the window fraction
    (rectangle, soft reset) or firing rate (detached hard reset). CLIF, the remaining LIF cases
    and the ``markov``/``simulation`` models fit i.i.d. Gaussian currents to the layer (Eq. 20)
    and simulate ``n_sim`` neurons.

    Returns a DataFrame, one row per (layer, lag), lag = 0..min(max_lag, T-1):
    ``layer, layer_index, lag, predicted_relative, model, current_mean, current_std,
    current_rmse`` (the fitted current model of Eq. 20 and its misfit; NaN where none was needed). A layer whose fit fails gets NaN
    predictions and a warning.

    >>> ps = pd.DataFrame(dict(step=0, layer="sn", layer_index=0, neuron="lif", t=[0, 1],
    ...     firing_rate=0.2, window_fraction=[0.5, 0.5], grad_spatial_norm=[1.0, 1.0]))
    >>> predict_lags(ps, tau=2.0)["predicted_relative"].round(4).tolist()  # sqrt(.25 * (1-.5))
    [1.0, 0.3536]
    """
    missing = [c for c in PER_STEP_COLUMNS if c not in per_step.columns]
    if missing:
        raise TheoryError(f"per_step table lacks columns {missing}", exit_code=1)
    if model not in TABLE_MODELS:
        raise TheoryError(f"unknown model {model!r} for the per_step table; expected one of {TABLE_MODELS} "
                          "(the window model needs transport inputs: use theory_table)")
    rows = []
    for (layer, layer_index), df in per_step.groupby(["layer", "layer_index"], sort=False):
        name = neuron
        if name is None:
            if "neuron" not in df.columns:
                raise TheoryError("neuron not given and per_step has no neuron column")
            name = str(df["neuron"].iloc[0])
        if tau is None:
            if "tau" not in df.columns:
                raise TheoryError("tau not given and the per_step table has no tau column")
            tau_l = float(df["tau"].astype(float).mean())
        else:
            tau_l = float(tau[layer]) if isinstance(tau, Mapping) else float(tau)
        cfg = NeuronConfig(name, tau_l, v_threshold, surrogate, alpha, v_reset, detach_reset, decay_input)
        sp2, fr, wf, eps2 = _layer_stats(df)
        rel, cur = _predict_layer(cfg, sp2, fr, wf, eps2, model, max_lag, n_sim, seed, str(layer))
        for k, r in enumerate(rel):
            rows.append((layer, int(layer_index), k, float(r), model, cur.mean, cur.std, cur.rmse))
    out = pd.DataFrame(rows, columns=["layer", "layer_index", "lag", "predicted_relative", "model",
                                      "current_mean", "current_std", "current_rmse"])
    return out.sort_values(["layer_index", "lag"], kind="stable").reset_index(drop=True)


_NO_MODEL = CurrentModel(math.nan, math.nan, math.nan)


def _predict_layer(cfg: NeuronConfig, sp2, fr, wf, eps2, model, max_lag, n_sim, seed, layer=""):
    """Relative profile of one layer and the current model used (or ``_NO_MODEL``)."""
    T = sp2.shape[0]
    K = T - 1 if max_lag is None else min(int(max_lag), T - 1)
    if model == "independent":
        q = _table_q(cfg, fr, wf)
        if cfg.neuron == "lif" and eps2 is not None and np.all(np.isfinite(eps2[: T - 1])):
            q = eps2  # measured E[eps^2] per step: any surrogate and reset, truncation cuts included
        if q is not None:
            return predict_relative(sp2, q, K), _NO_MODEL
    try:
        cur = fit_current_model(fr, wf, neuron=cfg.neuron, tau=cfg.tau, v_threshold=cfg.v_threshold,
                                surrogate=cfg.surrogate, alpha=cfg.alpha, v_reset=cfg.v_reset,
                                decay_input=cfg.decay_input, seed=seed)
        trace = simulate_currents(cur.mean, cur.std, T=T, n=n_sim, neuron=cfg.neuron, tau=cfg.tau,
                                  v_threshold=cfg.v_threshold, v_reset=cfg.v_reset,
                                  decay_input=cfg.decay_input, seed=seed + 1)
        C = transport_factors(trace, model=model, **_kw(cfg))
    except TheoryError as err:
        warnings.warn(f"gradflow.theory: no {model} prediction for layer {layer!r}: {err}", stacklevel=3)
        return np.full(K + 1, np.nan), _NO_MODEL
    return predict_relative(sp2, C, K), cur


def _kw(cfg: NeuronConfig) -> dict:
    return cfg.factor_kw()


def decay_rate(lags, relative, *, max_lag: int | None = None) -> float:
    """Per-step decay rate of a lag profile (docs Eq. 22): :func:`gradflow.stats.decay_rate`.

        log r = sum_k k log relative_k / sum_k k^2    over lags 1 <= k (<= max_lag), relative_k > 0

    Kept with the theory's argument order ``(lags, relative)`` for existing callers; it calls
    ``gradflow.stats.decay_rate(relative, lags, max_lag=max_lag)``, the one definition. NaN when
    no lag qualifies.

    >>> round(decay_rate([0, 1, 2, 3], [1, 0.5, 0.25, 0.125]), 12)
    0.5
    """
    return stats.decay_rate(np.asarray(relative, float), np.asarray(lags, float), max_lag=max_lag)


def rate_half_life(rate: float) -> float:
    """Lags for the geometric profile ``r^k`` of a decay rate to halve: ``log(1/2) / log(r)`` (Eq. 23).

    This is a property of the fitted rate, not of the profile: the half-life of a profile is
    :func:`gradflow.stats.half_life` (the log-linear crossing of 1/2, Eq. 24), which equals this for a
    geometric profile. ``inf`` for ``r >= 1``, ``0`` for ``r = 0``, NaN for NaN.

    >>> round(rate_half_life(0.5), 12)
    1.0
    """
    return rate_horizon(rate, level=0.5)


def rate_horizon(rate: float, level: float = 0.01) -> float:
    """Lag at which ``r^k`` falls to ``level`` (default 1%: temporal under 1% of spatial, Eq. 23).

        k* = log(level) / log(r)

    >>> round(rate_horizon(0.1), 12)
    2.0
    """
    r = float(rate)
    if math.isnan(r):
        return math.nan
    r = abs(r)
    if r >= 1:
        return math.inf
    if r == 0:
        return 0.0
    return math.log(level) / math.log(r)


#: Former name of :func:`rate_half_life` (a decay rate in, not a profile); kept for old callers.
half_life = rate_half_life

#: Former name of :func:`rate_horizon`; kept for old callers.
horizon = rate_horizon
