"""The exact transport factorisation (docs/theory.md §5) against autograd through gradflow's neurons.

For a layer with outside gradient ``g[t]`` on its spikes, ``pair[t, t']`` is ``dL_t'/du[t]`` for the
loss ``L_t' = <g[t'], s[t']>`` alone, and ``du[t]/dx[t] = 1`` (``1/tau`` with ``decay_input``), so
autograd through the neuron module, one source at a time, gives every pair norm; float64 throughout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradflow
import gradflow.theory as th
from gradflow import stats

T = 6


def autograd_pairs(neuron, x_np, g_np):
    """``(u, P, pair_sq[T, T])`` by autograd: ``pair_sq[t, k] = ||pair[t, t+k]||^2`` (0 where t+k >= T)."""
    x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    g = torch.tensor(g_np, dtype=torch.float64)
    out = neuron(x, return_states=True)
    scale = neuron.current_tau() if neuron.decay_input else 1.0  # dL/du = dL/dx * du/dx^-1
    pair_sq = np.zeros((T, T))
    for tp in range(T):
        (gx,) = torch.autograd.grad((out.spikes[tp] * g[tp]).sum(), x, retain_graph=True)
        for t in range(tp + 1):
            pair_sq[t, tp - t] = float(((gx[t] * scale) ** 2).sum())
    u = out.u.detach().numpy()
    theta = float(neuron.v_threshold)
    sur = neuron.sur
    P = g_np * th.sg(u - theta, sur.name, sur.alpha)
    return u, P, pair_sq


def options(neuron):
    """The theory's keyword arguments for a gradflow neuron module."""
    return dict(neuron=neuron.kind, tau=neuron.current_tau(), v_threshold=float(neuron.v_threshold),
                surrogate=neuron.sur.name, alpha=neuron.sur.alpha, v_reset=neuron.v_reset,
                detach_reset=neuron.detach_reset, m_grad=getattr(neuron, "m_grad", True))


def data(seed, shape=(40, 7), mean=0.6, std=0.6):
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, std, (T, *shape))
    x[:, :, 0] = x[0, :, 0]  # a static-input column: window membership persists there
    return x, rng.normal(size=(T, *shape))


LIF_CASES = [
    dict(surrogate="rectangle", alpha=1.0),
    dict(surrogate="rectangle", alpha=0.6),
    dict(surrogate="sigmoid"),
    dict(surrogate="atan"),
    dict(surrogate="triangle"),
    dict(surrogate="rectangle", alpha=1.0, detach_reset=True),
    dict(surrogate="sigmoid", v_reset=-0.2),
    dict(surrogate="rectangle", alpha=1.0, v_reset=0.0, detach_reset=True),
    dict(surrogate="atan", decay_input=True, tau=1.5),
    dict(surrogate="rectangle", v_threshold=0.7, alpha=0.7, tau=3.0),
]


@pytest.mark.parametrize("kw", LIF_CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_lif_pair_norms_exact(kw):
    """Eq. 26-27: pair_sq and relative_k equal autograd to 1e-12; relative = leak * survival exactly."""
    neuron = gradflow.LIF(**kw)
    x, g = data(1)
    u, P, ag = autograd_pairs(neuron, x, g)
    tf = th.exact_transport(u, P, **options(neuron))
    np.testing.assert_allclose(tf.pair_sq, ag, rtol=1e-12, atol=1e-14 * ag.max())
    np.testing.assert_allclose(tf.relative, stats.relative_from_pair_sq(ag), rtol=1e-12)
    gamma = 1 - 1 / neuron.current_tau()
    np.testing.assert_allclose(tf.leak, gamma ** np.arange(T), rtol=1e-15)
    np.testing.assert_allclose(tf.relative, tf.leak * tf.survival, rtol=1e-12)
    assert np.all(tf.m_path == 0.0)
    assert tf.relative[2] < tf.relative[1] < 1.0  # the data carry a real profile


@pytest.mark.parametrize("alpha", [1.0, 0.7])
def test_rectangle_at_alpha_theta_survival_is_the_out_of_window_share(alpha):
    """Eq. 28: at alpha = theta, relative_k = gamma^k sqrt(share of P^2 outside the window for k steps)."""
    neuron = gradflow.LIF(tau=2.0, v_threshold=alpha, surrogate="rectangle", alpha=alpha)
    x, g = data(2, mean=0.6 * alpha, std=0.5 * alpha)
    u, P, ag = autograd_pairs(neuron, x, g)
    tf = th.exact_transport(u, P, **options(neuron))
    # written out: for each source t' and lag k, the P^2 on neurons with sg = 0 at t'-1 .. t'-k
    out = th.sg(u.reshape(T, -1) - alpha, "rectangle", alpha) == 0
    w = P.reshape(T, -1) ** 2
    for k in range(1, T):
        stay = np.stack([out[tp - k:tp].all(axis=0) for tp in range(k, T)])
        share = (w[k:] * stay).sum() / w[k:].sum()
        assert tf.survival[k] ** 2 == pytest.approx(share, rel=1e-12)
        assert tf.out_share[k] == pytest.approx(share, rel=1e-12)
        assert tf.relative[k] == pytest.approx(0.5**k * np.sqrt(share), rel=1e-12)
    np.testing.assert_allclose(tf.relative, stats.relative_from_pair_sq(ag), rtol=1e-12)
    # wider window: still exact pairs, but f_in = 1 - theta/alpha != 0, so survival exceeds the share
    wide = th.exact_transport(u, P, **{**options(neuron), "alpha": 1.5 * alpha})
    assert np.all(wide.survival[1:] > wide.out_share[1:])


@pytest.mark.parametrize("surrogate,alpha", [("rectangle", 1.0), ("sigmoid", None), ("atan", None)])
@pytest.mark.parametrize("detach", [False, True])
def test_clif_pair_norms_exact_and_m_path(surrogate, alpha, detach):
    """Eq. 29: CLIF pairs exact; relative^2 = (leak survival)^2 + m_path, with a nonzero m path."""
    neuron = gradflow.CLIF(tau=2.0, surrogate=surrogate, alpha=alpha, detach_reset=detach)
    x, g = data(3, mean=0.7, std=0.7)
    u, P, ag = autograd_pairs(neuron, x, g)
    tf = th.exact_transport(u, P, **options(neuron))
    np.testing.assert_allclose(tf.pair_sq, ag, rtol=1e-12, atol=1e-14 * ag.max())
    np.testing.assert_allclose(tf.relative ** 2, (tf.leak * tf.survival) ** 2 + tf.m_path, rtol=1e-12)
    assert np.max(np.abs(tf.m_path[2:])) > 1e-6  # the m path carries gradient from lag 2 on
    assert tf.m_path[1] == pytest.approx(0.0, abs=1e-15)  # lag 1 is the v path alone (xi)


@pytest.mark.skipif(not hasattr(gradflow.CLIF(), "m_grad"), reason="the neurons have no m_grad option")
def test_clif_without_m_gradient():
    """CLIF's m_grad=False ablation: no m path, and the v path loses the u -> m -> v term."""
    neuron = gradflow.CLIF(tau=2.0, surrogate="sigmoid", m_grad=False)
    x, g = data(6, mean=0.7, std=0.7)
    u, P, ag = autograd_pairs(neuron, x, g)
    tf = th.exact_transport(u, P, **options(neuron))
    np.testing.assert_allclose(tf.pair_sq, ag, rtol=1e-12, atol=1e-14 * ag.max())
    np.testing.assert_allclose(tf.m_path, 0.0, atol=1e-15)
    with_m = th.exact_transport(u, P, **{**options(neuron), "m_grad": True})
    assert np.max(np.abs(with_m.pair_sq - ag)) > 1e-6 * ag.max()


def test_plif_and_truncation():
    """PLIF uses its learned tau; truncated BPTT (cut steps) zeroes every pair across a cut."""
    plif = gradflow.PLIF(init_tau=3.0, surrogate="sigmoid").double()  # float64 tau, as the theory's
    with torch.no_grad():
        plif.w.add_(0.4)  # a learned tau away from the initial one
    x, g = data(4)
    u, P, ag = autograd_pairs(plif, x, g)
    tf = th.exact_transport(u, P, **options(plif))
    np.testing.assert_allclose(tf.pair_sq, ag, rtol=1e-12, atol=1e-14 * ag.max())
    lif = gradflow.LIF(tau=2.0, surrogate="atan", truncate=2)  # states entering t = 2, 4 detached
    u, P, ag = autograd_pairs(lif, x, g)
    tf = th.exact_transport(u, P, **options(lif), cut=(2, 4))
    np.testing.assert_allclose(tf.pair_sq, ag, rtol=1e-12, atol=1e-14 * ag.max())
    assert tf.pair_sq[1, 1] == 0.0 and tf.pair_sq[0, 2] == 0.0 and tf.pair_sq[0, 1] > 0
    clif = gradflow.CLIF(tau=2.0, surrogate="sigmoid", truncate=3)
    u, P, ag = autograd_pairs(clif, x, g)
    np.testing.assert_allclose(th.exact_transport(u, P, **options(clif), cut=(3,)).pair_sq, ag,
                               rtol=1e-12, atol=1e-14 * ag.max())


def test_max_lag_shapes_and_errors():
    x, g = data(5)
    u = th.simulate_neuron(x).u
    P = g * th.sg(u - 1.0)
    full = th.exact_transport(u, P)
    part = th.exact_transport(u, P, max_lag=2)
    assert part.pair_sq.shape == (T, 3) and part.relative.shape == (3,)
    np.testing.assert_allclose(part.relative, full.relative[:3], rtol=1e-14)
    silent = th.exact_transport(u, np.zeros_like(P))
    assert np.isnan(silent.relative).all() and np.isnan(silent.survival).all()
    with pytest.raises(th.TheoryError):
        th.exact_transport(u, P, max_lag=T)
    with pytest.raises(th.TheoryError):
        th.exact_transport(u, P[:, :3])
    with pytest.raises(th.TheoryError):
        th.exact_transport(u, P, cut=(0,))
    with pytest.raises(th.TheoryError):
        th.exact_transport(u, P, neuron="clif", v_reset=0.0)
