"""lif-vs-clif-delay (gradflow.lab.experiments.delay): the quick run writes 0.2 numbers with intervals."""

import math
import os

import numpy as np
import pandas as pd
import pytest

from gradflow import stats
from gradflow.lab.experiments import run_experiment
from gradflow.lab.experiments import delay as D
from gradflow.train import TrainConfig, train


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("delay")
    tables = run_experiment("lif-vs-clif-delay", str(out), seeds=(0, 1), quick=True)
    return out, tables


def test_quick_run_writes_its_tables_and_figures(quick):
    out, tables = quick
    for name in ("runs", "summary", "flow", "flow_summary", "contrasts"):
        assert os.path.exists(out / f"{name}.csv"), name
    for fig in ("accuracy_vs_delay", "temporal_projection_over_training", "cue_gradient_vs_delay"):
        assert os.path.exists(out / "figures" / f"{fig}.png"), fig
    s = tables["summary"]
    assert {"test_accuracy_ci_low", "test_accuracy_ci_high", "seeds"} <= set(s.columns)
    assert (s.seeds == 2).all() and (s.test_accuracy_ci_low <= s.test_accuracy_mean).all()


def test_flow_rows_have_projection_cue_gradient_and_intervals(quick):
    _, tables = quick
    flow = tables["flow"]
    assert set(flow.layer) == {"sn1", "sn2"} and set(flow.epoch) == {0, 1, 2}
    for m in ("weight_temporal_projection", "weight_cosine", "cue_gradient", "relative_1"):
        assert np.isfinite(flow[m]).all(), m
        assert (flow[f"{m}_ci_low"] <= flow[m] + 1e-12).all() and (flow[m] <= flow[f"{m}_ci_high"] + 1e-12).all()
    assert ((flow.weight_cosine >= -1) & (flow.weight_cosine <= 1)).all()
    c = tables["contrasts"]
    assert {"test_accuracy", "weight_temporal_projection", "cue_gradient"} <= set(c.metric)
    assert set(c.verdict) <= {"> 0", "< 0", "cannot tell"}


def test_training_equals_gradflow_train():
    """The experiment's loop trains exactly as gradflow.train.train does (same weights, data, order)."""
    cfg = dict(task="delay:delay=1", neuron="clif", delay=1, arch="mlp", epochs=2, lr=1e-2, optimizer="adam",
               batch_size=32, n_train=64, n_test=64, backend="fused", model_kwargs={"widths": [8, 8]})
    row, flow = D.train_and_measure(cfg, 3, record_epochs=(0, 2), probe_samples=16, passes=4, n_resamples=20)
    ref = train(TrainConfig(seed=3, resample=True, **{k: v for k, v in cfg.items() if k != "delay"}))
    assert row["test_accuracy"] == ref.history.test_accuracy.iloc[-1]
    assert len(flow) == 4 and {r["passes"] for r in flow} == {4}


def test_pooled_projection_is_that_of_the_summed_weight_split():
    """The pooled projection equals stats.projections of the per-pass sums added over passes."""
    cfg = dict(task="delay:delay=2", neuron="lif", delay=2, arch="mlp", epochs=0, lr=1e-2, optimizer="adam",
               batch_size=32, n_train=32, n_test=32, model_kwargs={"widths": [8, 8]})
    from gradflow.recorder import record
    from gradflow.train import _Run, model_input

    run = _Run.start(TrainConfig(seed=0, **{k: v for k, v in cfg.items() if k != "delay"}))
    probe = run.task.sample(16, 0, "test")
    rows = D.measure(run.model, run.task, probe, passes=4, n_resamples=20)
    with record(run.model, pairs=False, weights=True) as rec:
        for i in range(0, 16, 4):
            run.task.loss(run.model(model_input(probe[0][:, i:i + 4], "mlp", run.task)), probe[1][i:i + 4]).backward()
    w = rec.weights()
    w = w[(w.layer == "sn1") & w.param.str.endswith("weight")]
    ss, tt, st = w.spatial_sq.sum(), w.temporal_sq.sum(), w.inner.sum()
    assert rows[0]["weight_temporal_projection"] == pytest.approx(stats.projections(ss, tt, st).temporal_projection)
    assert math.isfinite(rows[0]["weight_temporal_projection_ci_low"])
