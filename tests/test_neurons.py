"""Neurons and surrogates: hand trajectories, surrogate formulas, gradcheck, SpikingJelly and SPEC transcriptions."""

from __future__ import annotations

import math

import pytest
import torch

import gradflow
from gradflow.errors import UsageError
from gradflow.neurons import CLIF, LIF, PLIF, build_neuron
from gradflow.surrogate import SURROGATES, Surrogate, make_surrogate, primitive, spike

# inputs [T=5, N=2]
X = [[0.6, 1.5], [0.6, 0.2], [0.6, 0.95], [0.3, 1.1], [1.0, 0.0]]


def _run(neuron):
    out = neuron(torch.tensor(X, dtype=torch.float64), return_states=True)
    return out


def test_lif_soft_reset_hand_trajectory():
    # tau=2 (gamma=0.5), theta=1: u = 0.5 v + x, soft reset v = u - s
    out = _run(LIF(tau=2.0))
    u = [[0.6, 1.5], [0.9, 0.45], [1.05, 1.175], [0.325, 1.1875], [1.1625, 0.09375]]
    s = [[0, 1], [0, 0], [1, 1], [0, 1], [1, 0]]
    v = [[0.6, 0.5], [0.9, 0.45], [0.05, 0.175], [0.325, 0.1875], [0.1625, 0.09375]]
    torch.testing.assert_close(out.u, torch.tensor(u, dtype=torch.float64))
    torch.testing.assert_close(out.spikes, torch.tensor(s, dtype=torch.float64))
    torch.testing.assert_close(out.v, torch.tensor(v, dtype=torch.float64))
    assert out.m is None


def test_lif_hard_reset_hand_trajectory():
    out = _run(LIF(tau=2.0, v_reset=0.0))
    u = [[0.6, 1.5], [0.9, 0.2], [1.05, 1.05], [0.3, 1.1], [1.15, 0.0]]
    s = [[0, 1], [0, 0], [1, 1], [0, 1], [1, 0]]
    v = [[0.6, 0.0], [0.9, 0.2], [0.0, 0.0], [0.3, 0.0], [0.0, 0.0]]
    torch.testing.assert_close(out.u, torch.tensor(u, dtype=torch.float64))
    torch.testing.assert_close(out.spikes, torch.tensor(s, dtype=torch.float64))
    torch.testing.assert_close(out.v, torch.tensor(v, dtype=torch.float64))


def test_clif_hand_trajectory():
    # m[t] = m[t-1] sigmoid(u/2) + s; v = u - s (1 + sigmoid(m))
    out = _run(CLIF(tau=2.0))
    u = [[0.6, 1.5], [0.9, 0.0844707107], [1.05, 0.9922353553], [-0.0405292893, 1.5961176777],
         [0.9797353553, -0.0878691886]]
    s = [[0, 1], [0, 0], [1, 0], [0, 1], [0, 0]]
    v = [[0.6, -0.2310585786], [0.9, 0.0844707107], [-0.6810585786, 0.9922353553],
         [-0.0405292893, -0.1757383771], [0.9797353553, -0.0878691886]]
    m = [[0.0, 1.0], [0.0, 0.5105572695], [1.0, 0.3173351034], [0.4949340122, 1.2188213067],
         [0.3068963363, 0.5960257014]]
    kw = dict(rtol=0, atol=1e-9)
    torch.testing.assert_close(out.u, torch.tensor(u, dtype=torch.float64), **kw)
    torch.testing.assert_close(out.spikes, torch.tensor(s, dtype=torch.float64))
    torch.testing.assert_close(out.v, torch.tensor(v, dtype=torch.float64), **kw)
    torch.testing.assert_close(out.m, torch.tensor(m, dtype=torch.float64), **kw)


def test_lif_hand_gradient():
    # x = [1.2, 0.2, 0.9]: u = [1.2, 0.3, 1.05], sg (rectangle, alpha=1) = [1, 0, 1]
    # L = sum s: delta2 = 1; delta1 = 0 + 0.5 (1 - 0) 1 = 0.5; delta0 = 1 + 0.5 (1 - 1) 0.5 = 1
    x = torch.tensor([[1.2], [0.2], [0.9]], dtype=torch.float64, requires_grad=True)
    LIF(tau=2.0)(x).sum().backward()
    assert x.grad[:, 0].tolist() == [1.0, 0.5, 1.0]
    x.grad = None
    LIF(tau=2.0, detach_reset=True)(x).sum().backward()  # eps = gamma everywhere
    assert x.grad[:, 0].tolist() == [1.0 + 0.5 * 0.5, 0.5, 1.0]


@pytest.mark.parametrize("name", list(SURROGATES))
def test_surrogate_derivative_formulas(name):
    a = {"rectangle": 0.8, "sigmoid": 3.0, "atan": 1.5, "triangle": 1.3}[name]
    sur = make_surrogate(name, a)
    x = torch.linspace(-2, 2, 4001, dtype=torch.float64)
    sig = torch.sigmoid(a * x)
    expected = {
        "rectangle": (x.abs() <= a / 2).double() / a,
        "sigmoid": a * sig * (1 - sig),
        "atan": (a / 2) / (1 + (math.pi / 2 * a * x) ** 2),
        "triangle": torch.clamp(a - a * a * x.abs(), min=0),
    }[name]
    xr = x.clone().requires_grad_()
    s = spike(xr, sur)
    assert torch.equal(s, (x >= 0).double())  # Heaviside forward, H(0) = 1
    s.sum().backward()
    torch.testing.assert_close(xr.grad, expected, rtol=0, atol=1e-15)
    # sg is the derivative of the primitive F, with F(-inf) = 0, F(inf) = 1
    h = 1e-6
    fd = (primitive(x + h, sur) - primitive(x - h, sur)) / (2 * h)
    smooth = (x.abs() - a / 2).abs() > 1e-5 if name == "rectangle" else torch.ones_like(x, dtype=torch.bool)
    torch.testing.assert_close(fd[smooth], expected[smooth], rtol=1e-6, atol=1e-6)
    assert primitive(torch.tensor([-1e4, 1e4], dtype=torch.float64), sur).tolist() == pytest.approx([0, 1], abs=1e-4)


def test_surrogate_defaults_and_errors():
    assert make_surrogate("rectangle") == Surrogate("rectangle", 1.0)
    assert make_surrogate("sigmoid").alpha == 4.0
    assert make_surrogate("atan").alpha == 2.0
    assert make_surrogate("triangle").alpha == 1.0
    with pytest.raises(UsageError, match="Unknown surrogate"):
        make_surrogate("relu")
    with pytest.raises(UsageError, match="positive"):
        make_surrogate("atan", -1)


# detach_reset deliberately departs from the true derivative, so gradcheck does not apply to it
# (it is checked by the hand gradient and the SPEC transcriptions instead).
CONFIGS = [
    dict(),
    dict(v_reset=0.0),
    dict(decay_input=True),
    dict(v_reset=-0.2, decay_input=True),
]


@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
@pytest.mark.parametrize("surrogate", ["sigmoid", "atan"])
@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
def test_gradcheck_smooth_neuron(kind, surrogate, cfg, backend):
    """float64 gradcheck of the whole multi-step neuron (either backend) with the smooth (primitive) forward."""
    cfg = CONFIGS[cfg]
    if kind == "clif" and "v_reset" in cfg:
        pytest.skip("CLIF has only the soft reset")
    torch.manual_seed(0)
    neuron = build_neuron(kind, tau=1.7, surrogate=surrogate, smooth_forward=True, backend=backend, **cfg).double()
    x = (torch.randn(5, 3, dtype=torch.float64) * 0.7 + 0.8).requires_grad_()
    assert torch.autograd.gradcheck(neuron, (x,), eps=1e-6, atol=1e-7)
    if kind == "plif":
        w0 = neuron.w.detach().clone().requires_grad_()

        def f(w):
            return torch.func.functional_call(neuron, {"w": w}, (x.detach(),))

        assert torch.autograd.gradcheck(f, (w0,), eps=1e-6, atol=1e-7)


def test_plif_tau_is_learned():
    torch.manual_seed(0)
    plif = PLIF(init_tau=2.0).double()
    assert plif.current_tau() == pytest.approx(2.0)
    assert plif.w.item() == pytest.approx(-math.log(2.0 - 1.0))
    x = torch.randn(6, 50, dtype=torch.float64) + 0.8
    plif(x).sum().backward()
    assert plif.w.grad is not None and plif.w.grad.abs().item() > 0
    # PLIF at w equals LIF at tau = 1/sigmoid(w)
    with torch.no_grad():
        plif.w.fill_(0.3)
    tau = 1 / torch.sigmoid(torch.tensor(0.3, dtype=torch.float64)).item()
    torch.testing.assert_close(plif(x), LIF(tau=tau).double()(x))


def _sj_lif(surrogate, v_reset):
    from spikingjelly.activation_based import neuron, surrogate as sjs

    sur = {"sigmoid": sjs.Sigmoid(alpha=4.0), "atan": sjs.ATan(alpha=2.0)}[surrogate]
    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=v_reset, surrogate_function=sur,
                          detach_reset=False, step_mode="m")


@pytest.mark.parametrize("surrogate,v_reset", [("sigmoid", None), ("atan", None), ("sigmoid", 0.0)])
def test_lif_matches_spikingjelly(surrogate, v_reset):
    pytest.importorskip("spikingjelly")
    torch.manual_seed(0)
    x = (torch.randn(8, 4, 30) * 0.8 + 0.6)
    e = torch.randn(8, 4, 30)
    sj = _sj_lif(surrogate, v_reset)
    ours = LIF(tau=2.0, v_reset=v_reset, surrogate=surrogate)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, s2 = sj(x1), ours(x2)
    assert torch.equal(s1, s2)
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-6)


def test_convert_spikingjelly_model_then_record():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate as sjs

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        neuron.LIFNode(tau=1.5, surrogate_function=sjs.ATan(), step_mode="m"),
        torch.nn.Linear(6, 6),
        neuron.ParametricLIFNode(init_tau=3.0, surrogate_function=sjs.Rect(alpha=2.0), step_mode="m"),
    )
    x = torch.randn(5, 3, 4) + 0.5
    with torch.no_grad():
        net[3].w.fill_(0.2)
    ref = net(x)
    with pytest.raises(UsageError, match="convert"):
        gradflow.record(net)
    gradflow.convert(net)
    assert isinstance(net[1], LIF) and isinstance(net[3], PLIF)
    assert net[1].decay_input and net[1].v_reset == 0.0 and net[1].tau == 1.5
    assert net[3].sur == Surrogate("rectangle", 0.5)
    torch.testing.assert_close(net(x), ref)
    with gradflow.record(net) as rec:
        net(x).sum().backward()
    assert set(rec.per_step().layer) == {"1", "3"}


def _spec_clif(x, tau, theta, sur, detach_reset=False):
    """SPEC §1 CLIF, written out directly: returns spikes [T, N]."""
    gamma = 1 - 1 / tau
    v = torch.zeros_like(x[0])
    m = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        u = gamma * v + x[t]
        s = spike(u - theta, sur)
        m = m * torch.sigmoid(u / tau) + s
        sr = s.detach() if detach_reset else s
        v = u - sr * (theta + torch.sigmoid(m))
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("surrogate", list(SURROGATES))
@pytest.mark.parametrize("detach_reset", [False, True])
def test_clif_matches_spec_transcription(surrogate, detach_reset):
    torch.manual_seed(4)
    x = torch.randn(12, 500, dtype=torch.float64) * 1.2 + 0.7
    e = torch.randn(12, 500, dtype=torch.float64)
    sur = make_surrogate(surrogate)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1 = CLIF(tau=2.0, surrogate=surrogate, detach_reset=detach_reset)(x1)
    s2 = _spec_clif(x2, 2.0, 1.0, sur, detach_reset)
    assert torch.equal(s1, s2)
    crossings = (s1[1:] != s1[:-1]).sum().item()
    assert crossings > 1000  # many threshold crossings
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="tau"):
        LIF(tau=1.0)
    with pytest.raises(UsageError, match="tau"):
        LIF(tau=0.5)
    with pytest.raises(UsageError, match="soft reset"):
        CLIF(v_reset=0.0)
    with pytest.raises(UsageError, match="Unknown neuron"):
        build_neuron("izhikevich")
    with pytest.raises(UsageError, match=r"\[T, N"):
        LIF()(torch.zeros(5))
    with pytest.raises(UsageError, match="floating"):
        LIF()(torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(UsageError, match="truncate"):
        LIF(truncate=0)


def test_truncate_detaches_state_only():
    x = torch.tensor([[1.2], [0.2], [0.9], [0.4]], requires_grad=True)
    y = LIF(tau=2.0, truncate=2)(x)
    assert torch.equal(y, LIF(tau=2.0)(x))
    y.sum().backward()
    # block {0,1} and {2,3}: gradient reaches x[1] only from s[1]; x[0] from s[0] and s[1]
    g = x.grad[:, 0].tolist()
    assert g[1] == 0.0 and g[3] == 0.0 and g[0] == 1.0


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("smooth", [False, True])
def test_spike_fast_apply_equals_torch_apply_and_works_under_torch_func(name, smooth):
    """spike() skips torch's per-call default-argument binding; values and gradients are unchanged,
    and under a torch.func transform the call still goes through torch's own apply."""
    from gradflow.surrogate import _SpikeFunction

    sur = Surrogate(name, 2.0)
    x = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64).requires_grad_()
    fast = spike(x, sur, smooth)
    # torch's own apply bound to the class (a Python classmethod up to torch 2.13, a C one in 2.14)
    ref = vars(torch.autograd.Function)["apply"].__get__(None, _SpikeFunction)(x, name, 2.0, smooth)
    assert torch.equal(fast, ref) and fast.grad_fn is not None
    g = torch.linspace(0.5, 2.0, 13, dtype=torch.float64)
    (a,) = torch.autograd.grad(fast, x, g)
    (b,) = torch.autograd.grad(ref, x, g)
    assert torch.equal(a, b)
    via_func = torch.func.grad(lambda v: (spike(v, sur, smooth) * g).sum())(x.detach())
    assert torch.equal(via_func, a)
