"""Architectures (gradflow.models): official state_dict layout, neuron names, input handling, and
equivalence with the official code's execution, one time step per network call.

The step-by-step reference below is written from the architecture description (docs/reference.md,
Architectures) independently of gradflow's time-merged forward: it calls the model's own layers on one step ``[N, ...]`` at a time, keeps each neuron's state
explicitly (``lif_step`` / ``clif_step`` with the module's ``NeuronParams``) and calls each batch norm once
per step, as a single-step network called T times does.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradflow import models, schema
from gradflow.errors import UsageError
from gradflow.models import TimeDropout
from gradflow.neurons import CLIFState, LIFState, SpikingNeuron, build_neuron, clif_step, lif_step

# A copy of ../shared/reference/clif_repo_architectures.json (the official code's keys and shapes), so the
# layout tests run on any clone; test_reference_copy_is_current checks it against the shared original.
REF_PATH = Path(__file__).resolve().parent / "data" / "clif_repo_architectures.json"
SHARED_REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "clif_repo_architectures.json"
OFFICIAL = ["snn5_noAP", "spiking_resnet18", "spiking_resnet34", "spiking_vgg11_bn", "spiking_vgg13_bn"]


def _reference():
    return json.loads(REF_PATH.read_text())


def test_reference_copy_is_current():
    if not SHARED_REF.exists():
        pytest.skip(f"{SHARED_REF} is not beside this checkout")
    assert json.loads(SHARED_REF.read_text()) == _reference()


@pytest.fixture(scope="module")
def reference():
    return _reference()


def ref_constructor(entry):
    """``(num_classes, in_channels)`` of the reference entry, e.g. ``spiking_vgg11_bn(num_classes=10, c_in=2)``."""
    m = re.search(r"num_classes=(\d+), c_in=(\d+)", entry["constructor"])
    return int(m.group(1)), int(m.group(2))


def make(name, seed=0, **kwargs):
    """Build a model with torch's global generator seeded, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.build(name, **kwargs)


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def layout(state_dict):
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state_dict.items()]


# --------------------------------------------------------------------------- registry and options


def test_registry_lists_every_architecture():
    assert models.available() == ["mlp"] + OFFICIAL
    assert list(models.ARCHITECTURES) == models.available()
    assert tuple(models.ARCHITECTURES) == schema.ARCHITECTURES  # the torch-free names the CLI lists


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
def test_neuron_options_rebuild_the_same_neuron(kind):
    net = make("mlp", neuron=kind, in_features=4, widths=(6,), num_classes=3, tau=1.5, v_threshold=0.5,
               surrogate="triangle", alpha=0.8, detach_reset=True)
    old = net.sn1
    old.truncate, old.backend = 2, "fused"
    opts = models.neuron_options(old)
    assert ("v_reset" in opts) == (kind != "clif")
    new = build_neuron(kind, **opts)
    assert (new.kind, new.current_tau(), new.v_threshold, new.sur.name, new.sur.alpha, new.detach_reset,
            new.truncate, new.backend) == (kind, pytest.approx(1.5), 0.5, "triangle", 0.8, True, 2, "fused")
    assert models.set_backend(net, "torch") == 1 and net.sn1.backend == "torch"
    assert models.neurons_of(net) == [net.sn1]


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UsageError) as err:
        models.build("resnet50")
    for name in models.available():
        assert name in str(err.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="snn5_noAP", neuron="izhikevich"), "Unknown neuron"),
        (dict(name="snn5_noAP", widths=(3,)), "Unknown option 'widths'"),
        (dict(name="snn5_noAP", T=0), "T must be a positive integer"),
        (dict(name="snn5_noAP", num_classes=2.5), "num_classes"),
        (dict(name="snn5_noAP", dropout=1.0), "dropout"),
        (dict(name="snn5_noAP", tau=0.5), "tau"),
        (dict(name="snn5_noAP", surrogate="relu"), "surrogate"),
        (dict(name="snn5_noAP", neuron="lif", init_tau=3.0), "init_tau"),
        (dict(name="mlp"), "in_features"),
        (dict(name="mlp", in_features=4, in_channels=5), "in_features"),
        (dict(name="mlp", in_features=4, widths=()), "widths"),
        (dict(name="mlp", in_features=4, widths=(8, -1)), "widths"),
    ],
)
def test_bad_build_arguments_raise_usage_error(kwargs, match):
    with pytest.raises(UsageError, match=match):
        models.build(**kwargs)


def test_neuron_options_reach_every_neuron():
    net = make("snn5_noAP", neuron="clif", tau=1.5, v_threshold=0.5, surrogate="atan", alpha=3.0,
               detach_reset=True)
    layers = net.neuron_layers()
    assert len(layers) == 5
    for _, m in layers:
        assert (m.kind, m.tau, m.v_threshold, m.sur.name, m.sur.alpha, m.detach_reset) == (
            "clif", 1.5, 0.5, "atan", 3.0, True)


def test_plif_tau_is_the_initial_tau_of_every_layer():
    net = make("mlp", neuron="plif", in_features=4, widths=(6, 5), num_classes=3, tau=3.0)
    taus = [m.current_tau() for _, m in net.neuron_layers()]
    assert taus == pytest.approx([3.0, 3.0])
    assert [n for n, _ in net.named_parameters() if n.endswith("w")] == ["sn1.w", "sn2.w"]


def test_attributes_and_config_rebuild_the_same_model():
    net = make("mlp", neuron="clif", in_features=7, widths=[9, 5], num_classes=4, T=3, dropout=0.1,
               tau=1.8, surrogate="sigmoid")
    assert (net.arch, net.neuron_kind, net.T, net.num_classes, net.in_channels) == ("mlp", "clif", 3, 4, 7)
    cfg = json.loads(json.dumps(net.config))          # survives a JSON checkpoint header
    assert cfg == net.config
    again = models.build(**cfg)
    assert layout(again.state_dict()) == layout(net.state_dict())
    assert again.config == net.config
    for name in OFFICIAL:
        big = make(name, neuron="plif", num_classes=5, in_channels=2, T=2, tau=1.5)
        rebuilt = models.build(**big.config)
        assert layout(rebuilt.state_dict()) == layout(big.state_dict())
        assert rebuilt.config == big.config
        assert big.config["name"] == name and big.config["tau"] == 1.5


# --------------------------------------------------------------------------- official layout


@pytest.mark.parametrize("name", OFFICIAL)
def test_state_dict_and_neuron_names_equal_the_reference(name, reference):
    entry = reference[name]
    num_classes, c_in = ref_constructor(entry)
    expected = [list(item) for item in entry["state_dict"]]
    for kind in ("lif", "clif"):
        net = make(name, neuron=kind, num_classes=num_classes, in_channels=c_in)
        assert layout(net.state_dict()) == expected
        assert [n for n, _ in net.neuron_layers()] == entry["neuron_module_names"]
    # an official state_dict (any values of the right shapes) loads with strict=True
    g = torch.Generator().manual_seed(1)
    official = {
        k: (torch.randint(0, 100, shape, generator=g) if dtype == "int64" else torch.rand(shape, generator=g))
        for k, shape, dtype in expected
    }
    result = net.load_state_dict(official, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # PLIF adds exactly one learned `w` per neuron module
    plif = make(name, neuron="plif", num_classes=num_classes, in_channels=c_in)
    extra = [k for k in plif.state_dict() if k not in official]
    assert extra == [f"{n}.w" for n in entry["neuron_module_names"]]


def _conv(m, cin, cout, k, s, p, bias=True):
    assert isinstance(m, nn.Conv2d)
    assert (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias is not None) == (
        cin, cout, (k, k), (s, s), (p, p), bias)


def test_layer_hyperparameters_follow_the_spec():
    snn5 = make("snn5_noAP", in_channels=2)
    for blk, (cin, cout, k, s) in zip(
        snn5.features, [(2, 16, 3, 1), (16, 64, 5, 2), (64, 128, 5, 2), (128, 256, 5, 4), (256, 256, 3, 2)]
    ):
        _conv(blk.fwd[0], cin, cout, k, s, 1)
        assert isinstance(blk.fwd[1], nn.BatchNorm2d)
    res = make("spiking_resnet34")
    _conv(res.conv1, 3, 64, 3, 1, 1, bias=False)
    cin = 64
    for stage, (n, width, stride) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512], [1, 2, 2, 2]), 1):
        blocks = list(getattr(res, f"layer{stage}"))
        assert len(blocks) == n
        for j, blk in enumerate(blocks):
            s = stride if j == 0 else 1
            _conv(blk.conv1, cin, width, 3, s, 1)
            _conv(blk.conv2, width, width, 3, 1, 1)
            if s != 1 or cin != width:
                _conv(blk.shortcut, cin, width, 1, s, 0)
            else:
                assert isinstance(blk.shortcut, nn.Identity)
            cin = width
    vgg = make("spiking_vgg13_bn")
    cin = 3
    for stage, widths in enumerate([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]], 1):
        seq = list(getattr(vgg, f"layer{stage}"))
        assert len(seq) == 4 * len(widths) + 1 and isinstance(seq[-1], nn.AvgPool2d)
        for j, width in enumerate(widths):
            conv, bn, sn, drop = seq[4 * j: 4 * j + 4]
            _conv(conv, cin, width, 3, 1, 1)
            assert isinstance(bn, nn.BatchNorm2d) and isinstance(sn, SpikingNeuron)
            assert isinstance(drop, TimeDropout)
            cin = width
    assert vgg.avgpool.output_size == (7, 7)
    assert isinstance(vgg.classifier[0], nn.Flatten) and vgg.classifier[1].in_features == 25088


# --------------------------------------------------------------------------- forward: shapes, order, firing


def _small_input(name, n=2, seed=0, dtype=torch.float32):
    if name == "mlp":
        return randn(n, 6, seed=seed, dtype=dtype)
    return randn(n, 3, 32, 32, seed=seed, dtype=dtype)


def set_running_stats(net, x):
    """Give every batch norm the running statistics of one training step on ``x`` (momentum 1), so that
    eval mode sees realistic statistics and keeps firing in deep layers."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0
    try:
        with torch.no_grad():
            net.train()(x)
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum


def _build_small(name, seed=0, **kwargs):
    extra = dict(in_features=6, widths=(16, 12)) if name == "mlp" else {}
    extra.update(kwargs)
    return make(name, seed=seed, **extra)


@pytest.mark.parametrize("name", ["mlp"] + OFFICIAL)
def test_forward_order_shape_and_firing_at_init(name, reference):
    """One training-mode forward: neurons fire in the reference's order, every layer spikes at init."""
    net = _build_small(name, num_classes=7, T=2).train()
    order, rates = [], {}
    names = {m: n for n, m in net.neuron_layers()}

    def hook(mod, inputs, out):
        order.append(names[mod])
        rates[names[mod]] = out.mean().item()

    handles = [m.register_forward_hook(hook) for m in names]
    try:
        with torch.no_grad():
            out = net(_small_input(name))
    finally:
        for h in handles:
            h.remove()
    assert out.shape == (2, 2, 7)
    expected = ["sn1", "sn2"] if name == "mlp" else reference[name]["neuron_module_names"]
    assert order == expected == [n for n, _ in net.neuron_layers()]
    assert all(r > 0.01 for r in rates.values()), rates


@pytest.mark.parametrize("name", ["mlp"] + OFFICIAL)
def test_static_input_equals_explicit_repetition(name):
    net = _build_small(name, T=3, neuron="clif")
    set_running_stats(net, _small_input(name, seed=4))
    net.eval()
    x = _small_input(name, n=1)
    with torch.no_grad():
        a = net(x)
        b = net(x.unsqueeze(0).repeat(3, *([1] * x.dim())))
    assert a.shape == (3, 1, 10) and a.std() > 0
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["mlp", "snn5_noAP"])
def test_static_input_equals_explicit_repetition_in_training(name):
    net = _build_small(name, T=3)
    twin = copy.deepcopy(net)
    x = _small_input(name)
    a = net.train()(x)
    b = twin.train()(x.expand(3, *x.shape).clone())
    assert torch.equal(a, b)
    assert all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), twin.state_dict().values()))


@pytest.mark.parametrize("name", ["mlp"] + OFFICIAL)
def test_saved_state_dict_loads_strict_into_a_fresh_model(name):
    net = _build_small(name, seed=0, neuron="plif", T=2)
    set_running_stats(net, _small_input(name, seed=5))
    net.eval()
    buf = io.BytesIO()
    torch.save({"config": net.config, "state_dict": net.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        fresh = models.build(**ckpt["config"])
    fresh.load_state_dict(ckpt["state_dict"], strict=True)
    fresh.eval()
    x = _small_input(name, n=1, seed=3)
    with torch.no_grad():
        out = net(x)
        assert out.std() > 0 and torch.equal(fresh(x), out)


@pytest.mark.parametrize(
    "name, shape, match",
    [
        ("snn5_noAP", (2, 1, 32, 32), "3 input channels"),
        ("snn5_noAP", (3, 32, 32), r"static \[N, C, H, W\]"),
        ("snn5_noAP", (1, 2, 3, 3, 32, 32), r"static \[N, C, H, W\]"),
        ("snn5_noAP", (5, 2, 3, 32, 32), "T=4 but the input has 5 time steps"),
        ("snn5_noAP", (2, 3, 64, 64), "32x32"),
        ("spiking_resnet18", (2, 3, 64, 64), "32x32"),
        ("spiking_resnet18", (4, 2, 2, 32, 32), "3 input channels"),
        ("spiking_vgg11_bn", (2, 3, 16, 16), "at least 32x32"),
        ("mlp", (2, 5), "6 input features"),
        ("mlp", (2, 6, 1, 1), r"\[N, F\]"),
    ],
)
def test_bad_input_shapes_raise_one_clear_usage_error(name, shape, match):
    net = _build_small(name, T=4)
    with pytest.raises(UsageError, match=match):
        net(torch.zeros(shape))


def test_bad_input_dtypes_raise_usage_error():
    net = _build_small("mlp")
    with pytest.raises(UsageError, match="floating-point"):
        net(torch.zeros(2, 6, dtype=torch.uint8))
    with pytest.raises(UsageError, match="dtype"):
        net(torch.zeros(2, 6, dtype=torch.float64))
    with pytest.raises(UsageError, match="torch.Tensor"):
        net([[0.0] * 6])


# --------------------------------------------------------------------------- dropout


def test_time_dropout_keeps_one_mask_per_sample_over_time():
    drop = TimeDropout(0.3).train()
    x = torch.ones(5, 4, 200)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))                 # same mask at every step
    values = y.unique()
    assert values.numel() == 2 and values[0] == 0 and values[1] == pytest.approx(1 / 0.7)
    assert not torch.equal(y[0, 0], y[0, 1])                  # samples have their own masks
    assert 0.2 < (y == 0).float().mean().item() < 0.4
    assert torch.equal(drop.eval()(x), x) and torch.equal(TimeDropout(0.0).train()(x), x)
    with pytest.raises(UsageError):
        TimeDropout(1.0)


@pytest.mark.parametrize("name, module", [("mlp", "drop1"), ("spiking_resnet18", "layer1.0.dropout")])
def test_model_dropout_mask_is_shared_over_time(name, module):
    net = _build_small(name, T=3, dropout=0.5).train()
    seen = {}
    handle = net.get_submodule(module).register_forward_hook(lambda m, i, o: seen.update(x=i[0], y=o))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            net(_small_input(name))
    finally:
        handle.remove()
    x, y = seen["x"], seen["y"]
    assert x.shape[0] == 3 and (x != 0).any()
    ratio = torch.where(x != 0, y / x.where(x != 0, torch.ones_like(x)), torch.full_like(x, float("nan")))
    assert set(ratio[~ratio.isnan()].unique().tolist()) == {0.0, 2.0}
    for t in range(1, 3):                                     # wherever both steps are defined, masks agree
        both = ~(ratio[0].isnan() | ratio[t].isnan())
        assert both.any() and torch.equal(ratio[0][both], ratio[t][both])


# --------------------------------------------------------------------------- step-by-step equivalence


class StepByStep:
    """The official execution: the network called once per step, neuron state carried explicitly."""

    def __init__(self):
        self.state = {}

    def sn(self, mod: SpikingNeuron, x: torch.Tensor) -> torch.Tensor:
        step = clif_step if mod.kind == "clif" else lif_step
        st = self.state.get(mod)
        if st is None:
            z = torch.zeros_like(x)
            st = CLIFState(z, z) if mod.kind == "clif" else LIFState(z)
        s, self.state[mod], _ = step(x, st, mod.params, mod.inv_tau())
        return s


def step_mlp(net, run, x):
    for i in range(1, len(net.widths) + 1):
        x = run.sn(getattr(net, f"sn{i}"), getattr(net, f"fc{i}")(x))
    return net.classifier(x)


def step_snn5(net, run, x):
    for blk in net.features:
        conv, bn = blk.fwd
        x = run.sn(blk.act, bn(conv(x)))
    return net.classifier(x.flatten(1))


def step_resnet(net, run, x):
    out = net.conv1(x)
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        for blk in stage:
            a = run.sn(blk.relu1, blk.bn1(out))
            o = blk.conv1(a)
            o = blk.conv2(run.sn(blk.relu2, blk.bn2(o)))
            out = o + blk.shortcut(a)
    out = run.sn(net.relu1, net.bn1(out))
    return net.linear(F.avg_pool2d(out, 4).flatten(1))


def step_vgg(net, run, x):
    for i in range(1, 6):
        for m in getattr(net, f"layer{i}"):
            if isinstance(m, SpikingNeuron):
                x = run.sn(m, x)
            elif not isinstance(m, TimeDropout):              # dropout p=0: identity
                x = m(x)
    x = net.avgpool(x)
    for m in net.classifier:
        x = m(x)
    return x


STEPPERS = {"mlp": step_mlp, "snn5_noAP": step_snn5, "spiking_resnet18": step_resnet,
            "spiking_vgg11_bn": step_vgg}


def _run_both(name, neuron, train, T=3, n=2, seed=0, **kwargs):
    net = _build_small(name, seed=seed, neuron=neuron, T=T, **kwargs).double()
    if not train:
        set_running_stats(net, _small_input(name, n=4, seed=9, dtype=torch.float64))
    ref = copy.deepcopy(net)
    net.train(train)
    ref.train(train)
    x = _small_input(name, n=n, seed=seed + 1, dtype=torch.float64)
    out = net(x)
    run = StepByStep()
    expected = torch.stack([STEPPERS[name](ref, run, x) for _ in range(T)])
    return net, ref, out, expected


def _equivalence_cases():
    cases = []
    for neuron in ("lif", "clif", "plif"):
        cases += [("mlp", True, neuron), ("snn5_noAP", True, neuron), ("snn5_noAP", False, neuron)]
        for train in (True, False):
            fast = (train and neuron != "plif") or (not train and neuron == "clif")
            marks = () if fast else (pytest.mark.slow,)
            cases.append(pytest.param("spiking_resnet18", train, neuron, marks=marks))
    return cases


@pytest.mark.parametrize("name, train, neuron", _equivalence_cases())
def test_multi_step_model_equals_step_by_step_execution(name, train, neuron):
    net, ref, out, expected = _run_both(name, neuron, train)
    assert out.shape == expected.shape == (3, 2, 10)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    assert out.std() > 0
    # batch norm: running statistics after the call (training: one update per step, T in all)
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        if k.endswith("num_batches_tracked"):
            assert int(a) == int(b) and (not train or int(a) == 3)
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=k)
    if train:
        # and the same gradients for every parameter (PLIF's tau included)
        w = randn(*out.shape, seed=7, dtype=torch.float64)
        (out * w).sum().backward()
        (expected * w).sum().backward()
        for (k, p), q in zip(net.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-10, msg=k)


def test_vgg_equals_step_by_step_execution_in_eval_mode():
    net, ref, out, expected = _run_both("spiking_vgg11_bn", "clif", train=False, T=2, n=1)
    assert out.shape == (2, 1, 10) and out.std() > 0
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("neuron", ["lif", "clif"])
def test_vgg_equals_step_by_step_execution_in_training(neuron):
    net, ref, out, expected = _run_both("spiking_vgg11_bn", neuron, train=True, T=2, n=2)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=k)
