"""Recording only observes: with gradflow.record on (every combination of pairs, weights, backend and
truncation), every user tensor hook, retain_grad(), module full-backward hook, parameter hook and
post-accumulate-grad hook fires as often, with bit-identical values, as without it, and every .grad
(leaf or retained) is bit-identical. The model has batch norm (merged and per step) and a residual block."""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict

import pandas as pd
import pytest
import torch
from torch import nn

import gradflow


class Log:
    """Every value a user's instrumentation sees, in firing order per name (cloned)."""

    def __init__(self):
        self.events = defaultdict(list)

    def tensor_hook(self, name):
        def hook(g):
            self.events[name].append(g.detach().clone())
        return hook

    def module_hook(self, name):
        def hook(module, grad_input, grad_output):
            vals = [None if g is None else g.detach().clone() for g in tuple(grad_input) + tuple(grad_output)]
            self.events[name].append(vals)
        return hook

    def post_acc_hook(self, name):
        def hook(param):
            self.events[name].append(param.grad.detach().clone())
        return hook


class ResBNNet(nn.Module):
    """conv-BN-neuron, a residual block (conv-BN-neuron-conv-BN + 1x1 conv shortcut), a readout.

    Time-major ``[T, N, C, H, W]``; ``bn0`` runs merged over T, ``bn1`` per step (a stack of T calls).
    The forward puts user instrumentation on the tensors between spiking layers when ``log`` is set.
    """

    def __init__(self, kind, **kw):
        super().__init__()
        self.conv0, self.bn0, self.sn0 = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), gradflow.build_neuron(kind, **kw)
        self.conv1, self.bn1, self.sn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), gradflow.build_neuron(kind, **kw)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.shortcut = nn.Conv2d(4, 4, 1)
        self.sn2 = gradflow.build_neuron(kind, **kw)
        self.fc = nn.Linear(4, 3)
        self.log = None

    def _watch(self, name, h):
        if self.log is not None and h.requires_grad:
            h.register_hook(self.log.tensor_hook(name + ".hook"))
            h.retain_grad()
            self.retained[name] = h
        return h

    def forward(self, x):
        self.retained = {}
        T, N = x.shape[:2]
        merge = lambda z: z.flatten(0, 1)  # noqa: E731
        split = lambda z: z.unflatten(0, (T, N))  # noqa: E731
        h = self._watch("c0", self.conv0(merge(x)))
        s0 = self.sn0(self._watch("x0", split(self.bn0(h)) * 1.5))
        h = self._watch("c1", split(self.conv1(merge(s0))))
        h = torch.stack([self.bn1(h[t]) for t in range(T)])
        s1 = self.sn1(self._watch("x1", h * 2.0))
        h = self._watch("c2", self.bn2(self.conv2(merge(s1))))
        res = self._watch("res", split(h) + split(self.shortcut(merge(s0))))
        s2 = self.sn2(self._watch("x2", res * 2.0))
        return self.fc(s2.mean((-1, -2)))


def _instrument(model, log):
    model.log = log
    for name in ("conv0", "bn0", "conv1", "bn1", "conv2", "bn2", "shortcut", "sn0", "sn1", "sn2", "fc"):
        getattr(model, name).register_full_backward_hook(log.module_hook(name + ".module"))
    for name, p in model.named_parameters():
        p.register_hook(log.tensor_hook(name + ".param_hook"))
        p.register_post_accumulate_grad_hook(log.post_acc_hook(name + ".post_acc"))


def _run(model, x, y, rec_kw=None, steps=2):
    log = Log()
    _instrument(model, log)
    xs = []
    grads = []
    for i in range(steps):  # .grad accumulates over the two backward passes, as a user would see it
        xi = (x + 0.1 * i).clone().requires_grad_()
        xs.append(xi)
        if rec_kw is None:
            gradflow.losses.ce_over_time(model(xi), y).backward()
        else:
            with gradflow.record(model, **rec_kw) as rec:
                gradflow.losses.ce_over_time(model(xi), y).backward()
            assert rec.num_hooks == 0 and rec.steps == 1
        grads.append({k: v.grad.clone() for k, v in model.retained.items()})
    leaf = {n: p.grad.clone() for n, p in model.named_parameters()}
    leaf.update({f"input{i}": xi.grad.clone() for i, xi in enumerate(xs)})
    return log, grads, leaf


def _assert_identical(a, b, where):
    assert type(a) is type(b), where
    if isinstance(a, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_identical(u, v, f"{where}[{i}]")
    elif a is None:
        assert b is None, where
    else:
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where


COMBOS = list(itertools.product([False, True], [False, True], ["torch", "fused"], [None, 2]))


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
@pytest.mark.parametrize("combo", range(len(COMBOS)), ids=lambda i: "pairs{}-weights{}-{}-trunc{}".format(*COMBOS[i]))
def test_recording_fires_no_user_hook_and_changes_no_bit(kind, combo):
    pairs, weights, backend, truncate = COMBOS[combo]
    torch.manual_seed(0)
    base = ResBNNet(kind, tau=1.7, surrogate="atan", backend=backend, truncate=truncate).double().train()
    x = torch.randn(4, 3, 2, 5, 5, dtype=torch.float64) + 0.4
    y = torch.randint(0, 3, (3,))
    plain_log, plain_retained, plain_leaf = _run(copy.deepcopy(base), x, y)
    rec_log, rec_retained, rec_leaf = _run(copy.deepcopy(base), x, y, dict(pairs=pairs, weights=weights))
    assert set(plain_log.events) == set(rec_log.events)
    assert {k for k in plain_log.events if k.endswith(".module")} >= {"conv0.module", "bn1.module", "sn2.module"}
    for name, events in plain_log.events.items():
        assert len(events) == len(rec_log.events[name]) > 0, name  # same number of calls
        _assert_identical(events, rec_log.events[name], name)      # bit-identical values
    for step, (a, b) in enumerate(zip(plain_retained, rec_retained)):
        assert set(a) == set(b) == {"c0", "x0", "c1", "x1", "c2", "res", "x2"}
        for name in a:
            _assert_identical(a[name], b[name], f"retained {name} step {step}")
    for name in plain_leaf:
        _assert_identical(plain_leaf[name], rec_leaf[name], f"leaf {name}")


def test_weight_split_region_holds_the_residual_and_both_batch_norms():
    torch.manual_seed(1)
    model = ResBNNet("lif", tau=1.7, surrogate="atan").double().train()
    x = torch.randn(4, 3, 2, 5, 5, dtype=torch.float64) + 0.4
    y = torch.randint(0, 3, (3,))
    with gradflow.record(model, weights=True) as rec:
        gradflow.losses.ce_over_time(model(x), y).backward()
    w = rec.weights()
    by_layer = {name: set(g.param) for name, g in w.groupby("layer")}
    assert by_layer["sn0"] == {"conv0.weight", "conv0.bias", "bn0.weight", "bn0.bias"}
    assert by_layer["sn1"] == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"}
    assert by_layer["sn2"] == {"conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "shortcut.weight",
                               "shortcut.bias"}
    params = dict(model.named_parameters())
    for row in w.itertuples():  # each parameter feeds one layer here: the split adds up to its gradient
        assert row.total_norm == pytest.approx(params[row.param].grad.norm().item(), rel=1e-10, abs=1e-14)
        assert row.spatial_projection + row.temporal_projection == pytest.approx(1.0, abs=1e-12)


def test_a_region_shared_by_two_layers_is_split_exactly():
    """Two neuron layers on the same current: the main backward's total mixes them, so both parts of
    each layer are back-propagated (no hook), and the two layers' totals add up to the gradient."""
    torch.manual_seed(2)

    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.a, self.b = nn.Linear(5, 6), gradflow.LIF(surrogate="atan"), gradflow.CLIF(surrogate="atan")
            self.out = nn.Linear(12, 2)

        def forward(self, x):
            h = self.fc(x)
            return self.out(torch.cat([self.a(h), self.b(h * 1.2)], -1))

    model = Fork().double()
    x = torch.randn(5, 4, 5, dtype=torch.float64) + 0.5
    with gradflow.record(model, keep_tensors=True) as rec:
        model(x).sum().backward()
    w = rec.weights()
    g = model.fc.weight.grad
    rows = w[w.param == "fc.weight"]
    assert len(rows) == 2
    # the two layers' gradients add up to the parameter's (checked through the inner products)
    gs = {r.layer: r for r in rows.itertuples()}
    through = {}
    for name, scale in (("a", 1.0), ("b", 1.2)):
        kept = rec.tensors(name)
        through[name] = torch.autograd.functional.vjp(
            lambda W, scale=scale: torch.nn.functional.linear(x, W, model.fc.bias) * scale,
            model.fc.weight.detach(), kept["delta"])[1]
        assert gs[name].total_norm == pytest.approx(through[name].norm().item(), rel=1e-10)
        assert gs[name].spatial_projection + gs[name].temporal_projection == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(through["a"] + through["b"], g, rtol=1e-12, atol=1e-14)


def _mm_cases():
    """(name, make) pairs: ``make(dtype)`` returns an output whose grad_fn is an addmm/mm node whose first
    input (the data or a previous layer's spikes) needs no gradient from the region."""
    def linear(dtype, shape=(7, 5), bias=True, requires_grad=True, n_out=3):
        lin = nn.Linear(shape[-1], n_out, bias=bias).to(dtype)
        return lin(torch.randn(*shape, dtype=dtype, requires_grad=requires_grad))

    def raw_addmm(dtype):
        w = torch.randn(5, 3, dtype=dtype, requires_grad=True)       # row-major mat2
        b = torch.randn(3, dtype=dtype, requires_grad=True)
        return torch.addmm(b, torch.randn(7, 5, dtype=dtype, requires_grad=True), w, beta=2.0, alpha=0.5)

    return [("linear", linear), ("linear_no_bias", lambda d: linear(d, bias=False)),
            ("linear_3d", lambda d: linear(d, shape=(2, 7, 5))),
            ("linear_data_input", lambda d: linear(d, requires_grad=False)), ("addmm_alpha_beta", raw_addmm),
            # one input or one output feature: strides that read as both row- and column-major
            ("linear_one_in", lambda d: linear(d, shape=(7, 1))), ("linear_one_out", lambda d: linear(d, n_out=1))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", [c for c, _ in _mm_cases()])
def test_linear_weight_gradient_alone_has_the_nodes_bits(case, dtype):
    """The region computes a linear map's weight and bias gradients without its input gradient, with
    autograd's own formula: bit for bit what calling the node gives."""
    from gradflow.recorder.region import _call

    torch.manual_seed(3)
    out = dict(_mm_cases())[case](dtype)
    node = out.grad_fn
    while node.name() not in ("AddmmBackward0", "MmBackward0"):
        node = node.next_functions[0][0]
    first = 1 if node.name() == "AddmmBackward0" else 0   # the input's slot: a boundary, not kept
    params = {j for j, (nxt, _) in enumerate(node.next_functions) if nxt is not None and j != first}
    keep = {nxt for j, (nxt, _) in enumerate(node.next_functions) if j in params and nxt.name() == "TBackward0"}
    grad = torch.randn(tuple(node._input_metadata[0].shape), dtype=dtype)
    got = _call(node, {0: grad}, keep, [(j, 0) for j in params])
    want = node(grad)
    assert got[first] is None                   # the input gradient is skipped
    for j in params:
        assert got[j] is not None and torch.equal(got[j], want[j]), j
        assert got[j].stride() == want[j].stride()


def test_mlp_weight_split_is_unchanged_by_the_linear_shortcut(monkeypatch):
    """The weights table of an MLP (Linear -> LIF -> Linear -> LIF -> readout) is the same with the
    shortcut as with the nodes called in full."""
    import gradflow.recorder.region as region

    def run():
        torch.manual_seed(4)
        net = gradflow.models.build("mlp", neuron="lif", num_classes=3, T=4, in_features=6, widths=(5, 4)).double()
        x = torch.rand(8, 6, dtype=torch.float64)
        with gradflow.record(net, weights=True, pairs=True) as rec:
            gradflow.losses.ce_over_time(net(x), torch.arange(8) % 3).backward()
        return rec.weights(), {n: p.grad.clone() for n, p in net.named_parameters()}

    fast, fast_grads = run()
    monkeypatch.setattr(region, "_mm_backward", lambda *a, **k: None)
    full, full_grads = run()
    assert len(fast) > 0
    pd.testing.assert_frame_equal(fast, full, check_exact=True)
    for name in full_grads:
        assert torch.equal(fast_grads[name], full_grads[name]), name


def test_two_linear_maps_in_one_region_are_split_as_before(monkeypatch):
    """A region with two linear maps (the second one's input gradient is needed to reach the first's
    weights: the node is called in full) and one after spikes (the shortcut): the same weights table
    as with every node called in full, and the split still adds up to each gradient."""
    import gradflow.recorder.region as region

    class TwoMaps(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 4, bias=False)
            self.sn, self.c, self.sn2 = gradflow.LIF(surrogate="atan"), nn.Linear(4, 4), gradflow.CLIF(surrogate="atan")
            self.out = nn.Linear(4, 3)

        def forward(self, x):
            return self.out(self.sn2(self.c(self.sn(self.b(torch.relu(self.a(x)))))))

    def run():
        torch.manual_seed(5)
        model = TwoMaps().double()
        with torch.no_grad():
            model.b.weight.abs_().mul_(2.0)            # positive currents: sn spikes, c.weight gets a gradient
        x = 3.0 * torch.rand(5, 8, 6, dtype=torch.float64)
        with gradflow.record(model, weights=True) as rec:
            model(x).sum().backward()
        return rec.weights(), dict(model.named_parameters())

    fast, params = run()
    for row in fast.itertuples():
        assert row.total_norm == pytest.approx(params[row.param].grad.norm().item(), rel=1e-10, abs=1e-14)
    assert (fast.spatial_norm > 0).all()
    monkeypatch.setattr(region, "_mm_backward", lambda *a, **k: None)
    full, _ = run()
    pd.testing.assert_frame_equal(fast, full, check_exact=True)


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_linear_regions_fire_no_user_hook_and_change_no_bit(backend):
    """The linear shortcut of the weight split (a spiking layer fed by nn.Linear, 2-D and merged 3-D)
    leaves every user hook, retained grad and parameter grad as without recording."""

    class LinearNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc0, self.sn0 = nn.Linear(6, 5), gradflow.build_neuron("lif", surrogate="atan", backend=backend)
            self.fc1, self.sn1 = nn.Linear(5, 4), gradflow.build_neuron("clif", surrogate="atan", backend=backend)
            self.out = nn.Linear(4, 3)
            self.log, self.retained = None, {}

        def _watch(self, name, h):
            if self.log is not None:
                h.register_hook(self.log.tensor_hook(name + ".hook"))
                h.retain_grad()
                self.retained[name] = h
            return h

        def forward(self, x):                      # x [T, N, 6]
            s0 = self.sn0(self._watch("x0", self.fc0(x)))                       # 3-D input: merged addmm
            s1 = self.sn1(self._watch("x1", self.fc1(s0.flatten(0, 1)).unflatten(0, x.shape[:2])))
            return self.out(s1)

    def run(rec_kw):
        torch.manual_seed(6)
        model = LinearNet().double()
        log = Log()
        model.log = log
        for name in ("fc0", "fc1", "sn0", "sn1", "out"):
            getattr(model, name).register_full_backward_hook(log.module_hook(name + ".module"))
        for name, p in model.named_parameters():
            p.register_hook(log.tensor_hook(name + ".param_hook"))
            p.register_post_accumulate_grad_hook(log.post_acc_hook(name + ".post_acc"))
        x = (2.0 * torch.rand(5, 4, 6, dtype=torch.float64)).requires_grad_()
        y = torch.arange(4) % 3
        if rec_kw is None:
            gradflow.losses.ce_over_time(model(x), y).backward()
        else:
            with gradflow.record(model, **rec_kw) as rec:
                gradflow.losses.ce_over_time(model(x), y).backward()
            assert len(rec.weights()) > 0
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        grads.update({k: v.grad.clone() for k, v in model.retained.items()}, input=x.grad.clone())
        return log, grads

    plain_log, plain = run(None)
    rec_log, rec = run(dict(weights=True, pairs=True))
    assert set(plain_log.events) == set(rec_log.events)
    for name, events in plain_log.events.items():
        assert len(events) == len(rec_log.events[name]) > 0, name
        _assert_identical(events, rec_log.events[name], name)
    assert set(plain) == set(rec)
    for name in plain:
        _assert_identical(plain[name], rec[name], name)
