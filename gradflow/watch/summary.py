"""One row per (recorded step, layer) with 95% intervals: the ``summary.csv`` of a watched run.

:func:`step_summary` reduces the tables of one recorded training step (usually one backward pass) and
the recorder's per-sample sums to the per-layer numbers a training monitor shows, with the definitions
of the analysis report's summary (docs/reference.md, ``summary`` table; :mod:`gradflow.stats`). With
``||x||^2`` summed over the step's samples and time steps, ``P`` the spatial and ``temporal`` the
temporal part of ``dL/du[t]``:

``temporal_share``
    ``||temporal|| / (||P|| + ||temporal||)`` (sign-blind; read it with the projection).
``weight_temporal_projection``
    ``<g_t, g> / ||g||^2`` of the gradient of the parameters feeding the layer, pooled into one vector,
    per backward pass, then the mean over the step's passes (:func:`gradflow.stats.projections`).
``relative_1``, ``half_life``, ``decay_rate``
    the transport ratio ``relative_k = sqrt(sum_t ||pair[t, t+k]||^2 / sum_t ||P[t+k]||^2)`` at k = 1,
    its log-linear crossing of 1/2 and its fitted per-step factor (:func:`gradflow.stats.relative_from_pair_sq`,
    :func:`gradflow.stats.half_life_many`, :func:`gradflow.stats.decay_rate_many`).
``firing_rate``, ``window_fraction``
    spikes, and elements inside the surrogate window (window occupancy), per neuron and time step.

Intervals (``<metric>_ci_low`` / ``_ci_high``) are percentile bootstrap intervals over the step's
samples (the resample counts of :func:`gradflow.stats.bootstrap_counts`, seeded, kept between steps;
:func:`gradflow.stats.percentile_interval`): the samples are resampled and every metric recomputed
from the resampled sums, exactly as the analysis report does, so a watched step and
``gradflow analyze`` on the same batch give the same numbers. Without per-sample sums (a recorder
without ``samples()``) the units are backward passes, and one pass has no interval (NaN). The weight
projection always resamples passes (per-sample parameter gradients are not kept), so a step of one
pass has no interval for it; firing rate and window fraction have one only when the recorder keeps
per-sample spike and window counts.

Numpy and pandas only (no torch).
"""

from __future__ import annotations

import functools
import math
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd

from .. import stats

__all__ = ["SUMMARY_COLUMNS", "INTERVAL_METRICS", "step_summary"]

#: Metrics of ``summary.csv`` that carry ``<metric>_ci_low`` / ``<metric>_ci_high``.
INTERVAL_METRICS: Tuple[str, ...] = (
    "temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate",
    "firing_rate", "window_fraction",
)

#: Columns of ``summary.csv``: one row per (recorded step, layer).
SUMMARY_COLUMNS: Tuple[str, ...] = (
    "train_step", "step", "layer", "layer_index", "neuron", "T", "tau", "samples", "passes", "resampled",
) + tuple(c for m in INTERVAL_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")) + ("max_lag", "nonfinite")

# per-sample fields of Recorder.samples()[layer]: squared norms, and activity counts
_SQ_KEYS = ("spatial_sq", "temporal_sq")


def _get(obj, name: str):
    """``obj[name]`` of a mapping, ``obj.name`` of anything else (``Recorder.samples()`` gives NamedTuples)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _finite0(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def _flat_sum(a: np.ndarray) -> np.ndarray:
    """``[n, ...]`` -> ``[n]``: each sample's sum over the other axes."""
    return a.reshape(len(a), -1).sum(axis=1)


def _units_from_samples(s) -> Tuple[np.ndarray, int, int, bool]:
    """Per-sample columns ``[n, 2 + T*K1 (+3)]``: ``||P||^2``, ``||temporal||^2``, pair norms, and the
    counts of spikes, of window elements and of elements (when ``s`` has ``spikes``, ``window``, ``numel``).

    Returns ``(x, T, K1, activity)``; ``K1 = 0`` without pair norms. Time steps padded with NaN (passes
    with a shorter T) count neither in the sums nor in the element counts.
    """
    sp, tp = (np.asarray(_get(s, k), dtype=np.float64) for k in _SQ_KEYS)
    cols = [_flat_sum(_finite0(sp))[:, None], _flat_sum(_finite0(tp))[:, None]]
    T = sp.shape[1] if sp.ndim > 1 else 1
    K1 = 0
    pair = _get(s, "pair_sq")
    if pair is not None:
        pair = _finite0(pair)
        T, K1 = pair.shape[1], pair.shape[2]
        cols.append(pair.reshape(len(pair), -1))
    spikes, window, numel = (_get(s, k) for k in ("spikes", "window", "numel"))
    activity = spikes is not None and window is not None and numel is not None
    if activity:
        spikes = np.asarray(spikes, dtype=np.float64).reshape(len(sp), -1)
        steps = np.isfinite(spikes).sum(axis=1)
        elements = np.broadcast_to(np.asarray(numel, dtype=np.float64).reshape(-1), (len(sp),)) * steps
        cols += [_flat_sum(_finite0(spikes))[:, None], _flat_sum(_finite0(window))[:, None], elements[:, None]]
    return np.concatenate(cols, axis=1), T, K1, activity


def _arrays(df: Optional[pd.DataFrame], columns) -> Optional[Dict[str, np.ndarray]]:
    """The ``columns`` of ``df`` that exist, as numpy arrays (one conversion; per-layer masks are cheap)."""
    if df is None or df.empty:
        return None
    return {c: df[c].to_numpy() for c in columns if c in df.columns}


def _select(cols: Optional[Dict[str, np.ndarray]], mask: np.ndarray) -> Optional[Dict[str, np.ndarray]]:
    return None if cols is None else {c: v[mask] for c, v in cols.items()}


def _units_from_tables(ps: Dict[str, np.ndarray], pairs: Optional[Dict[str, np.ndarray]],
                       T: int) -> Tuple[np.ndarray, int]:
    """Backward passes as units (no per-sample sums): ``[passes, 2 + T*K1]`` and K1."""
    steps, r = np.unique(ps["step"], return_inverse=True)
    x = np.zeros((len(steps), 2))
    np.add.at(x[:, 0], r, _finite0(ps["grad_spatial_norm"]) ** 2)
    np.add.at(x[:, 1], r, _finite0(ps["grad_temporal_norm"]) ** 2)
    if pairs is None or not len(pairs["lag"]):
        return x, 0
    keep = np.isin(pairs["step"], steps)
    K1 = int(pairs["lag"].max()) + 1
    pair_sq = np.zeros((len(steps), T, K1))
    np.add.at(pair_sq, (np.searchsorted(steps, pairs["step"][keep]), pairs["t"][keep].astype(int),
                        pairs["lag"][keep].astype(int)), _finite0(pairs["norm"][keep]) ** 2)
    return np.concatenate([x, pair_sq.reshape(len(steps), -1)], axis=1), K1


@functools.lru_cache(maxsize=4)
def _counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """:func:`gradflow.stats.bootstrap_counts` as float64, kept: every layer and every recorded step of a
    run with the same batch size resamples with the same rows, and drawing them is the bootstrap's main
    cost (a multinomial draw per row). :func:`gradflow.stats.bootstrap` uses exactly these rows."""
    counts = stats.bootstrap_counts(n, n_resamples, seed).astype(np.float64)
    counts.setflags(write=False)
    return counts


def _metrics(s: np.ndarray, T: int, K1: int, activity: bool) -> np.ndarray:
    """From sums ``[B, m]``: share, relative_1, half-life, decay rate (, firing rate, window fraction)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.sqrt(s[:, 1]) / (np.sqrt(s[:, 0]) + np.sqrt(s[:, 1]))
        nan = np.full(len(s), np.nan)
        rel1 = hl = dr = nan
        if K1 > 1:
            rel = stats.relative_from_pair_sq(s[:, 2:2 + T * K1].reshape(len(s), T, K1))
            rel1, hl, dr = rel[:, 1], stats.half_life_many(rel), stats.decay_rate_many(rel)
        cols = [share, rel1, hl, dr]
        if activity:
            a = 2 + T * K1
            cols += [s[:, a] / s[:, a + 2], s[:, a + 1] / s[:, a + 2]]
    return np.column_stack(cols)


def _weight_projection(w: Optional[Dict[str, np.ndarray]], n_resamples: int,
                       seed: int) -> Tuple[float, float, float]:
    """Mean over passes of the pooled ``<g_t, g>/||g||^2``, with its interval over passes (>= 2 passes).

    Per pass the layer's parameters form one vector: ``ss = sum ||g_s||^2``, ``tt = sum ||g_t||^2``,
    ``st = sum <g_s, g_t>`` (the recorder's ``spatial_sq``, ``temporal_sq``, ``inner`` columns, or from
    the norms, ``<g_s, g_t> = (||g||^2 - ||g_s||^2 - ||g_t||^2) / 2``).
    """
    nan3 = (math.nan,) * 3
    if w is None or not len(w["step"]):
        return nan3
    if {"spatial_sq", "temporal_sq", "inner"} <= set(w):
        ss, tt, st = (w[c].astype(float) for c in ("spatial_sq", "temporal_sq", "inner"))
    else:
        sn, tn, gn = (w[c].astype(float) for c in ("spatial_norm", "temporal_norm", "total_norm"))
        ss, tt, st = sn ** 2, tn ** 2, (gn ** 2 - sn ** 2 - tn ** 2) / 2
    ok = np.isfinite(ss) & np.isfinite(tt) & np.isfinite(st)
    if not ok.any():
        return nan3
    steps, r = np.unique(w["step"][ok], return_inverse=True)
    sums = np.zeros((3, len(steps)))
    for i, v in enumerate((ss, tt, st)):
        np.add.at(sums[i], r, v[ok])
    proj = np.atleast_1d(np.asarray(stats.projections(*sums).temporal_projection, dtype=float))
    finite = proj[np.isfinite(proj)]
    if finite.size < 2:   # one pass: its value, no interval
        return (float(finite.mean()) if finite.size else math.nan), math.nan, math.nan
    ci = stats.bootstrap_mean(proj, n_resamples=n_resamples, seed=seed)
    return float(ci.estimate), float(ci.low), float(ci.high)


def _mean(values) -> float:
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def _layer_row(ps: Dict[str, np.ndarray], pairs: Optional[Dict[str, np.ndarray]],
               weights: Optional[Dict[str, np.ndarray]], s, n_resamples: int, seed: int) -> dict:
    """The summary row of one layer at one recorded step (see the module documentation)."""
    T = int(ps["t"].max()) + 1
    if s is not None and _get(s, "spatial_sq") is not None and len(_get(s, "spatial_sq")):
        x, T, K1, activity = _units_from_samples(s)
        kind = "samples"
    else:
        x, K1 = _units_from_tables(ps, pairs, T)
        kind, activity = "passes", False
    est = _metrics(x.sum(axis=0, keepdims=True), T, K1, activity)[0]
    low = high = np.full_like(est, np.nan)
    if len(x) >= 2:
        sums = (_counts(len(x), n_resamples, seed) @ x)
        low, high, _ = stats.percentile_interval(_metrics(sums, T, K1, activity), stats.DEFAULT_LEVEL)
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    row = {"train_step": ps["train_step"][0] if "train_step" in ps else math.nan,
           "step": int(ps["step"].min()), "layer": ps["layer"][0], "layer_index": int(ps["layer_index"][0]),
           "neuron": ps["neuron"][0], "T": T, "tau": _mean(ps["tau"]) if "tau" in ps else math.nan,
           "samples": len(x) if kind == "samples" else math.nan, "passes": len(np.unique(ps["step"])),
           "resampled": kind, "max_lag": K1 - 1 if K1 else math.nan,
           "nonfinite": int(np.nansum(ps["nonfinite"].astype(float)))}
    names = ["temporal_share", "relative_1", "half_life", "decay_rate"]
    if activity:
        names += ["firing_rate", "window_fraction"]
    else:
        row["firing_rate"], row["window_fraction"] = _mean(ps["firing_rate"]), _mean(ps["window_fraction"])
    for i, name in enumerate(names):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = float(est[i]), float(low[i]), float(high[i])
    (row["weight_temporal_projection"], row["weight_temporal_projection_ci_low"],
     row["weight_temporal_projection_ci_high"]) = _weight_projection(weights, n_resamples, seed)
    return row


def step_summary(tables: Mapping[str, pd.DataFrame], samples: Optional[Mapping] = None, *,
                 n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per layer of one recorded step: :data:`SUMMARY_COLUMNS`, intervals at level 0.95.

    ``tables``: the step's ``per_step`` (required), ``pairs`` (used only without per-sample sums),
    ``weights`` (for the projection); each may carry a ``train_step`` column, copied to the rows
    (NaN when absent). ``samples``: ``Recorder.samples()`` of the step, ``{layer: LayerSamples}`` (or
    dicts) with ``spatial_sq``, ``temporal_sq`` ``[n, T]``, ``pair_sq`` ``[n, T, K+1]`` and, for the
    intervals of the activity, ``spikes``, ``window`` ``[n, T]`` counts and ``numel`` (elements per
    sample and step).

    >>> rng = np.random.default_rng(0)
    >>> n, T = 32, 3
    >>> sp = rng.uniform(0.5, 1.5, (n, T))
    >>> pair_sq = np.zeros((n, T, T)); pair_sq[:, :, 0] = sp
    >>> pair_sq[:, :2, 1] = 0.25 * sp[:, 1:]; pair_sq[:, :1, 2] = 0.0625 * sp[:, 2:]   # relative_k = 0.5^k
    >>> ps = pd.DataFrame({"train_step": 7, "step": 0, "layer": "sn1", "layer_index": 0, "neuron": "lif",
    ...     "t": range(T), "firing_rate": 0.1, "window_fraction": 0.3, "grad_spatial_norm": 1.0,
    ...     "grad_temporal_norm": 0.5, "nonfinite": 0})
    >>> row = step_summary({"per_step": ps}, {"sn1": {"spatial_sq": sp, "temporal_sq": 0.09 * sp,
    ...                                               "pair_sq": pair_sq}}, n_resamples=100).iloc[0]
    >>> int(row.train_step), int(row.samples), round(float(row.temporal_share), 12), round(float(row.half_life), 12)
    (7, 32, 0.230769230769, 1.0)
    """
    ps = _arrays(tables["per_step"], ("train_step", "step", "layer", "layer_index", "neuron", "t", "tau",
                                      "firing_rate", "window_fraction", "grad_spatial_norm",
                                      "grad_temporal_norm", "nonfinite"))
    rows: List[Dict] = []
    if ps is None:
        return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    with_samples = bool(samples)
    pairs = None if with_samples else _arrays(tables.get("pairs"), ("step", "layer", "t", "lag", "norm"))
    weights = _arrays(tables.get("weights"), ("step", "layer", "spatial_norm", "temporal_norm", "total_norm",
                                              "spatial_sq", "temporal_sq", "inner"))
    names, first = np.unique(ps["layer"].astype(str), return_index=True)
    for layer in sorted(names, key=lambda n: ps["layer_index"][first[list(names).index(n)]]):
        p = None if pairs is None else _select(pairs, pairs["layer"] == layer)
        w = None if weights is None else _select(weights, weights["layer"] == layer)
        s = samples.get(layer) if with_samples else None
        rows.append(_layer_row(_select(ps, ps["layer"] == layer), p, w, s, n_resamples, seed))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
