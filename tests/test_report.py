"""Tests of gradflow.report: summary numbers with intervals, findings, plots, tables, the analysis page.

Everything runs on synthetic tables with the recorder's columns (``make_tables``) and synthetic
per-sample sums (``make_samples``), so these tests need neither torch models nor the recorder.
"""

from __future__ import annotations

import base64
import doctest
import importlib
import json
import math
import os
import re
import signal
import time

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gradflow import report, schema, stats
from gradflow.errors import UsageError
from gradflow.report import _common, analysis_page, lag_plots, page, plots, style
from gradflow.report import summary as summary_mod
from gradflow.report import tables as tables_mod

findings_mod = importlib.import_module("gradflow.report.findings")   # report.findings is the function
display_mod = importlib.import_module("gradflow.report.display")
resample_mod = importlib.import_module("gradflow.report.resample")

COLUMNS = {
    "per_step": list(schema.PER_STEP_COLUMNS),
    "pairs": list(schema.PAIRS_COLUMNS),
    "lags": list(schema.LAGS_COLUMNS),
    "weights": ["step", "layer", "layer_index", "param", "spatial_norm", "temporal_norm", "total_norm",
                "temporal_share", "spatial_projection", "temporal_projection", "cosine"],
}


# ------------------------------------------------------------------------------------ synthetic data

def _weight_row(rng, step, name, i, param):
    """A parameter's split from explicit vectors g_s, g_t (so every column is exact)."""
    gs, gt = rng.normal(size=5), rng.normal(scale=0.5, size=5)
    g = gs + gt
    sn, tn, gn = (float(np.linalg.norm(v)) for v in (gs, gt, g))
    return (step, name, i, param, sn, tn, gn, tn / (sn + tn), gs @ g / gn ** 2, gt @ g / gn ** 2,
            gs @ gt / (sn * tn))


def make_tables(n_layers=3, T=4, steps=2, neuron="lif", run=None, decay=0.4, seed=0, nonfinite=False):
    """Synthetic recorder tables: pair norms decay geometrically by ``decay`` per lag (relative_k = decay^k).

    ``nonfinite=True`` sprinkles NaN and Inf over every table (norms, rates, relatives, predictions).
    """
    rng = np.random.default_rng(seed)
    names = [f"layer{i // 2 + 1}.sn{i % 2 + 1}" for i in range(n_layers)]
    per_step, pairs, lags, weights, theory = [], [], [], [], []
    for step in range(steps):
        for i, name in enumerate(names):
            P = rng.uniform(0.5, 2.0, size=T)
            pair = np.zeros((T, T))
            for t in range(T):
                for ts in range(t, T):
                    pair[t, ts] = P[ts] * decay ** (ts - t)
                    pairs.append((step, name, i, t, ts, ts - t, pair[t, ts]))
            for t in range(T):
                temporal = math.sqrt(sum(pair[t, ts] ** 2 for ts in range(t + 1, T)))
                per_step.append((step, name, i, neuron, t, rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.6),
                                 math.hypot(P[t], temporal), P[t], temporal,
                                 1.0 if t == T - 1 else rng.uniform(0.3, 0.7), 0))
            for k in range(T):
                G = math.sqrt(np.mean([pair[t, t + k] ** 2 for t in range(T - k)]))
                lags.append((step, name, i, k, G, decay ** k))
            weights += [_weight_row(rng, step, name, i, p) for p in ("weight", "bias")]
    for i, name in enumerate(names):
        for k in range(T):
            measured, predicted = decay ** k, (decay * 1.05) ** k
            theory.append((name, i, k, measured, predicted, (predicted - measured) / measured,
                           decay * 1.05, "independent"))
    out = {
        "per_step": pd.DataFrame(per_step, columns=COLUMNS["per_step"]),
        "pairs": pd.DataFrame(pairs, columns=COLUMNS["pairs"]),
        "lags": pd.DataFrame(lags, columns=COLUMNS["lags"]),
        "weights": pd.DataFrame(weights, columns=COLUMNS["weights"]),
        "theory": pd.DataFrame(theory, columns=["layer", "layer_index", "lag", "measured_relative",
                                                "predicted_relative", "relative_error", "predicted_decay_rate",
                                                "model"]),
    }
    if nonfinite:
        ps = out["per_step"]
        ps.loc[ps.index[::5], "grad_spatial_norm"] = np.nan
        ps.loc[ps.index[1::7], "grad_temporal_norm"] = np.inf
        ps.loc[ps.index[2::6], "firing_rate"] = -np.inf
        ps.loc[ps.index[::5], "nonfinite"] = 3
        out["pairs"].loc[out["pairs"].index[::4], "norm"] = np.inf
        out["pairs"].loc[out["pairs"].index[1::9], "norm"] = np.nan
        out["lags"].loc[out["lags"].index[1::3], ["norm", "relative"]] = np.nan
        out["weights"].loc[out["weights"].index[::3], "temporal_norm"] = np.inf
        out["theory"].loc[out["theory"].index[::4], "predicted_relative"] = np.nan
    if run is not None:
        for df in out.values():
            df.insert(0, "run", run)
    return out


def make_samples(names, n=256, T=4, decay=0.4, spread=0.5, passes=4, seed=0):
    """Per-sample sums as ``Recorder.samples()`` returns them: each sample's pair vectors decay by a
    sample-specific factor around ``decay``, so relative_k varies between samples."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        P_sq = rng.gamma(2.0, 0.5, size=(n, T))
        d = decay * rng.uniform(1 - spread, 1 + spread, size=(n, 1))
        pair_sq = np.zeros((n, T, T))
        for k in range(T):
            pair_sq[:, :T - k, k] = P_sq[:, k:] * d ** (2 * k)
        temporal_sq = np.stack([pair_sq[:, t, 1:].sum(axis=1) for t in range(T)], axis=1)
        out[name] = {"spatial_sq": P_sq, "temporal_sq": temporal_sq, "total_sq": P_sq + temporal_sq,
                     "pair_sq": pair_sq, "step": np.repeat(np.arange(passes), -(-n // passes))[:n]}
    return out


def comparison_tables(**kw):
    a = make_tables(run="LIF", neuron="lif", decay=0.3, seed=1, **kw)
    b = make_tables(run="CLIF", neuron="clif", decay=0.7, seed=2, **kw)
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def all_nonfinite(tables):
    """Every number that a plot would draw replaced by NaN: empty after filtering."""
    out = {k: v.copy() for k, v in tables.items()}
    for col in ("firing_rate", "window_fraction", "grad_total_norm", "grad_spatial_norm",
                "grad_temporal_norm", "temporal_zero_fraction"):
        out["per_step"][col] = np.nan
    out["pairs"]["norm"] = np.inf
    out["lags"][["norm", "relative"]] = np.nan
    out["weights"][["spatial_norm", "temporal_norm"]] = np.nan
    out["theory"][["measured_relative", "predicted_relative"]] = np.nan
    return out


DATASETS = {
    "plain": lambda: make_tables(),
    "nonfinite": lambda: make_tables(nonfinite=True),
    "one_layer_T1": lambda: make_tables(n_layers=1, T=1, steps=1),
    "17_layers_T32": lambda: make_tables(n_layers=17, T=32, steps=1),
    "comparison": lambda: comparison_tables(nonfinite=True),
    "all_nonfinite": lambda: all_nonfinite(make_tables()),
    "empty": lambda: {k: v.iloc[0:0] for k, v in make_tables().items()},
}


def summary_of(t, samples=None):
    return report.summarize(t, samples, n_resamples=50)


def row_of(summary, layer, run=None):
    d = summary[summary["layer"] == layer]
    if run is not None:
        d = d[d["run"] == run]
    assert len(d) == 1
    return d.iloc[0]


# ------------------------------------------------------------------------------------- the numbers

def hand_case():
    """One layer, T=3, two backward passes, numbers chosen to be computed by hand."""
    base = dict(layer="layer3.1", layer_index=2, neuron="lif", grad_total_norm=1.0)
    rows = []
    for step, sp, tp, zf, fr in (
        (0, [0.0, 3.0, 4.0], [0.6, 0.8, 0.0], [0.5, 0.7, 1.0], [0.1, 0.2, 0.3]),
        (1, [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.3, 0.5, 1.0], [0.1, 0.2, 0.3]),
    ):
        for t in range(3):
            rows.append(dict(base, step=step, t=t, firing_rate=fr[t], window_fraction=0.4,
                             grad_spatial_norm=sp[t], grad_temporal_norm=tp[t],
                             temporal_zero_fraction=zf[t], nonfinite=2 if (step, t) == (1, 2) else 0))
    per_step = pd.DataFrame(rows)[COLUMNS["per_step"]]
    # pass 0: weight g_s = (1, 0), g_t = (1, 0); bias g_s = (1), g_t = (-0.5)
    weights = pd.DataFrame({"step": 0, "layer": "layer3.1", "layer_index": 2, "param": ["weight", "bias"],
                            "spatial_norm": [1.0, 1.0], "temporal_norm": [1.0, 0.5],
                            "total_norm": [2.0, 0.5], "temporal_share": [0.5, 1 / 3],
                            "spatial_projection": [0.5, 2.0], "temporal_projection": [0.5, -1.0],
                            "cosine": [1.0, -1.0]})
    return per_step, weights


def test_summarize_hand_computed_numbers():
    per_step, weights = hand_case()
    s = report.summarize({"per_step": per_step, "weights": weights}, n_resamples=100)
    assert list(s.columns[:len(report.SUMMARY_COLUMNS)]) == list(report.SUMMARY_COLUMNS)
    row = s.iloc[0]
    # pooled over both passes and all t: ||P||^2 = 25 + 1, ||temporal||^2 = 1 + 1
    assert row["temporal_share"] == pytest.approx(math.sqrt(2) / (math.sqrt(26) + math.sqrt(2)))
    # parameters pooled: ss = 2, tt = 1.25, st = <(1,0),(1,0)> + <1,-0.5> = 0.5; ||g||^2 = 4.25
    assert row["weight_temporal_projection"] == pytest.approx((1.25 + 0.5) / 4.25)
    assert row["weight_cosine"] == pytest.approx(0.5 / math.sqrt(2 * 1.25))
    # one weight pass: no interval for the projection; two passes for the other metrics
    assert math.isnan(row["weight_temporal_projection_ci_low"])
    assert row["temporal_share_ci_low"] <= row["temporal_share"] <= row["temporal_share_ci_high"]
    # t = T-1 left out: (0.5 + 0.7 + 0.3 + 0.5) / 4
    assert row["temporal_zero_fraction"] == pytest.approx(0.5)
    assert row["firing_rate"] == pytest.approx(0.2)
    assert (row["nonfinite"], row["T"], row["steps"], row["resampled"]) == (2, 3, 2, "passes")
    assert math.isnan(row["samples"]) and math.isnan(row["relative_1"])     # no pairs, no lags


def test_lag_metrics_from_samples_equal_direct_computation():
    rng = np.random.default_rng(3)
    n, T = 40, 5
    # explicit pair vectors per sample (8 neurons): pair[i, t, t'] for t' >= t
    vec = rng.normal(size=(n, T, T, 8)) * np.triu(np.ones((T, T)))[None, :, :, None]
    vec *= (0.6 ** np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]))[None, :, :, None]
    pair_sq = np.zeros((n, T, T))
    for t in range(T):
        for k in range(T - t):
            pair_sq[:, t, k] = (vec[:, t, t + k] ** 2).sum(axis=-1)
    P_sq = pair_sq[:, :, 0]
    samples = {"sn1": {"spatial_sq": P_sq, "temporal_sq": P_sq * 0.5, "pair_sq": pair_sq,
                       "step": np.zeros(n, int)}}
    per_step = make_tables(n_layers=1, T=T, steps=1)["per_step"].assign(layer="sn1")
    st = report.layer_statistics({"per_step": per_step}, samples, n_resamples=100)
    row = st.summary.iloc[0]
    # relative_k = sqrt(sum_i sum_t ||pair[t, t+k]||^2 / sum_i sum_t ||P[t+k]||^2), by hand from the vectors
    rel = [math.sqrt(sum((vec[:, t, t + k] ** 2).sum() for t in range(T - k)) /
                     sum((vec[:, t + k, t + k] ** 2).sum() for t in range(T - k))) for k in range(T)]
    np.testing.assert_allclose(st.profile["relative"], rel, rtol=1e-12)
    assert row["relative_1"] == pytest.approx(rel[1], rel=1e-12)
    assert row["half_life"] == pytest.approx(stats.half_life(rel), rel=1e-12)
    assert row["decay_rate"] == pytest.approx(stats.decay_rate(rel), rel=1e-12)
    share = math.sqrt(0.5) / (1 + math.sqrt(0.5))
    assert row["temporal_share"] == pytest.approx(share) and row["samples"] == n
    assert row["resampled"] == "samples" and row["steps"] == 1


def test_theory_error_and_predicted_half_life_use_stats():
    t = make_tables(n_layers=1, T=5, steps=3, decay=0.5)
    row = summary_of(t).iloc[0]
    pred = t["theory"]["predicted_relative"].to_numpy()
    measured = 0.5 ** np.arange(5)
    assert row["predicted_half_life"] == pytest.approx(stats.half_life(pred))
    assert row["theory_error"] == pytest.approx(stats.theory_error(pred, measured))
    assert row["relative_1"] == pytest.approx(0.5) and row["half_life"] == pytest.approx(1.0)
    assert "theory_predicted_decay_rate" in row.index


def test_intervals_are_seeded_and_shrink_with_samples():
    t = make_tables(n_layers=1, T=4, steps=1)
    small = make_samples(["layer1.sn1"], n=64, seed=1)
    large = make_samples(["layer1.sn1"], n=1024, seed=1)
    a = report.summarize(t, small, n_resamples=300, seed=5)
    b = report.summarize(t, small, n_resamples=300, seed=5)
    c = report.summarize(t, small, n_resamples=300, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "relative_1_ci_low"] != c.loc[0, "relative_1_ci_low"]
    big = report.summarize(t, large, n_resamples=300, seed=5)
    for m in ("temporal_share", "relative_1", "half_life", "decay_rate", "theory_error"):
        lo, est, hi = a.loc[0, f"{m}_ci_low"], a.loc[0, m], a.loc[0, f"{m}_ci_high"]
        assert lo <= est <= hi, m
        width = lambda s: s.loc[0, f"{m}_ci_high"] - s.loc[0, f"{m}_ci_low"]  # noqa: E731
        assert 0 < width(big) < 0.5 * width(a), m            # 16x the samples: about 1/4 the width


def test_relative_1_interval_covers_the_population_value():
    """Sub-samples of 200 from a population of 20000: the 95% interval should cover the population's
    relative_1 in most of 40 seeded draws (deterministic; the tolerance is far below 95%)."""
    pop = make_samples(["sn1"], n=20000, T=4, seed=11)["sn1"]
    truth = stats.relative_from_pair_sq(pop["pair_sq"].sum(axis=0))[1]
    per_step = make_tables(n_layers=1, T=4, steps=1)["per_step"].assign(layer="sn1")
    rng = np.random.default_rng(12)
    covered = 0
    for _ in range(40):
        idx = rng.choice(20000, size=200, replace=False)
        sub = {"sn1": {k: v[idx] for k, v in pop.items()}}
        row = report.summarize({"per_step": per_step}, sub, n_resamples=300).iloc[0]
        covered += row["relative_1_ci_low"] <= truth <= row["relative_1_ci_high"]
    assert covered >= 32


def test_weight_projection_interval_resamples_passes():
    t = make_tables(n_layers=1, T=3, steps=6)
    row = report.summarize(t, n_resamples=200).iloc[0]
    w = t["weights"]
    per_pass = []
    for _, d in w.groupby("step"):
        ss, tt = (d.spatial_norm ** 2).sum(), (d.temporal_norm ** 2).sum()
        st = ((d.total_norm ** 2 - d.spatial_norm ** 2 - d.temporal_norm ** 2) / 2).sum()
        per_pass.append((tt + st) / (ss + tt + 2 * st))
    assert row["weight_temporal_projection"] == pytest.approx(np.mean(per_pass))
    ci = stats.bootstrap_mean(per_pass, n_resamples=200, seed=0)
    assert (row["weight_temporal_projection_ci_low"], row["weight_temporal_projection_ci_high"]) == \
        pytest.approx((ci.low, ci.high))


def test_weight_inner_products_from_the_recorder_are_used_when_present():
    per_step, weights = hand_case()
    w = weights.assign(spatial_sq=[1.0, 1.0], temporal_sq=[1.0, 0.25], inner=[1.0, -0.5], total_norm=[9.0, 9.0])  # norms ignored
    row = report.summarize({"per_step": per_step, "weights": w}, n_resamples=10).iloc[0]
    assert row["weight_temporal_projection"] == pytest.approx((1.25 + 0.5) / 4.25)


def test_summary_one_row_per_layer_and_run_first_with_samples_per_run():
    t = comparison_tables()
    names = list(dict.fromkeys(t["per_step"]["layer"]))
    samples = {"LIF": make_samples(names, decay=0.3, seed=1), "CLIF": make_samples(names, decay=0.7, seed=2)}
    s = summary_of(t, samples)
    assert list(s.columns[:3]) == ["run", "layer", "layer_index"]
    assert s["run"].tolist() == ["LIF"] * 3 + ["CLIF"] * 3
    assert (s["resampled"] == "samples").all() and (s["samples"] == 256).all()
    lif, clif = s[s.run == "LIF"], s[s.run == "CLIF"]
    assert (clif["half_life"].to_numpy() > lif["half_life"].to_numpy()).all()
    assert (clif["half_life_ci_low"].to_numpy() > lif["half_life_ci_high"].to_numpy()).all()
    found = report.findings(s)
    assert any(f.startswith("CLIF vs LIF, half-life: longer in CLIF in 3 layers") for f in found)
    assert any(f.startswith("CLIF layer1.sn1: weight temporal projection") for f in found)


def test_recorder_samples_give_the_tables_point_estimates_and_the_weights_projection():
    """With the real recorder: per-sample sums add up to the tables' squared norms, so the point
    estimates from ``Recorder.samples()`` equal those from the tables alone (only the units differ)."""
    import torch

    import gradflow

    torch.manual_seed(0)
    net = gradflow.models.build("mlp", neuron="lif", in_features=6, num_classes=3, widths=(8, 8), T=4)
    with gradflow.record(net, pairs=True, weights=True) as rec:
        for _ in range(3):
            gradflow.losses.ce_over_time(net(torch.rand(5, 6)), torch.randint(0, 3, (5,))).backward()
            net.zero_grad()
    tables = {"per_step": rec.per_step(), "pairs": rec.pairs(), "lags": rec.lags(), "weights": rec.weights()}
    a = report.summarize(tables, rec.samples(), n_resamples=100)
    b = report.summarize(tables, None, n_resamples=100)
    assert (a["samples"] == 15).all() and (a["resampled"] == "samples").all() and (b["resampled"] == "passes").all()
    for col in ("temporal_share", "relative_1", "half_life", "decay_rate", "weight_temporal_projection",
                "firing_rate", "window_fraction"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, err_msg=col)
    assert (a["firing_rate_ci_low"] <= a["firing_rate"]).all() and (a["firing_rate"] <= a["firing_rate_ci_high"]).all()
    w = tables["weights"][tables["weights"].layer == "sn1"]
    per_pass = [stats.projections(d.spatial_sq.sum(), d.temporal_sq.sum(), d.inner.sum()).temporal_projection
                for _, d in w.groupby("step")]
    assert a.loc[0, "weight_temporal_projection"] == pytest.approx(np.mean(per_pass), rel=1e-12)


def make_transport_case(n=48, T=4, seed=5):
    """One LIF layer: per-sample potentials and spatial gradients; per-sample transport inputs of the
    theory's window model (summing them gives the whole batch's inputs) and per-sample pair norms."""
    from gradflow.theory import window

    rng = np.random.default_rng(seed)
    u = rng.normal(0.9, 0.4, size=(T, n, 16))
    P = rng.normal(size=(T, n, 16)) * (np.abs(u - 1.0) <= 0.5)
    per = [window.transport_inputs(u[:, i:i + 1], P[:, i:i + 1]) for i in range(n)]
    inputs = {k: np.stack([p[k] for p in per]) for k in per[0] if k != "zone_edges"}
    inputs["zone_edges"] = per[0]["zone_edges"]
    whole = window.transport_inputs(u, P)
    sp = (P ** 2).sum(axis=2).T                                     # [n, T]
    pair_sq = np.zeros((n, T, T))
    for k in range(T):
        pair_sq[:, :T - k, k] = sp[:, k:] * rng.uniform(0.05, 0.3, size=(n, T - k)) ** k
    samples = {"sn1": {"spatial_sq": sp, "temporal_sq": 0.2 * sp, "pair_sq": pair_sq, "step": np.zeros(n, int)}}
    per_step = make_tables(n_layers=1, T=T, steps=1)["per_step"].assign(layer="sn1", tau=2.0)
    return per_step, samples, {"sn1": inputs}, whole, pair_sq


def test_window_model_inputs_are_resampled_with_the_samples():
    from gradflow.theory import window

    per_step, samples, transport, whole, pair_sq = make_transport_case()
    for k in ("source", "pair", "triple", "spatial_sq"):          # per-sample inputs add up to the batch's
        np.testing.assert_allclose(transport["sn1"][k].sum(axis=0), whole[k], rtol=1e-12, atol=1e-12)
    st = report.layer_statistics({"per_step": per_step}, samples, transport=transport, n_resamples=40, seed=1)
    row = st.summary.iloc[0]
    predicted = window.predict_transport(whole, 0.5)
    measured = stats.relative_from_pair_sq(pair_sq.sum(axis=0))
    assert row["theory_error"] == pytest.approx(stats.theory_error(predicted, measured), rel=1e-9)
    assert row["predicted_half_life"] == pytest.approx(stats.half_life(predicted), rel=1e-9)
    np.testing.assert_allclose(st.profile["predicted_relative"], predicted, rtol=1e-9)
    summ = window.transport_summary(whole)
    assert row["one_step_survival"] == pytest.approx(summ["one_step_survival"], rel=1e-9)
    assert row["in_window_before"] == pytest.approx(summ["in_window_before"], rel=1e-9)
    assert row["window_occupancy"] == pytest.approx(summ["occupancy"], rel=1e-9)
    for m in ("theory_error", "one_step_survival", "in_window_before"):
        assert row[f"{m}_ci_low"] < row[m] < row[f"{m}_ci_high"], m     # the prediction's noise is in the interval
    # summed inputs: a fixed prediction, the same point estimates, no interval for the window numbers
    fixed = {"sn1": {k: (v.sum(axis=0) if k != "zone_edges" else v) for k, v in transport["sn1"].items()}}
    row2 = report.summarize({"per_step": per_step}, samples, transport=fixed, n_resamples=40, seed=1).iloc[0]
    assert row2["theory_error"] == pytest.approx(row["theory_error"], rel=1e-9)
    assert row2["one_step_survival"] == pytest.approx(row["one_step_survival"], rel=1e-9)
    assert math.isnan(row2["one_step_survival_ci_low"])
    assert row2["theory_error_ci_high"] - row2["theory_error_ci_low"] != \
        pytest.approx(row["theory_error_ci_high"] - row["theory_error_ci_low"])
    # a theory table whose default model is not the window model: its prediction, not the window's
    th = pd.DataFrame({"layer": "sn1", "layer_index": 0, "lag": range(4), "predicted_relative": [1, 0.5, 0.25, 0.1],
                       "model": "independent"})
    row3 = report.summarize({"per_step": per_step, "theory": th}, samples, transport=transport,
                            n_resamples=20).iloc[0]
    assert row3["theory_error"] == pytest.approx(stats.theory_error([1, 0.5, 0.25, 0.1], measured))
    assert math.isnan(row3["one_step_survival"])


def test_decay_is_explained_in_words_from_the_window_numbers():
    per_step, samples, transport, _, _ = make_transport_case()
    layers = pd.DataFrame({"layer": ["sn1"], "layer_index": [0], "neuron": ["lif"], "tau": [2.0],
                           "v_threshold": [1.0], "surrogate": ["rectangle"], "alpha": [1.0], "reset": ["soft"],
                           "detach_reset": [False]})
    s = report.summarize({"per_step": per_step}, samples, transport=transport, n_resamples=20)
    found = report.findings(s, layers)
    why = [f for f in found if "sits on neurons that were inside the surrogate window" in f]
    assert len(why) == 1 and "where LIF passes nothing back" in why[0] and "hence relative_1 = gamma" in why[0]
    assert "where LIF" not in " ".join(report.findings(s, layers.assign(alpha=0.5)))   # not exact there
    table = report.decay_table(s)
    assert list(table.columns) == ["Layer", "Gradient in window one step before (%)", "Window occupancy (%)",
                                   "One-step survival", "gamma * sqrt(survival)", "relative_1 (measured)"]
    assert report.decay_table(summary_of(make_tables())) is None


def test_summary_survives_nonfinite_values():
    t = make_tables(nonfinite=True)
    s = summary_of(t)
    assert len(s) == 3
    assert s["nonfinite"].sum() == t["per_step"]["nonfinite"].sum()
    for col in ("temporal_share", "firing_rate", "half_life", "weight_temporal_projection"):
        assert np.isfinite(s[col]).all(), col     # computed from the finite entries
    assert all(isinstance(f, str) for f in report.findings(s))


def test_summary_of_T1_and_empty_tables():
    t = make_tables(n_layers=1, T=1, steps=1)
    s = summary_of(t)
    assert math.isnan(s.loc[0, "half_life"]) and math.isnan(s.loc[0, "temporal_zero_fraction"])
    assert s.loc[0, "temporal_share"] == 0.0
    assert report.findings(s)[-1] == "layer1.sn1: T=1, so no gradient flows through time"
    empty = report.summarize({"per_step": t["per_step"].iloc[0:0]})
    assert empty.empty and report.findings(empty) == ["No layer was recorded, so there is nothing to report."]


# ---------------------------------------------------------------------------------------- findings

def _two_rows(a, b, metric="half_life", n=1024):
    rows = []
    for run, (est, lo, hi) in (("LIF", a), ("CLIF", b)):
        rows.append({"run": run, "layer": "sn1", "layer_index": 0, "neuron": run.lower(), "T": 8,
                     "samples": n, "steps": 32, "resampled": "samples", "max_lag": 7,
                     metric: est, f"{metric}_ci_low": lo, f"{metric}_ci_high": hi})
    return pd.DataFrame(rows)


def test_a_difference_is_stated_only_when_intervals_separate():
    apart = report.findings(_two_rows((0.67, 0.6, 0.7), (0.95, 0.9, 1.0)))
    assert "CLIF vs LIF, sn1: half-life 0.95 [0.90, 1.00] vs 0.67 [0.60, 0.70]: longer in CLIF " \
           "(the intervals do not overlap)." in apart
    close = report.findings(_two_rows((0.93, 0.88, 0.99), (0.99, 0.92, 1.05)))
    assert "CLIF vs LIF, sn1: half-life 0.99 [0.92, 1.05] vs 0.93 [0.88, 0.99]: the data cannot tell them " \
           "apart at 1024 samples." in close
    none = report.findings(_two_rows((0.5, math.nan, math.nan), (0.9, math.nan, math.nan)))
    assert any("cannot tell them apart" in f and "(no interval)" in f for f in none)


def test_layers_within_a_run_are_compared_with_their_intervals():
    s = pd.DataFrame({"layer": ["a", "b"], "layer_index": [0, 1], "neuron": "lif", "T": 4, "samples": 512,
                      "steps": 4, "resampled": "samples", "temporal_share": [0.2, 0.4],
                      "temporal_share_ci_low": [0.18, 0.37], "temporal_share_ci_high": [0.22, 0.43],
                      "weight_temporal_projection": [0.1, 0.12], "weight_temporal_projection_ci_low": [0.05, 0.06],
                      "weight_temporal_projection_ci_high": [0.15, 0.2]})
    found = report.findings(s)
    assert found[0] == "2 LIF layers at T=4, 512 samples recorded."
    assert found[1] == ("weight temporal projection ranges from 10% [5%, 15%] (a) to 12% [6%, 20%] (b); the data "
                        "cannot tell them apart at 4 backward passes.")
    assert found[2] == ("temporal share (sign-blind) ranges from 20% [18%, 22%] (a) to 40% [37%, 43%] (b); "
                        "higher in b (the intervals do not overlap).")


def test_statistics_note_says_samples_and_interval():
    t = make_tables(n_layers=2, T=4, steps=4)
    s = report.summarize(t, make_samples(["layer1.sn1", "layer1.sn2"], n=300), n_resamples=50, seed=3)
    note = report.statistics_note(s, {"level": 0.95, "n_resamples": 50, "seed": 3})
    assert "300 samples" in note and "4 backward passes" in note and "95% percentile bootstrap" in note
    assert "50 resamples, seed 3" in note and "sign-blind" in note


def test_format_helpers():
    assert report.format_percent(0.6149) == "61%"
    assert report.format_percent(0.004) == "0.4%"
    assert report.format_half_life(math.inf, 5) == "beyond 5 steps"
    assert report.format_half_life(math.nan) == "not measurable"
    assert report.format_interval(0.12, 0.09, 0.15, "pct") == "12% [9%, 15%]"
    assert report.separation((1, 0.9, 1.1), (0.5, 0.4, 0.6)) == 1
    assert report.separation((0.5, 0.4, 0.6), (1, 0.9, 1.1)) == -1
    assert report.separation((1, 0.9, 1.1), (1, math.nan, 1.2)) is None


# ------------------------------------------------------------------------------------------ plots

def _is_blank(ax) -> bool:
    return not (ax.lines or ax.patches or ax.images or ax.texts or ax.collections or ax.child_axes
                or ax.get_title() or ax.get_legend())


PLOTS = {
    "norms": lambda t, ax: plots.plot_norms_over_t(t["per_step"], ax=ax, logy=True, total=True),
    "share": lambda t, ax: plots.plot_temporal_share(summary_of(t), ax=ax),
    "share_from_per_step": lambda t, ax: plots.plot_temporal_share(t["per_step"], ax=ax),
    "weight_projection": lambda t, ax: plots.plot_temporal_share(summary_of(t), ax=ax,
                                                                 column="weight_temporal_projection"),
    "heatmap": lambda t, ax: lag_plots.plot_pair_heatmap(t["pairs"], ax=ax),
    "lag_decay_profile": lambda t, ax: lag_plots.plot_lag_decay(report.lag_profile(t, n_resamples=50), ax=ax),
    "lag_decay_lags": lambda t, ax: lag_plots.plot_lag_decay(t["lags"], ax=ax, theory=t["theory"]),
    "lag_decay_theory": lambda t, ax: lag_plots.plot_lag_decay(t["theory"], ax=ax),
    "window_firing": lambda t, ax: plots.plot_window_firing(summary_of(t), ax=ax),
}


@pytest.fixture(scope="module")
def datasets():
    return {name: make() for name, make in DATASETS.items()}


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("plot", list(PLOTS))
def test_plot_returns_its_ax_and_draws_only_on_it(plot, dataset, datasets):
    fig = Figure()
    ax, other = fig.subplots(1, 2)
    assert PLOTS[plot](datasets[dataset], ax) is ax
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert _is_blank(other)
    assert fig.axes == [ax, other]
    fig.canvas.draw()          # drawing must not fail either (log axes, empty images, inset colour bar)


def test_every_dataset_and_plot_is_exercised():
    assert len(DATASETS) == 7 and len(PLOTS) == 9


def test_bars_carry_interval_error_bars_and_negative_projections_show():
    t = make_tables(n_layers=2, T=4, steps=1)
    s = report.summarize(t, make_samples(["layer1.sn1", "layer1.sn2"]), n_resamples=100)
    ax = plots.plot_temporal_share(s)
    assert len(ax.containers) == 2                          # the bars and their error bars
    s.loc[0, ["weight_temporal_projection", "weight_temporal_projection_ci_low",
              "weight_temporal_projection_ci_high"]] = (-0.05, -0.08, -0.02)
    ax = plots.plot_temporal_share(s, column="weight_temporal_projection")
    assert ax.get_ylim()[0] < -5 and any(line.get_ydata()[0] == 0 for line in ax.lines)


def test_nonfinite_values_are_noted_on_the_axes(datasets):
    ax = plots.plot_norms_over_t(datasets["nonfinite"]["per_step"])
    assert any("non-finite" in t.get_text() for t in ax.texts)
    ax = plots.plot_temporal_share(summary_of(datasets["all_nonfinite"]))
    assert any("no finite data" in t.get_text() for t in ax.texts)


def test_comparison_plots_colour_by_neuron_type(datasets):
    ax = plots.plot_temporal_share(summary_of(datasets["comparison"]))
    colours = {tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in ax.patches}
    expected = {tuple(round(c, 3) for c in mcolors.to_rgb(schema.NEURON_COLORS[n])) for n in ("lif", "clif")}
    assert colours == expected
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["LIF", "CLIF", "95% bootstrap interval"]


@pytest.mark.parametrize("dataset", ["plain", "17_layers_T32", "comparison", "one_layer_T1", "all_nonfinite",
                                     "empty"])
def test_grid_helpers_make_one_axes_per_layer(dataset, datasets):
    t = datasets[dataset]
    n_layers = max(t["per_step"]["layer"].nunique(), 1)     # an empty grid still says "no data"
    n_runs = t["per_step"]["run"].nunique() if "run" in t["per_step"] else 1
    assert len(plots.plot_norms_grid(t["per_step"], Figure(layout="constrained"))) == n_layers
    assert len(lag_plots.plot_pair_grid(t["pairs"], Figure(layout="constrained"))) == n_layers * n_runs


def test_ax_none_draws_on_a_new_headless_figure(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)     # pyplot is never needed
    ax = plots.plot_window_firing(make_tables()["per_step"])
    assert isinstance(ax.figure, Figure) and ax.figure.axes == [ax]


def test_colours_come_from_the_schema():
    assert style.NEURON_COLORS is schema.NEURON_COLORS
    assert report.neuron_color("CLIF") == schema.NEURON_COLORS["clif"]


# ----------------------------------------------------------------------------------------- tables

def test_markdown_and_latex_escape_correctly():
    assert report.escape_markdown("a|b_c *d* `e` [f] <g>\nh\\") == r"a\|b\_c \*d\* \`e\` \[f\] \<g\> h\\"
    assert report.escape_latex("a_b & 50% $5 #1 {x} ~ ^ < > | \\") == (
        r"a\_b \& 50\% \$5 \#1 \{x\} \textasciitilde{} \textasciicircum{} \textless{} \textgreater{} "
        r"\textbar{} \textbackslash{}")


def test_markdown_table_format():
    df = pd.DataFrame({"layer": ["conv_1", "a|b"], "share": [0.25, np.nan], "n": [3, 4],
                       "h": [np.inf, 1.23456]})
    assert report.to_markdown(df).splitlines() == [
        "| layer | share | n | h |",
        "| :--- | ---: | ---: | ---: |",
        r"| conv\_1 | 0.25 | 3 | inf |",
        r"| a\|b | n/a | 4 | 1.235 |",
    ]


def test_latex_table_format():
    df = pd.DataFrame({"layer_name": ["conv_1"], "share (%)": ["4.0"], "h": [np.inf], "x": [np.nan]})
    tex = report.to_latex(df, caption="50% of_it", label="tab:a b")
    assert tex.splitlines() == [
        r"% Requires \usepackage{booktabs}.",
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{50\% of\_it}",
        r"\label{tab:a-b}",
        r"\begin{tabular}{lrrr}",
        r"\toprule",
        r"layer\_name & share (\%) & h & x \\",
        r"\midrule",
        r"conv\_1 & 4.0 & $\infty$ & -- \\",
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]


def test_html_table_goes_through_pandas_and_escapes():
    df = pd.DataFrame({"layer": ["<sn1>"], "share": [0.25], "h": [np.inf], "x": [np.nan]})
    out = page.html_table(df)
    assert "&lt;sn1&gt;" in out and '<span class="num">0.25</span>' in out
    assert '<span class="num">∞</span>' in out and '<span class="num">n/a</span>' in out
    assert out.count("<tr>") == 2 and out.count("<th>") == 4 and out.startswith('<div class="scroll"><table')


def test_display_summary_and_write_tables(tmp_path):
    t = comparison_tables()
    s = summary_of(t)
    shown = report.display_summary(s)
    assert list(shown.columns[:5]) == ["Run", "Layer", "Neuron", "T", "Samples"]
    assert shown["Neuron"].iloc[0] == "LIF" and shown["Samples"].iloc[0] == "n/a"
    assert re.fullmatch(r"-?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", shown["Temporal share (%, sign-blind)"].iloc[0])
    s2 = s.copy()
    s2.loc[0, ["half_life", "half_life_ci_low", "half_life_ci_high"]] = (math.inf, 2.0, math.inf)
    assert report.display_summary(s2).loc[0, "Half-life (steps)"] == f"> {int(s2.loc[0, 'max_lag'])} [2.00, > 3]"
    written = report.write_tables({"summary": s, "lags": t["lags"]}, tmp_path,
                                  formatted={"summary": shown, "comparison": report.compare_table(s)})
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["lags.csv", "summary.csv", "tables/comparison.md", "tables/comparison.tex",
                     "tables/summary.md", "tables/summary.tex"]
    assert "Temporal share (\\%, sign-blind)" in (tmp_path / "tables/summary.tex").read_text()


# ---------------------------------------------------------------------------------------- reports

SUMMARY_JSON = {"model": "mlp", "neuron": "lif", "T": 4, "tau": 2.0, "loss": np.float32(1.25),
                "accuracy": float("nan"), "inputs": "synthetic", "versions": {"gradflow": "0.2.0"}}
SPEC_FILES = ["summary.json", "per_step.csv", "pairs.csv", "lags.csv", "weights.csv", "theory.csv",
              "summary.csv", "lag_profile.csv", "report.md", "index.html"]


def _litter(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def written_report(tmp_path_factory):
    """A 17-layer, T=6 report with NaN/Inf everywhere and per-sample sums for every layer."""
    out = tmp_path_factory.mktemp("reports") / "gradflow-report"
    t = make_tables(n_layers=17, T=6, steps=2, nonfinite=True)
    samples = make_samples(list(dict.fromkeys(t["per_step"]["layer"])), n=128, T=6, passes=2)
    report.write_report(out, summary_json=SUMMARY_JSON, tables=t, samples=samples, title="Synthetic <LIF> report",
                        n_resamples=200)
    return out, t


def test_report_has_every_file(written_report):
    out, t = written_report
    assert t["per_step"]["layer"].nunique() == 17
    for name in SPEC_FILES:
        assert (out / name).is_file(), name
    for name in report.FIGURE_NAMES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "figures" / f"{name}.svg").read_bytes()[:2000]
    for name in ("summary", "theory"):
        assert (out / "tables" / f"{name}.md").is_file() and (out / "tables" / f"{name}.tex").is_file()
    assert _litter(out.parent) == []


def test_report_csv_columns_and_values_preserved(written_report):
    out, t = written_report
    for name in ("per_step", "pairs", "lags", "weights", "theory"):
        back = pd.read_csv(out / f"{name}.csv")
        assert list(back.columns) == list(t[name].columns), name
        assert len(back) == len(t[name])
    back = pd.read_csv(out / "per_step.csv")
    np.testing.assert_allclose(back["grad_temporal_norm"], t["per_step"]["grad_temporal_norm"])
    assert np.isinf(back["grad_temporal_norm"]).any() and back["grad_spatial_norm"].isna().any()


def test_summary_csv_and_json_carry_the_summary_columns_with_intervals(written_report):
    out, _ = written_report
    summary = pd.read_csv(out / "summary.csv")
    required = ["layer", "layer_index", "neuron", "T", "samples", "firing_rate", "window_fraction",
                "temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate",
                "predicted_half_life", "theory_error"]
    required += [f"{m}_ci_{s}" for m in ("temporal_share", "weight_temporal_projection", "relative_1",
                                         "half_life", "decay_rate", "theory_error") for s in ("low", "high")]
    assert list(summary.columns[:len(required)]) == required
    assert len(summary) == 17 and (summary["samples"] == 128).all()
    assert (summary["relative_1_ci_low"] <= summary["relative_1"]).all()
    doc = json.loads((out / "summary.json").read_text())
    assert doc["loss"] == pytest.approx(1.25) and doc["accuracy"] is None and doc["T"] == 4
    assert len(doc["layers"]) == 17 and set(required) <= set(doc["layers"][0])
    assert doc["statistics"] == {"method": "percentile bootstrap", "level": 0.95, "n_resamples": 200, "seed": 0}
    profile = pd.read_csv(out / "lag_profile.csv")
    assert list(profile.columns) == ["layer", "layer_index", "neuron", "lag", "relative", "relative_ci_low",
                                     "relative_ci_high", "predicted_relative"]
    assert len(profile) == 17 * 6


def test_index_html_is_self_contained(written_report):
    out, _ = written_report
    page_text = (out / "index.html").read_text(encoding="utf-8")
    assert "<title>Synthetic &lt;LIF&gt; report</title>" in page_text
    sources = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", page_text)
    assert len(sources) == len(report.FIGURE_NAMES)
    for src, name in zip(sources, report.FIGURE_NAMES):
        assert base64.b64decode(src.split(",", 1)[1]) == (out / "figures" / f"{name}.png").read_bytes()
    assert "http://" not in page_text and "https://" not in page_text
    assert not re.search(r"""\bhref\s*=""", page_text) and "<link" not in page_text and "<script" not in page_text
    assert "non-finite gradient values" in page_text and "class=warn" in page_text
    assert page_text.count("<figcaption>") == len(report.FIGURE_NAMES)
    assert "128 samples" in page_text and "95% percentile bootstrap intervals" in page_text


def test_report_md_leads_with_the_projection_and_says_the_interval(written_report):
    out, _ = written_report
    md = (out / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert len(links) == 2 * len(report.FIGURE_NAMES)
    assert all((out / link).is_file() for link in links)
    assert "## Samples and intervals" in md and "128 samples" in md and "95% percentile bootstrap" in md
    assert "backward passes, because per-sample parameter gradients are not kept" in md
    assert md.index("Weight temporal projection (%)") < md.index("Temporal share (%, sign-blind)")
    assert links[0] == "figures/weight_temporal_projection.png"


def test_comparison_report_shows_runs_side_by_side(tmp_path):
    out = tmp_path / "cmp"
    report.write_report(out, summary_json={"runs": {"LIF": {"model": "mlp", "T": 4, "warnings": []},
                                                    "CLIF": {"model": "mlp", "T": 4, "warnings": []}},
                                           "seed": 0},
                        tables=comparison_tables(nonfinite=True), n_resamples=50)
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "Runs side by side" in text and "Temporal share CLIF (%)" in text
    assert re.search(r"<th>Field</th>\s*<th>LIF</th>\s*<th>CLIF</th>", text) and "Run details" in text
    assert (out / "tables" / "comparison.tex").is_file()
    assert "CLIF vs LIF" in (out / "report.md").read_text(encoding="utf-8")


def test_report_for_T1_single_layer_without_optional_tables(tmp_path):
    t = make_tables(n_layers=1, T=1, steps=1)
    out = report.write_report(tmp_path / "r", summary_json={}, tables={"per_step": t["per_step"]})
    assert list(pd.read_csv(out / "pairs.csv").columns) == list(schema.PAIRS_COLUMNS)
    for name in SPEC_FILES:
        assert (out / name).is_file(), name
    assert "T=1, so no gradient flows through time" in (out / "report.md").read_text(encoding="utf-8")


def _boom(*args, **kwargs):
    raise RuntimeError("injected failure")


def small():
    return make_tables(n_layers=2, T=3, steps=1)


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(lag_plots, "plot_lag_decay", _boom)
    with pytest.raises(RuntimeError, match="injected"):
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert list(tmp_path.iterdir()) == []


def test_interrupt_and_sigterm_mid_write_leave_nothing(tmp_path, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lag_plots, "plot_lag_decay", interrupt)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert list(tmp_path.iterdir()) == []

    def terminate(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)                      # the handler raises before this ends

    monkeypatch.setattr(page, "render_figure", terminate)
    with pytest.raises(SystemExit) as info:
        report.write_report(tmp_path / "out", summary_json={}, tables=small())
    assert info.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_existing_dir_needs_force_and_is_replaced_only_when_complete(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()                                     # a previous report (as far as the writer can tell)
    (out / "summary.json").write_text('{"n": 1}')
    (out / "index.html").write_text("<html></html>")
    with pytest.raises(UsageError, match="--force"):
        report.write_report(out, summary_json={"n": 2}, tables=small())
    assert json.loads((out / "summary.json").read_text()) == {"n": 1}

    with monkeypatch.context() as m:
        m.setattr(plots, "plot_norms_grid", _boom)
        with pytest.raises(RuntimeError):
            report.write_report(out, summary_json={"n": 3}, tables=small(), force=True)
    assert json.loads((out / "summary.json").read_text()) == {"n": 1}
    assert _litter(tmp_path) == []

    report.write_report(out, summary_json={"n": 4}, tables=small(), force=True)
    assert json.loads((out / "summary.json").read_text())["n"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    probe = tmp_path / "probe"      # the report gets the mode of an ordinary new directory, not 0o700
    probe.mkdir()
    assert oct(out.stat().st_mode & 0o777) == oct(probe.stat().st_mode & 0o777)


def test_force_refuses_to_replace_a_directory_that_is_not_a_report(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("keep me")
    with pytest.raises(UsageError, match="does not look like a gradflow report"):
        report.write_report(precious, summary_json={}, tables=small(), force=True)
    assert (precious / "chapter1.tex").read_text() == "keep me"


def test_unwritable_location_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match="Cannot write the report"):
        report.write_report(blocker / "out", summary_json={}, tables=small())


def test_jsonable_is_strict():
    doc = page.jsonable({"a": np.float32(0.5), "b": [np.inf, np.int8(2)], "c": (1, None), 3: {"d": np.bool_(True)},
                         "p": __import__("pathlib").Path("x/y")})
    assert doc == {"a": 0.5, "b": [None, 2], "c": [1, None], "3": {"d": True}, "p": "x/y"}
    json.dumps(doc, allow_nan=False)


MODULES = (_common, style, page, tables_mod, summary_mod, resample_mod, display_mod, findings_mod, plots, lag_plots,
           analysis_page)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, module.__name__


def test_docstring_examples_exist():
    assert sum(doctest.testmod(m).attempted for m in MODULES) >= 20
