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

import math
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd

from .. import stats
from ..report.resample import layer_row

__all__ = ["SUMMARY_COLUMNS", "INTERVAL_METRICS", "step_summary", "summary_columns", "as_frame"]

#: Metrics of ``summary.csv`` that carry ``<metric>_ci_low`` / ``<metric>_ci_high``.
INTERVAL_METRICS: Tuple[str, ...] = (
    "temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate",
    "firing_rate", "window_fraction",
)

#: Columns of ``summary.csv``: one row per (recorded step, layer).
SUMMARY_COLUMNS: Tuple[str, ...] = (
    "train_step", "step", "layer", "layer_index", "neuron", "T", "tau", "samples", "passes", "resampled",
) + tuple(c for m in INTERVAL_METRICS for c in (m, f"{m}_ci_low", f"{m}_ci_high")) + ("max_lag", "nonfinite")

#: The per-step columns the rows need (read once per table, then selected per layer).
_PER_STEP = ("train_step", "step", "layer", "layer_index", "neuron", "t", "T", "tau", "firing_rate",
             "window_fraction", "grad_spatial_norm", "grad_temporal_norm", "temporal_zero_fraction", "nonfinite")


def _arrays(table, columns) -> Optional[Dict[str, np.ndarray]]:
    """The ``columns`` of ``table`` (a DataFrame, or a dict of columns as
    :meth:`gradflow.Recorder.columns` gives) that exist, as numpy arrays (one conversion; per-layer
    masks are cheap); None for no table or no rows."""
    if table is None:
        return None
    if isinstance(table, pd.DataFrame):
        return None if table.empty else {c: table[c].to_numpy() for c in columns if c in table.columns}
    cols = {c: np.asarray(table[c], dtype=object if isinstance(table[c], list) else None)
            for c in columns if c in table}
    return cols if cols and len(next(iter(cols.values()))) else None


def _select(cols: Optional[Dict[str, np.ndarray]], mask: np.ndarray) -> Optional[Dict[str, np.ndarray]]:
    return None if cols is None else {c: v[mask] for c, v in cols.items()}


def _mean(values) -> float:
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def _row(ps: Dict[str, np.ndarray], pairs, weights, s, n_resamples: int, seed: int) -> dict:
    """The summary row of one layer at one recorded step (module documentation)."""
    tau = _mean(ps["tau"]) if "tau" in ps else math.nan
    r = layer_row(ps, samples=s, pairs=pairs, weights=weights, tau=tau, n_resamples=n_resamples, seed=seed).row
    row = {"train_step": ps["train_step"][0] if "train_step" in ps else math.nan,
           "step": int(ps["step"].min()), "layer": ps["layer"][0], "layer_index": int(ps["layer_index"][0]),
           "neuron": ps["neuron"][0], "T": r["T"], "tau": tau, "samples": r["samples"], "passes": r["steps"],
           "resampled": r["resampled"], "max_lag": r["max_lag"], "nonfinite": r["nonfinite"]}
    for m in INTERVAL_METRICS:
        for c in (m, f"{m}_ci_low", f"{m}_ci_high"):
            row[c] = float(r.get(c, math.nan))
    return row


def step_summary(tables: Mapping[str, pd.DataFrame], samples: Optional[Mapping] = None, *,
                 n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per layer of one recorded step: :data:`SUMMARY_COLUMNS`, intervals at level 0.95.

    ``tables``: the step's ``per_step`` (required), ``pairs`` (used only without per-sample sums),
    ``weights`` (for the projection), as DataFrames or dicts of columns
    (:meth:`gradflow.Recorder.columns`); each may carry a ``train_step`` column, copied to the rows
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
    return as_frame(summary_columns(tables, samples, n_resamples=n_resamples, seed=seed))


def as_frame(table) -> pd.DataFrame:
    """``table`` (a DataFrame, or a dict of equal-length columns in column order) as a DataFrame; a dict
    without rows keeps its column names (object columns, as ``pd.DataFrame(columns=...)``)."""
    if isinstance(table, pd.DataFrame):
        return table
    if not len(next(iter(table.values()), ())):
        return pd.DataFrame(columns=list(table))
    return pd.DataFrame(table)


def summary_columns(tables: Mapping, samples: Optional[Mapping] = None, *,
                    n_resamples: int = stats.DEFAULT_RESAMPLES, seed: int = 0) -> Dict[str, list]:
    """:func:`step_summary` as a dict of columns (:data:`SUMMARY_COLUMNS`, in order), without the DataFrame."""
    rows = _rows(tables, samples, n_resamples, seed)
    return {c: _uniform([r[c] for r in rows]) for c in SUMMARY_COLUMNS}


def _uniform(values: list) -> list:
    """A column of ints and floats (e.g. a count that is NaN for some layer) as floats, as a DataFrame
    column would hold it (so that its CSV text is the same)."""
    kinds = {type(v) for v in values}
    if any(issubclass(k, (float, np.floating)) for k in kinds) and \
            any(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
        return [float(v) for v in values]
    return values


def _rows(tables: Mapping, samples: Optional[Mapping], n_resamples: int, seed: int) -> List[Dict]:
    """The rows of :func:`step_summary`, one dict per layer in layer_index order."""
    ps = _arrays(tables["per_step"], _PER_STEP)
    rows: List[Dict] = []
    if ps is None:
        return rows
    with_samples = bool(samples)
    pairs = None if with_samples else _arrays(tables.get("pairs"), ("step", "layer", "t", "lag", "norm"))
    weights = _arrays(tables.get("weights"), ("step", "layer", "spatial_norm", "temporal_norm", "total_norm",
                                              "spatial_sq", "temporal_sq", "inner"))
    names, first = np.unique(ps["layer"].astype(str), return_index=True)
    for layer in sorted(names, key=lambda n: ps["layer_index"][first[list(names).index(n)]]):
        p = None if pairs is None else _select(pairs, pairs["layer"] == layer)
        w = None if weights is None else _select(weights, weights["layer"] == layer)
        s = samples.get(layer) if with_samples else None
        rows.append(_row(_select(ps, ps["layer"] == layer), p, w, s, n_resamples, seed))
    return rows
