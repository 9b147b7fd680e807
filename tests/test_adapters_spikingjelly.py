"""SpikingJelly -> gradflow: every converted neuron computes what SpikingJelly computes (same spikes,
outputs and input/parameter gradients to float32 rounding), against the real library; everything else is
refused in one sentence naming the class and the option."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import gradflow
from gradflow.errors import UsageError
from gradflow.neurons import LIF, PLIF
from gradflow.neurons.extra import IF

sj = pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

SURROGATES = {
    "sigmoid": (lambda: surrogate.Sigmoid(alpha=3.0), "sigmoid", 3.0),
    "atan": (lambda: surrogate.ATan(alpha=2.5), "atan", 2.5),
    "triangle": (lambda: surrogate.PiecewiseQuadratic(alpha=1.5), "triangle", 1.5),
    "rect": (lambda: surrogate.Rect(alpha=2.0), "rectangle", 0.5),  # SJ alpha = height, gradflow alpha = width
}


def _node(kind, v_reset, sur, decay_input, detach_reset, tau=2.5):
    common = dict(v_threshold=1.0, v_reset=v_reset, surrogate_function=SURROGATES[sur][0](),
                  detach_reset=detach_reset, step_mode="m")
    if kind == "plif":
        node = neuron.ParametricLIFNode(init_tau=tau, decay_input=decay_input, **common)
        with torch.no_grad():
            node.w.fill_(-0.3)  # tau = 1 + exp(-0.3), not the init value
        return node
    return neuron.LIFNode(tau=tau, decay_input=decay_input, **common)


def _input(T=8, shape=(4, 30), v_reset=None, decay_input=False, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = 1.8 if decay_input else 0.7
    return (torch.randn(T, *shape, generator=g) * 0.9 + base - (v_reset or 0.0)).to(dtype)


def assert_same(ref_module, ours, x, *, rtol=1e-5, atol=1e-6, params=()):
    """Same spikes, gradients of x (and of the named parameters) to float32 rounding."""
    e = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, s2 = ref_module(x1), ours(x2)
    assert torch.equal(s1, s2)
    assert 0.03 < s1.float().mean().item() < 0.8, s1.float().mean()  # many threshold crossings
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=rtol, atol=atol)
    for a, b in params:
        torch.testing.assert_close(b.grad.reshape(a.grad.shape), a.grad, rtol=rtol, atol=atol)


# every kind x reset x surrogate; decay_input, detach_reset and the gradflow backend vary with them
CASES = [(k, r, s, (i % 2 == 0), (i % 3 == 0), ("torch", "fused")[i % 2])
         for i, (k, r, s) in enumerate(itertools.product(["lif", "plif"], [None, 0.0, -0.5, 0.3], list(SURROGATES)))]


@pytest.mark.parametrize("kind,v_reset,sur,decay_input,detach_reset,backend", CASES)
def test_multi_step_nodes_match_spikingjelly(kind, v_reset, sur, decay_input, detach_reset, backend):
    node = _node(kind, v_reset, sur, decay_input, detach_reset)
    ours = gradflow.convert(_node(kind, v_reset, sur, decay_input, detach_reset))
    assert isinstance(ours, PLIF if kind == "plif" else LIF)
    assert (ours.sur.name, ours.sur.alpha) == SURROGATES[sur][1:]
    assert (ours.v_reset, ours.decay_input, ours.detach_reset) == (v_reset, decay_input, detach_reset)
    ours.backend = backend
    params = [(node.w, ours.w)] if kind == "plif" else []
    assert_same(node, ours, _input(v_reset=v_reset, decay_input=decay_input), params=params)


@pytest.mark.parametrize("kind", ["lif", "plif"])
def test_float64_takes_spikingjellys_reference_path_and_still_matches(kind):
    node = _node(kind, None, "atan", False, False).double()
    ours = gradflow.convert(_node(kind, None, "atan", False, False).double())
    params = [(node.w, ours.w)] if kind == "plif" else []
    assert_same(node, ours, _input(dtype=torch.float64), rtol=1e-12, atol=1e-12, params=params)


def test_a_spikingjelly_conv_net_converts_and_records():
    """The issue's user net: layer.Conv2d, BatchNorm2d, LIFNode(ATan, detach_reset=True), multi-step."""
    torch.manual_seed(0)

    def net():
        torch.manual_seed(0)
        m = torch.nn.Sequential(
            layer.Conv2d(2, 4, 3, padding=1), layer.BatchNorm2d(4),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
            layer.Flatten(), layer.Linear(4 * 6 * 6, 5),
            neuron.ParametricLIFNode(init_tau=3.0, surrogate_function=surrogate.Sigmoid(), v_reset=None),
        )
        functional.set_step_mode(m, "m")
        return m

    ref, ours = net(), gradflow.convert(net())
    x = torch.rand(4, 3, 2, 6, 6) * 2
    e = torch.randn(4, 3, 5)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ref(x1) * e).sum().backward()
    functional.reset_net(ref)
    out = ours(x2)
    torch.testing.assert_close(out, ref(x.clone()))
    (out * e).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-6)
    for (name, p1), p2 in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(p2.grad.reshape(p1.grad.shape), p1.grad, rtol=1e-5, atol=1e-5, msg=name)
    with gradflow.record(ours) as rec:
        ours(x).sum().backward()
    assert set(rec.per_step().layer) == {"2", "5"}


def test_backends_map_to_gradflows():
    node = neuron.LIFNode(step_mode="m")
    node.backend = "cupy"  # classic SpikingJelly keeps its backend as an attribute
    assert gradflow.convert(node).backend == "fused"
    node = neuron.LIFNode(step_mode="m")
    node.backend = "triton"
    assert gradflow.convert(node).backend == "fused"
    node = neuron.LIFNode(step_mode="m")
    node.backend = "lava"
    with pytest.raises(UsageError, match="Cannot convert SpikingJelly LIFNode: its backend 'lava'"):
        gradflow.convert(node)
    assert gradflow.convert(neuron.LIFNode(step_mode="m")).backend == "torch"


class _MyLIF(neuron.LIFNode):
    """A user's subclass that changes nothing the neuron computes (like the official BPTTNeuron)."""

    def __init__(self, tau=3.0, **kw):
        super().__init__(tau=tau, decay_input=False, v_reset=None, step_mode="m", **kw)


class _Leakier(neuron.LIFNode):
    def neuronal_charge(self, x):  # pragma: no cover - never run, only refused
        self.v = self.v * 0.5 + x


@pytest.mark.parametrize("make,match", [
    (lambda: neuron.LIFNode(step_mode="m", surrogate_function=surrogate.Erf()),
     "LIFNode: its surrogate Erf has no closed form in gradflow"),
    (lambda: neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan(spiking=False)),
     "spiking=False"),
    (lambda: neuron.IzhikevichNode(step_mode="m"),
     "Cannot convert SpikingJelly IzhikevichNode: gradflow converts LIFNode, ParametricLIFNode and IFNode"),
    (lambda: _Leakier(step_mode="m"), "_Leakier: it is a subclass of LIFNode that redefines neuronal_charge"),
])
def test_what_gradflow_cannot_reproduce_is_refused_by_name(make, match):
    with pytest.raises(UsageError, match=match) as err:
        gradflow.convert(torch.nn.Sequential(torch.nn.Linear(2, 2), make()))
    assert "\n" not in str(err.value)


def test_a_subclass_that_changes_nothing_converts_like_its_base():
    node = _MyLIF(surrogate_function=surrogate.Sigmoid())
    ours = gradflow.convert(_MyLIF(surrogate_function=surrogate.Sigmoid()))
    assert ours.tau == 3.0 and ours.v_reset is None
    assert_same(node, ours, _input())


def test_reduced_precision_is_refused():
    node = neuron.LIFNode(step_mode="m")
    node._neuron_precision = ("fp16", "fp16", "fp32")
    with pytest.raises(UsageError, match="reduced precision"):
        gradflow.convert(node)


def test_non_spiking_readouts_are_left_alone():
    net = torch.nn.Sequential(layer.Linear(3, 3), neuron.LIFNode(step_mode="m"), neuron.NonSpikingLIFNode())
    gradflow.convert(net)
    assert isinstance(net[1], LIF) and type(net[2]).__name__ == "NonSpikingLIFNode"


@pytest.mark.parametrize("v_reset,detach_reset,sur,backend", [(None, False, "atan", "torch"), (0.0, True, "sigmoid", "fused"),
                                                         (-0.5, False, "rect", "fused"), (0.3, True, "triangle", "torch")])
def test_if_node_matches_spikingjelly(v_reset, detach_reset, sur, backend):
    def make():
        return neuron.IFNode(step_mode="m", v_reset=v_reset, detach_reset=detach_reset,
                             surrogate_function=SURROGATES[sur][0]())

    node, ours = make(), gradflow.convert(make())
    assert isinstance(ours, IF) and ours.kind == "if" and math.isinf(ours.tau) and ours.v_reset == v_reset
    ours.backend = backend
    assert_same(node, ours, _input(v_reset=v_reset, shape=(4, 30)) * 0.6)


def test_single_step_nodes_are_recognised():
    """SpikingJelly's default step mode: converted to gradflow single-step neurons where gradflow has them,
    otherwise refused with how to switch (functional.set_step_mode(net, 'm'))."""
    def make():
        return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), v_reset=None)

    try:
        ours = gradflow.convert(make())
    except UsageError as err:
        assert "Cannot convert LIFNode in single-step mode" in str(err) and "set_step_mode" in str(err)
        return
    ref, x = make(), _input()
    torch.testing.assert_close(torch.stack([ours(xt) for xt in x]), torch.stack([ref(xt) for xt in x]))


def test_single_step_recording_equals_multi_step_recording():
    """A SpikingJelly net in single-step mode (its default), converted and recorded over a Python loop,
    gives the tables of the same net in multi-step mode, weight split included."""
    import warnings

    def net(mode):
        torch.manual_seed(0)
        m = torch.nn.Sequential(layer.Linear(5, 8), neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
                                layer.Linear(8, 3), neuron.ParametricLIFNode(surrogate_function=surrogate.Sigmoid()))
        functional.set_step_mode(m, mode)
        return gradflow.convert(m)

    x = torch.rand(6, 4, 5) * 2
    tables = {}
    for mode in ("m", "s"):
        model = net(mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with gradflow.record(model) as rec:
                out = model(x) if mode == "m" else torch.stack([model(xt) for xt in x])
                out.sum().backward()
        tables[mode] = (rec.per_step(), rec.lags(), rec.weights())
    cols = ["grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "firing_rate"]
    torch.testing.assert_close(torch.tensor(tables["s"][0][cols].values), torch.tensor(tables["m"][0][cols].values),
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(torch.tensor(tables["s"][1]["norm"].values), torch.tensor(tables["m"][1]["norm"].values),
                               rtol=1e-5, atol=1e-7)
    num = tables["m"][2].select_dtypes("number").columns
    assert len(tables["s"][2]) == len(tables["m"][2]) == 4  # the weight split, made per step
    torch.testing.assert_close(torch.tensor(tables["s"][2][num].values), torch.tensor(tables["m"][2][num].values),
                               rtol=1e-4, atol=1e-6, equal_nan=True)
