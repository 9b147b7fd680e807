"""gradflow.watch with autocast, torch.compile and torch.distributed; its summary against the report's."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gradflow
import gradflow.watch as gw
from gradflow import losses, models, report
from gradflow.watch import step_summary


def _net(kind="lif", seed=0, widths=(8, 8), T=4):
    torch.manual_seed(seed)
    return models.build("mlp", neuron=kind, in_features=4, num_classes=3, widths=widths, T=T)


def _batch(i, n=16):
    g = torch.Generator().manual_seed(100 + i)
    return torch.rand(n, 4, generator=g) * 2, torch.randint(0, 3, (n,), generator=g)


# ----------------------------------------------------------------------------- the summary's numbers


@pytest.mark.parametrize("kind", ["lif", "clif"])
def test_step_summary_equals_the_analysis_report_summary(kind):
    """One definition of every number: a watched step's row is the analysis report's row of that step."""
    net = _net(kind)
    x, y = _batch(0, n=32)
    with gradflow.record(net, pairs=True, weights=True) as rec:
        losses.ce_over_time(net(x), y).backward()
    tables = {"per_step": rec.per_step(), "pairs": rec.pairs(), "lags": rec.lags(), "weights": rec.weights()}
    samples = rec.samples()
    mine = step_summary(tables, samples, n_resamples=300, seed=4).set_index("layer")
    ref = report.summarize(tables, samples, n_resamples=300, seed=4).set_index("layer")
    for m in ("temporal_share", "relative_1", "half_life", "decay_rate"):
        for col in (m, f"{m}_ci_low", f"{m}_ci_high"):
            np.testing.assert_allclose(mine[col], ref.loc[mine.index, col], rtol=1e-12, err_msg=col)
    for col in ("weight_temporal_projection", "firing_rate", "window_fraction", "samples"):
        np.testing.assert_allclose(mine[col], ref.loc[mine.index, col], rtol=1e-9, err_msg=col)
    assert (mine.firing_rate_ci_low <= mine.firing_rate).all() and (mine.firing_rate <= mine.firing_rate_ci_high).all()


def test_weight_projection_pools_parameters_per_pass_by_hand():
    """Two passes, two parameters: g_s, g_t vectors written out, projections computed by hand."""
    gs = {0: [np.array([1.0, 0.0]), np.array([0.0, 2.0])], 1: [np.array([1.0, 1.0]), np.array([0.0, 0.0])]}
    gt = {0: [np.array([1.0, 1.0]), np.array([0.0, -1.0])], 1: [np.array([0.0, 1.0]), np.array([1.0, 0.0])]}
    rows = []
    for step in (0, 1):
        for j, param in enumerate(("fc.weight", "fc.bias")):
            a, b = gs[step][j], gt[step][j]
            rows.append({"step": step, "layer": "sn1", "layer_index": 0, "param": param,
                         "spatial_norm": np.linalg.norm(a), "temporal_norm": np.linalg.norm(b),
                         "total_norm": np.linalg.norm(a + b)})
    per_step = pd.DataFrame({"step": [0, 0, 1, 1], "layer": "sn1", "layer_index": 0, "neuron": "lif", "t": [0, 1, 0, 1],
                             "firing_rate": 0.1, "window_fraction": 0.2, "grad_spatial_norm": 1.0,
                             "grad_temporal_norm": [0.5, 0.0, 0.5, 0.0], "nonfinite": 0})
    row = step_summary({"per_step": per_step, "weights": pd.DataFrame(rows)}, n_resamples=200).iloc[0]
    # pass 0: g_s = (1,0,0,2), g_t = (1,1,0,-1), g = (2,1,0,1): <g_t,g>/|g|^2 = (2+1-1)/6
    # pass 1: g_s = (1,1,0,0), g_t = (0,1,1,0), g = (1,2,1,0): <g_t,g>/|g|^2 = (2+1)/6
    assert row.weight_temporal_projection == pytest.approx((2 / 6 + 3 / 6) / 2, rel=1e-12)
    assert 2 / 6 - 1e-12 <= row.weight_temporal_projection_ci_low <= row.weight_temporal_projection_ci_high <= 0.5 + 1e-12
    assert row.passes == 2 and row.resampled == "passes"


# ----------------------------------------------------------------------------- autocast


def test_autocast_bfloat16_statistics_are_accumulated_in_float64():
    """Under CPU autocast the neurons run in bfloat16; the recorded sums must not be rounded to it."""
    net = _net("clif")
    x, y = _batch(1, n=64)
    with gradflow.record(net, pairs=True, weights=True, keep_tensors=True) as rec:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
        losses.ce_over_time(out.float(), y).backward()
    ps = rec.per_step()
    kept = rec.tensors("sn1", 0)
    assert kept["spatial"].dtype == torch.bfloat16                       # the run really was bfloat16
    # the kept copies are bfloat16 roundings (relative 2^-9 each) of what was measured
    want = kept["spatial"].double().flatten(1).norm(dim=1).numpy()
    got = ps[ps.layer == "sn1"].grad_spatial_norm.to_numpy()
    np.testing.assert_allclose(got, want, rtol=4e-3)
    # per-sample sums are float64 and add up to the per-step norms to float64 precision (64 bfloat16
    # additions would be off by ~1e-3)
    smp = rec.samples()["sn1"]
    assert smp.spatial_sq.dtype == np.float64 and smp.pair_sq.dtype == np.float64
    np.testing.assert_allclose(np.sqrt(smp.spatial_sq.sum(axis=0)), got, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(smp.pair_sq[:, :, 0].sum(axis=0)), got, rtol=1e-9)
    # and the watch gives the same per-step summary as that recording, under autocast
    net2 = _net("clif")
    with gw.watch(net2, every=1, n_resamples=50) as w:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net2(x)
        losses.ce_over_time(out.float(), y).backward()
    s = w.summary().set_index("layer")
    ref = step_summary({"per_step": ps, "weights": rec.weights()}, rec.samples(), n_resamples=50).set_index("layer")
    np.testing.assert_allclose(s.temporal_share, ref.temporal_share, rtol=1e-9)
    assert np.isfinite(s.relative_1).all() and np.isfinite(s.relative_1_ci_low).all()


# ----------------------------------------------------------------------------- torch.compile


def test_compiled_model_records_eagerly_on_recorded_steps_only(tmp_path):
    counters = pytest.importorskip("torch._dynamo.utils").counters
    torch._dynamo.reset()
    counters.clear()
    eager = _net()
    compiled_net = _net()
    compiled = torch.compile(compiled_net, backend="aot_eager")
    with gw.watch(eager, every=2, out=tmp_path / "eager", n_resamples=20), \
            gw.watch(compiled, every=2, out=tmp_path / "compiled", n_resamples=20):
        for i in range(5):
            x, y = _batch(i)
            losses.ce_over_time(eager(x), y).backward()
            losses.ce_over_time(compiled(x), y).backward()
    a, b = gw.read_run(tmp_path / "eager"), gw.read_run(tmp_path / "compiled")
    assert sorted(b.summary.train_step.unique()) == [0, 2, 4]
    assert b.summary.layer.tolist() == a.summary.layer.tolist()          # names as in the eager model
    for col in ("grad_total_norm", "grad_temporal_norm"):
        np.testing.assert_allclose(b.tables["per_step"][col], a.tables["per_step"][col], rtol=1e-5, atol=1e-9)
    assert counters["stats"]["unique_graphs"] == 1     # the eager recorded steps did not recompile anything
    assert not torch.compiler.is_compiling()


def test_model_inside_a_compiled_training_step_warns(tmp_path):
    torch._dynamo.reset()
    net = _net()

    @torch.compile(backend="aot_eager")
    def loss_of(x, y):
        return losses.ce_over_time(net(x), y)

    with pytest.warns(RuntimeWarning, match="torch.compile'd function"):
        with gw.watch(net, every=1, out=tmp_path, n_resamples=20) as w:
            for i in range(2):
                loss_of(*_batch(i)).backward()
    assert w.summary().empty


# ----------------------------------------------------------------------------- torch.distributed


def _shard_loss(net, x, y, rank, world):
    n = x.shape[0] // world
    sl = slice(rank * n, (rank + 1) * n)
    # the sum over ranks of these losses is the single-process loss of the whole batch
    return losses.ce_over_time(net(x[sl]), y[sl]) * (n / x.shape[0])


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        net = _net("clif", T=3)
        for session, steps in ((0, 3), (1, 3)):      # the second session resumes the first
            with gw.watch(net, every=2, out=out, n_resamples=50) as w:
                counters = (w.train_step, w.passes)
                for i in range(steps):
                    _shard_loss(net, *_batch(10 * session + i, n=16), rank, world).backward()
            with open(os.path.join(os.path.dirname(out), f"rank{rank}-{session}.txt"), "w") as f:
                f.write(f"{counters[0]} {counters[1]} {len(w.tables())}")
        dist.barrier()   # neither rank tears gloo down while the other still talks (else: SIGABRT at times)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_process_gloo_rank0_writes_what_one_process_would(tmp_path, free_port):
    out = tmp_path / "run"
    mp.start_processes(_worker, args=(2, free_port, str(out)), nprocs=2, join=True, start_method="spawn")
    # both ranks resumed from rank 0's counters; only rank 0 holds tables
    assert (tmp_path / "rank0-1.txt").read_text().split()[:2] == (tmp_path / "rank1-1.txt").read_text().split()[:2] \
        == ["3", "2"]
    assert (tmp_path / "rank1-1.txt").read_text().split()[2] == "0"
    got = gw.read_run(out)
    net = _net("clif", T=3)
    with gw.watch(net, every=2, n_resamples=50) as w:
        for session in (0, 1):
            for i in range(3):
                _shard_loss(net, *_batch(10 * session + i, n=16), 0, 1).backward()
    want = w.tables()
    assert sorted(got.summary.train_step.unique()) == [0, 2, 4]     # session 2 recorded its step 1 (= 4)
    for name, cols in (("per_step", ["grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "firing_rate"]),
                       ("lags", ["norm", "relative"]),
                       ("summary", ["temporal_share", "relative_1", "half_life", "relative_1_ci_low",
                                    "firing_rate_ci_high"])):
        g = got.tables[name]
        w_ = want[name]
        w_ = w_[w_.train_step.isin(g.train_step.unique())].reset_index(drop=True)
        assert len(g) == len(w_), name
        for c in cols:
            np.testing.assert_allclose(g[c].to_numpy(float), w_[c].to_numpy(float), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}.{c}")
