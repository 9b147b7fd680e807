"""Measured against predicted lag profiles: the ``theory.csv`` table (docs §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .decay import MODELS, decay_rate, half_life, horizon, predict_lags
from .surrogates import TheoryError

__all__ = ["THEORY_COLUMNS", "measured_relative", "theory_table"]

#: Leading columns of ``theory.csv``; ``predicted_relative_<model>`` columns may follow.
THEORY_COLUMNS = (
    "layer", "layer_index", "lag", "measured_relative", "predicted_relative", "relative_error",
    "fitted_decay_rate", "predicted_decay_rate", "measured_half_life", "predicted_half_life",
    "measured_horizon", "predicted_horizon", "model",
)

LAGS_COLUMNS = ("layer", "layer_index", "lag", "norm")


def measured_relative(lags: pd.DataFrame) -> pd.DataFrame:
    """Pool the recorder's ``lags`` table over ``step`` (docs Eq. 25).

        measured_relative_k = sqrt(mean_step G_k^2 / mean_step G_0^2)

    the same pooling :func:`predict_lags` applies to the per-step statistics (a plain mean of the
    per-step ``relative`` would weight quiet steps as much as loud ones). Steps whose norm is NaN
    are skipped. Returns ``layer, layer_index, lag, measured_relative``; NaN where ``G_0 = 0``.
    """
    missing = [c for c in LAGS_COLUMNS if c not in lags.columns]
    if missing:
        raise TheoryError(f"lags table lacks columns {missing}", exit_code=1)
    d = lags.assign(_g2=lags["norm"].astype(float) ** 2)
    g = d.groupby(["layer", "layer_index", "lag"], sort=False)["_g2"].mean().reset_index()
    g0 = g[g["lag"] == 0].set_index(["layer", "layer_index"])["_g2"]
    base = g.set_index(["layer", "layer_index"]).index.map(lambda i: g0.get(i, math.nan))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(g["_g2"].to_numpy() / np.asarray(base, float))
    rel[~np.isfinite(rel)] = np.nan
    return g.drop(columns="_g2").assign(measured_relative=rel)


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
    model: str = "independent",
    extra_models: Sequence[str] = ("simulation",),
    max_lag: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Build ``theory.csv``: measured and predicted ``relative_k`` per layer and lag (docs §7).

    lags, per_step: the recorder's SPEC §3 tables. The neuron options are those of the recorded
    layers (see :func:`predict_lags`; ``neuron=None`` reads the ``neuron`` column).

    Columns (:data:`THEORY_COLUMNS`, then ``predicted_relative_<m>`` for each of ``extra_models``):

    * ``measured_relative`` -- Eq. 25; ``predicted_relative`` -- ``model`` (default the plug-in
      independence model, Eq. 18)
    * ``relative_error = (predicted - measured) / measured`` (signed; NaN where measured is 0/NaN)
    * ``fitted_decay_rate`` / ``predicted_decay_rate`` -- Eq. 22 on the measured / predicted
      profile of the layer (same lags, same fit, so the two are comparable)
    * ``*_half_life``, ``*_horizon`` -- Eq. 23 from those rates (steps to 1/2 and to 1%)
    """
    models = [model] + [m for m in extra_models if m != model]
    for m in models:
        if m not in MODELS:
            raise TheoryError(f"unknown model {m!r}; expected one of {MODELS}")
    meas = measured_relative(lags)
    kw = dict(neuron=neuron, tau=tau, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha,
              v_reset=v_reset, detach_reset=detach_reset, decay_input=decay_input, max_lag=max_lag,
              seed=seed)
    out = meas
    for m in models:
        pred = predict_lags(per_step, model=m, **kw)
        col = "predicted_relative" if m == model else f"predicted_relative_{m}"
        pred = pred[["layer", "layer_index", "lag", "predicted_relative"]].rename(
            columns={"predicted_relative": col})
        out = out.merge(pred, on=["layer", "layer_index", "lag"], how="outer")
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
            measured_half_life=half_life(r_meas), predicted_half_life=half_life(r_pred),
            measured_horizon=horizon(r_meas), predicted_horizon=horizon(r_pred), model=model))
    if not parts:
        raise TheoryError("theory_table: the lags table has no rows", exit_code=1)
    out = pd.concat(parts, ignore_index=True)
    extra = [c for c in out.columns if c.startswith("predicted_relative_")]
    out = out[list(THEORY_COLUMNS) + extra]
    return out.sort_values(["layer_index", "lag"], kind="stable").reset_index(drop=True)
