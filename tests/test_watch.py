"""gradflow.watch: which steps are recorded, what is written, resuming, crashes, memory, accumulation."""

from __future__ import annotations

import copy
import gc
import json
import subprocess
import sys
import textwrap
import tracemalloc
import weakref

import numpy as np
import pandas as pd
import pytest
import torch

import gradflow
import gradflow.watch as gw
from gradflow import losses, models
from gradflow.errors import DataError, UsageError
from gradflow.watch import read_run

X = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1, 2, 0, 1, 2])


def _net(seed=0, kind="lif"):
    torch.manual_seed(seed)
    return models.build("mlp", neuron=kind, in_features=4, num_classes=3, widths=(8, 8), T=3)


def _batch(i):
    g = torch.Generator().manual_seed(100 + i)
    return torch.rand(6, 4, generator=g) * 1.5, torch.randint(0, 3, (6,), generator=g)


def _train(net, steps, w=None, accumulate=1, lr=0.2):
    """A plain SGD loop; ``accumulate`` micro-batches per optimiser step. Returns the states before each
    micro-batch (the parameters that micro-batch saw)."""
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    states = []
    for i in range(steps):
        states.append(copy.deepcopy(net.state_dict()))
        x, y = _batch(i)
        (losses.ce_over_time(net(x), y) / accumulate).backward()
        if (i + 1) % accumulate == 0:
            opt.step()
            opt.zero_grad()
    return states


def _direct(state, i, scale=1.0):
    """The tables gradflow.record gives for micro-batch ``i`` (loss times ``scale``) at parameters ``state``."""
    net = _net()
    net.load_state_dict(state)
    x, y = _batch(i)
    with gradflow.record(net, pairs=True, weights=True) as rec:
        (losses.ce_over_time(net(x), y) * scale).backward()
    return rec


def _close(a: pd.DataFrame, b: pd.DataFrame, cols):
    for c in cols:
        np.testing.assert_allclose(a[c].to_numpy(float), b[c].to_numpy(float), rtol=1e-6, atol=1e-12, err_msg=c)


# ----------------------------------------------------------------------------- schedule and identity


def test_every_nth_step_is_recorded_and_matches_a_direct_recording(tmp_path):
    ref = _net()
    states = _train(ref, 10)
    net = _net()
    with gw.watch(net, every=3, out=tmp_path, n_resamples=20) as w:
        _train(net, 10)
        assert w.train_step == 9
    for p, q in zip(ref.parameters(), net.parameters()):
        assert torch.equal(p, q)                          # watching never changes training
    run = read_run(tmp_path)
    assert sorted(run.summary.train_step.unique()) == [0, 3, 6, 9]
    ps = run.tables["per_step"]
    assert sorted(ps.step.unique()) == [0, 1, 2, 3]       # recorded backward passes, 0-based
    for k, i in enumerate([0, 3, 6, 9]):
        rec = _direct(states[i], i)
        got = ps[ps.train_step == i].reset_index(drop=True)
        _close(got, rec.per_step(), ["grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "firing_rate"])
        lg = run.tables["lags"]
        _close(lg[lg.train_step == i].reset_index(drop=True), rec.lags(), ["norm", "relative"])
        wt = run.tables["weights"]
        _close(wt[wt.train_step == i].reset_index(drop=True), rec.weights(), ["spatial_norm", "temporal_norm"])
    assert run.meta["train_step"] == 10 and run.meta["passes"] == 4


def test_unrecorded_steps_carry_only_the_counter_hook():
    net = _net()
    seen = []

    def spy(module, args):   # the neuron's step observers: the recorder's, on recorded steps only
        seen.append(len(module._step_observers) > 0)

    h = net.sn1.register_forward_pre_hook(spy)
    try:
        with gw.watch(net, every=4, n_resamples=10) as w:
            hooks = []
            for i in range(9):
                x, y = _batch(i)
                losses.ce_over_time(net(x), y).backward()
                hooks.append(w.num_hooks)
        assert seen == [i % 4 == 0 for i in range(9)]
        assert hooks[1:4] == [1, 1, 1]                      # only the counter between recorded steps
        assert len(net._forward_pre_hooks) == 0             # everything removed on close
    finally:
        h.remove()


def test_no_grad_calls_are_not_steps_and_manual_counting(tmp_path):
    net = _net()
    with gw.watch(net, every=2, n_resamples=10) as w:
        for i in range(4):
            with torch.no_grad():
                net(X)                                       # validation: not a step
            x, y = _batch(i)
            losses.ce_over_time(net(x), y).backward()
        assert w.train_step == 3
    assert sorted(w.summary().train_step.unique()) == [0, 2]
    with pytest.raises(UsageError, match="count='manual'"):
        w.step()


def test_gradient_accumulation_records_micro_batches(tmp_path):
    ref = _net()
    states = _train(ref, 8, accumulate=2)
    net = _net()
    with gw.watch(net, every=3, out=tmp_path, n_resamples=20):
        _train(net, 8, accumulate=2)
    for p, q in zip(ref.parameters(), net.parameters()):
        assert torch.equal(p, q)
    run = read_run(tmp_path)
    assert sorted(run.summary.train_step.unique()) == [0, 3, 6]
    for i in (3, 6):   # micro-batch 3 is the second of an accumulated pair: still its own backward pass
        rec = _direct(states[i], i, scale=0.5)
        got = run.tables["per_step"]
        _close(got[got.train_step == i].reset_index(drop=True), rec.per_step(), ["grad_total_norm"])


def test_manual_step_per_optimizer_step_pools_the_accumulated_passes(tmp_path):
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with gw.watch(net, every=2, out=tmp_path, count="manual", n_resamples=50) as w:
        for i in range(4):
            for j in range(3):   # three micro-batches per optimiser step
                x, y = _batch(3 * i + j)
                losses.ce_over_time(net(x), y).backward()
            opt.step()
            opt.zero_grad()
            w.step()
    s = read_run(tmp_path).summary
    assert sorted(s.train_step.unique()) == [0, 2]
    assert set(s.passes) == {3}
    # three passes: the weight projection gets an interval over passes
    assert np.isfinite(s.weight_temporal_projection_ci_low).all()
    assert (s.weight_temporal_projection_ci_low <= s.weight_temporal_projection + 1e-12).all()


def test_explicit_recording_labels_the_step(tmp_path):
    net = _net()
    w = gw.watch(net, every=None, out=tmp_path, n_resamples=10)
    for epoch in (0, 5):
        with w.recording(train_step=epoch):
            losses.ce_over_time(net(X), Y).backward()
        net(X)   # not recorded: every=None
    w.close()
    run = read_run(tmp_path)
    assert sorted(run.summary.train_step.unique()) == [0, 5]
    assert sorted(run.tables["per_step"].step.unique()) == [0, 1]


def test_pairs_table_only_when_asked(tmp_path):
    for pairs in (False, True):
        out = tmp_path / str(pairs)
        net = _net()
        with gw.watch(net, every=1, out=out, pairs=pairs, n_resamples=10):
            losses.ce_over_time(net(X), Y).backward()
        tables = read_run(out).tables
        assert ("pairs" in tables) == pairs and "lags" in tables


def test_in_memory_watch_without_out():
    net = _net()
    with gw.watch(net, every=2, n_resamples=10) as w:
        _train(net, 5)
    t = w.tables()
    assert sorted(t["summary"].train_step.unique()) == [0, 2, 4]
    assert set(t) >= {"per_step", "lags", "weights", "layers", "summary"}


# ----------------------------------------------------------------------------- resume, crash, memory


def test_reopening_resumes_step_numbers(tmp_path):
    net = _net()
    with gw.watch(net, every=2, out=tmp_path, n_resamples=10):
        _train(net, 5)                        # steps 0..4, recorded 0, 2, 4
    with gw.watch(net, every=2, out=tmp_path, n_resamples=10) as w:
        assert w.train_step == 5 and w.passes == 3
        _train(net, 4)                        # steps 5..8, recorded 6, 8
    run = read_run(tmp_path)
    assert sorted(run.summary.train_step.unique()) == [0, 2, 4, 6, 8]
    assert sorted(run.tables["per_step"].step.unique()) == [0, 1, 2, 3, 4]
    with gw.watch(net, every=4, out=tmp_path, start=100, n_resamples=10):
        _train(net, 1)
    run = read_run(tmp_path)
    assert run.summary.train_step.max() == 100
    assert run.meta["history"][0]["settings"]["every"] == 2     # the changed settings are kept


_CRASH = textwrap.dedent("""
    import os, sys, torch, gradflow.watch as gw
    from gradflow import losses, models
    torch.manual_seed(0)
    net = models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=3)
    x, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    w = gw.watch(net, every=2, out=sys.argv[1], n_resamples=10)
    for i in range(int(sys.argv[2])):
        losses.ce_over_time(net(x), y).backward()
    os._exit(3)   # a crash: no close(), no flush, no atexit
""")


def test_a_crash_leaves_readable_tables_and_resumes(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", _CRASH, str(out), "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    run = read_run(out)
    # steps 0, 2 were committed when steps 1, 3 began; step 4 was in flight (its backward ran, unwritten)
    assert sorted(run.summary.train_step.unique()) == [0, 2]
    for name, df in run.tables.items():
        assert not df.isna().all(axis=1).any(), name
    # a torn write (the process died inside a table write) is ignored by readers and cut on reopening
    with open(out / "per_step.csv", "a") as f:
        f.write("4,2,sn1,0,li")
    assert len(read_run(out).tables["per_step"]) == len(run.tables["per_step"])
    net = _net()
    with gw.watch(net, every=2, out=out, n_resamples=10) as w:
        assert w.train_step == 3              # after the last committed step
        _train(net, 2)                        # steps 3, 4
    run2 = read_run(out)
    assert sorted(run2.summary.train_step.unique()) == [0, 2, 4]
    text = (out / "per_step.csv").read_text()
    assert "li\n" not in text and text.endswith("\n")


def test_keyboard_interrupt_keeps_the_finished_step(tmp_path):
    net = _net()
    with pytest.raises(KeyboardInterrupt):
        with gw.watch(net, every=2, out=tmp_path, n_resamples=10):
            for i in range(5):
                x, y = _batch(i)
                losses.ce_over_time(net(x), y).backward()
                if i == 2:
                    raise KeyboardInterrupt   # Ctrl-C after step 2's backward
    assert sorted(read_run(tmp_path).summary.train_step.unique()) == [0, 2]
    assert len(net._forward_pre_hooks) == 0


def test_each_recorded_step_is_released(tmp_path):
    """Nothing of a recorded step outlives its flush: the recorder is freed, the state does not grow."""
    net = _net()
    x, y = _batch(0)
    refs, sizes = [], []
    with gw.watch(net, every=1, out=tmp_path, n_resamples=10) as w:
        for _ in range(30):
            losses.ce_over_time(net(x), y).backward()
            refs.append(weakref.ref(w._rec))            # the recorder of this step (still attached)
            sizes.append(len(json.dumps(w._store.state)))
    gc.collect()
    assert all(r() is None for r in refs)
    assert max(sizes[5:]) - min(sizes[5:]) < 40        # counters change, nothing accumulates
    assert read_run(tmp_path).meta["passes"] == 30


@pytest.mark.slow
def test_memory_stays_constant_over_many_recorded_steps(tmp_path):
    net = _net()
    x, y = _batch(0)
    with gw.watch(net, every=1, out=tmp_path, n_resamples=10) as w:
        def steps(n):
            for _ in range(n):
                losses.ce_over_time(net(x), y).backward()
        tracemalloc.start()
        try:
            steps(100)                      # caches of pandas/numpy/torch fill up (traced as they turn over)
            gc.collect()
            first, _ = tracemalloc.get_traced_memory()
            steps(300)
            gc.collect()
            second, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert w.passes == 400
    # 300 more recorded steps (each writing ~10 kB of rows) add less than 100 bytes each to the heap
    assert second - first < 300 * 100, (first, second)


# ----------------------------------------------------------------------------- errors


def test_user_errors(tmp_path):
    net = _net()
    with pytest.raises(UsageError, match="every"):
        gw.watch(net, every=0)
    with pytest.raises(UsageError, match="count"):
        gw.watch(net, count="epoch")
    with pytest.raises(UsageError, match="max_lag"):
        gw.watch(net, max_lag=-1)
    with pytest.raises(UsageError, match="nn.Module"):
        gw.watch("net")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="directory"):
        gw.watch(net, out=tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "per_step.csv").write_text("a,b\n")
    with pytest.raises(UsageError, match="not a watched run"):
        gw.watch(net, out=tmp_path / "other")
    with gw.watch(net, out=tmp_path / "busy"):
        with pytest.raises(UsageError, match="another watch"):
            gw.watch(_net(), out=tmp_path / "busy")
    with pytest.raises(DataError, match="not a watched run"):
        read_run(tmp_path / "other")


def test_forward_without_backward_warns():
    net = _net()
    with gw.watch(net, every=1, n_resamples=10):
        net(X)
        with pytest.warns(RuntimeWarning, match="before any backward pass"):
            losses.ce_over_time(net(X), Y).backward()


def test_gradflow_watch_is_callable_after_importing_the_module():
    import gradflow.watch  # noqa: F401 - binds the module to gradflow.watch
    w = gradflow.watch(_net(), every=5)
    assert isinstance(w, gw.Watch)
    w.close()


def test_documented_columns_first_and_train_step_last(tmp_path):
    from gradflow import schema
    net = _net()
    with gw.watch(net, every=1, out=tmp_path, n_resamples=10):
        losses.ce_over_time(net(X), Y).backward()
    t = read_run(tmp_path).tables
    for name, cols in (("per_step", schema.PER_STEP_COLUMNS), ("lags", schema.LAGS_COLUMNS),
                       ("weights", schema.WEIGHTS_COLUMNS)):
        assert tuple(t[name].columns[:len(cols)]) == tuple(cols), name
        assert t[name].columns[-1] == "train_step", name
    assert tuple(t["summary"].columns) == gw.SUMMARY_COLUMNS


def test_transport_inputs_are_stored_summed_over_samples(tmp_path, monkeypatch):
    """When the recorder collects the window model's inputs, each step stores their sums per layer."""
    seen = {}

    def fake_inputs(rec):
        out = {}
        for layer in ("sn1", "sn2"):
            a = np.arange(12.0).reshape(3, 2, 2) + len(seen)     # [n samples, ...]
            out[layer] = {"count": a, "zone_edges": np.array([-2.0, -1.0, 0.0, 1.0, 2.0])}
        seen[len(seen)] = out
        return out

    monkeypatch.setattr(gradflow.recorder.Recorder, "transport_inputs", fake_inputs, raising=False)
    net = _net()
    with gw.watch(net, every=2, out=tmp_path, n_resamples=10):
        _train(net, 3)
    tr = read_run(tmp_path).tables["transport"]
    assert tr.train_step.tolist() == [0, 0, 2, 2] and tr.layer.tolist() == ["sn1", "sn2"] * 2
    first = json.loads(tr.inputs.iloc[0])
    np.testing.assert_array_equal(first["count"], seen[0]["sn1"]["count"].sum(axis=0))
    assert first["zone_edges"] == [-2.0, -1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("order", ["same", "reordered", "subset", "missing"])
def test_csv_rows_are_what_pandas_writes_for_the_stored_columns(order):
    """A table's rows are written under the columns the file started with: the same text as pandas'
    ``to_csv`` of the table reindexed to those columns (in their order, absent ones empty)."""
    from gradflow.watch.store import _csv_text

    df = pd.DataFrame({"layer": ["sn1", "sn2", None], "t": [0, 1, 2], "norm": [0.1, float("nan"), 1e-300],
                       "train_step": [7, 7, 7]})
    columns = {"same": list(df.columns), "reordered": ["t", "layer", "train_step", "norm"],
               "subset": ["layer", "norm"], "missing": ["layer", "t", "rate", "norm", "train_step"]}[order]
    as_columns = {"layer": ["sn1", "sn2", None], "t": np.array([0, 1, 2]),
                  "norm": np.array([0.1, float("nan"), 1e-300]), "train_step": np.full(3, 7)}
    for header in (True, False):
        want = df.reindex(columns=columns).to_csv(index=False, header=header, lineterminator="\n")
        assert _csv_text(df, columns, header) == want
        assert _csv_text(as_columns, columns, header) == want      # the watch writes dicts of columns


def test_watched_files_are_what_pandas_writes_for_the_in_memory_tables(tmp_path):
    """The CSV files of a watched run (written from dicts of columns) hold the same text as pandas'
    ``to_csv`` of the same run kept in memory (``out=None``), table by table; the summary's counts
    stay integers."""
    texts = {}
    for out in (tmp_path / "run", None):
        net = _net()
        with gw.watch(net, every=2, out=out, pairs=True, n_resamples=20) as w:
            _train(net, 3)
            if out is None:
                texts["memory"] = {k: v.to_csv(index=False, lineterminator="\n") for k, v in w._store.tables().items()}
    files = {p.stem: p.read_text() for p in (tmp_path / "run").glob("*.csv")}
    assert set(files) == set(texts["memory"])
    assert set(files) >= {"per_step", "lags", "weights", "pairs", "layers", "transport", "summary"}
    for name, text in files.items():
        assert text == texts["memory"][name], name
    summary = read_run(tmp_path / "run").summary
    assert summary["samples"].dtype.kind == "i" and summary["passes"].dtype.kind == "i"


def test_summary_columns_mixing_ints_and_nan_are_written_as_floats():
    """A count that is NaN for one layer makes the column float, as in a DataFrame (same CSV text)."""
    from gradflow.watch.store import _csv_text
    from gradflow.watch.summary import _uniform

    col = _uniform([256, float("nan")])
    assert col == [256.0, col[1]] and all(isinstance(v, float) for v in col)
    assert _uniform([1, 2]) == [1, 2] and _uniform([True, 0.5]) == [True, 0.5]
    want = pd.DataFrame({"samples": [256, float("nan")]}).to_csv(index=False, lineterminator="\n")
    assert _csv_text({"samples": col}, ["samples"], True) == want
