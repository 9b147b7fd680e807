"""The neuron kinds the adapters added (gradflow.neurons.extra: IF, reset after leak, no reset), the
strict threshold (fire_at_threshold=False) and the fast_sigmoid surrogate: equations written out by hand,
closed-form one-step factors against autograd, both backends, and the recorder's closure."""

from __future__ import annotations

import math

import pytest
import torch

import gradflow
from gradflow.neurons import LIF, LIFState, NeuronParams
from gradflow.neurons.extra import IF, IF_KIND, LIF_NORESET_KIND, LIF_RAL_KIND, LeakyNoReset, LeakyRAL
from gradflow.surrogate import make_surrogate, spike

F64 = torch.float64


def _strict(module, on: bool):
    """snnTorch's convention (H(0) = 0) on a built module."""
    if on:
        module._params = module._params._replace(fire_at_threshold=False)
    return module


def _reference(kind: str, x, tau, theta, sur, v_reset=None, detach=False, strict=False):
    """The equations of gradflow.neurons.extra written out directly; spikes [T, N]."""
    beta = 1.0 - (0.0 if math.isinf(tau) else 1.0 / tau)
    v = torch.full_like(x[0], v_reset or 0.0)
    out = []
    for t in range(x.shape[0]):
        if kind == "if":
            u = v + x[t]
        elif kind == "lif_ral":
            r = ((v > theta) if strict else (v >= theta)).to(x.dtype)
            u = beta * v + x[t] - theta * r
        else:
            u = beta * v + x[t]
        s = spike(u - theta, sur)
        if strict:
            s = s - (u == theta).to(x.dtype)
        if kind == "if":
            sr = s.detach() if detach else s
            v = u - theta * sr if v_reset is None else (1 - sr) * u + sr * v_reset
        else:
            v = u
        out.append(s)
    return torch.stack(out)


MODULES = {
    "if": lambda **kw: IF(**kw),
    "lif_ral": lambda **kw: LeakyRAL(tau=3.0, **kw),
    "lif_noreset": lambda **kw: LeakyNoReset(tau=3.0, **kw),
}


@pytest.mark.parametrize("kind", list(MODULES))
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_kinds_follow_their_equations(kind, strict, backend):
    torch.manual_seed(2)
    x = torch.randn(9, 300, dtype=F64) * 0.7 + 0.45
    e = torch.randn(9, 300, dtype=F64)
    sur = make_surrogate("atan")
    kw = dict(surrogate="atan", backend=backend)
    extra = dict(v_reset=-0.2, detach_reset=True) if kind == "if" else {}
    mod = _strict(MODULES[kind](**kw, **extra), strict).double()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = _reference(kind, x1, math.inf if kind == "if" else 3.0, 1.0, sur, strict=strict,
                     v_reset=extra.get("v_reset"), detach=extra.get("detach_reset", False))
    s = mod(x2)
    assert torch.equal(s, ref.detach()) and 0.05 < s.mean().item() < 0.9
    (ref * e).sum().backward()
    (s * e).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-12, atol=1e-12)


def test_strict_threshold_at_exactly_theta():
    x = torch.tensor([[1.0], [0.0]])
    assert LIF(tau=2.0)(x)[:, 0].tolist() == [1.0, 0.0]
    for backend in ("torch", "fused"):
        assert _strict(LIF(tau=2.0, backend=backend), True)(x)[:, 0].tolist() == [0.0, 0.0]
    xs = torch.tensor([1.0], requires_grad=True)
    p = NeuronParams(fire_at_threshold=False)
    s = gradflow.neurons.fire(xs, p)
    s.backward()
    assert s.item() == 0.0 and xs.grad.item() == 1.0  # the surrogate at u = theta, as before


@pytest.mark.parametrize("kind", [IF_KIND, LIF_RAL_KIND, LIF_NORESET_KIND])
def test_one_step_factor_matches_autograd(kind):
    """eps[t] = du[t+1]/du[t] at fixed input: the closed form against autograd through two steps."""
    torch.manual_seed(0)
    p = NeuronParams(tau=math.inf if kind is IF_KIND else 3.0, surrogate=make_surrogate("sigmoid"))
    v0 = torch.randn(200, dtype=F64) * 0.5
    x1, x2 = torch.randn(200, dtype=F64) * 0.6 + 0.5, torch.randn(200, dtype=F64) * 0.6 + 0.5
    u = kind.charge(x1, LIFState(v0), p).requires_grad_()
    s, state = kind.fire_reset(u, LIFState(v0), p)
    u_next = kind.charge(x2, state, p)
    (grad,) = torch.autograd.grad(u_next.sum(), u)
    eps = kind.eps(kind.jacobian(u.detach(), LIFState(v0), p))
    torch.testing.assert_close(torch.as_tensor(eps, dtype=F64).expand_as(grad), grad, rtol=1e-12, atol=1e-12)
    if kind is not IF_KIND:
        torch.testing.assert_close(grad, torch.full_like(grad, 2.0 / 3.0))  # eps = beta: the reset carries no gradient


@pytest.mark.parametrize("make", [lambda: IF(v_reset=0.3), lambda: LeakyRAL(tau=2.5), lambda: LeakyNoReset(tau=2.5)])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_recorder_closure_on_the_new_kinds(make, backend):
    torch.manual_seed(1)
    mod = make().double()
    mod.backend = backend
    x = (torch.randn(7, 40, dtype=F64) * 0.7 + 0.4).requires_grad_()
    with gradflow.record(mod, keep_tensors=True) as rec:
        (mod(x) * torch.randn(7, 40, dtype=F64)).sum().backward()
    kept = rec.tensors(mod.kind)
    torch.testing.assert_close(kept["spatial"] + kept["temporal"], kept["delta"], rtol=1e-12, atol=1e-12)
    assert set(rec.per_step().neuron) == {mod.kind}


def test_if_refuses_a_leak_and_decay_input():
    with pytest.raises(gradflow.UsageError, match="no leak"):
        IF(tau=2.0)
    with pytest.raises(gradflow.UsageError, match="decay_input"):
        IF_KIND.check(NeuronParams(tau=math.inf, decay_input=True))
    lif_if = IF(v_threshold=0.5)
    lif_if.v_threshold = 0.7  # set_params keeps tau = inf
    assert math.isinf(lif_if.tau) and lif_if.v_threshold == 0.7 and "tau=inf" in repr(lif_if)


def test_fast_sigmoid_surrogate():
    sur = make_surrogate("fast_sigmoid")
    assert sur.alpha == 25.0
    x = torch.tensor([-0.1, 0.0, 0.2], requires_grad=True)
    spike(x, sur).sum().backward()
    torch.testing.assert_close(x.grad, 1.0 / (1.0 + 25.0 * x.detach().abs()) ** 2)
