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
>>> [round(float(row[c]), 12) for c in ("relative_1_ci_low", "relative_1_ci_high")]   # 0.5 in every resample
[0.5, 0.5]
"""

from __future__ import annotations

import math
from typing import Dict, Hashable, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np
import pandas as pd

from .. import stats
from ..schema import RUN, SUMMARY_COLUMNS, SUMMARY_INTERVAL_METRICS
from .resample import layer_row
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


def _of(per_layer: Optional[Mapping], run: Optional[Hashable], layer: str):
    """One layer's entry of ``{layer: ...}``, or of ``{run: {layer: ...}}`` in comparisons (None if absent)."""
    if not per_layer:
        return None
    if run is not None and layer not in per_layer and isinstance(per_layer.get(run), Mapping):
        return per_layer[run].get(layer)
    return per_layer.get(layer)


def _tau(ps: pd.DataFrame, layers: Optional[pd.DataFrame]) -> float:
    """The layer's time constant: the mean of ``per_step.tau`` (PLIF: learned), else ``layers.tau``, else NaN.

    ``inf`` (an IF layer, which does not leak) is kept: its ``gamma = 1 - 1/tau`` is 1.
    """
    for d in (ps, layers):
        if d is not None and not d.empty and "tau" in d.columns:
            v = as_float(d["tau"])
            if (v == math.inf).all():
                return math.inf
            v = finite_or_nan(v)
            if np.isfinite(v).any():
                return float(np.nanmean(v))
    return math.nan


def _use_window(th: Optional[pd.DataFrame]) -> bool:
    """Whether the theory's default prediction for this layer is the ``window`` model (or there is no table)."""
    return th is None or "model" not in th.columns or bool((th["model"].astype(str) == "window").all())


def _columns(d: Optional[pd.DataFrame]) -> Optional[Dict[str, np.ndarray]]:
    """A DataFrame as a dict of numpy columns (None or empty: None)."""
    return None if d is None or d.empty else {c: d[c].to_numpy() for c in d.columns}


def _one_layer(tables: Mapping[str, pd.DataFrame], run, layer: str, samples, transport, theory,
               n_resamples: int, seed: int, level: float) -> Tuple[dict, List[dict]]:
    """The summary row and the profile rows of one (run,) layer (:func:`~gradflow.report.resample.layer_row`)."""
    def rows_of(name):
        """The rows of table ``name`` for this run and layer (None or empty stays so)."""
        d = tables.get(name)
        if d is None or d.empty:
            return d
        d = select_run(d, run) if RUN in d.columns else d
        return d[d["layer"] == layer]

    ps, th = rows_of("per_step"), _predicted(theory, run, layer)
    res = layer_row(_columns(ps), samples=_of(samples, run, layer), pairs=_columns(rows_of("pairs")),
                    lags=_columns(rows_of("lags")), weights=_columns(rows_of("weights")),
                    predicted=_predicted_profile(th, 0),
                    transport=_of(transport, run, layer) if _use_window(th) else None,
                    tau=_tau(ps, rows_of("layers")), n_resamples=n_resamples, seed=seed, level=level)
    row = dict({"layer": layer, "layer_index": float(np.nanmin(as_float(ps["layer_index"]))),
                "neuron": next((v.lower() for v in ps["neuron"] if isinstance(v, str)), None)},
               **res.row, **_theory_constants(th))
    profile = [{"layer": layer, "layer_index": row["layer_index"], "neuron": row["neuron"], "lag": k,
                "relative": res.relative[k], "relative_ci_low": res.relative_low[k],
                "relative_ci_high": res.relative_high[k],
                "predicted_relative": res.predicted[k] if res.predicted is not None else math.nan}
               for k in range(len(res.relative))]
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
    transport: Optional[Mapping] = None,
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
    ``transport``: the ``window`` model's inputs per layer (``Recorder.transport_inputs()``: arrays
    with a leading sample axis, resampled with the samples; or summed over samples, a fixed
    prediction), ``{run: {layer: ...}}`` in comparisons; used where the theory's default model is
    ``window`` (or there is no theory table), with the layer's ``tau`` from ``per_step`` or ``layers``.
    They give ``theory_error`` an interval that includes the prediction's sampling noise, and the
    columns ``one_step_survival``, ``in_window_before``, ``window_occupancy`` (docs/theory.md §6).
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
                row, prof = _one_layer(data, run, layer, samples, transport, theory, n_resamples, seed, level)
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
              transport: Optional[Mapping] = None, n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
              level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per (run,) layer: :data:`SUMMARY_COLUMNS` (``layer_statistics(...).summary``)."""
    return layer_statistics(tables, samples, theory=theory, transport=transport, n_resamples=n_resamples,
                            seed=seed, level=level).summary


def lag_profile(tables, samples: Optional[Mapping] = None, *, theory: Optional[pd.DataFrame] = None,
                transport: Optional[Mapping] = None, n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0,
                level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """One row per (run,) layer and lag: ``relative`` with its interval, ``predicted_relative``."""
    return layer_statistics(tables, samples, theory=theory, transport=transport, n_resamples=n_resamples,
                            seed=seed, level=level).profile
