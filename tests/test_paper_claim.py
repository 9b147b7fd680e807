"""The paper-claim experiments: variants, same initial weights, measurement against hand values, contrasts."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from gradflow.errors import UsageError
from gradflow.lab.experiments import paper_claim, paper_runs
from gradflow.lab.experiments.paper_claim import CONTRASTS, accuracy_contrasts, run_paper_claim
from gradflow.lab.experiments.paper_runs import (VARIANTS, DigitsCNN, RunSpec, build_model, make_task,
                                                 measure_flow, paired, train_and_measure, verdict)
from gradflow.lab.experiments.t_sweep_digits import run_t_sweep_digits
from gradflow.models import neurons_of
from gradflow.recorder import record

pytest.importorskip("sklearn")

QUICK = dict(n_train=64, n_test=32, probe=16, passes=2, n_resamples=50, widths=(8, 8), epochs=1)


def test_paired_is_the_student_t_interval():
    v = np.array([0.01, 0.03, -0.005, 0.02, 0.04])
    st = paired(v)
    half = sps.t.ppf(0.975, 4) * v.std(ddof=1) / math.sqrt(5)
    assert st["mean"] == pytest.approx(v.mean()) and st["ci_high"] - st["mean"] == pytest.approx(half)
    assert (st["n"], st["n_positive"], st["n_negative"]) == (5, 4, 1)
    assert math.isnan(paired([0.3])["ci_low"]) and paired([0.3])["mean"] == 0.3
    assert verdict(0.01, 0.2) == "> 0" and verdict(-0.3, -0.1) == "< 0" and verdict(-0.1, 0.1) == "cannot tell"
    assert verdict(math.nan, 1.0) == "cannot tell"


@pytest.mark.parametrize("arch", ["mlp", "digits_cnn"])
def test_variants_share_initial_weights_and_set_their_options(arch):
    spec = RunSpec(arch=arch, T=3, seed=7, **{k: v for k, v in QUICK.items() if k == "widths"})
    task = make_task(spec)
    models = {v: build_model(RunSpec(**{**spec.__dict__, "variant": v}), task) for v in VARIANTS}
    ref = models["lif"].state_dict()
    for v, m in models.items():
        sd = m.state_dict()
        assert sd.keys() == ref.keys() and all(torch.equal(sd[k], ref[k]) for k in ref), v
        neurons = neurons_of(m)
        assert len(neurons) == 2 and all(n.kind == VARIANTS[v].kind for n in neurons)
        assert all(n.sur.alpha == 1.0 and n.tau == 2.0 and n.v_threshold == 1.0 for n in neurons)
    assert all(n.detach_reset for n in neurons_of(models["lif_dr"]))
    assert not any(n.detach_reset for n in neurons_of(models["lif"]))
    assert all(n.m_grad is False for n in neurons_of(models["clif_nom"]))
    other = build_model(RunSpec(arch=arch, T=3, seed=8, widths=spec.widths), task)
    assert not torch.equal(other.state_dict()[next(iter(ref))], ref[next(iter(ref))])


def test_truncation_is_set_for_spatial_only_runs():
    task = make_task(RunSpec(T=3))
    m = build_model(RunSpec(T=3, truncate=1, widths=(8,)), task)
    assert all(n.truncate == 1 for n in neurons_of(m))
    assert all(n.truncate is None for n in neurons_of(build_model(RunSpec(T=3, widths=(8,)), task)))


def test_unknown_variant_option_is_an_error_not_a_silent_no_op(monkeypatch):
    monkeypatch.setitem(VARIANTS, "bogus", paper_runs.Variant("lif", {"no_such_option": 1}, "?"))
    spec = RunSpec(T=2, variant="bogus", widths=(4,))
    with pytest.raises(UsageError, match="no_such_option"):
        build_model(spec, make_task(spec))


def test_digits_cnn_shapes():
    net = DigitsCNN(neuron="clif", T=3)
    assert net(torch.randn(5, 1, 8, 8)).shape == (3, 5, 10)
    assert [n for n, _ in net.neuron_layers()] == ["features.0.act", "features.1.act"]
    with pytest.raises(UsageError, match="8x8"):
        net(torch.randn(5, 1, 16, 16))


@pytest.mark.parametrize("arch", ["mlp", "digits_cnn"])
def test_measured_transport_of_lif_detach_reset_is_gamma_to_the_k(arch):
    """With detach_reset the LIF factor du[t+1]/du[t] is gamma at every step (soft reset), so every pair
    is gamma^k times its source and relative_k = 0.5^k exactly, whatever the network; the measurement
    removes the run's truncation first, so a truncate=1 network gives the same profile."""
    spec = RunSpec(arch=arch, T=4, variant="lif_dr", truncate=1, **{k: v for k, v in QUICK.items() if k != "epochs"})
    task = make_task(spec)
    model = build_model(spec, task)
    flow, profile = measure_flow(model, spec, task, task.sample(16, 0, "test"), task.sample(32, 0, "train")[0])
    assert {r["layer_index"] for r in flow} == {0, 1}
    for r in profile:
        assert r["relative"] == pytest.approx(0.5 ** r["lag"], rel=1e-5)
    for r in flow:
        assert r["relative_1"] == pytest.approx(0.5, rel=1e-5) and r["half_life"] == pytest.approx(1.0, rel=1e-5)
        assert r["samples"] == 16 and 0.0 <= r["window_fraction_ci_low"] <= r["window_fraction"] <= 1.0
    assert all(n.truncate == 1 for n in neurons_of(model))          # the run's own model is untouched


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_lif_relative_1_is_explained_by_window_persistence(alpha):
    """LIF, rectangle surrogate: the one-step factor is gamma outside the window and gamma (1 - theta/alpha)
    inside, so relative_1^2 = gamma^2 [(1 - S) + (1 - 1/alpha)^2 S] with S = window_persistence, exactly."""
    spec = RunSpec(T=5, alpha=alpha, **{k: v for k, v in QUICK.items() if k not in ("epochs", "widths")},
                   widths=(32, 32))
    task = make_task(spec)
    flow, _ = measure_flow(build_model(spec, task), spec, task, task.sample(16, 0, "test"),
                           task.sample(32, 0, "train")[0])
    for r in flow:
        S = r["window_persistence"]
        assert 0.0 < S <= 1.0 and r["window_persistence_ci_low"] <= S <= r["window_persistence_ci_high"]
        expected = 0.5 * math.sqrt((1 - S) + (1 - 1 / alpha) ** 2 * S)
        assert r["relative_1"] == pytest.approx(expected, rel=1e-5)


def test_recorded_pairs_of_clif_without_m_gradient_add_up_to_the_autograd_gradient():
    """The recorder's transport for CLIF with m_grad=False (the closed-form Jacobian with mu = vm = mm = 0)
    against autograd: sum over sources of pair[t, t'] equals dL/du[t]."""
    spec = RunSpec(T=5, variant="clif_nom", widths=(16,))
    task = make_task(spec)
    model = build_model(spec, task).double()
    for n in neurons_of(model):
        n.backend = "torch"
    x, y = task.sample(32, 0, "test")
    with record(model, pairs=True, weights=False, keep_tensors=True) as rec:
        task.loss(model(x.double().flatten(1)), y, "tet").backward()
    kept = rec.tensors("sn1")
    for t, pairs_t in enumerate(kept["pairs"]):
        torch.testing.assert_close(pairs_t.sum(0), kept["delta"][t], rtol=1e-9, atol=1e-12)
    # and the m path matters: the same weights with m_grad=True transport differently
    model2 = build_model(RunSpec(T=5, variant="clif", widths=(16,)), task).double()
    with record(model2, pairs=True, weights=False) as rec2:
        task.loss(model2(x.double().flatten(1)), y, "tet").backward()
    a = rec.lags().query("lag == 1").relative.to_numpy()
    b = rec2.lags().query("lag == 1").relative.to_numpy()
    assert not np.allclose(a, b)


def test_accuracy_contrasts_are_per_seed_paired_differences():
    rng = np.random.default_rng(0)
    rows = []
    acc = {}
    for seed in range(4):
        for v in VARIANTS:
            for bptt in ("k1", "full"):
                a = float(rng.uniform(0.8, 1.0))
                acc[(v, bptt, seed)] = a
                rows.append(dict(arch="mlp", T=6, alpha=1.0, variant=v, bptt=bptt, seed=seed, test_accuracy=a))
    c = accuracy_contrasts(pd.DataFrame(rows)).set_index("contrast")
    assert set(c.index) == set(CONTRASTS)
    p1 = [(acc[("clif", "full", s)] - acc[("clif", "k1", s)]) - (acc[("lif", "full", s)] - acc[("lif", "k1", s)])
          for s in range(4)]
    st = paired(p1)
    assert c.loc["P1", "mean"] == pytest.approx(st["mean"]) and c.loc["P1", "ci_low"] == pytest.approx(st["ci_low"])
    p4 = [acc[("clif", "k1", s)] - acc[("lif", "k1", s)] for s in range(4)]
    assert c.loc["P4", "mean"] == pytest.approx(np.mean(p4)) and c.loc["P4", "n"] == 4


def test_training_is_deterministic_per_seed():
    spec = RunSpec(T=3, variant="clif", **QUICK)
    a, b = train_and_measure(spec), train_and_measure(spec)
    assert a.run["test_accuracy"] == b.run["test_accuracy"] and a.run["test_loss"] == b.run["test_loss"]
    assert [r["point"] for r in a.flow] == ["init", "init", "mid", "mid", "end", "end"]
    assert a.flow[0]["relative_1"] == b.flow[0]["relative_1"]


def test_quick_paper_claim_writes_tables_and_resumes_from_its_cache(tmp_path, monkeypatch):
    out = str(tmp_path / "pc")
    tables = run_paper_claim(out, [0, 1], True, None)
    runs = tables["runs"]
    assert len(runs) == 2 * len(VARIANTS) * 2 and set(runs.bptt) == {"k1", "full"}
    assert set(tables["contrasts"].contrast) == set(CONTRASTS)
    fc = tables["flow_contrasts"]
    assert {"relative_1", "weight_temporal_projection"} <= set(fc.metric) and set(fc.point) == {"init", "mid", "end"}
    for name in ("accuracy", "contrasts", "relative_1"):
        assert os.path.getsize(os.path.join(out, "figures", f"{name}.png")) > 1000
    cached = sorted(os.listdir(os.path.join(out, "cache")))
    assert len(cached) == len(runs)
    with open(os.path.join(out, "cache", cached[0])) as fh:
        assert set(json.load(fh)) == {"spec", "run", "flow", "profile"}

    def no_training(*_a, **_k):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(paper_claim, "train_and_measure", no_training)
    again = run_paper_claim(out, [0, 1], True, None)
    pd.testing.assert_frame_equal(again["runs"], runs)


def test_quick_t_sweep_puts_relative_1_beside_accuracy(tmp_path):
    out = str(tmp_path / "ts")
    tables = run_t_sweep_digits(out, [0], True, None)
    assert list(tables["summary"]["T"].unique()) == [2, 4]
    end = tables["flow_summary"].query("point == 'end'")
    assert set(end.variant) == {"lif", "clif"} and end.relative_1.between(0, 1.5).all()
    assert os.path.getsize(os.path.join(out, "figures", "t_sweep.png")) > 1000


def test_bad_epochs_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="epochs"):
        run_paper_claim(str(tmp_path), [0], True, None, epochs=0)


def _fake_cifar(root, n_train=40, n_test=20):
    import pickle

    rng = np.random.default_rng(0)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        (base / name).write_bytes(pickle.dumps(batch))
    return root


def test_scale_path_builds_cifar_runs_for_a_gpu():
    specs = paper_claim.paper_specs([0, 1, 2, 3, 4], False, data="cifar10:/data/cifar", arch="spiking_resnet18",
                                    device="cuda")
    assert {s.arch for s in specs} == {"spiking_resnet18"} and {s.device for s in specs} == {"cuda"}
    assert len(specs) == 2 * 5 * len(VARIANTS) * 2 and {s.T for s in specs} == {6} and specs[0].epochs == 100
    assert {s.data for s in specs} == {"cifar10:/data/cifar"}
    digits = paper_claim.paper_specs([0], False, arch="digits_cnn")
    assert {(s.arch, s.T, s.epochs) for s in digits} == {("digits_cnn", 6, 8)}


def test_quick_paper_claim_on_a_cifar_directory(tmp_path):
    root = _fake_cifar(tmp_path / "cifar")
    tables = run_paper_claim(str(tmp_path / "out"), [0], True, None, data=f"cifar10:{root}", arch="mlp")
    runs = tables["runs"]
    assert len(runs) == len(VARIANTS) * 2 and runs.test_accuracy.between(0, 1).all()
    assert tables["flow"].samples.max() == 20                   # the probe is capped at the 20 test images


@pytest.mark.slow
def test_one_spiking_resnet18_run_on_cifar(tmp_path):
    """The scale path end to end on a tiny CIFAR directory: one ResNet-18 run, trained and measured."""
    root = _fake_cifar(tmp_path / "cifar")
    spec = RunSpec(arch="spiking_resnet18", data=f"cifar10:{root}", T=2, variant="clif_nom", epochs=1,
                   n_train=16, n_test=8, probe=8, passes=2, n_resamples=20, measure=("end",))
    res = train_and_measure(spec)
    assert res.run["arch"] == "spiking_resnet18" and 0.0 <= res.run["test_accuracy"] <= 1.0
    assert len(res.flow) == 17 and all(r["point"] == "end" and r["samples"] == 8 for r in res.flow)
