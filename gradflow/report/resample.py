"""The per-layer bootstrap behind the summary: resampled units, metrics of resampled sums, weight projections.

One layer's numbers are all functions of sums over *units*: its samples (``Recorder.samples()``:
per-sample squared norms ``spatial_sq``, ``temporal_sq`` ``[n, T]`` and pair norms ``pair_sq``
``[n, T, K+1]``), or its backward passes when only the tables are there. :func:`layer_metrics`
puts every unit's contributions in one row of a matrix ``x[n, columns]`` and lets
:func:`gradflow.stats.bootstrap` resample the rows; every metric is recomputed from the resampled
sums, so all of a layer's intervals come from the same resamples:

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
relative_0..K        :func:`gradflow.stats.relative_from_pair_sq` of ``S_pair``
==================== =======================================================================

The last three and the prediction itself come from the theory's ``window`` model
(:mod:`gradflow.theory.window`, docs/theory.md §6) when the layer's per-sample transport inputs are
given: they are resampled with the same sample indices as the pair norms, so ``theory_error``'s
interval holds both the measurement's and the prediction's sampling noise. Otherwise the
prediction is the theory table's, held fixed.

>>> import numpy as np
>>> n, T = 4, 2
>>> pair = np.zeros((n, T, 2)); pair[:, :, 0] = 1.0; pair[:, 0, 1] = 0.25        # relative_1 = 0.5
>>> units = Units("samples", np.full(n, 2.0), np.full(n, 0.5), pair, 1)
>>> est, low, high = layer_metrics(units, n_resamples=50)
>>> [round(float(v), 12) for v in est[[0, 7, 8]]]            # share, relative_0, relative_1
[0.333333333333, 1.0, 0.5]
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import pandas as pd

from .. import stats
from ..theory import window
from ._common import as_float, finite_or_nan

__all__ = ["NAMES", "Units", "Transport", "units_from_samples", "units_from_tables", "transport_units",
           "window_profile", "layer_metrics", "weight_stats", "lags_profile", "fit", "field"]

#: The per-layer metrics of :func:`layer_metrics`, in column order (``relative_0..K`` follow).
NAMES = ("temporal_share", "half_life", "decay_rate", "theory_error", "one_step_survival", "in_window_before",
         "window_occupancy")

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
    """The units of ``Recorder.samples()[layer]`` (``spatial_sq``/``temporal_sq`` ``[n, T]``, ``pair_sq``
    ``[n, T, K+1]`` or None, ``step`` ``[n]``); ``transport`` is resampled with them when it has the
    same ``n`` rows, else summed into one (a fixed prediction)."""
    sp = _finite0(field(s, "spatial_sq"))
    tp = _finite0(field(s, "temporal_sq"))
    pair = field(s, "pair_sq")
    step = field(s, "step")
    passes = len(np.unique(np.asarray(step))) if step is not None and len(step) else 1
    if transport is not None and transport.flat.shape[0] != len(sp):     # not per sample: a fixed prediction
        transport = transport._replace(flat=transport.flat.sum(axis=0, keepdims=True))
    return Units("samples", sp.reshape(len(sp), -1).sum(axis=1), tp.reshape(len(tp), -1).sum(axis=1),
                 None if pair is None else _finite0(pair), passes, transport)


def units_from_tables(ps: pd.DataFrame, pairs: Optional[pd.DataFrame], T: int) -> Units:
    """Backward passes as units: per pass, the squared norms of ``per_step`` and ``pairs`` summed."""
    step = as_float(ps["step"])
    steps = np.unique(step[np.isfinite(step)])
    index = {s: i for i, s in enumerate(steps)}
    rows = np.array([index.get(s, -1) for s in step])
    keep = rows >= 0
    sp, tp = np.zeros(len(steps)), np.zeros(len(steps))
    np.add.at(sp, rows[keep], _finite0(as_float(ps["grad_spatial_norm"])[keep]) ** 2)
    np.add.at(tp, rows[keep], _finite0(as_float(ps["grad_temporal_norm"])[keep]) ** 2)
    pair_sq = None
    if pairs is not None and not pairs.empty and T >= 1:
        t, k, pstep = as_float(pairs["t"]), as_float(pairs["lag"]), as_float(pairs["step"])
        ok = np.isfinite(t) & np.isfinite(k) & (t >= 0) & (k >= 0) & (t + k < T) & np.isin(pstep, steps)
        if ok.any():
            pair_sq = np.zeros((len(steps), T, int(k[ok].max()) + 1))
            r = np.array([index[s] for s in pstep[ok]])
            np.add.at(pair_sq, (r, t[ok].astype(int), k[ok].astype(int)), _finite0(as_float(pairs["norm"])[ok]) ** 2)
    return Units("passes", sp, tp, pair_sq, len(steps))


def transport_units(inputs, gamma: float) -> Optional[Transport]:
    """The transport inputs of one layer as units: per-sample inputs (a leading sample axis: the
    recorder's ``transport_inputs()``) keep one row per sample; summed inputs become one row.

    None when ``inputs`` or ``gamma`` is missing or the inputs lack a key.
    """
    if inputs is None or gamma is None or not np.isfinite(gamma):
        return None
    if any(field(inputs, k) is None for k in _TRANSPORT_SUMS):
        return None
    per_sample = np.ndim(field(inputs, "spatial_sq")) == 2
    arrays = [_finite0(field(inputs, k)) for k in _TRANSPORT_SUMS]
    if not per_sample:
        arrays = [a[None] for a in arrays]
    n = arrays[0].shape[0]
    edges = np.asarray(field(inputs, "zone_edges") if field(inputs, "zone_edges") is not None else window.ZONE_EDGES,
                       dtype=np.float64)
    edges = edges[0] if edges.ndim == 2 else edges
    shapes = tuple((k, a.shape[1:]) for k, a in zip(_TRANSPORT_SUMS, arrays))
    return Transport(np.concatenate([a.reshape(n, -1) for a in arrays], axis=1), shapes, edges, float(gamma))


def _transport_dicts(flat: np.ndarray, tr: Transport):
    """Resampled sums ``[B, C]`` back into one input dict per resample."""
    out, start = [], 0
    parts = {}
    for key, shape in tr.shapes:
        size = int(np.prod(shape))
        parts[key] = flat[:, start:start + size].reshape((len(flat),) + shape)
        start += size
    for b in range(len(flat)):
        out.append(dict({k: v[b] for k, v in parts.items()}, zone_edges=tr.edges))
    return out


def _window_columns(flat: np.ndarray, tr: Transport, K: int) -> Tuple[np.ndarray, np.ndarray]:
    """The window model on every resample: predictions ``[B, K+1]`` and (survival, in-window, occupancy)
    ``[B, 3]``. One :func:`gradflow.theory.window.predict_transport` call per resample."""
    preds, nums = [], []
    for inputs in _transport_dicts(flat, tr):
        preds.append(window.predict_transport(inputs, tr.gamma, K) if K >= 0 else np.zeros(0))
        s = window.transport_summary(inputs)
        nums.append((s["one_step_survival"], s["in_window_before"], s["occupancy"]))
    return np.asarray(preds, dtype=np.float64).reshape(len(flat), -1), np.asarray(nums, dtype=np.float64)


def window_profile(tr: Transport, K: int) -> np.ndarray:
    """The ``window`` model's ``relative_0..K`` from all units' inputs together (the point prediction)."""
    return window.predict_transport(_transport_dicts(tr.flat.sum(axis=0, keepdims=True), tr)[0], tr.gamma, K)


def _metrics(sums: np.ndarray, T: int, K1: int, predicted: Optional[np.ndarray],
             tr: Optional[Transport]) -> np.ndarray:
    """The :data:`NAMES` columns, then ``relative_0..K``, from resampled sums ``[B, columns]``."""
    B = len(sums)
    nan = np.full(B, np.nan)
    share = np.sqrt(sums[:, 1]) / (np.sqrt(sums[:, 0]) + np.sqrt(sums[:, 1]))
    rel = stats.relative_from_pair_sq(sums[:, 2:2 + T * K1].reshape(B, T, K1)) if K1 else np.zeros((B, 0))
    hl = stats.half_life_many(rel) if K1 > 1 else nan
    dr = stats.decay_rate_many(rel) if K1 else nan
    window_nums = np.full((B, 3), np.nan)
    if tr is not None:
        pred_b, window_nums = _window_columns(sums[:, 2 + T * K1:], tr, K1 - 1)
        predicted = pred_b if K1 else None
    te = stats.theory_error(predicted, rel) if predicted is not None and K1 > 1 else nan
    return np.column_stack([share, hl, dr, te, window_nums, rel])


def _bootstrap(units: Units, predicted: Optional[np.ndarray], n_resamples: int, seed: int,
               level: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low and high of :func:`_metrics` for one layer (NaN bounds below 2 units)."""
    n = len(units.spatial_sq)
    T, K1 = units.pair_sq.shape[1:] if units.pair_sq is not None else (0, 0)
    tr = units.transport
    joint = tr is not None and tr.flat.shape[0] == n
    parts = [units.spatial_sq[:, None], units.temporal_sq[:, None]]
    if units.pair_sq is not None:
        parts.append(units.pair_sq.reshape(n, -1))
    if joint:
        parts.append(tr.flat)
    x = np.concatenate(parts, axis=1)
    if tr is not None and not joint:       # summed inputs: a fixed prediction
        predicted = _window_columns(tr.flat.sum(axis=0, keepdims=True), tr, K1 - 1)[0][0] if K1 else None

    def metric(s):
        """Metrics of resampled sums ``[B, columns]`` (0/0 gives NaN quietly)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return _metrics(s, T, K1, predicted, tr if joint else None)

    est = metric(x.sum(axis=0, keepdims=True))[0]
    if tr is not None and not joint:
        with np.errstate(divide="ignore", invalid="ignore"):
            est[4:7] = _window_columns(tr.flat.sum(axis=0, keepdims=True), tr, -1)[1][0]
    if n < 2:
        return est, np.full_like(est, np.nan), np.full_like(est, np.nan)
    ci = stats.bootstrap(x, metric, n_resamples=n_resamples, seed=seed, level=level)
    low, high = np.asarray(ci.low, float), np.asarray(ci.high, float)
    if tr is not None and not joint:
        low[4:7] = high[4:7] = np.nan
    return est, low, high


def lags_profile(lags: Optional[pd.DataFrame]) -> Optional[np.ndarray]:
    """Fallback profile without pair norms: the mean over passes of the ``relative`` column, by lag."""
    if lags is None or lags.empty:
        return None
    lag, rel = as_float(lags["lag"]), finite_or_nan(lags["relative"])
    ok = np.isfinite(lag) & (lag >= 0)
    if not ok.any():
        return None
    prof = pd.Series(rel[ok]).groupby(lag[ok].astype(int)).mean()
    out = np.full(int(prof.index.max()) + 1, np.nan)
    out[prof.index.to_numpy()] = prof.to_numpy()
    out[0] = 1.0
    return out


def fit(profile: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    """``profile`` cut or NaN-padded to ``n`` lags (None stays None)."""
    if profile is None or n == 0:
        return None
    out = np.full(n, np.nan)
    out[:min(n, len(profile))] = profile[:n]
    return out


def layer_metrics(units: Units, predicted: Optional[np.ndarray] = None, lags: Optional[pd.DataFrame] = None, *,
                  n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
                  level: float = stats.DEFAULT_LEVEL) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low, high ``[len(NAMES) + K+1]``: :data:`NAMES`, then ``relative_0..K``.

    ``predicted``: the theory table's profile by lag (used when ``units.transport`` is None).
    Without pair norms the profile falls back to the ``lags`` table (:func:`lags_profile`), whose
    metrics then have no interval.
    """
    K1 = units.pair_sq.shape[2] if units.pair_sq is not None else 0
    est, low, high = _bootstrap(units, fit(predicted, K1), n_resamples, seed, level)
    rel = lags_profile(lags) if units.pair_sq is None else None
    if rel is None:
        return est, low, high
    pred = fit(predicted, len(rel))
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = [float(stats.half_life_many(rel)), float(stats.decay_rate_many(rel)),
                 float(stats.theory_error(pred, rel)) if pred is not None and len(rel) > 1 else math.nan]
    nan = np.full(len(extra) + len(rel), np.nan)
    return (np.concatenate([est[:1], extra, est[4:7], rel]), np.concatenate([low[:1], nan[:3], low[4:7], nan[3:]]),
            np.concatenate([high[:1], nan[:3], high[4:7], nan[3:]]))


def weight_stats(w: pd.DataFrame, n_resamples: int, seed: int, level: float) -> Dict[str, float]:
    """Weight temporal projection (with its interval over passes), cosine and sign-blind share.

    Per backward pass the layer's parameters are pooled into one vector: ``ss = sum ||g_s||^2``,
    ``tt = sum ||g_t||^2``, ``st = sum <g_s, g_t>`` with ``<g_s, g_t> = (||g||^2 - ||g_s||^2 -
    ||g_t||^2) / 2`` per parameter (``g = g_s + g_t``, the ``total_norm`` column; the recorder's own
    ``spatial_sq``, ``temporal_sq``, ``inner`` columns when the table has them); then
    :func:`gradflow.stats.projections` per pass and the mean over passes
    (:func:`gradflow.stats.bootstrap_mean`: the passes are the resampled units).
    """
    out = dict.fromkeys(("weight_temporal_projection", "weight_temporal_projection_ci_low",
                         "weight_temporal_projection_ci_high", "weight_cosine", "weight_temporal_share"),
                        math.nan)
    if {"spatial_sq", "temporal_sq", "inner"} <= set(w.columns):   # the recorder's inner products
        ss, tt, st = (as_float(w[c]) for c in ("spatial_sq", "temporal_sq", "inner"))
    else:
        sn, tn, gn = (as_float(w[c]) for c in ("spatial_norm", "temporal_norm", "total_norm"))
        ss, tt, st = sn ** 2, tn ** 2, (gn ** 2 - sn ** 2 - tn ** 2) / 2
    ok = np.isfinite(ss) & np.isfinite(tt) & np.isfinite(st)
    if not ok.any():
        return out
    d = pd.DataFrame({"step": as_float(w["step"])[ok], "ss": ss[ok], "tt": tt[ok], "st": st[ok]})
    per_pass = d.groupby("step", sort=True)[["ss", "tt", "st"]].sum()
    proj = stats.projections(per_pass["ss"].to_numpy(), per_pass["tt"].to_numpy(), per_pass["st"].to_numpy())
    tproj = np.atleast_1d(np.asarray(proj.temporal_projection, float))
    cos = np.atleast_1d(np.asarray(proj.cosine, float))
    s_norm, t_norm = np.sqrt(per_pass["ss"].to_numpy()), np.sqrt(per_pass["tt"].to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(s_norm + t_norm > 0, t_norm / (s_norm + t_norm), np.nan)
    for name, v in (("weight_cosine", cos), ("weight_temporal_share", share)):
        out[name] = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan
    if np.isfinite(tproj).any():
        ci = stats.bootstrap_mean(tproj, n_resamples=n_resamples, seed=seed, level=level)
        out["weight_temporal_projection"] = float(ci.estimate)
        if np.isfinite(tproj).sum() >= 2:
            out["weight_temporal_projection_ci_low"] = float(ci.low)
            out["weight_temporal_projection_ci_high"] = float(ci.high)
    return out
