"""Measured against predicted lag profiles: the ``theory.csv`` table (docs §10)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .. import stats
from ..schema import THEORY_COLUMNS
from .decay import MODELS, TABLE_MODELS, decay_rate, predict_lags, rate_horizon
from .factors import gamma_of
from .surrogates import TheoryError
from .window import predict_transport

__all__ = ["THEORY_COLUMNS", "measured_relative", "predict_window", "theory_table"]

LAGS_COLUMNS = ("layer", "layer_index", "lag", "norm")


def measured_relative(lags: pd.DataFrame, per_step: pd.DataFrame) -> pd.DataFrame:
    """Pool the recorder's ``lags`` table over ``step`` into ``relative_k`` (docs Eq. 25).

        relative_k = sqrt( sum_step (T-k) G_k^2 / sum_step sum_{t=k}^{T-1} ||P[t]||^2 )

    the definition of docs Eq. 17 (:func:`gradflow.stats.relative_from_pair_sq`) over all recorded
    steps: ``(T-k) G_k^2`` is the sum of ``||pair[t, t+k]||^2`` over the ``T-k`` pairs at lag k and
    ``||P[t]||`` the ``grad_spatial_norm`` of the ``per_step`` table. Steps whose norm is NaN are
    skipped. Returns ``layer, layer_index, lag, measured_relative``; NaN where no source has a
    spatial gradient.
    """
    missing = [c for c in LAGS_COLUMNS if c not in lags.columns]
    missing += [c for c in ("layer", "t", "grad_spatial_norm") if c not in per_step.columns]
    if missing:
        raise TheoryError(f"lags/per_step tables lack columns {missing}", exit_code=1)
    step_col = "step" if "step" in lags.columns and "step" in per_step.columns else None
    rows = []
    for (layer, idx), d in lags.groupby(["layer", "layer_index"], sort=False):
        ps = per_step[per_step["layer"] == layer]
        T = int(ps["t"].max()) + 1 if len(ps) else int(d["lag"].max()) + 1
        sp2 = ps.assign(_s=ps["grad_spatial_norm"].astype(float) ** 2)
        for lag, dl in d.groupby("lag", sort=True):
            k = int(lag)
            g2 = dl["norm"].astype(float) ** 2
            keep = np.isfinite(g2.to_numpy())
            num = float(np.sum(g2.to_numpy()[keep])) * (T - k)
            src = sp2[sp2["t"] >= k]
            if step_col is not None:  # the same recorded steps as the numerator
                src = src[src[step_col].isin(dl[step_col].to_numpy()[keep])]
            den = float(np.nansum(src["_s"]))
            rel = math.sqrt(num / den) if den > 0 else math.nan
            rows.append((layer, int(idx), k, 1.0 if (k == 0 and den > 0) else rel))
    return pd.DataFrame(rows, columns=["layer", "layer_index", "lag", "measured_relative"])


def predict_window(transport: Mapping[str, Mapping], tau, *, max_lag: int | None = None,
                   layer_index: Mapping[str, int] | None = None) -> pd.DataFrame:
    """The ``window`` model (docs §6) for every layer: ``layer, layer_index, lag, predicted_relative, model``.

    transport: ``{layer: inputs}`` with inputs from :func:`gradflow.theory.transport_inputs` (summed
    over the recorded batches); tau: one value or ``{layer: tau}`` (PLIF: the learned value).
    ``layer_index`` defaults to the order of ``transport``.
    """
    rows = []
    for i, (layer, inputs) in enumerate(transport.items()):
        t = float(tau[layer]) if isinstance(tau, Mapping) else float(tau)
        T = np.shape(inputs["spatial_sq"])[0]
        K = T - 1 if max_lag is None else min(int(max_lag), T - 1)
        rel = predict_transport(inputs, gamma_of(t), K)
        idx = i if layer_index is None else int(layer_index[layer])
        rows += [(layer, idx, k, float(r), "window") for k, r in enumerate(rel)]
    return pd.DataFrame(rows, columns=["layer", "layer_index", "lag", "predicted_relative", "model"])


def theory_table(
    lags: pd.DataFrame,
    per_step: pd.DataFrame,
    *,
    neuron: str | None = None,
    tau: float | Mapping[str, float] | None = None,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    decay_input: bool = False,
    model: str | None = None,
    extra_models: Sequence[str] = ("independent", "simulation"),
    transport: Mapping[str, Mapping] | None = None,
    max_lag: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Build ``theory.csv``: measured and predicted ``relative_k`` per layer and lag (docs §10).

    lags, per_step: the recorder's tables. transport: ``{layer: inputs}`` from
    :func:`gradflow.theory.transport_inputs` (summed over batches), needed by the ``window`` model
    (docs §6); a layer without inputs gets NaN from it, with a warning. ``model=None`` (the default)
    is ``window`` when ``transport`` is given and ``independent`` otherwise (with a warning, until
    the recorder provides the inputs); ``model="window"`` without ``transport`` raises. The neuron options
    are those of the recorded layers (see :func:`predict_lags`; ``neuron=None`` reads the
    ``neuron`` column; ``tau=None`` the ``tau`` column).

    Columns (``THEORY_COLUMNS``, then ``predicted_relative_<m>`` for each of ``extra_models``):

    * ``measured_relative`` (Eq. 25) and ``predicted_relative`` of ``model``
    * ``relative_error = (predicted - measured) / measured`` (signed; NaN where measured is 0/NaN)
    * ``fitted_decay_rate`` / ``predicted_decay_rate``: Eq. 22 on the measured / predicted profile
    * ``*_half_life``: :func:`gradflow.stats.half_life` of the measured / predicted profile (the
      log-linear crossing of 1/2, Eq. 24); ``*_horizon``: the 1% horizon of the decay rate (Eq. 23)
    """
    if model is None:
        model = "window" if transport is not None else "independent"
        if transport is None:
            warnings.warn("gradflow.theory: no transport inputs, so theory.csv uses the independent model, "
                          "not the default window model (docs/theory.md §6)", stacklevel=2)
    models = [model] + [m for m in extra_models if m != model]
    for m in models:
        if m not in MODELS:
            raise TheoryError(f"unknown model {m!r}; expected one of {MODELS}")
    if "window" in models and transport is None:
        raise TheoryError("the window model needs transport inputs (gradflow.theory.transport_inputs "
                          "per layer, passed as transport=); or choose model='independent'")
    out = measured_relative(lags, per_step)
    kw = dict(neuron=neuron, tau=tau, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha,
              v_reset=v_reset, detach_reset=detach_reset, decay_input=decay_input, max_lag=max_lag,
              seed=seed)
    for m in models:
        if m in TABLE_MODELS:
            pred = predict_lags(per_step, model=m, **kw)
        else:
            pred = _window_for(out, per_step, transport, tau, max_lag)
        col = "predicted_relative" if m == model else f"predicted_relative_{m}"
        pred = pred[["layer", "layer_index", "lag", "predicted_relative"]].rename(
            columns={"predicted_relative": col})
        out = out.merge(pred, on=["layer", "layer_index", "lag"], how="left")
    if max_lag is not None:
        out = out[out["lag"] <= max_lag]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = (out["predicted_relative"] - out["measured_relative"]) / out["measured_relative"]
    out = out.assign(relative_error=err.where(np.isfinite(err)))
    parts = []
    for _, d in out.groupby(["layer", "layer_index"], sort=False):
        d = d.sort_values("lag")
        r_meas = decay_rate(d["lag"], d["measured_relative"])
        r_pred = decay_rate(d["lag"], d["predicted_relative"])
        parts.append(d.assign(
            fitted_decay_rate=r_meas, predicted_decay_rate=r_pred,
            measured_half_life=_half_life(d["lag"], d["measured_relative"]),
            predicted_half_life=_half_life(d["lag"], d["predicted_relative"]),
            measured_horizon=rate_horizon(r_meas), predicted_horizon=rate_horizon(r_pred), model=model))
    if not parts:
        raise TheoryError("theory_table: the lags table has no rows", exit_code=1)
    out = pd.concat(parts, ignore_index=True)
    extra = [c for c in out.columns if c.startswith("predicted_relative_")]
    out = out[list(THEORY_COLUMNS) + extra]
    return out.sort_values(["layer_index", "lag"], kind="stable").reset_index(drop=True)


def _half_life(lags, relative) -> float:
    """:func:`gradflow.stats.half_life` of a profile; NaN (not an error) for an all-NaN profile."""
    y = np.asarray(relative, float)
    if not np.any(np.isfinite(y)):
        return math.nan
    return stats.half_life(np.where(np.isfinite(y), y, np.nan), np.asarray(lags, float))


def _window_for(meas: pd.DataFrame, per_step: pd.DataFrame, transport, tau, max_lag) -> pd.DataFrame:
    """The window model for the layers of the measured table; NaN (and a warning) where inputs lack."""
    parts = []
    for (layer, idx), d in meas.groupby(["layer", "layer_index"], sort=False):
        if layer not in transport:
            warnings.warn(f"gradflow.theory: no transport inputs for layer {layer!r}; window model NaN",
                          stacklevel=3)
            parts.append(d[["layer", "layer_index", "lag"]].assign(predicted_relative=math.nan))
            continue
        t = tau
        if t is None:
            if "tau" not in per_step.columns:
                raise TheoryError("tau not given and the per_step table has no tau column")
            t = float(per_step.loc[per_step["layer"] == layer, "tau"].astype(float).mean())
        elif isinstance(t, Mapping):
            t = float(t[layer])
        parts.append(predict_window({layer: transport[layer]}, t, max_lag=max_lag, layer_index={layer: idx}))
    return pd.concat(parts, ignore_index=True)
