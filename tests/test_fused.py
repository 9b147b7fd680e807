"""Fused neurons (gradflow.neurons.fused, backend='fused'): outputs and gradients equal to the autograd path,
gradcheck of the hand-derived backward, truncation, the tap contract and observers."""

from __future__ import annotations

import itertools

import pytest
import torch

import gradflow
from gradflow.errors import UsageError
from gradflow.neurons.fused import clif_multistep, cut_steps, lif_multistep
from gradflow.neurons import CLIFState, LIFState, NeuronParams, build_neuron
from gradflow.surrogate import SURROGATES, make_surrogate

KINDS = ["lif", "clif", "plif"]
# (v_reset, detach_reset, decay_input); CLIF takes only the soft reset
OPTIONS = [
    (v_reset, detach, decay)
    for v_reset, detach, decay in itertools.product([None, -0.2], [False, True], [False, True])
]


def _pair(kind, dtype, **kw):
    """The same neuron on both backends (PLIF: same w, moved off its initial value)."""
    a = build_neuron(kind, backend="torch", **kw).to(dtype)
    b = build_neuron(kind, backend="fused", **kw).to(dtype)
    if kind == "plif":
        with torch.no_grad():
            a.w.fill_(0.4)
            b.w.fill_(0.4)
    return a, b


def _compare(kind, dtype, tol, seed=0, T=9, shape=(30, 7), **kw):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn((T,) + shape, generator=gen, dtype=torch.float64) * 1.2 + 0.7).to(dtype)
    e = torch.randn((T,) + shape, generator=gen, dtype=torch.float64).to(dtype)
    a, b = _pair(kind, dtype, **kw)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, s2 = a(x1), b(x2)
    assert torch.equal(s1, s2)  # forward: same ops in the same order, bit-identical
    assert (s1[1:] != s1[:-1]).sum().item() > 0.2 * s1[0].numel()  # many threshold crossings
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=tol, atol=tol)
    if kind == "plif":
        torch.testing.assert_close(b.w.grad, a.w.grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("surrogate", list(SURROGATES))
@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_fused_matches_autograd_float64(kind, surrogate, opt):
    v_reset, detach, decay = OPTIONS[opt]
    if kind == "clif" and v_reset is not None:
        pytest.skip("CLIF has only the soft reset")
    _compare(kind, torch.float64, 1e-12, seed=opt, surrogate=surrogate, v_reset=v_reset, detach_reset=detach,
             decay_input=decay, tau=1.7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("surrogate", list(SURROGATES))
def test_fused_matches_autograd_float32(kind, surrogate):
    for opt, (v_reset, detach, decay) in enumerate(OPTIONS):
        if kind == "clif" and v_reset is not None:
            continue
        _compare(kind, torch.float32, 1e-6, seed=10 + opt, surrogate=surrogate, v_reset=v_reset,
                 detach_reset=detach, decay_input=decay)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 2, 3, 9])
def test_fused_truncate(kind, k):
    _compare(kind, torch.float64, 1e-12, seed=k, truncate=k, surrogate="atan")
    _compare(kind, torch.float64, 1e-12, seed=k, truncate=k, detach_reset=True)


def test_fused_truncate_cuts_temporal_gradient():
    x = torch.tensor([[1.2], [0.2], [0.9], [0.4]], requires_grad=True)
    gradflow.LIF(tau=2.0, truncate=2, backend="fused")(x).sum().backward()
    g = x.grad[:, 0].tolist()
    assert g[1] == 0.0 and g[3] == 0.0 and g[0] == 1.0  # as in test_neurons' torch version


def test_fused_hand_gradient():
    # test_neurons.test_lif_hand_gradient, on the fused backend: delta = [1, 0.5, 1]
    x = torch.tensor([[1.2], [0.2], [0.9]], dtype=torch.float64, requires_grad=True)
    gradflow.LIF(tau=2.0, backend="fused")(x).sum().backward()
    assert x.grad[:, 0].tolist() == [1.0, 0.5, 1.0]


def test_fused_hand_trajectories():
    X = torch.tensor([[0.6, 1.5], [0.6, 0.2], [0.6, 0.95], [0.3, 1.1], [1.0, 0.0]], dtype=torch.float64)
    assert gradflow.LIF(tau=2.0, backend="fused")(X).tolist() == [[0, 1], [0, 0], [1, 1], [0, 1], [1, 0]]
    assert gradflow.CLIF(tau=2.0, backend="fused")(X).tolist() == [[0, 1], [0, 0], [1, 0], [0, 1], [0, 0]]


# The module-level gradcheck of the fused backend is tests/test_neurons.py::test_gradcheck_smooth_neuron,
# parametrized over both backends.


def test_gradcheck_fused_functions_directly():
    """The Functions themselves, with PLIF's k as a tensor input (decay_input needs the saved x)."""
    torch.manual_seed(1)
    x = (torch.randn(4, 3, dtype=torch.float64) * 0.7 + 0.8).requires_grad_()
    k = torch.tensor(0.45, dtype=torch.float64, requires_grad=True)
    for decay in (False, True):
        p = NeuronParams(surrogate=make_surrogate("sigmoid"), smooth=True, decay_input=decay)
        assert torch.autograd.gradcheck(lambda x, k: lif_multistep(x, k, p), (x, k), eps=1e-6, atol=1e-7)
        assert torch.autograd.gradcheck(lambda x: clif_multistep(x, 0.45, p), (x,), eps=1e-6, atol=1e-7)


def test_fused_saves_only_u_and_m():
    """Saved for backward: u (LIF; PLIF also k, which sigmoid(w) saves too); u, m[0..T-1] and
    q = sigmoid(u/tau) (CLIF)."""
    x = torch.randn(6, 50, requires_grad=True)
    for kind, sizes in (("lif", [300]), ("plif", [1, 1, 300]), ("clif", [300, 300, 300])):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            build_neuron(kind, backend="fused")(x)
        assert sorted(t.numel() for t in saved) == sizes


def _tap_run(kind, **kw):
    torch.manual_seed(3)
    mod = build_neuron(kind, backend="fused", **kw).double()
    x = (torch.randn(7, 20, 3, dtype=torch.float64) + 0.7).requires_grad_()
    e = torch.randn(7, 20, 3, dtype=torch.float64)
    got, traces = {}, []

    def observer(module, trace):
        traces.append(trace)
        trace.spikes.register_hook(lambda g: got.__setitem__("hook_g", g))
        trace.tap.append(lambda g, P, temporal, delta: got.update(g=g, P=P, temporal=temporal, delta=delta))

    handle = mod.register_step_observer(observer)
    out = mod(x)
    (out * e).sum().backward()
    handle.remove()
    return mod, x, e, out, got, traces[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kw", [dict(), dict(surrogate="atan", detach_reset=True), dict(decay_input=True, truncate=3)])
def test_tap_contract(kind, kw):
    mod, x, e, out, got, trace = _tap_run(kind, **kw)
    assert set(got) == {"hook_g", "g", "P", "temporal", "delta"}
    assert torch.equal(got["g"], e) and torch.equal(got["hook_g"], e)  # g_out, also via the tensor hook
    scale = got["delta"].abs().max().item()
    torch.testing.assert_close(got["P"] + got["temporal"], got["delta"], rtol=0, atol=4e-16 * scale)
    assert torch.equal(got["temporal"][-1], torch.zeros_like(got["temporal"][-1]))
    dudx = trace.inv_tau.detach() if (kw.get("decay_input") and kind == "plif") else (
        trace.inv_tau if kw.get("decay_input") else 1.0)
    torch.testing.assert_close(got["delta"] * dudx, x.grad, rtol=0, atol=0)
    # P = g_out * sg(u - theta)
    p = mod.params
    sg = gradflow.surrogate.surrogate_grad(torch.stack(trace.u) - p.v_threshold, p.surrogate)
    torch.testing.assert_close(got["P"], e * sg, rtol=1e-15, atol=0)
    # delta equals dL/du[t] from the autograd path, captured independently with retain_grad
    ref = build_neuron(kind, backend="torch", **kw).double()
    ref.load_state_dict(mod.state_dict())
    us = []
    h = ref.register_step_observer(lambda m, tr: [u.retain_grad() or us.append(u) for u in tr.u])
    (ref(x.detach().clone().requires_grad_()) * e).sum().backward()
    h.remove()
    torch.testing.assert_close(got["delta"], torch.stack([u.grad for u in us]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_trace_and_observers(kind):
    mod, x, e, out, got, trace = _tap_run(kind, truncate=2)
    ref = build_neuron(kind, backend="torch", truncate=2).double()
    ref.load_state_dict(mod.state_dict())
    traces = []
    h = ref.register_step_observer(lambda m, tr: traces.append(tr))
    ref(x)
    h.remove()
    rt = traces[0]
    assert trace.backend == "fused" and rt.backend == "torch" and rt.tap is None
    assert trace.spikes is out and trace.x is x and trace.cut == rt.cut == (2, 4, 6)
    assert all(not u.requires_grad for u in trace.u)
    torch.testing.assert_close(torch.stack(trace.u), torch.stack(rt.u).detach(), rtol=0, atol=0)
    assert type(trace.prev[0]) is type(rt.prev[0]) is (CLIFState if kind == "clif" else LIFState)
    for a, b in zip(trace.prev, rt.prev):
        for za, zb in zip(a, b):
            assert not za.requires_grad
            torch.testing.assert_close(za, zb.detach(), rtol=0, atol=0)


def test_tap_does_not_change_gradients():
    torch.manual_seed(5)
    x = torch.randn(8, 40) + 0.6
    e = torch.randn(8, 40)
    grads = []
    for with_tap in (False, True):
        mod = gradflow.CLIF(backend="fused")
        h = mod.register_step_observer(lambda m, tr: tr.tap.append(lambda *a: None)) if with_tap else None
        xi = x.clone().requires_grad_()
        (mod(xi) * e).sum().backward()
        grads.append(xi.grad)
        if h:
            h.remove()
    assert torch.equal(grads[0], grads[1])


def test_backend_argument_and_states():
    with pytest.raises(UsageError, match="backend"):
        gradflow.LIF(backend="cuda")
    mod = gradflow.PLIF(init_tau=3.0, backend="fused")
    assert mod.backend == "fused" and "backend=fused" in repr(mod)
    assert "backend" not in repr(gradflow.LIF())
    # return_states takes the torch path: differentiable states, same values
    x = torch.randn(5, 4) + 0.8
    out = gradflow.CLIF(backend="fused")(x, return_states=True)
    ref = gradflow.CLIF()(x, return_states=True)
    for a, b in zip(out, ref):
        assert torch.equal(a, b)
    assert cut_steps(7, 3) == (3, 6) and cut_steps(7, None) == ()
    # a built model can be switched to the fused backend in place, same outputs
    net = gradflow.models.build("mlp", neuron="clif", in_features=6, widths=(16,), num_classes=3, T=4)
    xs = torch.rand(5, 6)
    before = net(xs)
    for m in net.modules():
        if isinstance(m, gradflow.neurons.SpikingNeuron):
            m.backend = "fused"
    assert torch.equal(net(xs), before)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", KINDS)
def test_fused_cuda_matches_cpu_autograd(kind):
    torch.manual_seed(0)
    x = torch.randn(8, 64, 33, dtype=torch.float64) + 0.7
    e = torch.randn_like(x)
    a, b = _pair(kind, torch.float64, surrogate="sigmoid")
    b = b.cuda()
    x1, x2 = x.clone().requires_grad_(), x.cuda().requires_grad_()
    s1, s2 = a(x1), b(x2)
    assert torch.equal(s1, s2.cpu())
    (s1 * e).sum().backward()
    torch.cuda.set_sync_debug_mode("error")
    try:
        (s2 * e.cuda()).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(x2.grad.cpu(), x1.grad, rtol=1e-12, atol=1e-12)


def test_doctests():
    import doctest

    import gradflow.neurons.fused

    result = doctest.testmod(gradflow.neurons.fused, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
