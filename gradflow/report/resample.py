"""The per-layer core of the summary: resampled units, metrics of resampled sums, weight projections.

Numpy only per layer (no pandas work), so that a training monitor can call :func:`layer_row` once per
layer at every recorded step. One layer's numbers are all functions of sums over *units*: its samples
(``Recorder.samples()``: per-sample squared norms ``spatial_sq``, ``temporal_sq`` ``[n, T]``, pair
norms ``pair_sq`` ``[n, T, K+1]``, spike and window counts), or its backward passes when only the
tables are there. Every unit's contributions are one row of a matrix ``x[n, columns]``;
:func:`gradflow.stats.bootstrap` resamples the rows and every metric is recomputed from the
resampled sums, so all of a layer's intervals come from the same resamples:

==================== =======================================================================
column (:data:`NAMES`) from the sums ``S`` of a resample
==================== =======================================================================
temporal_share       ``sqrt(S_temporal) / (sqrt(S_spatial) + sqrt(S_temporal))``
half_life            :func:`gradflow.stats.half_life_many` of ``relative_k``
decay_rate           :func:`gradflow.stats.decay_rate_many` of ``relative_k``
theory_error         :func:`gradflow.stats.theory_error` of the prediction against ``relative_k``
one_step_survival    the ``window`` model's ``P^2``-weighted mean of ``f[t-1]^2``
in_window_before     share of ``||P||^2`` on neurons in the surrogate window one step earlier
window_occupancy     the population's share in the window zones
firing_rate          ``S_spikes / S_elements`` (per pass: the mean of the per-step rates)
window_fraction      ``S_window / S_elements``
relative_0..K        :func:`gradflow.stats.relative_from_lag_sums` of ``S_num``, ``S_src``
==================== =======================================================================

The window columns and the prediction come from the theory's ``window`` model
(:mod:`gradflow.theory.window`, docs/theory.md §6) when the layer's per-sample transport inputs are
given: they are resampled with the same sample indices as the pair norms, so ``theory_error``'s
interval holds both the measurement's and the prediction's sampling noise. Otherwise the
prediction is the theory table's, held fixed. The weight split resamples backward passes
(:func:`weight_stats`).

>>> import numpy as np
>>> n, T = 4, 2
>>> pair = np.zeros((n, T, 2)); pair[:, :, 0] = 1.0; pair[:, 0, 1] = 0.25        # relative_1 = 0.5
>>> s = {"spatial_sq": np.full((n, T), 1.0), "temporal_sq": np.full((n, T), 0.25), "pair_sq": pair,
...      "spikes": np.ones((n, T)), "window": np.full((n, T), 2.0), "numel": 8, "step": np.zeros(n)}
>>> r = layer_row({"t": np.arange(T), "step": np.zeros(T)}, samples=s, n_resamples=50)
>>> [round(float(r.row[k]), 12) for k in ("temporal_share", "relative_1", "firing_rate", "window_fraction")]
[0.333333333333, 0.5, 0.125, 0.25]
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from .. import stats
from ..theory import window
from ._common import as_float, finite_or_nan

__all__ = ["NAMES", "Units", "Transport", "LayerResult", "layer_row", "units_from_samples", "units_from_tables",
           "transport_units", "window_profile", "weight_stats", "lags_profile", "fit", "field"]

#: The per-layer metrics of :func:`layer_row` with intervals, in column order (``relative_0..K`` follow).
NAMES = ("temporal_share", "half_life", "decay_rate", "theory_error", "one_step_survival", "in_window_before",
         "window_occupancy", "firing_rate", "window_fraction")
_WIN = slice(4, 7)           # the window model's columns
_ACT = slice(7, 9)           # firing rate, window fraction

#: The summed keys of the theory's transport inputs (``zone_edges`` is shared, not a sum).
_TRANSPORT_SUMS = ("count", "occupancy", "spatial_sq", "source_mass", "source", "pair", "triple")


class Transport(NamedTuple):
    """A layer's ``window``-model inputs as resampling units: ``flat[n, C]`` holds every unit's sums,
    ``shapes`` the per-unit shape of each key (in :data:`_TRANSPORT_SUMS` order), ``edges`` the zone
    edges, ``gamma`` the leak ``1 - 1/tau``."""

    flat: np.ndarray
    shapes: Tuple[Tuple[str, tuple], ...]
    edges: np.ndarray
    gamma: float


class Units(NamedTuple):
    """The resampled units of one layer: additive contributions ``[n, ...]`` to the layer's sums."""

    kind: str                          # "samples" or "passes"
    spatial_sq: np.ndarray             # [n]  sum over t of ||P[t]||^2
    temporal_sq: np.ndarray            # [n]  sum over t of ||temporal[t]||^2
    pair_sq: Optional[np.ndarray]      # [n, T, K+1]  ||pair[t, t+k]||^2, or None
    passes: int                        # backward passes the units came from
    transport: Optional[Transport] = None
    activity: Optional[np.ndarray] = None   # [n, 3]: spikes, window elements, elements


class LayerResult(NamedTuple):
    """What :func:`layer_row` returns: ``row`` (every summary number of the layer, intervals included)
    and the lag profile ``relative``, ``relative_low``, ``relative_high``, ``predicted`` (``[K+1]``)."""

    row: Dict[str, object]
    relative: np.ndarray
    relative_low: np.ndarray
    relative_high: np.ndarray
    predicted: Optional[np.ndarray]


def field(obj, name: str):
    """``obj[name]`` for a mapping, ``obj.name`` otherwise (None when absent)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _finite0(a) -> np.ndarray:
    """``a`` as float64 with non-finite entries set to 0 (left out of the sums)."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def units_from_samples(s, transport: Optional[Transport] = None) -> Units:
    """The units of ``Recorder.samples()[layer]`` (a ``LayerSamples`` or a dict: ``spatial_sq``,
    ``temporal_sq`` ``[n, T]``, ``pair_sq`` ``[n, T, K+1]`` or None, ``spikes``, ``window`` ``[n, T]``
    and ``numel`` optional, ``step`` ``[n]``). Steps padded with NaN (passes with a shorter T) add
    nothing, also not to the element count. ``transport`` is resampled with the samples when it has
    the same ``n`` rows, else summed into one (a fixed prediction)."""
    sp = _finite0(field(s, "spatial_sq"))
    tp = _finite0(field(s, "temporal_sq"))
    n = len(sp)
    pair, step = field(s, "pair_sq"), field(s, "step")
    passes = len(np.unique(np.asarray(step))) if step is not None and len(step) else 1
    if transport is not None and transport.flat.shape[0] != n:     # not per sample: a fixed prediction
        transport = transport._replace(flat=transport.flat.sum(axis=0, keepdims=True))
    activity = None
    spikes, win, numel = field(s, "spikes"), field(s, "window"), field(s, "numel")
    if spikes is not None and win is not None and numel is not None:
        spikes = np.asarray(spikes, dtype=np.float64).reshape(n, -1)
        steps = np.isfinite(spikes).sum(axis=1)
        activity = np.column_stack([_finite0(spikes).sum(axis=1), _finite0(win).reshape(n, -1).sum(axis=1),
                                    steps * float(numel)])
    return Units("samples", sp.reshape(n, -1).sum(axis=1), tp.reshape(n, -1).sum(axis=1),
                 None if pair is None else _finite0(pair), passes, transport, activity)


def _group(step: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(unit index per row, -1 for a non-finite step; the sorted distinct steps)``."""
    ok = np.isfinite(step)
    steps, inverse = np.unique(step[ok], return_inverse=True)
    rows = np.full(len(step), -1)
    rows[ok] = inverse
    return rows, steps


def _rows_in(values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The index of each value in the sorted ``steps``, -1 where it is not one of them."""
    if not len(steps):
        return np.full(len(values), -1)
    pos = np.clip(np.searchsorted(steps, values), 0, len(steps) - 1)
    return np.where(steps[pos] == values, pos, -1)


def units_from_tables(ps: Mapping, pairs: Optional[Mapping], T: int) -> Units:
    """Backward passes as units: per pass, the squared norms of ``per_step`` and ``pairs`` summed, and the
    per-step rates of ``per_step`` (``firing_rate``, ``window_fraction``: summed with one element per
    finite step, so the ratio is the mean rate). Tables as DataFrames or dicts of numpy columns."""
    rows, steps = _group(as_float(ps["step"]))
    keep, n = rows >= 0, len(steps)
    sp, tp = np.zeros(n), np.zeros(n)
    np.add.at(sp, rows[keep], _finite0(as_float(ps["grad_spatial_norm"])[keep]) ** 2)
    np.add.at(tp, rows[keep], _finite0(as_float(ps["grad_temporal_norm"])[keep]) ** 2)
    activity = None
    if "firing_rate" in ps and "window_fraction" in ps:
        fr, wf = as_float(ps["firing_rate"]), as_float(ps["window_fraction"])
        ok = keep & np.isfinite(fr) & np.isfinite(wf)
        activity = np.zeros((n, 3))
        for j, v in enumerate((fr, wf, np.ones(len(fr)))):
            np.add.at(activity[:, j], rows[ok], v[ok])
    pair_sq = None
    if pairs is not None and len(pairs["t"]) and T >= 1:
        t, k, prow = as_float(pairs["t"]), as_float(pairs["lag"]), _rows_in(as_float(pairs["step"]), steps)
        ok = np.isfinite(t) & np.isfinite(k) & (t >= 0) & (k >= 0) & (t + k < T) & (prow >= 0)
        if ok.any():
            pair_sq = np.zeros((n, T, int(k[ok].max()) + 1))
            np.add.at(pair_sq, (prow[ok], t[ok].astype(int), k[ok].astype(int)),
                      _finite0(as_float(pairs["norm"])[ok]) ** 2)
    return Units("passes", sp, tp, pair_sq, n, activity=activity)


def transport_units(inputs, gamma: Optional[float]) -> Optional[Transport]:
    """The transport inputs of one layer as units: per-sample inputs (a leading sample axis: the
    recorder's ``transport_inputs()``) keep one row per sample; summed inputs become one row.
    None when ``inputs`` or ``gamma`` is missing or the inputs lack a key."""
    if inputs is None or gamma is None or not np.isfinite(gamma):
        return None
    if any(field(inputs, k) is None for k in _TRANSPORT_SUMS):
        return None
    arrays = [_finite0(field(inputs, k)) for k in _TRANSPORT_SUMS]
    if np.ndim(field(inputs, "spatial_sq")) != 2:
        arrays = [a[None] for a in arrays]
    n = arrays[0].shape[0]
    edges = field(inputs, "zone_edges")
    edges = np.asarray(window.ZONE_EDGES if edges is None else edges, dtype=np.float64)
    edges = edges[0] if edges.ndim == 2 else edges
    shapes = tuple((k, a.shape[1:]) for k, a in zip(_TRANSPORT_SUMS, arrays))
    return Transport(np.concatenate([a.reshape(n, -1) for a in arrays], axis=1), shapes, edges, float(gamma))


def _stack(flat: np.ndarray, tr: Transport) -> dict:
    """Resampled sums ``[B, C]`` back into the theory's input dict with a leading axis ``B``."""
    out, start = {"zone_edges": tr.edges}, 0
    for key, shape in tr.shapes:
        size = int(np.prod(shape))
        out[key] = flat[:, start:start + size].reshape((len(flat),) + shape)
        start += size
    return out


def _window_columns(flat: np.ndarray, tr: Transport, K: int) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """The window model on every resample: predictions ``[B, K+1]`` (None for ``K < 0``) and
    (survival, in-window, occupancy) ``[B, 3]``."""
    inputs = _stack(flat, tr)
    pred = window.predict_transport_many(inputs, tr.gamma, K) if K >= 0 else None
    s = window.transport_summary_many(inputs)
    return pred, np.column_stack([s["one_step_survival"], s["in_window_before"], s["occupancy"]])


def window_profile(tr: Transport, K: int) -> np.ndarray:
    """The ``window`` model's ``relative_0..K`` from all units' inputs together (the point prediction)."""
    return _window_columns(tr.flat.sum(axis=0, keepdims=True), tr, K)[0][0]


def _metrics(sums: np.ndarray, K1: int, predicted: Optional[np.ndarray],
             tr: Optional[Transport]) -> np.ndarray:
    """The :data:`NAMES` columns, then ``relative_0..K``, from resampled sums ``[B, columns]``: squared
    spatial and temporal norms, spikes, window elements, elements, then the lag sums ``num_0..K``,
    ``src_0..K`` (:func:`gradflow.stats.lag_sums`) and the transport inputs."""
    B = len(sums)
    nan = np.full(B, np.nan)
    share = np.sqrt(sums[:, 1]) / (np.sqrt(sums[:, 0]) + np.sqrt(sums[:, 1]))
    act = sums[:, 2:4] / sums[:, 4:5]
    rel = stats.relative_from_lag_sums(sums[:, 5:5 + K1], sums[:, 5 + K1:5 + 2 * K1]) if K1 else np.zeros((B, 0))
    hl = stats.half_life_many(rel) if K1 > 1 else nan
    dr = stats.decay_rate_many(rel) if K1 else nan
    window_nums = np.full((B, 3), np.nan)
    if tr is not None:
        predicted, window_nums = _window_columns(sums[:, 5 + 2 * K1:], tr, K1 - 1)
    te = stats.theory_error(predicted, rel) if predicted is not None and K1 > 1 else nan
    return np.column_stack([share, hl, dr, te, window_nums, act, rel])


def _bootstrap(units: Units, predicted: Optional[np.ndarray], n_resamples: int, seed: int,
               level: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low and high of :func:`_metrics` for one layer (NaN bounds below 2 units)."""
    n = len(units.spatial_sq)
    K1 = units.pair_sq.shape[2] if units.pair_sq is not None else 0
    tr = units.transport
    joint = tr is not None and tr.flat.shape[0] == n
    act = units.activity if units.activity is not None else np.zeros((n, 3))
    parts = [units.spatial_sq[:, None], units.temporal_sq[:, None], act]
    if units.pair_sq is not None:
        parts.extend(stats.lag_sums(units.pair_sq))   # linear in pair_sq: resampled as the pair norms
    if joint:
        parts.append(tr.flat)
    x = np.concatenate(parts, axis=1)
    fixed = _window_columns(tr.flat.sum(axis=0, keepdims=True), tr, K1 - 1) if tr is not None and not joint else None
    if fixed is not None:                  # summed inputs: a fixed prediction
        predicted = fixed[0][0] if K1 else None

    def metric(s):
        """Metrics of resampled sums ``[B, columns]`` (0/0 gives NaN quietly)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return _metrics(s, K1, predicted, tr if joint else None)

    if n >= 2:    # the interval's estimate is the metric of the full sums
        ci = stats.bootstrap(x, metric, n_resamples=n_resamples, seed=seed, level=level)
        est, low, high = (np.array(v, dtype=float) for v in (ci.estimate, ci.low, ci.high))
    else:
        est = metric(x.sum(axis=0, keepdims=True))[0]
        low = high = np.full_like(est, np.nan)
    if fixed is not None:
        est[_WIN] = fixed[1][0]
        low[_WIN] = high[_WIN] = np.nan
    return est, low, high


def lags_profile(lags: Optional[Mapping]) -> Optional[np.ndarray]:
    """Fallback profile without pair norms: the mean over passes of the ``relative`` column, by lag."""
    if lags is None or not len(lags["lag"]):
        return None
    lag, rel = as_float(lags["lag"]), finite_or_nan(lags["relative"])
    ok = np.isfinite(lag) & (lag >= 0) & np.isfinite(rel)
    if not ok.any():
        return None
    k = lag[ok].astype(int)
    out = np.bincount(k, weights=rel[ok]) / np.maximum(np.bincount(k), 1)
    out[np.bincount(k) == 0] = np.nan
    out[0] = 1.0
    return out


def fit(profile: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    """``profile`` cut or NaN-padded to ``n`` lags (None stays None)."""
    if profile is None or n == 0:
        return None
    out = np.full(n, np.nan)
    out[:min(n, len(profile))] = profile[:n]
    return out


def weight_stats(w: Mapping, n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
                 level: float = stats.DEFAULT_LEVEL) -> Dict[str, float]:
    """Weight temporal projection (with its interval over passes), cosine and sign-blind share.

    ``w``: one layer's ``weights`` rows (a DataFrame or a dict of numpy columns). Per backward pass
    the layer's parameters are pooled into one vector: ``ss = sum ||g_s||^2``, ``tt = sum ||g_t||^2``,
    ``st = sum <g_s, g_t>``, from the recorder's ``spatial_sq``, ``temporal_sq``, ``inner`` columns,
    or else from the norms with ``<g_s, g_t> = (||g||^2 - ||g_s||^2 - ||g_t||^2) / 2`` (``g = g_s +
    g_t``, the ``total_norm`` column); then :func:`gradflow.stats.projections` per pass and the mean
    over passes (:func:`gradflow.stats.bootstrap_mean`: the passes are the resampled units).
    """
    out = dict.fromkeys(("weight_temporal_projection", "weight_temporal_projection_ci_low",
                         "weight_temporal_projection_ci_high", "weight_cosine", "weight_temporal_share"),
                        math.nan)
    if all(c in w for c in ("spatial_sq", "temporal_sq", "inner")):   # the recorder's inner products
        ss, tt, st = (as_float(w[c]) for c in ("spatial_sq", "temporal_sq", "inner"))
    else:
        sn, tn, gn = (as_float(w[c]) for c in ("spatial_norm", "temporal_norm", "total_norm"))
        ss, tt, st = sn ** 2, tn ** 2, (gn ** 2 - sn ** 2 - tn ** 2) / 2
    rows, steps = _group(as_float(w["step"]))
    ok = np.isfinite(ss) & np.isfinite(tt) & np.isfinite(st) & (rows >= 0)
    if not ok.any():
        return out
    sums = np.zeros((len(steps), 3))
    for j, v in enumerate((ss, tt, st)):
        np.add.at(sums[:, j], rows[ok], v[ok])
    sums = sums[np.bincount(rows[ok], minlength=len(steps)) > 0]
    proj = stats.projections(sums[:, 0], sums[:, 1], sums[:, 2])
    tproj, cos = np.atleast_1d(proj.temporal_projection), np.atleast_1d(proj.cosine)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_norm, t_norm = np.sqrt(sums[:, 0]), np.sqrt(sums[:, 1])
        share = np.where(s_norm + t_norm > 0, t_norm / (s_norm + t_norm), np.nan)
    for name, v in (("weight_cosine", cos), ("weight_temporal_share", share)):
        out[name] = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan
    n_finite = int(np.isfinite(tproj).sum())
    if n_finite >= 2:
        ci = stats.bootstrap_mean(tproj, n_resamples=n_resamples, seed=seed, level=level)
        out["weight_temporal_projection"] = float(ci.estimate)
        out["weight_temporal_projection_ci_low"] = float(ci.low)
        out["weight_temporal_projection_ci_high"] = float(ci.high)
    elif n_finite == 1:    # one pass: its value, no interval (what bootstrap_mean's estimate would be)
        out["weight_temporal_projection"] = float(tproj[np.isfinite(tproj)][0])
    return out


def _layer_T(ps: Mapping) -> int:
    """Time steps of a layer: ``max t + 1``, or the ``T`` column when it says more."""
    t = as_float(ps["t"])
    T_col = as_float(ps["T"]) if "T" in ps else np.array([])
    return int(max(np.max(t[np.isfinite(t)]) + 1 if np.isfinite(t).any() else 0,
                   np.max(T_col[np.isfinite(T_col)]) if np.isfinite(T_col).any() else 0))


def _zeros_and_nonfinite(ps: Mapping, T: int) -> Dict[str, float]:
    """Share of exactly-zero temporal entries over ``t < T-1`` (mean of finite rows) and the NaN/Inf count."""
    out = {"temporal_zero_fraction": math.nan, "nonfinite": 0}
    if "temporal_zero_fraction" in ps:
        zf = finite_or_nan(ps["temporal_zero_fraction"])
        zf[as_float(ps["t"]) >= T - 1] = np.nan      # t = T-1 has no temporal gradient by definition
        out["temporal_zero_fraction"] = float(np.mean(zf[np.isfinite(zf)])) if np.isfinite(zf).any() else math.nan
    if "nonfinite" in ps:
        nf = as_float(ps["nonfinite"])
        out["nonfinite"] = int(np.sum(nf[np.isfinite(nf)]))
    return out


def layer_row(
    per_step: Mapping,
    *,
    samples=None,
    pairs: Optional[Mapping] = None,
    lags: Optional[Mapping] = None,
    weights: Optional[Mapping] = None,
    predicted: Optional[np.ndarray] = None,
    transport=None,
    tau: float = math.nan,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = stats.DEFAULT_LEVEL,
) -> LayerResult:
    """Every summary number of one layer, with 95% bootstrap intervals (numpy only; docs/reference.md).

    ``per_step``, ``pairs``, ``lags``, ``weights``: the layer's rows of the recorder's tables
    (DataFrames or dicts of numpy columns; ``per_step`` needs ``step`` and ``t``, and the norms and
    rates when there are no ``samples``). ``samples``: its ``Recorder.samples()`` entry (the units
    then are samples); ``transport``: its ``Recorder.transport_inputs()`` entry (the window model,
    used with ``tau``); ``predicted``: the theory table's profile by lag (used without transport).
    Returns :class:`LayerResult`: ``row`` holds :data:`NAMES` with ``_ci_low``/``_ci_high``,
    ``relative_1`` (+ interval), ``predicted_half_life``, ``T``, ``samples``, ``steps``, ``resampled``,
    ``max_lag``, ``tau``, the weight statistics, ``temporal_zero_fraction`` and ``nonfinite``.
    """
    T = _layer_T(per_step)
    gamma = (1.0 - 1.0 / tau) if (tau > 0 if np.isfinite(tau) else tau == math.inf) else None  # IF: tau = inf, gamma = 1
    tr = transport_units(transport, gamma)
    if samples is not None and len(field(samples, "spatial_sq")):
        units = units_from_samples(samples, tr)
    else:
        if tr is not None and tr.flat.shape[0] > 1:        # per-sample inputs, passes as units: summed
            tr = tr._replace(flat=tr.flat.sum(axis=0, keepdims=True))
        units = units_from_tables(per_step, pairs, T)._replace(transport=tr)
    K1 = units.pair_sq.shape[2] if units.pair_sq is not None else 0
    est, low, high = _bootstrap(units, fit(predicted, K1), n_resamples, seed, level)
    if units.activity is None and "firing_rate" in per_step:     # samples without counts: the tables' mean rates
        act = units_from_tables(per_step, None, T).activity
        with np.errstate(divide="ignore", invalid="ignore"):
            est[_ACT] = act[:, :2].sum(axis=0) / act[:, 2].sum()
        low[_ACT] = high[_ACT] = np.nan
    rel = lags_profile(lags) if units.pair_sq is None else None
    if rel is not None:                    # no pair norms: the lags table's profile, no interval
        K1, pred = len(rel), fit(predicted, len(rel))
        with np.errstate(divide="ignore", invalid="ignore"):
            est[1:4] = [stats.half_life_many(rel), stats.decay_rate_many(rel),
                        stats.theory_error(pred, rel) if pred is not None and K1 > 1 else math.nan]
        low[1:4] = high[1:4] = np.nan
        est, low, high = (np.concatenate([a, r]) for a, r in ((est, rel), (low, rel * np.nan), (high, rel * np.nan)))
    if units.transport is not None and K1:
        predicted = window_profile(units.transport, K1 - 1)
    row = {"T": T, "samples": len(units.spatial_sq) if units.kind == "samples" else math.nan,
           "steps": units.passes, "resampled": units.kind, "max_lag": K1 - 1 if K1 else math.nan, "tau": tau}
    for i, name in enumerate(NAMES):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = est[i], low[i], high[i]
    r = len(NAMES)
    row["relative_1"], row["relative_1_ci_low"], row["relative_1_ci_high"] = \
        (est[r + 1], low[r + 1], high[r + 1]) if K1 > 1 else (math.nan,) * 3
    pred = fit(predicted, K1)
    row["predicted_half_life"] = stats.half_life(pred) if pred is not None and np.isfinite(pred).sum() > 1 \
        else math.nan
    row.update(_zeros_and_nonfinite(per_step, T))
    if weights is not None and len(weights["step"]):
        row.update(weight_stats(weights, n_resamples, seed, level))
    return LayerResult(row, est[r:], low[r:], high[r:], pred)
