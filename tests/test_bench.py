"""`gradflow bench`: the quick run writes valid JSON with the documented fields; the baseline neuron is
the same neuron. No timing assertions (the numbers are for people, never for tests)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import gradflow
from gradflow.lab.bench import (
    NEURON_COLUMNS,
    TARGETS,
    TRAIN_COLUMNS,
    TRAIN_VARIANTS,
    StepwiseNeuron,
    _saved_bytes,
    _stepwise,
    targets,
)
from gradflow_cli.main import app

runner = CliRunner()


@pytest.mark.parametrize("kind", ["lif", "clif"])
def test_stepwise_baseline_is_the_same_neuron(kind):
    torch.manual_seed(0)
    x = torch.randn(8, 30, dtype=torch.float64) + 0.7
    e = torch.randn_like(x)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    base = StepwiseNeuron(kind)
    s1 = _stepwise(base, x1)
    s2 = gradflow.build_neuron(kind)(x2)
    assert torch.equal(s1, s2)
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    # the state is kept between calls and cleared by reset()
    assert isinstance(base.v, torch.Tensor)
    base.reset()
    assert base.v == 0.0 and base.m == 0.0


def test_saved_bytes_counts_distinct_storages():
    x = torch.randn(100, requires_grad=True)
    # sigmoid saves its output (400 bytes); x * x saves x twice, which is excluded as the input
    assert _saved_bytes(lambda: (x * x).sigmoid(), exclude=(x,)) == 400


def test_bench_quick_writes_json(tmp_path):
    out = tmp_path / "sub" / "bench.json"
    res = runner.invoke(app, ["bench", "--quick", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "speedup" in res.output and "x plain" in res.output
    data = json.loads(out.read_text())
    assert set(data) == {"meta", "neurons", "training", "watch", "targets"}
    assert data["watch"] == []  # the watch part runs only when asked for (--part watch)
    meta = data["meta"]
    for key in ("quick", "device", "threads", "torch", "timing", "memory_saved", "memory_peak", "settings", "models"):
        assert key in meta
    assert meta["quick"] is True and meta["device"] == "cpu"
    rows = data["neurons"]
    assert rows and all(set(r) == set(NEURON_COLUMNS) for r in rows)
    assert {r["variant"] for r in rows} >= {"baseline", "torch", "fused"}
    assert {r["neuron"] for r in rows} == {"lif", "clif"}
    for r in rows:
        assert r["time_ms"] > 0 and r["saved_mb"] >= 0
        if r["variant"] == "baseline":
            assert r["time_ratio"] == 1.0 and r["saved_ratio"] == 1.0
    train = data["training"]
    assert train and all(set(r) == set(TRAIN_COLUMNS) for r in train)
    assert {r["model"] for r in train} == {"mlp", "spiking_resnet18"}
    assert {r["variant"] for r in train} == set(TRAIN_VARIANTS)
    assert set(data["targets"]) == set(TARGETS)
    for tgt in data["targets"].values():
        assert set(tgt) == {"value", "target", "met"}


def test_bench_rejects_bad_options(tmp_path):
    res = runner.invoke(app, ["bench", "--quick", "--part", "everything"])
    assert res.exit_code == 2 and "--part" in res.output
    res = runner.invoke(app, ["bench", "--quick", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "directory" in res.output
    if not torch.cuda.is_available():
        res = runner.invoke(app, ["bench", "--quick", "--device", "cuda"])
        assert res.exit_code == 2 and "CUDA" in res.output


def test_targets_without_measurements():
    got = targets(None, None)
    assert all(v["value"] is None and v["met"] is None for v in got.values())
    assert not any(isinstance(v["value"], float) and math.isnan(v["value"]) for v in got.values())


def test_doctests():
    import doctest

    import gradflow.lab.bench

    result = doctest.testmod(gradflow.lab.bench, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_training_ratios_are_against_the_plain_step_on_the_same_backend():
    from gradflow.lab.bench import training_bench

    df = training_bench(models=(("mlp", dict(in_features=8, widths=(16,), T=2, batch=4)),), neurons=("lif",),
                        variants=("plain", "per_step", "fused_per_step"), repeats=1, warmup=0, peak=False)
    assert list(df.variant) == ["plain", "plain_fused", "per_step", "fused_per_step"]
    t = df.set_index("variant").time_ms
    r = df.set_index("variant")
    assert r.loc["fused_per_step", "time_ratio"] == pytest.approx(t["fused_per_step"] / t["plain_fused"])
    assert r.loc["fused_per_step", "torch_ratio"] == pytest.approx(t["fused_per_step"] / t["plain"])
    assert r.loc["per_step", "time_ratio"] == pytest.approx(t["per_step"] / t["plain"])
    assert {"resnet18_clif_fused_weights_time_ratio", "clif_fused_speedup_T8_1e6"} <= set(TARGETS)


def test_gpu_check_without_a_gpu():
    import doctest

    import gradflow.lab.gpu_check as gc

    assert doctest.testmod(gc).failed == 0
    assert gc.peak_bandwidth("some unknown card") is None
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="CUDA"):
            gc.run("unused")


def test_bench_part_watch_reports_the_watch_overhead():
    """`gradflow bench --part watch` runs the watch benchmark (gradflow.lab.watch_bench) and prints its table."""
    from typer.testing import CliRunner

    from gradflow_cli.main import app

    res = CliRunner().invoke(app, ["bench", "--quick", "--part", "watch"])
    assert res.exit_code == 0, res.output
    assert "rec. step ms" in res.output and "spiking_resnet18" in res.output


def test_watch_estimate_counts_every_cost_of_a_run(monkeypatch):
    """The estimate adds the one-time cost, the recorded steps, the steps right after them and the counter
    of the other steps, over steps x plain step (gradflow.lab.watch_bench's formula), with the plain step
    taken as the reference steps less the counter."""
    import gradflow.lab.watch_bench as wb

    monkeypatch.setattr(wb, "_hook_us", lambda neuron, calls: 5.0)
    monkeypatch.setattr(wb, "_probe", lambda name, options, neuron, n, seconds=0.0: (0.010005, 0.040, 0.012))
    firsts = iter([0.030, 0.020, 0.010])                 # median of three fresh processes (a fast step)
    monkeypatch.setattr(wb, "_first_in_subprocess", lambda name, options, neuron, threads: next(firsts))
    models = (("mlp", dict(in_features=4, widths=(4,), T=2, batch=2)),)
    row = wb.watch_bench(models, steps=200, every=100, direct=(), threads=None, first_runs=3).iloc[0]
    step = 0.010005 - 5e-6
    extra = 0.020 + 2 * (0.040 - step) + 2 * (0.012 - step) + (200 - 4) * 5e-6
    assert row.recorded == 2 and abs(row.step_ms - 1e3 * step) < 1e-9
    assert abs(row.estimated_overhead_pct - 100 * extra / (200 * step)) < 1e-9
    assert row.first_ms == 20.0 and row.after_step_ms == 12.0
    # every step recorded: no step after a recorded one, no counter-only step
    row = wb.watch_bench(models, steps=10, every=1, direct=(), threads=None, first=False).iloc[0]
    assert abs(row.estimated_overhead_pct - 100 * 10 * (0.040 - step) / (10 * step)) < 1e-9
    assert math.isnan(row.first_ms)
    # a negative one-time cost (noise around a small one) is reported as measured but counts as 0;
    # the default takes the median of five fresh processes
    firsts = iter([0.001, -0.004, 0.002, -0.003, -0.002])   # median of the first three: +1 ms
    row = wb.watch_bench(models, steps=200, every=100, direct=(), threads=None).iloc[0]
    assert row.first_ms == -2.0
    extra = 2 * (0.040 - step) + 2 * (0.012 - step) + (200 - 4) * 5e-6
    assert abs(row.estimated_overhead_pct - 100 * extra / (200 * step)) < 1e-9


def test_watch_first_cost_runs_in_a_fresh_process():
    """The one-time cost is measured in a subprocess (a fresh interpreter) and comes back as seconds."""
    from gradflow.lab.watch_bench import _first_in_subprocess

    t = _first_in_subprocess("mlp", dict(in_features=8, widths=(8,), T=2, batch=4), "lif", 1)
    assert isinstance(t, float) and math.isfinite(t) and t < 30.0


def test_watch_first_cost_failure_is_one_clear_error():
    """A fresh process that cannot measure first_ms ends in a DataError naming the model and the cause."""
    from gradflow.errors import DataError
    from gradflow.lab.watch_bench import _first_in_subprocess

    with pytest.raises(DataError, match="first_ms for no_such_model failed: .*Unknown architecture"):
        _first_in_subprocess("no_such_model", dict(T=2, batch=1), "lif", 1)


@pytest.mark.parametrize("make, shape", [
    (lambda: torch.nn.Linear(6, 4), (3, 5, 6)),
    (lambda: torch.nn.Linear(6, 4, bias=False), (7, 6)),
    (lambda: torch.nn.Conv1d(4, 6, 3, stride=2, padding=1), (2, 4, 11)),
    (lambda: torch.nn.Conv2d(4, 6, 3, stride=1, padding=2, dilation=2, groups=2, bias=False), (3, 4, 9, 8)),
    (lambda: torch.nn.Conv2d(3, 8, (3, 1), stride=(2, 1), padding=(1, 0)), (2, 3, 10, 7)),
    (lambda: torch.nn.Conv3d(2, 4, 2, stride=1, padding=1), (2, 2, 4, 5, 3)),
])
def test_weight_grad_kernel_is_the_weight_gradient_alone(make, shape):
    """The floor computes each call's weight (and bias) gradient, the same numbers as autograd's."""
    from gradflow.lab.bench import weight_grad_kernel

    torch.manual_seed(0)
    m = make().double()
    x = torch.randn(shape, dtype=torch.float64)
    out = m(x)
    g = torch.randn_like(out)
    params = [m.weight] + ([m.bias] if m.bias is not None else [])
    ref = torch.autograd.grad(out, params, g)
    gw, gb = weight_grad_kernel(m, x, g)
    torch.testing.assert_close(gw, ref[0], rtol=1e-12, atol=1e-12)
    if m.bias is None:
        assert gb is None
    else:
        torch.testing.assert_close(gb, ref[1], rtol=1e-12, atol=1e-12)


def test_weight_grad_kernel_refuses_what_it_cannot_compute():
    from gradflow.errors import UsageError
    from gradflow.lab.bench import weight_grad_kernel

    x = torch.randn(1, 2, 5, 5)
    for m in (torch.nn.Conv2d(2, 2, 3, padding="same"), torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"),
              torch.nn.ConvTranspose2d(2, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()):
        with pytest.raises(UsageError):
            weight_grad_kernel(m, x, torch.randn(1, 2, 5, 5))


@pytest.mark.parametrize("model, opts, expected", [
    ("mlp", dict(in_features=8, widths=(16, 12), T=2, batch=4), {"fc1", "fc2"}),
    ("spiking_resnet18", dict(T=1, batch=1), None),
])
def test_weights_floor_runs_the_kernels_of_exactly_the_split_layers(monkeypatch, model, opts, expected):
    """The floor variant adds one weight-gradient kernel per call of each layer whose weight the
    recorder splits (not the readout), after the plain backward, and records nothing."""
    import gradflow.lab.bench as bench

    seen = []
    real = bench.weight_grad_kernel
    monkeypatch.setattr(bench, "weight_grad_kernel", lambda m, x, g: seen.append((m, x.shape, g.shape)) or real(m, x, g))
    case = bench._train_case(dict(kind="train", model=model, neuron="lif", options=dict(opts), device="cpu",
                                  variant="weights_floor"))
    net = case["net"]
    names = {id(m): n for n, m in net.named_modules()}
    with gradflow.record(net, pairs=False, weights=True) as rec:
        from gradflow import losses
        losses.ce_over_time(net(case["x"]), case["y"]).backward()
    split = {p.rsplit(".", 1)[0] for p in rec.weights()["param"]}
    seen.clear()
    case["run"]()
    got = {names[id(m)] for m, _, _ in seen}
    weighted = {n for n, m in net.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))}
    assert got == split & weighted and len(got) > 0
    if expected is not None:
        assert got == expected
    with torch.no_grad():  # the output gradient has the call's output shape
        assert all(m(torch.zeros(xs)).shape == gs for m, xs, gs in seen)
    n_calls = len(seen)
    case["run"]()
    assert len(seen) == 2 * n_calls  # each step again, none left over from the last one
