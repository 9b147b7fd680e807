"""The kind API: closed-form Jacobians and adjoint steps against float64 autograd, the hard reset of
gradflow 0.2 (leak toward v_reset, start at v_reset) against SpikingJelly, blocked fused loops, one
NeuronParams per module (PLIF's learned tau everywhere), and a new kind added in a few lines."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
import torch

import gradflow
from gradflow.errors import UsageError
from gradflow.neurons import (
    CLIF_KIND,
    KINDS,
    LIF_KIND,
    PLIF,
    NeuronParams,
    build_neuron,
    chunks,
    jacobian_at,
    make_params,
    sweep,
)
from gradflow.neurons.kind import AdjointStep
from gradflow.neurons.lif import surrogate_window
from gradflow.surrogate import SURROGATES

# (v_reset, detach_reset, decay_input, smooth, m_grad); CLIF takes only the soft reset, m_grad is CLIF's
OPTIONS = list(itertools.product([None, 0.3], [False, True], [False, True], [False, True], [True, False]))


def _params(kind, surrogate, opt):
    v_reset, detach, decay, smooth, m_grad = OPTIONS[opt]
    if kind == "clif" and v_reset is not None:
        pytest.skip("CLIF has only the soft reset")
    if kind != "clif" and not m_grad:
        pytest.skip("m_grad is CLIF's option")
    return make_params(tau=1.7, v_threshold=0.9, v_reset=v_reset, surrogate=surrogate, detach_reset=detach,
                       decay_input=decay, smooth=smooth, m_grad=m_grad)


def _autograd_jacobian(kind, p, k, u, prev):
    """Diagonal partials of one fire/reset step by autograd (elementwise maps: grad of the sum)."""
    u = u.clone().requires_grad_()
    prev = kind.State(*(z.clone().requires_grad_() for z in prev))
    _, new = kind.fire_reset(u, prev, p, k)
    out = {}
    for out_name, value in zip(kind.State._fields, new):
        if not value.requires_grad:  # detached (CLIF's m with m_grad=False): every partial is 0
            grads = (None,) * (1 + len(prev))
        else:
            grads = torch.autograd.grad(value.sum(), (u, *prev), allow_unused=True, retain_graph=True)
        for in_name, g in zip(("u",) + kind.State._fields, grads):
            out[out_name + in_name] = torch.zeros_like(u) if g is None else g
    return out


@pytest.mark.parametrize("kind_name", ["lif", "clif", "plif"])
@pytest.mark.parametrize("surrogate", list(SURROGATES))
@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_closed_form_jacobian_matches_autograd(kind_name, surrogate, opt):
    kind = KINDS[kind_name]
    p = _params(kind_name, surrogate, opt)
    k = torch.tensor(1 / 1.7, dtype=torch.float64) if kind.learned_tau else p.inv_tau
    gen = torch.Generator().manual_seed(opt)
    u = torch.randn(400, generator=gen, dtype=torch.float64) * 0.8 + 0.9
    prev = kind.State(*(torch.randn(400, generator=gen, dtype=torch.float64) for _ in kind.State._fields))
    ref = _autograd_jacobian(kind, p, k, u, prev)
    jac = kind.jacobian(u, prev, p, k)
    dense = kind.dense(jac)
    for name, want in ref.items():
        if name[1:] == "v":
            # d(state[t])/dv[t-1] at fixed u[t] is 0: v[t-1] enters only through the charge
            assert torch.equal(want, torch.zeros_like(want)), name
            continue
        got = dense.get(name, torch.zeros_like(u))
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=name)
    # the charge row b = (a, 0, ...) and du/dx, by autograd of the charge
    x = torch.randn(400, generator=gen, dtype=torch.float64).requires_grad_()
    st = kind.State(*(z.clone().requires_grad_() for z in prev))
    grads = torch.autograd.grad(kind.charge(x, st, p, k).sum(), (x, *st), allow_unused=True)
    assert torch.allclose(grads[0], torch.full_like(u, float(kind.input_gain(p, k))), rtol=1e-14)
    assert torch.allclose(grads[1], torch.full_like(u, float(jac.a)), rtol=1e-14)
    assert all(g is None for g in grads[2:])
    torch.testing.assert_close(kind.eps(jac), jac.a * dense["vu"], rtol=0, atol=0)
    assert torch.equal(kind.vu(jac), dense["vu"])   # the recorder's shortcut: bit for bit the dense partial


@pytest.mark.parametrize("kind_name", ["lif", "clif"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_adjoint_step_is_c_dot_g_and_b_delta_plus_dt_g(kind_name, detach_reset):
    """back() evaluates the documented recursion with the dense partials, whatever its rearrangement."""
    kind = KINDS[kind_name]
    p = make_params(tau=1.7, surrogate="atan", detach_reset=detach_reset)
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(3, 200, generator=gen, dtype=torch.float64) + 0.9
    prev = kind.State(*(torch.randn(3, 200, generator=gen, dtype=torch.float64) for _ in kind.State._fields))
    jac = kind.jacobian(u, prev, p, p.inv_tau)
    d = kind.dense(jac)
    G = tuple(torch.randn(3, 200, generator=gen, dtype=torch.float64) for _ in kind.State._fields)
    P = torch.randn(3, 200, generator=gen, dtype=torch.float64)
    step = kind.back(jac, G, P=P)
    temporal = d["vu"] * G[0] + (d["mu"] * G[1] if kind_name == "clif" else 0)
    torch.testing.assert_close(step.temporal, temporal, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(step.delta, P + temporal, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(step.carry[0], jac.a * step.delta, rtol=1e-15, atol=0)
    if kind_name == "clif":
        torch.testing.assert_close(step.carry[1], d["vm"] * G[0] + d["mm"] * G[1], rtol=1e-12, atol=1e-12)
    # broadcasting: a batch of sources [B, 3, 200] against one Jacobian
    Gb = tuple(torch.stack([g, 2 * g]) for g in G)
    both = kind.back(jac, Gb)
    torch.testing.assert_close(both.temporal[1], 2 * temporal, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind_name", ["lif", "clif", "plif"])
@pytest.mark.parametrize("truncate", [None, 2])
def test_sweep_reproduces_autograd_delta(kind_name, truncate):
    """The shared reverse sweep over the closed-form Jacobians gives dL/du of the torch backend."""
    torch.manual_seed(2)
    mod = build_neuron(kind_name, tau=1.7, surrogate="sigmoid", truncate=truncate).double()
    x = (torch.randn(7, 30, dtype=torch.float64) + 0.8).requires_grad_()
    e = torch.randn(7, 30, dtype=torch.float64)
    traces = []
    h = mod.register_step_observer(lambda m, tr: (traces.append(tr), [u.retain_grad() for u in tr.u]))
    (mod(x) * e).sum().backward()
    h.remove()
    tr = traces[0]
    kind = tr.kind
    u = torch.stack(tr.u).detach()
    prev = kind.State(*(torch.stack([getattr(s, f) for s in tr.prev]).detach() for f in kind.State._fields))
    jac = kind.jacobian(u, prev, tr.params, tr.inv_tau)
    delta = torch.empty_like(u)
    for t, j, step in sweep(kind, lambda i: jacobian_at(jac, i), 7, tr.cut, P_at=lambda i, j: e[i] * j.sg):
        delta[t] = step.delta
    torch.testing.assert_close(delta, torch.stack([u.grad for u in tr.u]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_clif_m_grad_false_stops_the_m_path(detach_reset):
    """m_grad=False: the forward is unchanged; gradients equal autograd with m detached, on both backends."""
    torch.manual_seed(6)
    x = torch.randn(8, 50, dtype=torch.float64) + 0.8
    e = torch.randn_like(x)
    sur = gradflow.surrogate.make_surrogate("atan")
    xr = x.clone().requires_grad_()
    v, m, out = torch.zeros(50, dtype=torch.float64), torch.zeros(50, dtype=torch.float64), []
    for t in range(8):  # the SPEC equations with m detached
        u = 0.5 * v + xr[t]
        s = gradflow.surrogate.spike(u - 1.0, sur)
        m = (m * torch.sigmoid(u / 2.0) + s).detach()
        v = u - (s.detach() if detach_reset else s) * (1.0 + torch.sigmoid(m))
        out.append(s)
    ref = torch.stack(out)
    (ref * e).sum().backward()
    for backend in ("torch", "fused"):
        mod = gradflow.CLIF(surrogate="atan", detach_reset=detach_reset, m_grad=False, backend=backend).double()
        assert "m_grad=False" in repr(mod) and mod.m_grad is False
        xi = x.clone().requires_grad_()
        s = mod(xi)
        assert torch.equal(s, gradflow.CLIF(surrogate="atan").double()(x))
        (s * e).sum().backward()
        torch.testing.assert_close(xi.grad, xr.grad, rtol=1e-12, atol=1e-12)
    with pytest.raises(UsageError, match="m_grad"):
        gradflow.LIF(m_grad=False)


def test_rectangle_alpha_theta_gives_exact_zero_and_gamma():
    for theta in (1.0, 0.3, 0.7):
        p = make_params(tau=2.0, v_threshold=theta, surrogate="rectangle", alpha=theta)
        u = torch.linspace(-1, 2, 3001, dtype=torch.float32)
        jac = LIF_KIND.jacobian(u, None, p)
        assert set(LIF_KIND.eps(jac).unique().tolist()) == {0.0, 0.5}
        sg, theta_sg = surrogate_window(u, p)
        assert set(theta_sg.unique().tolist()) == {0.0, 1.0}


# ----------------------------------------------------------------------------- hard reset (SPEC 0.2)


def test_hard_reset_leaks_toward_v_reset_hand_trajectory():
    # tau = 2, theta = 1, v_reset = 0.4: u = v - (v - 0.4)/2 + x, v[-1] = 0.4
    x = torch.tensor([[0.0], [0.9], [0.2], [0.0]], dtype=torch.float64)
    out = gradflow.LIF(tau=2.0, v_reset=0.4)(x, return_states=True)
    # u0 = 0.4 (at rest); u1 = 0.4 + 0.9 = 1.3 -> spike, v = 0.4; u2 = 0.6; v = 0.6; u3 = 0.6 - 0.1 = 0.5
    assert out.u[:, 0].tolist() == pytest.approx([0.4, 1.3, 0.6, 0.5], abs=1e-15)
    assert out.spikes[:, 0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert out.v[:, 0].tolist() == pytest.approx([0.4, 0.4, 0.6, 0.5], abs=1e-15)
    fused = gradflow.LIF(tau=2.0, v_reset=0.4, backend="fused")
    assert torch.equal(fused(x), out.spikes)


def _sj_node(kind, v_reset, surrogate, tau, decay_input, detach_reset):
    from spikingjelly.activation_based import neuron, surrogate as sjs

    sur = {"sigmoid": sjs.Sigmoid(alpha=4.0), "atan": sjs.ATan(alpha=2.0)}[surrogate]
    common = dict(decay_input=decay_input, v_threshold=1.0, v_reset=v_reset, surrogate_function=sur,
                  detach_reset=detach_reset, step_mode="m")
    if kind == "plif":
        return neuron.ParametricLIFNode(init_tau=tau, **common)
    return neuron.LIFNode(tau=tau, **common)


@pytest.mark.parametrize("kind", ["lif", "plif"])
@pytest.mark.parametrize("v_reset", [-0.5, 0.3])
@pytest.mark.parametrize("backend", ["torch", "fused"])
@pytest.mark.parametrize("surrogate,decay_input,detach_reset", [("sigmoid", False, False), ("atan", True, False),
                                                               ("sigmoid", False, True)])
def test_hard_reset_matches_spikingjelly(kind, v_reset, backend, surrogate, decay_input, detach_reset):
    """SpikingJelly's LIFNode/ParametricLIFNode at v_reset != 0: the same spikes, gradients to float32 rounding."""
    pytest.importorskip("spikingjelly")
    torch.manual_seed(0)
    x = torch.randn(8, 4, 30) * 0.8 + (1.6 if decay_input else 0.6) - v_reset
    e = torch.randn(8, 4, 30)
    sj = _sj_node(kind, v_reset, surrogate, 2.0, decay_input, detach_reset)
    ours = build_neuron(kind, tau=2.0, v_reset=v_reset, surrogate=surrogate, decay_input=decay_input,
                        detach_reset=detach_reset, backend=backend)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, s2 = sj(x1), ours(x2)
    assert torch.equal(s1, s2)
    assert 0.05 < s1.mean().item() < 0.7  # many threshold crossings, not saturated
    (s1 * e).sum().backward()
    (s2 * e).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-6)
    if kind == "plif":
        torch.testing.assert_close(ours.w.grad, sj.w.grad.reshape(()), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- fused blocks


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
def test_fused_blocks_change_nothing(kind, monkeypatch):
    """All steps of one block of neurons at a time: identical spikes and gradients for any block size."""
    torch.manual_seed(1)
    x = torch.randn(5, 3, 37, dtype=torch.float64) + 0.7
    e = torch.randn_like(x)
    results = []
    for block in (1 << 17, 16, 7):
        monkeypatch.setattr(chunks, "CPU_BLOCK", block)
        mod = build_neuron(kind, backend="fused", surrogate="atan", truncate=2).double()
        xi = x.clone().requires_grad_()
        s = mod(xi)
        (s * e).sum().backward()
        results.append((s, xi.grad, mod.w.grad if kind == "plif" else None))
    assert [(s.stop - s.start) for s in chunks.chunk_slices(torch.zeros(2, 20))] == [7, 7, 6]
    for s, g, w in results[1:]:
        assert torch.equal(s, results[0][0])
        torch.testing.assert_close(g, results[0][1], rtol=1e-14, atol=1e-14)
        if w is not None:
            torch.testing.assert_close(w, results[0][2], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind, kw", [("lif", dict(v_reset=-0.0)), ("lif", dict(v_reset=0.3, decay_input=True)),
                                      ("clif", dict()), ("clif", dict(detach_reset=True)), ("plif", dict())])
def test_fused_blocks_with_an_observer_and_a_tap(kind, kw, monkeypatch):
    """With an observer (states written in place, CLIF's prev m a view of the saved m) and a tap
    (temporal rows written in place, rows without one zeroed), over several blocks: the states equal
    the torch backend's, the tap keeps its contract, and the gradient is the one without observer."""
    torch.manual_seed(2)
    x = torch.randn(5, 3, 37, dtype=torch.float64) + 0.7
    e = torch.randn_like(x)
    monkeypatch.setattr(chunks, "CPU_BLOCK", 16)
    ref = build_neuron(kind, backend="torch", truncate=2, **kw).double()
    traces = []
    h = ref.register_step_observer(lambda m, tr: traces.append(tr))
    ref(x)
    h.remove()
    grads, got = [], {}
    for observe in (False, True):
        mod = build_neuron(kind, backend="fused", truncate=2, **kw).double()
        if observe:
            def observer(m, tr):
                got["trace"] = tr
                tr.tap.append(lambda g, P, temporal, delta: got.update(P=P.clone(), temporal=temporal.clone(),
                                                                        delta=delta.clone()))
            mod.register_step_observer(observer)
        xi = x.clone().requires_grad_()
        (mod(xi) * e).sum().backward()
        grads.append(xi.grad)
    assert torch.equal(grads[1], grads[0])
    tr = got["trace"]
    for a, b in zip(tr.prev, traces[0].prev):
        for za, zb in zip(a, b):
            torch.testing.assert_close(za, zb.detach(), rtol=1e-14, atol=1e-15)
            assert torch.equal(torch.signbit(za), torch.signbit(zb.detach())) or kind != "lif"
    temporal = got["temporal"]
    for t in (4, 1, 3):  # the last step, and the steps before the cuts at 2 and 4
        assert torch.equal(temporal[t], torch.zeros_like(temporal[t]))
    scale = got["delta"].abs().max().item()
    torch.testing.assert_close(got["P"] + temporal, got["delta"], rtol=0, atol=4e-16 * scale)


# ----------------------------------------------------------------------------- one NeuronParams per module


def test_plif_reports_learned_tau_everywhere():
    plif = PLIF(init_tau=2.0)
    with torch.no_grad():
        plif.w.fill_(0.7)  # as after training
    learned = 1 / torch.sigmoid(torch.tensor(0.7, dtype=torch.float64)).item()
    assert plif.params.tau == pytest.approx(learned) and plif.tau == pytest.approx(learned)
    assert plif.current_tau() == pytest.approx(learned)
    assert f"tau={learned:.4g}" in repr(plif)
    plif.tau = 3.0  # sets w
    assert plif.w.item() == pytest.approx(-math.log(2.0)) and plif.params.tau == pytest.approx(3.0)


def test_params_are_the_single_source_and_validated():
    lif = gradflow.LIF(tau=3.0, surrogate="atan")
    assert lif.params == NeuronParams(tau=3.0, surrogate=gradflow.surrogate.Surrogate("atan", 2.0))
    lif.v_threshold = 0.5
    assert lif.params.v_threshold == 0.5 and lif.v_threshold == 0.5
    x = torch.full((3, 1), 0.4)
    assert lif(x)[:, 0].tolist() == [0.0, 1.0, 1.0]  # the step reads the new threshold
    with pytest.raises(UsageError, match="tau"):
        lif.tau = 0.9
    assert lif.params.tau == 3.0
    with pytest.raises(UsageError, match="soft reset"):
        gradflow.CLIF().v_reset = 0.0
    with pytest.raises(UsageError, match="Unknown surrogate"):
        lif.sur = "relu"


def test_unpickles_a_0_1_module_with_loose_attributes():
    lif = gradflow.LIF(tau=3.0)
    state = lif.__getstate__() if hasattr(lif, "__getstate__") else dict(lif.__dict__)
    state = dict(state)
    del state["_params"], state["_backend"]
    state.update(tau=1.5, v_threshold=0.8, v_reset=0.0, sur=gradflow.surrogate.Surrogate("atan", 2.0),
                 detach_reset=True, decay_input=False, smooth_forward=False)
    old = gradflow.LIF.__new__(gradflow.LIF)
    old.__setstate__(state)
    assert old.params == NeuronParams(1.5, 0.8, 0.0, gradflow.surrogate.Surrogate("atan", 2.0), True)
    assert old.backend == "torch"
    again = pickle.loads(pickle.dumps(old))
    assert again.params == old.params


def test_initial_state_is_v_reset():
    st = gradflow.LIF(v_reset=-0.2).init_state(torch.zeros(3))
    assert st.v.tolist() == pytest.approx([-0.2] * 3)
    st = gradflow.CLIF().init_state(torch.zeros(3))
    assert st.v.tolist() == [0.0] * 3 and st.m.tolist() == [0.0] * 3


def test_kind_registry_and_errors():
    assert set(KINDS) >= {"lif", "clif", "plif"} and KINDS["clif"] is CLIF_KIND
    assert isinstance(CLIF_KIND.back(CLIF_KIND.jacobian(torch.ones(2), None, NeuronParams()), None,
                                     P=torch.ones(2)), AdjointStep)
    with pytest.raises(UsageError, match="Unknown neuron"):
        gradflow.neurons.get_kind("izhikevich")


def test_doctests():
    import doctest

    for mod in (gradflow.neurons, gradflow.neurons.params, gradflow.neurons.lif, gradflow.neurons.clif,
                gradflow.neurons.adjoint, gradflow.neurons.module, gradflow.neurons.chunks):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
