"""One row per layer, with 95% bootstrap intervals: the numbers of ``summary.csv`` / ``summary.json``.

:func:`layer_statistics` reduces the recorded tables, and the per-sample sums of the recorder
(``Recorder.samples()``), to one row per (run,) layer (:func:`summarize`) and one row per (run,)
layer and lag (:func:`lag_profile`). Every column is defined in docs/reference.md (``summary``
table); in short, with ``P[t]`` the spatial and ``temporal[t]`` the temporal part of
``delta[t] = dL/du[t]``, all sums over the recorded samples (every backward pass together):

``temporal_share``
    ``||temporal|| / (||P|| + ||temporal||)`` with ``||x||^2 = sum over samples and t of ||x[t]||^2``.
    Sign-blind: read it with ``weight_temporal_projection``.
``relative_1`` (and every ``relative_k`` in :func:`lag_profile`)
    ``sqrt(sum_t ||pair[t, t+k]||^2 / sum_t ||P[t+k]||^2)`` over the pooled samples
    (:func:`gradflow.stats.relative_from_pair_sq`).
``half_life``, ``decay_rate``
    :func:`gradflow.stats.half_life` (log-linear crossing of 1/2) and :func:`gradflow.stats.decay_rate`
    of that profile; ``predicted_half_life`` the same half-life of the theory's default prediction.
``theory_error``
    :func:`gradflow.stats.theory_error`: median over lags 1..min(4, K) of
    ``|predicted_k - relative_k| / relative_k``.
``weight_temporal_projection``
    ``<g_t, g> / ||g||^2`` of the gradient of the parameters feeding the layer (all of them as one
    vector, inner products from the ``weights`` table), per backward pass, then the mean over passes.

Intervals (``<metric>_ci_low`` / ``<metric>_ci_high``, :data:`INTERVAL_METRICS`) are percentile
bootstrap intervals (:func:`gradflow.stats.bootstrap`; 1000 resamples, level 0.95, seeded): the
samples are resampled and every metric recomputed from the resampled sums. Per-sample parameter
gradients are not kept, so the weight projection resamples backward passes instead
(:func:`gradflow.stats.bootstrap_mean`). Without per-sample sums (tables only) the other metrics
resample backward passes too (column ``resampled``). With fewer than two units there is no interval
(NaN). Non-finite entries are left out of every sum (counted in ``nonfinite``).

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> n, T = 64, 3
>>> sp = rng.uniform(0.5, 1.5, (n, T))
>>> pair_sq = np.zeros((n, T, T)); pair_sq[:, :, 0] = sp
>>> pair_sq[:, :2, 1] = 0.25 * sp[:, 1:]; pair_sq[:, :1, 2] = 0.0625 * sp[:, 2:]   # relative_k = 0.5^k
>>> samples = {"sn1": {"spatial_sq": sp, "temporal_sq": 0.3 * sp, "pair_sq": pair_sq,
...                    "step": np.zeros(n, int)}}
>>> per_step = pd.DataFrame({"step": 0, "layer": "sn1", "layer_index": 0, "neuron": "lif", "t": range(T),
...     "firing_rate": 0.1, "window_fraction": 0.3, "grad_total_norm": 1.0, "grad_spatial_norm": 1.0,
...     "grad_temporal_norm": 0.5, "temporal_zero_fraction": 0.5, "nonfinite": 0})
>>> row = summarize({"per_step": per_step}, samples, n_resamples=200).iloc[0]
>>> int(row["samples"]), round(float(row["relative_1"]), 12), round(float(row["half_life"]), 12)
(64, 0.5, 1.0)
>>> bool(row["relative_1_ci_low"] == row["relative_1_ci_high"] == 0.5)   # exact in every resample
True
"""

from __future__ import annotations

import math
from typing import Dict, Hashable, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import pandas as pd

from .. import stats
from ..schema import RUN, SUMMARY_COLUMNS, SUMMARY_INTERVAL_METRICS
from ._common import (
    as_float,
    finite_or_nan,
    layer_order,
    ordered_runs,
    require_columns,
    run_keys,
    select_run,
)

__all__ = [
    "SUMMARY_COLUMNS",
    "INTERVAL_METRICS",
    "Statistics",
    "layer_statistics",
    "summarize",
    "lag_profile",
]

#: Summary metrics that carry ``<metric>_ci_low`` / ``<metric>_ci_high`` (from :mod:`gradflow.schema`).
INTERVAL_METRICS: Tuple[str, ...] = SUMMARY_INTERVAL_METRICS

_PROFILE_COLUMNS = ("layer", "layer_index", "neuron", "lag", "relative", "relative_ci_low",
                    "relative_ci_high", "predicted_relative")

# Per-lag columns of the theory table; its other numeric columns are per-layer constants.
_THEORY_PER_LAG = {"step", "layer", "layer_index", "lag", "measured_relative", "predicted_relative",
                   "relative_error", "run", "neuron"}


class Statistics(NamedTuple):
    """What :func:`layer_statistics` returns.

    ``summary``: one row per (run,) layer (:data:`SUMMARY_COLUMNS`); ``profile``: one row per (run,)
    layer and lag (``relative`` with its interval, and the theory's ``predicted_relative``);
    ``settings``: how the intervals were made (``level``, ``n_resamples``, ``seed``, ``method``).
    """

    summary: pd.DataFrame
    profile: pd.DataFrame
    settings: Dict[str, object]


class _Units(NamedTuple):
    """The resampled units of one layer: additive contributions ``[n, ...]`` to the layer's sums."""

    kind: str                       # "samples" or "passes"
    spatial_sq: np.ndarray          # [n]  sum over t of ||P[t]||^2
    temporal_sq: np.ndarray         # [n]  sum over t of ||temporal[t]||^2
    pair_sq: Optional[np.ndarray]   # [n, T, K+1]  ||pair[t, t+k]||^2, or None
    passes: int                     # backward passes the units came from


def _get(obj, name: str):
    """``obj[name]`` for a mapping, ``obj.name`` otherwise (None when absent)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _finite0(a) -> np.ndarray:
    """``a`` as float64 with non-finite entries set to 0 (left out of the sums)."""
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def _units_from_samples(s) -> _Units:
    """The units of ``Recorder.samples()[layer]``: ``spatial_sq``/``temporal_sq`` ``[n, T]``, ``pair_sq``
    ``[n, T, K+1]`` (or None), ``step`` ``[n]``."""
    sp = _finite0(_get(s, "spatial_sq"))
    tp = _finite0(_get(s, "temporal_sq"))
    pair = _get(s, "pair_sq")
    step = _get(s, "step")
    passes = len(np.unique(np.asarray(step))) if step is not None and len(step) else 1
    return _Units("samples", sp.reshape(len(sp), -1).sum(axis=1), tp.reshape(len(tp), -1).sum(axis=1),
                  None if pair is None else _finite0(pair), passes)


def _units_from_tables(ps: pd.DataFrame, pairs: pd.DataFrame, T: int) -> _Units:
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
            K = int(k[ok].max())
            pair_sq = np.zeros((len(steps), T, K + 1))
            r = np.array([index[s] for s in pstep[ok]])
            np.add.at(pair_sq, (r, t[ok].astype(int), k[ok].astype(int)),
                      _finite0(as_float(pairs["norm"])[ok]) ** 2)
    return _Units("passes", sp, tp, pair_sq, len(steps))


def _profile_metrics(sums: np.ndarray, T: int, K1: int, predicted: Optional[np.ndarray]) -> np.ndarray:
    """Metrics from resampled sums ``[B, 2 + T*K1]``: columns share, half-life, decay rate, theory
    error, then ``relative_0..K``."""
    share = np.sqrt(sums[:, 1]) / (np.sqrt(sums[:, 0]) + np.sqrt(sums[:, 1]))
    if K1 == 0:
        return np.stack([share] + [np.full(len(sums), np.nan)] * 3, axis=1)
    rel = stats.relative_from_pair_sq(sums[:, 2:].reshape(len(sums), T, K1))
    hl = stats.half_life_many(rel) if K1 > 1 else np.full(len(sums), np.nan)
    dr = stats.decay_rate_many(rel)
    te = stats.theory_error(predicted, rel) if predicted is not None and K1 > 1 else np.full(len(sums), np.nan)
    return np.column_stack([share, hl, dr, te, rel])


def _bootstrap_layer(units: _Units, predicted: Optional[np.ndarray], n_resamples: int, seed: int,
                     level: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low and high of :func:`_profile_metrics` for one layer (NaN bounds below 2 units)."""
    n = len(units.spatial_sq)
    T, K1 = (units.pair_sq.shape[1], units.pair_sq.shape[2]) if units.pair_sq is not None else (0, 0)
    parts = [units.spatial_sq[:, None], units.temporal_sq[:, None]]
    if units.pair_sq is not None:
        parts.append(units.pair_sq.reshape(n, -1))
    x = np.concatenate(parts, axis=1)

    def metric(s):
        """Metrics of resampled sums ``[B, columns]`` (0/0 gives NaN quietly)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return _profile_metrics(s, T, K1, predicted)

    if n < 2:
        est = metric(x.sum(axis=0, keepdims=True))[0]
        return est, np.full_like(est, np.nan), np.full_like(est, np.nan)
    ci = stats.bootstrap(x, metric, n_resamples=n_resamples, seed=seed, level=level)
    return np.asarray(ci.estimate, float), np.asarray(ci.low, float), np.asarray(ci.high, float)


def _weight_stats(w: pd.DataFrame, n_resamples: int, seed: int, level: float) -> Dict[str, float]:
    """Weight temporal projection (with its interval over passes), cosine and sign-blind share.

    Per backward pass the layer's parameters are pooled into one vector: ``ss = sum ||g_s||^2``,
    ``tt = sum ||g_t||^2``, ``st = sum <g_s, g_t>`` with ``<g_s, g_t> = (||g||^2 - ||g_s||^2 -
    ||g_t||^2) / 2`` per parameter (``g = g_s + g_t``, the ``total_norm`` column; the recorder's own
    ``spatial_sq``, ``temporal_sq``, ``inner`` columns when the table has them); then
    :func:`gradflow.stats.projections` per pass and the mean over passes.
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


def _predicted(theory: Optional[pd.DataFrame], run: Optional[Hashable], layer: str) -> Optional[pd.DataFrame]:
    """The theory rows of one (run,) layer (the default model's ``predicted_relative``), or None."""
    if theory is None or theory.empty or "layer" not in theory.columns:
        return None
    d = select_run(theory, run) if RUN in theory.columns else theory
    d = d[d["layer"] == layer]
    return d if not d.empty else None


def _predicted_profile(th: Optional[pd.DataFrame], K1: int) -> Optional[np.ndarray]:
    """``predicted_relative`` as an array indexed by lag ``0..K`` (NaN where the table has no row)."""
    if th is None or "predicted_relative" not in th.columns or "lag" not in th.columns:
        return None
    lag, pred = as_float(th["lag"]), finite_or_nan(th["predicted_relative"])
    n = max(K1, int(np.nanmax(lag)) + 1 if np.isfinite(lag).any() else 0)
    out = np.full(n, np.nan)
    ok = np.isfinite(lag) & (lag >= 0)
    out[lag[ok].astype(int)] = pred[ok]
    return out


def _theory_constants(th: Optional[pd.DataFrame]) -> Dict[str, float]:
    """Numeric theory columns that are constant within the layer, prefixed ``theory_``."""
    if th is None:
        return {}
    out = {}
    for c in th.columns:
        if c in _THEORY_PER_LAG or not pd.api.types.is_numeric_dtype(th[c]):
            continue
        vals = pd.unique(th[c].dropna())
        if len(vals) <= 1:
            out[f"theory_{c}"] = float(vals[0]) if len(vals) else math.nan
    return out


def _activity(ps: pd.DataFrame, T: int) -> Dict[str, float]:
    """Firing rate, window fraction (means of finite values), zero temporal entries (t < T-1), NaN/Inf count."""
    zf = finite_or_nan(ps["temporal_zero_fraction"])
    zf[as_float(ps["t"]) >= T - 1] = np.nan      # t = T-1 has no temporal gradient by definition
    nf = as_float(ps["nonfinite"])
    return {
        "firing_rate": _mean(finite_or_nan(ps["firing_rate"])),
        "window_fraction": _mean(finite_or_nan(ps["window_fraction"])),
        "temporal_zero_fraction": _mean(zf),
        "nonfinite": int(np.sum(nf[np.isfinite(nf)])),
    }


def _mean(a: np.ndarray) -> float:
    """Mean of the finite entries, NaN if there are none."""
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def _samples_of(samples: Optional[Mapping], run: Optional[Hashable], layer: str):
    """The per-sample sums of one layer: ``samples[layer]``, or ``samples[run][layer]`` in comparisons."""
    if not samples:
        return None
    if run is not None and layer not in samples and isinstance(samples.get(run), Mapping):
        return samples[run].get(layer)
    return samples.get(layer)


def _lags_profile(lags: Optional[pd.DataFrame]) -> Optional[np.ndarray]:
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


def _fit(profile: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    """``profile`` cut or NaN-padded to ``n`` lags (None stays None)."""
    if profile is None or n == 0:
        return None
    out = np.full(n, np.nan)
    out[:min(n, len(profile))] = profile[:n]
    return out


def _layer_metrics(units: _Units, predicted: Optional[np.ndarray], lags: Optional[pd.DataFrame],
                   n_resamples: int, seed: int, level: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, low, high ``[4 + K+1]``: share, half-life, decay rate, theory error, ``relative_0..K``.

    Without pair norms the profile falls back to the ``lags`` table (:func:`_lags_profile`), whose
    metrics then have no interval.
    """
    K1 = units.pair_sq.shape[2] if units.pair_sq is not None else 0
    est, low, high = _bootstrap_layer(units, _fit(predicted, K1), n_resamples, seed, level)
    rel = _lags_profile(lags) if units.pair_sq is None else None
    if rel is None:
        return est, low, high
    pred = _fit(predicted, len(rel))
    with np.errstate(divide="ignore", invalid="ignore"):
        extra = [float(stats.half_life_many(rel)), float(stats.decay_rate_many(rel)),
                 float(stats.theory_error(pred, rel)) if pred is not None and len(rel) > 1 else math.nan]
    nan = np.full(len(extra) + len(rel), np.nan)
    return (np.concatenate([est[:1], extra, rel]), np.concatenate([low[:1], nan]),
            np.concatenate([high[:1], nan]))


_NAMES = ("temporal_share", "half_life", "decay_rate", "theory_error")


def _one_layer(tables: Mapping[str, pd.DataFrame], run, layer: str, samples, theory, n_resamples: int,
               seed: int, level: float) -> Tuple[dict, List[dict]]:
    """The summary row and the profile rows of one (run,) layer."""
    def rows_of(name):
        """The rows of table ``name`` for this run and layer (None or empty stays so)."""
        d = tables.get(name)
        if d is None or d.empty:
            return d
        d = select_run(d, run) if RUN in d.columns else d
        return d[d["layer"] == layer]

    ps = rows_of("per_step")
    t = as_float(ps["t"])
    T_col = as_float(ps["T"]) if "T" in ps.columns else np.array([])
    T = int(max(np.max(t[np.isfinite(t)]) + 1 if np.isfinite(t).any() else 0,
                np.max(T_col[np.isfinite(T_col)]) if np.isfinite(T_col).any() else 0))
    s = _samples_of(samples, run, layer)
    if s is not None and len(_get(s, "spatial_sq")):
        units = _units_from_samples(s)
    else:
        units = _units_from_tables(ps, rows_of("pairs"), T)
    th = _predicted(theory, run, layer)
    predicted = _predicted_profile(th, 0)
    est, low, high = _layer_metrics(units, predicted, rows_of("lags"), n_resamples, seed, level)
    K1 = len(est) - len(_NAMES)
    row = {"layer": layer, "layer_index": float(np.nanmin(as_float(ps["layer_index"]))),
           "neuron": next((v.lower() for v in ps["neuron"] if isinstance(v, str)), None),
           "T": T, "samples": len(units.spatial_sq) if units.kind == "samples" else math.nan,
           "steps": units.passes, "resampled": units.kind, "max_lag": K1 - 1 if K1 else math.nan}
    for i, name in enumerate(_NAMES):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = est[i], low[i], high[i]
    r1 = len(_NAMES) + 1
    row["relative_1"], row["relative_1_ci_low"], row["relative_1_ci_high"] = \
        (est[r1], low[r1], high[r1]) if K1 > 1 else (math.nan,) * 3
    pred_ok = predicted is not None and np.isfinite(predicted).sum() > 1
    row["predicted_half_life"] = stats.half_life(np.where(np.isfinite(predicted), predicted, np.nan)) \
        if pred_ok else math.nan
    row.update(_activity(ps, T))
    w = rows_of("weights")
    if w is not None and not w.empty:
        row.update(_weight_stats(w, n_resamples, seed, level))
    row.update(_theory_constants(th))
    pred = _fit(predicted, K1)
    profile = [{"layer": layer, "layer_index": row["layer_index"], "neuron": row["neuron"], "lag": k,
                "relative": est[len(_NAMES) + k], "relative_ci_low": low[len(_NAMES) + k],
                "relative_ci_high": high[len(_NAMES) + k],
                "predicted_relative": pred[k] if pred is not None else math.nan}
               for k in range(K1)]
    return row, profile


def _prepare(tables) -> Dict[str, pd.DataFrame]:
    """``tables`` as a dict with a checked ``per_step``; a bare DataFrame is taken as ``per_step``."""
    if isinstance(tables, pd.DataFrame):
        tables = {"per_step": tables}
    if not isinstance(tables, Mapping) or tables.get("per_step") is None:
        raise TypeError("tables must be a dict of DataFrames with at least 'per_step'")
    data = {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}
    for name in ("per_step", "pairs", "lags", "weights"):
        if name in data:
            require_columns(data[name], name)
    return data


def layer_statistics(
    tables,
    samples: Optional[Mapping] = None,
    *,
    theory: Optional[pd.DataFrame] = None,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = stats.DEFAULT_LEVEL,
) -> Statistics:
    """The per-layer summary and lag profile with bootstrap intervals (see the module documentation).

    ``tables``: the recorder's DataFrames by name, ``per_step`` required, ``pairs``, ``lags``,
    ``weights``, ``theory`` optional (a bare ``per_step`` DataFrame is accepted too). A ``run`` column
    (comparisons) keeps the runs apart; rows follow the runs' order, then ``layer_index``.
    ``samples``: ``Recorder.samples()`` (``{layer: {"spatial_sq": [n, T], "temporal_sq": [n, T],
    "pair_sq": [n, T, K+1] or None, "step": [n], ...}}``), or ``{run: {layer: ...}}`` in comparisons;
    layers without samples fall back to backward passes as units. ``theory``: overrides
    ``tables["theory"]`` (its ``predicted_relative`` is the default model's prediction).
    ``n_resamples``, ``seed``, ``level``: the bootstrap (:func:`gradflow.stats.bootstrap`).
    """
    data = _prepare(tables)
    theory = theory if theory is not None else data.get("theory")
    if theory is not None and not theory.empty:
        require_columns(theory, "theory", ["layer"])
    per_step = data["per_step"]
    keys = run_keys(per_step)
    rows, profile = [], []
    if not per_step.empty:
        for run in ordered_runs(per_step):
            for layer in layer_order(select_run(per_step, run)):
                row, prof = _one_layer(data, run, layer, samples, theory, n_resamples, seed, level)
                rows += [dict({RUN: run} if keys else {}, **row)]
                profile += [dict({RUN: run} if keys else {}, **p) for p in prof]
    columns = keys + list(SUMMARY_COLUMNS)
    summary = pd.DataFrame(rows) if rows else pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    for c in columns:
        if c not in summary.columns:
            summary[c] = math.nan
    for c in ("layer_index", "T", "steps", "nonfinite", "samples"):
        v = summary[c].to_numpy(dtype=float)
        if len(v) and np.all(np.isfinite(v)):
            summary[c] = v.astype(np.int64)
    summary = summary[columns + [c for c in summary.columns if c not in columns]]
    prof_cols = keys + list(_PROFILE_COLUMNS)
    prof_df = pd.DataFrame(profile, columns=prof_cols)
    if len(prof_df):
        prof_df["layer_index"] = prof_df["layer_index"].astype(np.int64)
    settings = {"method": "percentile bootstrap", "level": float(level), "n_resamples": int(n_resamples),
                "seed": int(seed)}
    return Statistics(summary.reset_index(drop=True), prof_df, settings)


def summarize(tables, samples: Optional[Mapping] = None, *, theory: Optional[pd.DataFrame] = None,
              n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
              level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per (run,) layer: :data:`SUMMARY_COLUMNS` (``layer_statistics(...).summary``)."""
    return layer_statistics(tables, samples, theory=theory, n_resamples=n_resamples, seed=seed,
                            level=level).summary


def lag_profile(tables, samples: Optional[Mapping] = None, *, theory: Optional[pd.DataFrame] = None,
                n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
                level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per (run,) layer and lag: ``relative`` with its interval, ``predicted_relative``."""
    return layer_statistics(tables, samples, theory=theory, n_resamples=n_resamples, seed=seed,
                            level=level).profile
