"""One row per layer, and the findings in words.

:func:`summarize` reduces the recorded tables (SPEC §3) to one row per (run,) layer. The numbers, with
``P[t]`` the spatial and ``temporal[t]`` the temporal part of ``delta[t] = dL/du[t]`` (SPEC §2):

``temporal_share``
    Share of the input-current gradient that arrives through the neuron's own state. For one recorded
    step, with the norms taken over all time steps at once,
    ``||temporal|| = sqrt(sum_t ||temporal[t]||^2)`` and ``||P|| = sqrt(sum_t ||P[t]||^2)`` (the L2 norms
    of the layer's whole ``[T, N, ...]`` gradient parts), the share is SPEC §3's formula
    ``||temporal|| / (||P|| + ||temporal||)``; the column is its mean over recorded steps. Time steps
    whose norms are not finite are left out (they are counted in ``nonfinite``).
``weight_temporal_share``
    The same formula for the gradient of the parameters feeding the layer (``weights`` table): per step,
    the norms are pooled over the layer's parameters (``sqrt(sum_param norm^2)``, the norm of all its
    parameter gradients as one vector), then the share is averaged over steps.
``half_life``
    Lag, in time steps, at which the lag profile ``relative_k`` first falls to 0.5, linearly interpolated
    between the two lags around the crossing; ``inf`` if it stays above 0.5 up to the longest lag
    measured (``max_lag``), NaN if it cannot be measured (T = 1, no finite profile). The profile pools
    the recorded steps as SPEC §2 pools time steps: ``G_k = sqrt(mean over steps of norm_k^2)`` and
    ``relative_k = G_k / G_0`` (the mean of the ``relative`` column where ``norm`` is not usable).
``temporal_zero_fraction``
    Share of the temporal entries that are exactly zero, over t = 0..T-2 and all steps: at t = T-1 the
    temporal part is zero by definition, so that step is left out (NaN for T = 1).
``firing_rate``, ``window_fraction``
    Means over steps and time steps (finite values).
``nonfinite``
    Total count of NaN/Inf elements of ``delta[t]`` over steps and time steps.

With a theory table, ``predicted_half_life`` (the same interpolation on ``predicted_relative``),
``theory_error`` (median of ``|relative_error|`` over lags k >= 1) and every other numeric theory
column that is constant within a layer (fitted or predicted rates, half-lives: prefixed ``theory_``)
are added.

>>> import pandas as pd
>>> lags = pd.DataFrame({"step": 0, "layer": "sn1", "layer_index": 0, "lag": [0, 1, 2],
...                      "norm": [2.0, 0.6, 0.1], "relative": [1.0, 0.3, 0.05]})
>>> round(half_life(lags["lag"], lags["relative"]), 3)     # 0 + (1 - 0.5) / (1 - 0.3)
0.714
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, List, Optional

import numpy as np
import pandas as pd

from ._common import (
    RUN,
    as_float,
    finite_or_nan,
    ordered_runs,
    require_columns,
    run_keys,
    select_run,
)

__all__ = [
    "SUMMARY_COLUMNS",
    "summarize",
    "findings",
    "half_life",
    "lag_profile",
    "format_percent",
    "format_half_life",
]

#: Columns of :func:`summarize`, after ``run`` (comparisons only) and before the theory columns.
SUMMARY_COLUMNS = (
    "layer", "layer_index", "neuron", "T", "steps",
    "firing_rate", "window_fraction",
    "temporal_share", "weight_temporal_share",
    "half_life", "max_lag",
    "temporal_zero_fraction", "nonfinite",
)

# Per-lag columns of the theory table; the other numeric columns are per-layer constants.
_THEORY_PER_LAG = {"step", "layer", "layer_index", "lag", "measured_relative", "predicted_relative",
                   "relative_error", "run", "neuron"}


def half_life(lag: Iterable, relative: Iterable, level: float = 0.5) -> float:
    """Lag (in time steps) where the profile ``relative`` first falls to ``level``.

    Linear interpolation between the last lag above ``level`` and the first at or below it:
    ``k0 + (r0 - level) / (r0 - r1)``. Pairs with a non-finite lag or value are skipped. Returns
    ``inf`` when the profile never reaches ``level``, NaN when fewer than two finite lags are given
    (with only lag 0, as for T = 1, there is nothing to measure). A missing or non-finite lag 0 is
    taken as ``relative_0 = 1``, its value by definition.

    >>> half_life([0, 1, 2], [1.0, 0.75, 0.25])
    1.5
    >>> half_life([0, 1], [1.0, 0.9])
    inf
    """
    k = as_float(lag)
    r = as_float(relative)
    ok = np.isfinite(k) & np.isfinite(r)
    k, r = k[ok], r[ok]
    if k.size and not (k == 0).any() and (k > 0).all():
        # relative_0 = G_0 / G_0 = 1 by definition; restore it when lag 0 was not usable
        k, r = np.append(k, 0.0), np.append(r, 1.0)
    if k.size < 2:
        return math.nan
    order = np.argsort(k, kind="stable")
    k, r = k[order], r[order]
    if r[0] <= level:
        return float(k[0])
    for i in range(1, k.size):
        if r[i] <= level:
            k0, k1, r0, r1 = k[i - 1], k[i], r[i - 1], r[i]
            return float(k0 + (r0 - level) / (r0 - r1) * (k1 - k0))
    return math.inf


def lag_profile(lags: pd.DataFrame) -> pd.DataFrame:
    """The lag profile per (run,) layer, pooled over recorded steps.

    Returns columns ``[run,] layer, layer_index, lag, norm, relative`` with
    ``norm = G_k = sqrt(mean over steps of norm_k^2)`` (finite values) and ``relative = G_k / G_0``;
    where that ratio is not usable (no finite lag-0 norm, ``G_0 = 0``), ``relative`` is the mean of the
    finite ``relative`` values instead.
    """
    require_columns(lags, "lags")
    keys = run_keys(lags) + ["layer"]
    out_cols = keys + ["layer_index", "lag", "norm", "relative"]
    if lags.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in out_cols})
    norm = finite_or_nan(lags["norm"])
    d = lags[keys].copy()
    d["layer_index"] = as_float(lags["layer_index"])
    d["lag"] = as_float(lags["lag"])
    d["_n2"] = norm * norm
    d["_rel"] = finite_or_nan(lags["relative"])
    d = d[np.isfinite(d["lag"])]
    prof = d.groupby(keys + ["lag"], sort=False).agg(
        layer_index=("layer_index", "min"), _ms=("_n2", "mean"), _rel=("_rel", "mean")
    ).reset_index()
    prof["norm"] = np.sqrt(prof["_ms"])
    g0 = prof[prof["lag"] == 0].set_index(keys)["norm"].rename("_g0")
    prof = prof.join(g0, on=keys)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = prof["norm"].to_numpy() / prof["_g0"].to_numpy()
    usable = np.isfinite(ratio) & (prof["_g0"].to_numpy() > 0)
    prof["relative"] = np.where(usable, ratio, prof["_rel"].to_numpy())
    # keep runs and layers in order of first appearance (not alphabetical), lags ascending
    prof["_g"] = prof.groupby(keys, sort=False).ngroup()
    prof = prof.sort_values(["_g", "lag"], kind="stable")
    return prof[out_cols].reset_index(drop=True)


def _pooled_share(df: pd.DataFrame, keys: List[str], spatial: str, temporal: str, name: str) -> pd.Series:
    """SPEC §3's ``temporal / (spatial + temporal)`` on norms pooled per step, then the mean over steps.

    Pooling adds squared norms over the rows of one step (time steps of ``per_step``, parameters of
    ``weights``); rows with a non-finite norm are left out.
    """
    sp = as_float(df[spatial])
    tp = as_float(df[temporal])
    ok = np.isfinite(sp) & np.isfinite(tp)
    d = df.loc[ok, keys + ["step"]].copy()
    d["_sp2"], d["_tp2"] = sp[ok] ** 2, tp[ok] ** 2
    if d.empty:
        return pd.Series(dtype=float, name=name)
    s = d.groupby(keys + ["step"], sort=False)[["_sp2", "_tp2"]].sum()
    spn, tpn = np.sqrt(s["_sp2"]), np.sqrt(s["_tp2"])
    share = (tpn / (spn + tpn)).where((spn + tpn) > 0)
    return share.groupby(level=keys, sort=False).mean().rename(name)


def _current_share(per_step: pd.DataFrame, keys: List[str]) -> pd.Series:
    # Norms over all t per step, then SPEC §3's share, then the mean over steps.
    return _pooled_share(per_step, keys, "grad_spatial_norm", "grad_temporal_norm", "temporal_share")


def _weight_share(weights: pd.DataFrame, keys: List[str]) -> pd.Series:
    # Pool the parameters of a layer into one gradient vector per step, then share, then mean.
    return _pooled_share(weights, keys, "spatial_norm", "temporal_norm", "weight_temporal_share")


def _lag_stats(lags: pd.DataFrame, keys: List[str]) -> pd.DataFrame:
    prof = lag_profile(lags)
    rows = []
    for key, g in prof.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        lag = g["lag"].to_numpy(dtype=float)
        row = dict(zip(keys, key))
        row["half_life"] = half_life(lag, g["relative"])
        row["max_lag"] = float(np.nanmax(lag)) if np.isfinite(lag).any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=keys + ["half_life", "max_lag"])


def _theory_stats(theory: pd.DataFrame, keys: List[str]) -> Optional[pd.DataFrame]:
    tkeys = [k for k in keys if k in theory.columns]
    if "layer" not in tkeys or theory.empty:
        return None
    extra = [c for c in theory.columns
             if c not in _THEORY_PER_LAG and pd.api.types.is_numeric_dtype(theory[c])]
    rows = []
    for key, g in theory.groupby(tkeys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(tkeys, key))
        if "lag" in g.columns and "predicted_relative" in g.columns:
            row["predicted_half_life"] = half_life(g["lag"], g["predicted_relative"])
        if "relative_error" in g.columns:
            err = np.abs(finite_or_nan(g["relative_error"]))
            if "lag" in g.columns:
                err = err[as_float(g["lag"]) >= 1]
            err = err[np.isfinite(err)]
            row["theory_error"] = float(np.median(err)) if err.size else math.nan
        for c in extra:
            vals = pd.unique(g[c].dropna())
            if len(vals) <= 1:
                row[f"theory_{c}"] = float(vals[0]) if len(vals) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(
    per_step: pd.DataFrame,
    lags: Optional[pd.DataFrame] = None,
    weights: Optional[pd.DataFrame] = None,
    theory: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """One row per (run,) layer: the columns of :data:`SUMMARY_COLUMNS` (defined in the module doc).

    ``per_step`` is required; ``lags``, ``weights`` and ``theory`` may be None or empty, which leaves
    their columns NaN. A ``run`` column in ``per_step`` (comparisons) is kept as the first column and
    rows keep the order of the runs, then ``layer_index``. Tables without ``run`` are shared by all runs.
    Non-finite values never raise: they are left out of the means and counted in ``nonfinite``.

    >>> import pandas as pd
    >>> ps = pd.DataFrame({"step": 0, "layer": "sn1", "layer_index": 0, "neuron": "lif", "t": [0, 1],
    ...     "firing_rate": 0.1, "window_fraction": 0.3, "grad_total_norm": 1.0,
    ...     "grad_spatial_norm": [0.0, 3.0], "grad_temporal_norm": [1.0, 0.0],
    ...     "temporal_zero_fraction": [0.25, 1.0], "nonfinite": 0})
    >>> row = summarize(ps).iloc[0]
    >>> float(row["temporal_share"]), float(row["temporal_zero_fraction"])      # 1 / (3 + 1)
    (0.25, 0.25)
    """
    require_columns(per_step, "per_step")
    keys = run_keys(per_step) + ["layer"]
    out_cols = keys[:-1] + list(SUMMARY_COLUMNS)
    if per_step.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in out_cols})

    ps = per_step.copy()
    ps["_t"] = as_float(ps["t"])
    ps["_T"] = ps.groupby(keys, sort=False)["_t"].transform("max") + 1
    if "T" in ps.columns:
        ps["_T"] = np.fmax(ps["_T"].to_numpy(dtype=float), as_float(ps["T"]))
    ps["_fr"] = finite_or_nan(ps["firing_rate"])
    ps["_wf"] = finite_or_nan(ps["window_fraction"])
    # t = T-1 carries no temporal gradient by definition: leave it out of the zero fraction.
    zf = finite_or_nan(ps["temporal_zero_fraction"])
    zf[ps["_t"].to_numpy() >= ps["_T"].to_numpy() - 1] = np.nan
    ps["_zf"] = zf
    nf = as_float(ps["nonfinite"])
    ps["_nf"] = np.where(np.isfinite(nf), nf, 0.0)
    ps["_li"] = as_float(ps["layer_index"])

    g = ps.groupby(keys, sort=False)
    base = g.agg(
        layer_index=("_li", "min"),
        neuron=("neuron", "first"),
        T=("_T", "max"),
        steps=("step", "nunique"),
        firing_rate=("_fr", "mean"),
        window_fraction=("_wf", "mean"),
        temporal_zero_fraction=("_zf", "mean"),
        nonfinite=("_nf", "sum"),
    )
    out = base.join(_current_share(ps, keys)).reset_index()

    for table, name, stat in ((weights, "weights", _weight_share), (lags, "lags", _lag_stats)):
        if table is None:
            continue
        require_columns(table, name)
        tkeys = [k for k in keys if k in table.columns]
        if table.empty:
            continue
        part = stat(table, tkeys)
        part = part.reset_index() if isinstance(part, pd.Series) else part
        if len(part):
            out = out.merge(part, on=tkeys, how="left")

    if theory is not None:
        require_columns(theory, "theory", ["layer"])
        tstats = _theory_stats(theory, keys)
        if tstats is not None and not tstats.empty:
            on = [k for k in keys if k in tstats.columns]
            out = out.merge(tstats, on=on, how="left")

    for c in SUMMARY_COLUMNS:
        if c not in out.columns:
            out[c] = math.nan
    for c in ("layer_index", "T", "nonfinite"):
        v = out[c].to_numpy(dtype=float)
        if np.all(np.isfinite(v)):
            out[c] = v.astype(np.int64)
    out["neuron"] = out["neuron"].map(lambda v: v.lower() if isinstance(v, str) else v)
    extra = [c for c in out.columns if c not in out_cols]
    if RUN in out.columns:
        order = {r: i for i, r in enumerate(ordered_runs(per_step))}
        out["_r"] = out[RUN].map(order)
        out = out.sort_values(["_r", "layer_index"], kind="stable").drop(columns="_r")
    else:
        out = out.sort_values("layer_index", kind="stable")
    return out[out_cols + extra].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- words

def format_percent(x: float) -> str:
    """A share in [0, 1] as a percentage for prose: ``0.04 -> '4%'``, ``0.003 -> '0.3%'``, NaN -> ``'n/a'``.

    >>> [format_percent(v) for v in (0.04, 0.6149, 0.003, 0.0, float('nan'))]
    ['4%', '61%', '0.3%', '0%', 'n/a']
    """
    if x is None or not np.isfinite(x):
        return "n/a"
    p = 100.0 * float(x)
    if p == 0:
        return "0%"
    if abs(p) < 0.05:
        return "<0.1%" if p > 0 else ">-0.1%"
    if abs(p) < 1:
        return f"{p:.1f}%"
    return f"{p:.0f}%"


def format_half_life(h: float, max_lag: float = math.nan, T: float = math.nan) -> str:
    """A half-life for prose: ``'0.7 steps'``, ``'beyond 5 steps'`` (inf), ``'not measurable'`` (NaN).

    >>> format_half_life(0.714), format_half_life(float('inf'), 5), format_half_life(1.0)
    ('0.7 steps', 'beyond 5 steps', '1.0 steps')
    """
    if h is None or (isinstance(h, float) and math.isnan(h)):
        return "not measurable"
    if math.isinf(h):
        if max_lag is not None and np.isfinite(max_lag):
            n = int(max_lag)
            return f"beyond {n} step{'s' if n != 1 else ''}"
        return "beyond the longest lag measured"
    return f"{h:.1f} steps"


def _label(run: Optional[Hashable], layer: str) -> str:
    return f"{run} {layer}" if run is not None else str(layer)


def _median(values) -> float:
    v = as_float(values)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else math.nan


def _layer_sentence(row: pd.Series, run: Optional[Hashable]) -> str:
    name = _label(run, row["layer"])
    T = row.get("T", math.nan)
    if T is not None and np.isfinite(T) and int(T) == 1:
        text = f"{name}: T=1, so no gradient flows through time"
    else:
        zero = row.get("temporal_zero_fraction", math.nan)
        zero_text = (f"{format_percent(zero)} of temporal entries exactly zero" if np.isfinite(zero)
                     else "no temporal entries to count")
        text = (f"{name}: temporal share {format_percent(row.get('temporal_share', math.nan))}, "
                f"half-life {format_half_life(row.get('half_life', math.nan), row.get('max_lag', math.nan))}, "
                f"{zero_text}")
    nf = row.get("nonfinite", 0)
    if nf is not None and np.isfinite(nf) and nf > 0:
        text += f"; {int(nf)} non-finite gradient value{'s' if nf != 1 else ''} (NaN/Inf)"
    return text


def _overview(d: pd.DataFrame, run: Optional[Hashable]) -> Optional[str]:
    if d.empty:
        return None
    neurons = sorted({str(v).upper() for v in d["neuron"] if isinstance(v, str)})
    kind = "/".join(neurons) + " " if neurons else ""
    Ts = sorted({int(v) for v in as_float(d["T"]) if np.isfinite(v)})
    n = len(d)
    head = f"{run}: " if run is not None else ""
    text = f"{head}{n} {kind}layer{'s' if n != 1 else ''}"
    if Ts:
        text += f" at T={'/'.join(map(str, Ts))}"
    share = as_float(d["temporal_share"])
    ok = np.isfinite(share)
    if ok.any():
        if ok.sum() > 1:
            lo, hi = np.argmin(np.where(ok, share, np.inf)), np.argmax(np.where(ok, share, -np.inf))
            text += (f"; temporal share from {format_percent(share[lo])} ({d['layer'].iloc[lo]}) "
                     f"to {format_percent(share[hi])} ({d['layer'].iloc[hi]})")
        else:
            text += f"; temporal share {format_percent(share[ok][0])}"
    h = _median(d["half_life"])
    if not math.isnan(h):
        text += f", median half-life {format_half_life(h, np.nanmax(as_float(d['max_lag'])) if d['max_lag'].notna().any() else math.nan)}"
    return text + "."


def findings(summary: pd.DataFrame) -> List[str]:
    """The findings in plain sentences, from a :func:`summarize` table.

    In order: one overview sentence per run; for comparisons, one sentence per run against the first;
    a warning when gradients contained NaN/Inf; then one sentence per layer, e.g.
    ``"layer3.1: temporal share 4%, half-life 0.7 steps, 61% of temporal entries exactly zero"``
    (prefixed with the run name in comparisons).

    >>> import pandas as pd
    >>> s = pd.DataFrame({"layer": ["layer3.1"], "layer_index": [0], "neuron": ["lif"], "T": [6],
    ...     "temporal_share": [0.04], "half_life": [0.714], "max_lag": [5],
    ...     "temporal_zero_fraction": [0.61], "nonfinite": [0]})
    >>> findings(s)[-1]
    'layer3.1: temporal share 4%, half-life 0.7 steps, 61% of temporal entries exactly zero'
    """
    if summary is None or summary.empty:
        return ["No layer was recorded, so there is nothing to report."]
    s = summary.copy()
    for c in SUMMARY_COLUMNS:
        if c not in s.columns:
            s[c] = math.nan
    runs = ordered_runs(s)
    out: List[str] = []
    for run in runs:
        sentence = _overview(select_run(s, run), run)
        if sentence:
            out.append(sentence)
    if len(runs) > 1:
        base = select_run(s, runs[0])
        for run in runs[1:]:
            d = select_run(s, run)
            hb, hd = _median(base["half_life"]), _median(d["half_life"])
            hl = (f", median half-life {_num(hd)} vs {_num(hb)} steps"
                  if not (math.isnan(hb) and math.isnan(hd)) else "")
            out.append(f"{run} vs {runs[0]}: median temporal share "
                       f"{format_percent(_median(d['temporal_share']))} vs "
                       f"{format_percent(_median(base['temporal_share']))}{hl}.")
    nf = as_float(s["nonfinite"])
    bad = np.isfinite(nf) & (nf > 0)
    if bad.any():
        names = [_label(r, l) for r, l in zip(
            s[RUN] if RUN in s.columns else [None] * len(s), s["layer"])]
        listed = [n for n, b in zip(names, bad) if b]
        more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
        out.append(f"Warning: {int(nf[bad].sum())} non-finite gradient values (NaN/Inf) in "
                   f"{len(listed)} layer{'s' if len(listed) != 1 else ''} ({', '.join(listed[:5])}{more}); "
                   "they are left out of the norms, shares and figures.")
    for run in runs:
        for _, row in select_run(s, run).iterrows():
            out.append(_layer_sentence(row, run if RUN in s.columns and len(runs) > 1 else None))
    return out


def _num(h: float) -> str:
    if math.isnan(h):
        return "n/a"
    if math.isinf(h):
        return "inf"
    return f"{h:.1f}"
