"""The recorder: closure, pair ground truth, exact zeros, hooks, bit-identical gradients, weight split."""

from __future__ import annotations

import copy

import numpy as np

import pytest
import torch
from torch import nn

import gradflow
from gradflow.errors import UsageError
from gradflow.recorder import LAGS_COLUMNS, PAIRS_COLUMNS, PER_STEP_COLUMNS, WEIGHTS_COLUMNS

KINDS = ["lif", "clif", "plif"]


class TinyMLP(nn.Module):
    """Linear -> neuron -> Linear -> neuron -> Linear readout, time-major [T, N, F]."""

    def __init__(self, kind, F=5, H=7, C=3, **kw):
        super().__init__()
        self.fc1, self.sn1 = nn.Linear(F, H), gradflow.build_neuron(kind, **kw)
        self.fc2, self.sn2 = nn.Linear(H, H), gradflow.build_neuron(kind, **kw)
        self.out = nn.Linear(H, C)

    def forward(self, x):
        return self.out(self.sn2(self.fc2(self.sn1(self.fc1(x)))))


class TinyConv(nn.Module):
    """Conv -> BN -> neuron -> Conv -> neuron -> pool -> Linear, time-major [T, N, C, H, W]."""

    def __init__(self, kind, **kw):
        super().__init__()
        self.c1, self.bn1, self.sn1 = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), gradflow.build_neuron(kind, **kw)
        self.c2, self.sn2 = nn.Conv2d(4, 4, 3, padding=1), gradflow.build_neuron(kind, **kw)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        T, N = x.shape[:2]
        h = self.bn1(self.c1(x.flatten(0, 1))).unflatten(0, (T, N))
        h = self.sn1(h * 2.0)
        h = self.sn2(self.c2(h.flatten(0, 1)).unflatten(0, (T, N)) * 2.0)
        return self.fc(h.mean((-1, -2)))


def _capture_u(model):
    """Independently of the recorder: retain_grad on every u[t] via a step observer."""
    store, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            def obs(mod, trace, name=name or m.kind):
                for u in trace.u:
                    u.retain_grad()
                store[name] = (trace.u, trace.spikes)
                trace.spikes.retain_grad()
            handles.append(m.register_step_observer(obs))
    return store, handles


def _make(kind, arch, seed=0):
    torch.manual_seed(seed)
    if arch == "mlp":
        model = TinyMLP(kind, tau=2.0).double()
        x = torch.randn(6, 9, 5, dtype=torch.float64) * 1.5 + 0.6
    else:
        model = TinyConv(kind, tau=1.5, surrogate="sigmoid").double()
        x = torch.randn(5, 3, 2, 6, 6, dtype=torch.float64) + 0.5
    y = torch.randint(0, 3, (x.shape[1],))
    return model, x, y


def _fused_copy(model):
    fused = copy.deepcopy(model)
    for m in fused.modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            m.backend = "fused"
    return fused


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_closure_against_autograd(kind, arch, backend):
    """float64: P + temporal = dL/du of autograd (torch backend, captured independently) to 1e-12."""
    model, x, y = _make(kind, arch)
    recorded = model if backend == "torch" else _fused_copy(model)
    store, handles = _capture_u(model)
    if backend == "fused":  # the independent dL/du comes from the torch-backend twin
        gradflow.losses.ce_over_time(model(x), y).backward()
    with gradflow.record(recorded, keep_tensors=True) as rec:
        loss = gradflow.losses.ce_over_time(recorded(x), y)
        loss.backward()
    for h in handles:
        h.remove()
    per = rec.per_step()
    assert list(per.columns[: len(PER_STEP_COLUMNS)]) == PER_STEP_COLUMNS
    for name, (us, spikes) in store.items():
        kept = rec.tensors(name)
        true_delta = torch.stack([u.grad for u in us])
        g_out = spikes.grad
        sur = model.get_submodule(name).sur
        v_th = model.get_submodule(name).v_threshold
        true_P = g_out * gradflow.surrogate.surrogate_grad(torch.stack(us).detach() - v_th, sur)
        scale = true_delta.abs().max()
        assert scale > 0
        if backend == "torch":
            assert torch.equal(kept["delta"], true_delta)  # the recorded delta is autograd's
        else:
            torch.testing.assert_close(kept["delta"], true_delta, rtol=0, atol=1e-12 * scale)
        # spatial matches its definition, spatial + temporal closes on the independent dL/du
        torch.testing.assert_close(kept["spatial"], true_P, rtol=0, atol=1e-12 * scale)
        closure = kept["spatial"] + kept["temporal"]
        assert ((closure - true_delta).abs().max() / scale).item() < 1e-12
        assert kept["temporal"][-1].abs().max().item() == 0.0
        # sum over sources of pair[t, t'] reproduces delta[t]
        for t, rows in enumerate(kept["pairs"]):
            assert ((rows.sum(0) - true_delta[t]).abs().max() / scale).item() < 1e-12
            torch.testing.assert_close(rows[0], true_P[t], rtol=0, atol=1e-12 * scale)
        # the table's norms are the norms of those vectors
        sub = per[per.layer == name].sort_values("t")
        torch.testing.assert_close(
            torch.tensor(sub.grad_total_norm.values), true_delta.flatten(1).norm(dim=1), rtol=1e-9, atol=0
        )


EXTRA = {"lif": [dict(), dict(v_reset=0.3), dict(decay_input=True, v_reset=-0.2)],
         "plif": [dict(), dict(v_reset=0.3, decay_input=True)],
         "clif": [dict(), dict(m_grad=False), dict(decay_input=True)]}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("surrogate", ["rectangle", "atan"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("extra", range(3))
def test_pairs_ground_truth(kind, surrogate, detach_reset, backend, extra):
    """Single layer, L = sum_t <e[t], s[t]>: pair[t, t'] == d<e[t'], s[t']>/du[t] by autograd, per source."""
    if extra >= len(EXTRA[kind]):
        pytest.skip("no such option set")
    torch.manual_seed(1)
    T, N = 6, 40
    kw = dict(tau=1.7, surrogate=surrogate, detach_reset=detach_reset, **EXTRA[kind][extra])
    neuron = gradflow.build_neuron(kind, **kw).double()
    x = (torch.randn(T, N, dtype=torch.float64) * 0.8 + 0.6).requires_grad_()
    e = torch.randn(T, N, dtype=torch.float64)
    recorded = neuron if backend == "torch" else _fused_copy(neuron)
    store, handles = _capture_u(neuron)
    if backend == "fused":
        (e * neuron(x)).sum().backward(retain_graph=True)
    with gradflow.record(recorded, keep_tensors=True) as rec:
        s = recorded(x)
        (e * s).sum().backward(retain_graph=True)
    for h in handles:
        h.remove()
    us, spikes = store[neuron.kind]
    kept = rec.tensors(neuron.kind)
    torch.testing.assert_close(kept["spatial"] + kept["temporal"], torch.stack([u.grad for u in us]),
                               rtol=1e-12, atol=1e-12)
    pairs = rec.pairs()
    assert list(pairs.columns) == PAIRS_COLUMNS
    assert len(pairs) == T * (T + 1) // 2
    for tp in range(T):
        grads = torch.autograd.grad((e[tp] * spikes[tp]).sum(), us[: tp + 1], retain_graph=True, allow_unused=True)
        for t, g in enumerate(grads):
            g = torch.zeros(N, dtype=torch.float64) if g is None else g
            row = pairs[(pairs.t == t) & (pairs.t_source == tp)]
            assert row.lag.item() == tp - t
            assert row.norm.item() == pytest.approx(g.norm().item(), rel=1e-9, abs=1e-12)
            torch.testing.assert_close(kept["pairs"][t][tp - t], g, rtol=1e-9, atol=1e-12)


def test_rectangle_alpha_theta_eps_is_zero_or_gamma():
    torch.manual_seed(2)
    tau, theta = 2.0, 1.0
    neuron = gradflow.LIF(tau=tau, v_threshold=theta, surrogate="rectangle", alpha=theta)
    x = (torch.randn(8, 1000) * 0.7 + 0.6).requires_grad_()
    with gradflow.record(neuron, keep_tensors=True) as rec:
        (neuron(x) * torch.randn(8, 1000)).sum().backward()
    kept = rec.tensors("lif")
    gamma = 1 - 1 / tau
    eps = kept["eps"][:-1]
    values = set(eps.unique().tolist())
    assert values <= {0.0, gamma} and len(values) == 2
    inside = (kept["u"] - theta).abs() <= theta / 2
    assert inside[:-1].any()
    # exactly zero (not merely small) inside the window
    assert (kept["temporal"][inside] == 0).all()
    per = rec.per_step()
    frac_zero = (kept["temporal"] == 0).double().mean(1)
    torch.testing.assert_close(torch.tensor(per.temporal_zero_fraction.values), frac_zero)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("pairs", [False, True])
def test_eps_every_step_against_autograd(kind, backend, pairs):
    """eps[t] = du[t+1]/du[t] at fixed input (and fixed m[t-1]) at *every* step, by autograd through the
    kind's own step; the recorder computes each step's Jacobian into one reused workspace, so a value
    kept or reduced after the next step overwrote it would show up here."""
    torch.manual_seed(4)
    T, N = 7, 300
    kw = dict(tau=1.8, surrogate="sigmoid", **({"decay_input": True} if kind == "clif" else {}))
    neuron = gradflow.build_neuron(kind, **kw).double()
    recorded = neuron if backend == "torch" else _fused_copy(neuron)
    x = (torch.randn(T, N, dtype=torch.float64) * 0.8 + 0.7).requires_grad_()
    with gradflow.record(recorded, pairs=pairs, keep_tensors=True) as rec:
        (recorded(x) * torch.randn(T, N, dtype=torch.float64)).sum().backward()
    kept = rec.tensors(kind)
    dyn, p, k = neuron.dynamics, neuron.params, neuron.inv_tau()
    k = k.detach() if isinstance(k, torch.Tensor) else k
    with torch.no_grad():
        state, states = dyn.init_state(x[0], p), []
        for t in range(T):
            states.append(state)
            _, state, _ = dyn.step(x[t].detach(), state, p, k)
    per = rec.per_step().sort_values("t")
    for t in range(T - 1):
        u = kept["u"][t].clone().requires_grad_()
        _, after = dyn.fire_reset(u, states[t], p, k)
        u_next = dyn.charge(x[t + 1].detach(), after, p, k)
        (true,) = torch.autograd.grad(u_next.sum(), u)
        torch.testing.assert_close(kept["eps"][t], true, rtol=1e-12, atol=1e-12)
        assert per.eps_mean.iloc[t] == pytest.approx(true.mean().item(), rel=1e-9, abs=1e-12)
        assert per.eps_rms.iloc[t] == pytest.approx(true.pow(2).mean().sqrt().item(), rel=1e-9, abs=1e-12)
    assert kept["eps"][T - 1].abs().max().item() == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_bit_identical_and_hooks_removed(kind):
    model, x, y = _make(kind, "conv")
    model2 = copy.deepcopy(model)
    gradflow.losses.ce_over_time(model(x), y).backward()
    rec = gradflow.record(model2, pairs=True, weights=True)
    with rec:
        assert rec.num_hooks > 0
        gradflow.losses.ce_over_time(model2(x), y).backward()
    assert rec.num_hooks == 0
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(p1.grad, p2.grad), n1
    for m in model2.modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            assert len(m._step_observers) == 0


def test_hooks_removed_after_exception_and_flags_restored():
    model, x, y = _make("clif", "mlp")
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rec = gradflow.record(model)
    with pytest.raises(RuntimeError, match="boom"):
        with rec:
            out = model(x)
            model.eval()
            model.fc1.weight.requires_grad_(False)
            raise RuntimeError("boom")
    assert rec.num_hooks == 0
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for m in model.modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            assert not m._step_observers
    del out


@pytest.mark.parametrize("kind", KINDS)
def test_weight_split_adds_up(kind):
    model, x, y = _make(kind, "conv")
    with gradflow.record(model, weights=True) as rec:
        gradflow.losses.ce_over_time(model(x), y).backward()
    w = rec.weights()
    assert list(w.columns[: len(WEIGHTS_COLUMNS)]) == WEIGHTS_COLUMNS
    by_layer = {name: set(g.param) for name, g in w.groupby("layer")}
    assert by_layer["sn1"] == {"c1.weight", "c1.bias", "bn1.weight", "bn1.bias"}
    assert by_layer["sn2"] == {"c2.weight", "c2.bias"}
    params = dict(model.named_parameters())
    for row in w.itertuples():
        assert row.total_norm == pytest.approx(params[row.param].grad.norm().item(), rel=1e-8, abs=1e-12)
        assert row.total_norm <= row.spatial_norm + row.temporal_norm + 1e-12
    # vectors: spatial + temporal == grad, checked by recomputing with the kept tensors
    with gradflow.record(model, weights=False, keep_tensors=True) as rec2:
        model.zero_grad()
        xx = x.clone()
        store = {}
        h = model.sn2.register_step_observer(lambda m, tr: store.setdefault("x", tr.x))
        gradflow.losses.ce_over_time(model(xx), y).backward(retain_graph=True)
        h.remove()
    kept = rec2.tensors("sn2")
    gs = torch.autograd.grad(store["x"], [model.c2.weight], kept["spatial"], retain_graph=True)[0]
    gt = torch.autograd.grad(store["x"], [model.c2.weight], kept["temporal"], retain_graph=True)[0]
    torch.testing.assert_close(gs + gt, model.c2.weight.grad, rtol=1e-9, atol=1e-12)
    row = w[(w.layer == "sn2") & (w.param == "c2.weight")]
    assert row.spatial_norm.item() == pytest.approx(gs.norm().item(), rel=1e-9)
    assert row.temporal_norm.item() == pytest.approx(gt.norm().item(), rel=1e-9)


def test_steps_and_max_lag():
    model, x, y = _make("lif", "mlp")
    with gradflow.record(model, max_lag=2) as rec:
        for _ in range(3):
            model.zero_grad()
            gradflow.losses.ce_over_time(model(x), y).backward()
        with torch.no_grad():
            model(x)  # not recorded
    per, lags, pairs = rec.per_step(), rec.lags(), rec.pairs()
    assert sorted(per.step.unique()) == [0, 1, 2]
    assert sorted(lags.lag.unique()) == [0, 1, 2]
    assert pairs.lag.max() == 2
    assert list(lags.columns) == LAGS_COLUMNS
    assert (per.groupby("step").layer.nunique() == 2).all()
    assert list(per[per.step == 0].drop_duplicates("layer").layer) == ["sn1", "sn2"]
    # identical inputs and weights: identical rows for every step
    a = per[per.step == 0].drop(columns="step").reset_index(drop=True)
    b = per[per.step == 2].drop(columns="step").reset_index(drop=True)
    assert a.equals(b)
    full = gradflow.record(model)
    with full:
        gradflow.losses.ce_over_time(model(x), y).backward()
    fl = full.pairs()
    assert fl.lag.max() == x.shape[0] - 1
    merged = pairs[pairs.step == 0].merge(fl, on=["layer", "t", "t_source"], suffixes=("", "_full"))
    assert len(merged) == len(pairs[pairs.step == 0])
    assert (merged.norm - merged.norm_full).abs().max() == pytest.approx(0.0, abs=1e-6)


def test_truncated_neurons_cut_pairs():
    torch.manual_seed(3)
    neuron = gradflow.LIF(truncate=2).double()
    x = (torch.randn(6, 30, dtype=torch.float64) + 0.7).requires_grad_()
    store, handles = _capture_u(neuron)
    with gradflow.record(neuron, keep_tensors=True) as rec:
        (neuron(x) * torch.randn(6, 30, dtype=torch.float64)).sum().backward()
    us, _ = store["lif"]
    kept = rec.tensors("lif")
    torch.testing.assert_close(kept["spatial"] + kept["temporal"], torch.stack([u.grad for u in us]))
    pairs = rec.pairs()
    crossing = pairs[(pairs.t // 2) != (pairs.t_source // 2)]
    assert (crossing.norm == 0).all()
    assert (pairs[(pairs.lag == 1) & (pairs.t % 2 == 0)].norm > 0).any()


def test_model_without_neurons_is_a_clear_error():
    with pytest.raises(UsageError, match="no gradflow spiking neurons"):
        gradflow.record(nn.Linear(2, 2))


def test_nothing_recorded_is_an_error_not_an_empty_table():
    model, x, _ = _make("lif", "mlp")
    with gradflow.record(model) as rec:
        model(x)
    with pytest.raises(UsageError, match="Nothing was recorded"):
        rec.per_step()


@pytest.mark.parametrize("kind", KINDS)
def test_columns_are_the_tables_without_a_dataframe(kind):
    """Recorder.columns(name) holds the same values, dtypes and column order as the DataFrame methods;
    unknown names and tables that were not recorded are clear errors."""
    import pandas as pd

    model, x, y = _make(kind, "conv")
    with gradflow.record(model, pairs=True, weights=True) as rec:
        for _ in range(2):
            nn.functional.cross_entropy(model(x).mean(0), y).backward()
    for name, frame in (("per_step", rec.per_step()), ("pairs", rec.pairs()), ("lags", rec.lags()),
                        ("weights", rec.weights()), ("layer_info", rec.layer_info())):
        pd.testing.assert_frame_equal(pd.DataFrame(rec.columns(name)), frame, check_exact=True)
    with pytest.raises(UsageError, match="Unknown table"):
        rec.columns("summary")
    with gradflow.record(model, pairs=False, weights=False) as rec:
        nn.functional.cross_entropy(model(x).mean(0), y).backward()
    for name in ("pairs", "lags", "weights"):
        with pytest.raises(UsageError, match="not recorded"):
            rec.columns(name)


def test_t_equals_one():
    neuron = gradflow.CLIF()
    x = torch.randn(1, 10, requires_grad=True)
    with gradflow.record(neuron) as rec:
        neuron(x + 1).sum().backward()
    assert len(rec.per_step()) == 1 and rec.lags().relative.tolist() == [1.0]


@pytest.mark.parametrize("kind", KINDS)
def test_fused_backend_records_the_same_decomposition(kind):
    """Fused neurons hand the recorder their own split; tables equal the hook path's, gradients untouched."""
    model, x, y = _make(kind, "conv")
    fused = copy.deepcopy(model)
    for m in fused.modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            m.backend = "fused"
    plain = copy.deepcopy(fused)
    with gradflow.record(model, keep_tensors=True) as r1:
        gradflow.losses.ce_over_time(model(x), y).backward()
    with gradflow.record(fused, keep_tensors=True) as r2:
        gradflow.losses.ce_over_time(fused(x), y).backward()
    assert r2.num_hooks == 0
    gradflow.losses.ce_over_time(plain(x), y).backward()
    for (n, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
        assert torch.equal(p.grad, q.grad), n  # recording the fused path changes no bit either
    for table in ("per_step", "lags", "pairs", "weights"):
        a, b = getattr(r1, table)(), getattr(r2, table)()
        assert a.shape == b.shape
        for col in ("grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "norm", "spatial_norm",
                    "temporal_norm", "total_norm"):
            if col in a.columns:
                assert b[col].to_numpy() == pytest.approx(a[col].to_numpy(), rel=1e-9, abs=1e-12), (table, col)
    for name in ("sn1", "sn2"):
        k1, k2 = r1.tensors(name), r2.tensors(name)
        torch.testing.assert_close(k2["spatial"] + k2["temporal"], k1["delta"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", ["inf", "nan", "huge_finite"])
def test_nonfinite_count_per_step_is_exact(case):
    """``nonfinite`` counts the non-finite elements of dL/du[t] exactly: the CPU shortcut (finite norms
    mean no count is needed) must not hide an inf or NaN, nor count finite values whose squares overflow."""
    torch.manual_seed(5)
    T, n, E = 5, 4, 16  # 4 samples of 16 neurons: a per-sample norm of 3e30 overflows float32
    neuron = gradflow.LIF(tau=2.0, surrogate="sigmoid")
    x = (torch.randn(T, n, E) * 0.8 + 0.7).requires_grad_()
    e = torch.randn(T, n, E)
    bad = {"inf": float("inf"), "nan": float("nan"), "huge_finite": 3e30}[case]
    e[3, 0, 5], e[3, 2, 9], e[1, 1, 7] = bad, -bad, bad
    with gradflow.record(neuron, keep_tensors=True) as rec:
        (neuron(x) * e).sum().backward()
    delta = rec.tensors("lif")["delta"]
    expected = (~torch.isfinite(delta)).flatten(1).sum(dim=1).tolist()
    per = rec.per_step().sort_values("t")
    assert per.nonfinite.tolist() == expected
    assert (sum(expected) > 0) == (case != "huge_finite")
    assert not np.isfinite(per.grad_total_norm.iloc[3])  # the norm is not finite: the elements were counted


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_spike_counts_per_step_and_sample_are_the_layers_spikes(backend):
    """``firing_rate`` per step and the per-sample spike counts of ``samples()`` are those of the spikes
    the layer put out, step by step and sample by sample (not only in total)."""
    torch.manual_seed(2)
    T, n, E = 5, 3, 16
    neuron = gradflow.LIF(tau=2.0, backend=backend)
    x = (torch.randn(T, n, E) * 0.8 + 0.9 + torch.linspace(-0.5, 0.5, T).view(T, 1, 1)).requires_grad_()
    with gradflow.record(neuron) as rec:
        s = neuron(x)
        (s * torch.randn(T, n, E)).sum().backward()
    per = rec.per_step().sort_values("t")
    np.testing.assert_array_equal(per.firing_rate.to_numpy(), s.detach().double().sum(dim=(1, 2)).numpy() / (n * E))
    counts = rec.samples()["lif"].spikes                     # [n, T]
    np.testing.assert_array_equal(counts, s.detach().sum(2).T.double().numpy())
    assert len(set(per.firing_rate.tolist())) > 1           # the steps differ, so an order mix-up shows
