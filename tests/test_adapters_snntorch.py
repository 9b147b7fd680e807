"""snnTorch Leaky -> gradflow, against the real snnTorch: same spikes every step, the returned membrane
potential, and the gradients of the input and of the learned beta/threshold to float32 rounding, with the
user's own loop unchanged (explicit ``spk, mem = lif(x, mem)`` and ``init_hidden=True``)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import gradflow
from gradflow.errors import UsageError

snn = pytest.importorskip("snntorch")
from snntorch import surrogate as sts  # noqa: E402
from snntorch import utils as stu  # noqa: E402

SURROGATES = {"atan": lambda: sts.atan(alpha=2.0), "sigmoid": lambda: sts.sigmoid(slope=5.0),
              "fast_sigmoid": lambda: sts.fast_sigmoid(slope=25.0)}


def _pair(**kw):
    """The same snnTorch Leaky twice (same learned values): one to keep, one to convert."""
    def make():
        torch.manual_seed(3)
        lif = snn.Leaky(**kw)
        with torch.no_grad():
            if isinstance(lif.beta, nn.Parameter):
                lif.beta.fill_(0.83)
            if isinstance(lif.threshold, nn.Parameter):
                lif.threshold.fill_(0.9)
        return lif
    return make(), gradflow.convert(make())


def _run_explicit(lif, x):
    mem = lif.init_leaky()
    spks, mems = [], []
    for t in range(x.shape[0]):
        spk, mem = lif(x[t], mem)
        spks.append(spk)
        mems.append(mem)
    return torch.stack(spks), torch.stack(mems)


def _check(ref, ours, x, run=_run_explicit, learned=()):
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, m1 = run(ref, x1)
    s2, m2 = run(ours, x2)
    g = torch.Generator().manual_seed(11)
    e1, e2 = torch.randn(s1.shape, generator=g), torch.randn(m1.shape, generator=g)
    assert torch.equal(s1, s2)
    assert 0.05 < (s1 != 0).float().mean().item() < 0.8
    torch.testing.assert_close(m2, m1, rtol=1e-5, atol=1e-6)
    ((s1 * e1).sum() + (m1 * e2).sum()).backward()
    ((s2 * e1).sum() + (m2 * e2).sum()).backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-5)
    for name in learned:
        torch.testing.assert_close(getattr(ours, name).grad, getattr(ref, name).grad, rtol=1e-4, atol=1e-4,
                                   msg=name)


def _x(T=10, shape=(4, 25), scale=0.7, shift=0.35):
    g = torch.Generator().manual_seed(0)
    return torch.randn(T, *shape, generator=g) * scale + shift


CASES = [(m, d, s, (i % 2 == 1), (i % 3 == 1))
         for i, (m, d, s) in enumerate(itertools.product(["subtract", "zero", "none"], [True, False], list(SURROGATES)))]


@pytest.mark.parametrize("mechanism,delay,sur,learn_beta,learn_threshold", CASES)
def test_leaky_matches_snntorch(mechanism, delay, sur, learn_beta, learn_threshold):
    ref, ours = _pair(beta=0.8, threshold=1.0, spike_grad=SURROGATES[sur](), reset_mechanism=mechanism,
                      reset_delay=delay, learn_beta=learn_beta, learn_threshold=learn_threshold)
    assert isinstance(ours, snn.Leaky) and ours._gradflow_converted
    learned = [n for n, on in (("beta", learn_beta), ("threshold", learn_threshold)) if on]
    shift = 0.1 if mechanism == "none" else 0.35
    _check(ref, ours, _x(shift=shift), learned=learned)


def test_large_inputs_where_snntorch_subtracts_the_threshold_again():
    """reset_delay=False with potentials that stay above threshold after a reset (snnTorch's r[t] = 1)."""
    ref, ours = _pair(beta=0.9, reset_delay=False)
    _check(ref, ours, _x(scale=1.0, shift=1.2))


def test_init_hidden_graded_spikes_and_snntorch_utils_reset():
    """The tutorial style: init_hidden=True neurons in nn.Sequential, utils.reset(net) between batches."""
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), snn.Leaky(beta=0.7, init_hidden=True, graded_spikes_factor=0.5),
                             nn.Linear(8, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))

    ref, ours = net(), gradflow.convert(net())
    assert all(type(m).__name__ == "GradflowLeaky" for m in (ours[1], ours[3]))

    def run(model, x):
        stu.reset(model)
        spks, mems = [], []
        for t in range(x.shape[0]):
            spk, mem = model(x[t])
            spks.append(spk)
            mems.append(mem)
        return torch.stack(spks), torch.stack(mems)

    for batch in range(2):  # the second batch only matches if utils.reset(net) reset the converted neurons
        x = torch.rand(7, 5, 6, generator=torch.Generator().manual_seed(batch)) * 2
        _check(ref, ours, x, run=run)
    for (name, p1), p2 in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_state_dict_keys_are_unchanged():
    ref, ours = _pair(beta=0.8, learn_beta=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)


@pytest.mark.parametrize("kw,match", [
    (dict(beta=0.8, spike_grad=sts.triangular()), "its surrogate triangular has no closed form"),
    (dict(beta=0.8, spike_grad=sts.straight_through_estimator()), "its surrogate straight_through_estimator"),
    (dict(beta=0.8, surrogate_disable=True), "surrogate_disable=True"),
    (dict(beta=torch.full((5,), 0.8)), "beta has 5 values"),
    (dict(beta=1.0), r"beta=1 is outside \(0, 1\)"),
])
def test_what_gradflow_cannot_reproduce_is_refused(kw, match):
    with pytest.raises(UsageError, match="Cannot convert snnTorch Leaky: " + match):
        gradflow.convert(nn.Sequential(nn.Linear(2, 2), snn.Leaky(**kw)))


def test_other_snntorch_neurons_are_refused_by_name():
    with pytest.raises(UsageError, match="Cannot convert snnTorch Synaptic: gradflow converts snnTorch's Leaky only"):
        gradflow.convert(nn.Sequential(snn.Synaptic(alpha=0.9, beta=0.8)))


def test_fast_sigmoid_is_snntorchs():
    from gradflow.surrogate import make_surrogate, primitive, surrogate_grad

    x = torch.linspace(-1, 1, 201, requires_grad=True)
    sts.fast_sigmoid(slope=25.0)(x).sum().backward()
    sur = make_surrogate("fast_sigmoid", 25.0)
    torch.testing.assert_close(surrogate_grad(x.detach(), sur), x.grad)
    x64 = torch.linspace(-1, 1, 201, dtype=torch.float64, requires_grad=True)
    primitive(x64, sur).sum().backward()
    torch.testing.assert_close(x64.grad, surrogate_grad(x64.detach(), sur))


def test_converting_twice_changes_nothing():
    net = nn.Sequential(nn.Linear(3, 3), snn.Leaky(beta=0.5))
    first = gradflow.convert(net)[1]
    assert gradflow.convert(net)[1] is first


@pytest.mark.parametrize("mechanism,delay", [("subtract", True), ("subtract", False), ("zero", True), ("zero", False),
                                             ("none", True)])
def test_recording_an_snntorch_loop_is_exact_and_changes_nothing(mechanism, delay):
    """The recorder assembles the steps of the user's loop; with the membrane potential used as a readout
    too, spatial + temporal = delta = dL/du[t] (float64), and gradients are those without recording."""
    import warnings

    lif = gradflow.convert(snn.Leaky(beta=0.8, reset_mechanism=mechanism, reset_delay=delay, learn_beta=True)).double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(8, 6, 10, generator=g, dtype=torch.float64) * 0.8 + (1.0 if not delay else 0.4)
    e1, e2 = torch.randn(8, 6, 10, generator=g, dtype=torch.float64), torch.randn(8, 6, 10, generator=g, dtype=torch.float64)

    def run(xx):
        mem, spks, mems = lif.init_leaky(), [], []
        for t in range(8):
            spk, mem = lif(xx[t], mem)
            spks.append(spk)
            mems.append(mem)
        ((torch.stack(spks) * e1).sum() + (torch.stack(mems) * e2).sum()).backward()

    x0 = x.clone().requires_grad_()
    run(x0)
    beta_grad = lif.beta.grad.clone()
    lif.beta.grad = None
    x1 = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the weight split is not recorded for single-step neurons
        with gradflow.record(lif, keep_tensors=True) as rec:
            run(x1)
    # the recorder sees the step's outputs through views, so sums may be taken in another order
    torch.testing.assert_close(x1.grad, x0.grad, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(lif.beta.grad, beta_grad, rtol=1e-13, atol=1e-15)
    kept = rec.tensors(lif.kind)
    assert kept["delta"].shape == (8, 6, 10)
    torch.testing.assert_close(kept["spatial"] + kept["temporal"], kept["delta"], rtol=1e-12, atol=1e-12)
    assert rec.per_step().grad_temporal_norm.sum() > 0
