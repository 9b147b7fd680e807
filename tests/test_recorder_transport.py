"""The recorder's window-model inputs equal the theory's numpy reference (float64, 1e-12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import gradflow
from gradflow.theory.window import INPUT_KEYS, transport_inputs


def _net(kind: str, surrogate: str, truncate):
    torch.manual_seed(3)
    neuron = dict(surrogate=surrogate, truncate=truncate)
    first = gradflow.build_neuron(kind, **neuron)
    return nn.ModuleDict({"fc1": nn.Linear(5, 12), "sn1": first, "fc2": nn.Linear(12, 3)}).double()


def _forward(net, x):
    h = net["fc1"](x)               # [T, N, 12]
    return net["fc2"](net["sn1"](h))


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
@pytest.mark.parametrize("surrogate", ["rectangle", "sigmoid"])
@pytest.mark.parametrize("truncate", [None, 2])
def test_transport_inputs_equal_theory_reference(kind, surrogate, truncate):
    net = _net(kind, surrogate, truncate)
    x = torch.rand(6, 9, 5, dtype=torch.float64) * 2.5
    with gradflow.record(net, transport=True, keep_tensors=True, weights=False) as rec:
        _forward(net, x).square().sum().backward()
    got = rec.transport_inputs()["sn1"]
    kept = rec.tensors("sn1", 0)
    neuron = net["sn1"]
    p = neuron.params
    cut = tuple(t for t in range(1, 6) if truncate and t % truncate == 0)
    want = transport_inputs(
        kept["u"].numpy(), kept["spatial"].numpy(), neuron=kind, tau=float(p.tau), v_threshold=p.v_threshold,
        surrogate=surrogate, alpha=p.surrogate.alpha, cut=cut,
    )
    assert got["count"].shape == (9, 6)  # one row per sample
    for key in INPUT_KEYS:
        total = got[key] if key == "zone_edges" else got[key].sum(axis=0)
        np.testing.assert_allclose(total, want[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert want["source"].sum() > 0 and want["triple"].sum() > 0  # the check is not vacuous


def test_transport_inputs_need_the_option():
    net = _net("lif", "rectangle", None)
    with gradflow.record(net) as rec:
        _forward(net, torch.rand(4, 3, 5, dtype=torch.float64)).sum().backward()
    with pytest.raises(gradflow.UsageError, match="transport=True"):
        rec.transport_inputs()


def test_samples_of_several_passes_are_concatenated():
    net = _net("lif", "rectangle", None)
    with gradflow.record(net, transport=True) as rec:
        for n in (4, 7):
            _forward(net, torch.rand(5, n, 5, dtype=torch.float64) * 2).sum().backward()
    got = rec.transport_inputs()["sn1"]
    assert got["occupancy"].shape[:2] == (11, 5)
    np.testing.assert_allclose(got["occupancy"].sum(axis=2), 12.0)  # every neuron is in one zone


@pytest.mark.parametrize("kind", ["lif", "clif"])
def test_pooled_transport_is_the_per_sample_sums_added(kind):
    net = _net(kind, "rectangle", 2)
    x = torch.rand(6, 9, 5, dtype=torch.float64) * 2.5
    got = {}
    for mode in (True, "pooled"):
        with gradflow.record(net, transport=mode, weights=False) as rec:
            for _ in range(2):   # two passes: pooled keeps one row per pass
                _forward(net, x).square().sum().backward()
        got[mode] = rec.transport_inputs()["sn1"]
    assert got[True]["count"].shape == (18, 6) and got["pooled"]["count"].shape == (2, 6)
    for key in INPUT_KEYS:
        if key == "zone_edges":
            np.testing.assert_array_equal(got["pooled"][key], got[True][key])
            continue
        np.testing.assert_allclose(got["pooled"][key], got[True][key].reshape((2, 9) + got[True][key].shape[1:]).sum(1),
                                   rtol=1e-12, atol=1e-12, err_msg=key)


def test_transport_mode_is_checked():
    with pytest.raises(gradflow.UsageError, match="transport must be"):
        gradflow.record(_net("lif", "rectangle", None), transport="per-layer")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zones_host_and_device_paths_agree_on_the_edges(dtype):
    """The numpy (CPU) and torch (device) zone paths, and the theory's, on values exactly at the edges."""
    from gradflow.recorder.transport import _zones
    from gradflow.theory.window import ZONE_EDGES, window_zones, zone_width

    h, theta = zone_width("rectangle", 1.0), 1.0
    assert h == 0.5        # e h and theta + e h are exact in both dtypes
    at_edges = [theta + e * h for e in ZONE_EDGES]
    g = torch.Generator().manual_seed(0)
    u = torch.cat([torch.tensor(at_edges * 3, dtype=dtype), torch.randn(201, generator=g, dtype=dtype) * 2])
    u = u.reshape(4, 1, -1)
    host = _zones(u.clone(), theta, h, ZONE_EDGES, host=True)
    device = _zones(u.clone(), theta, h, ZONE_EDGES, host=False)
    assert host.dtype == torch.uint8 and device.dtype == torch.int32   # Z**3 = 216 codes fit in uint8
    assert torch.equal(host.int(), device)
    want = window_zones(u.double().numpy(), v_threshold=theta, surrogate="rectangle", alpha=1.0)
    assert np.array_equal(host.numpy(), want)
    assert host.reshape(-1)[:5].tolist() == [1, 2, 3, 3, 4]   # e <= 0 passed at equality, e > 0 not


@pytest.mark.parametrize("weighted", [False, True])
def test_bin_sums_host_and_device_paths_agree(weighted):
    from gradflow.recorder.transport import _bin_sums

    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 50, (1000,), generator=g, dtype=torch.int32)
    w = torch.rand(1000, generator=g, dtype=torch.float64) if weighted else None
    host, device = (_bin_sums(idx, 60, w, host=flag) for flag in (True, False))
    assert host.dtype == device.dtype == torch.float64 and host.shape == (60,)
    want = np.bincount(idx.numpy(), weights=None if w is None else w.numpy(), minlength=60)
    np.testing.assert_allclose(host.numpy(), want, rtol=1e-13)
    np.testing.assert_allclose(device.numpy(), want, rtol=1e-13)
    assert host[50:].sum() == 0


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("pooled", [False, True])
def test_transport_sums_short_sequences_equal_theory(T, pooled):
    """T = 1 and 2 take their own branches (no pairs, no triples)."""
    from gradflow.recorder.transport import transport_sums

    g = torch.Generator().manual_seed(2)
    n = 3
    us = [torch.rand(n, 7, generator=g, dtype=torch.float64) * 2 for _ in range(T)]
    Ps = [torch.randn(n, 7, generator=g, dtype=torch.float64) for _ in range(T)]
    fs = [torch.rand(n, 7, generator=g, dtype=torch.float64) for _ in range(T)]
    got = transport_sums(us, Ps, fs, [], n=n, v_threshold=1.0, surrogate="rectangle", alpha=1.0, pooled=pooled)
    u = torch.stack(us).numpy()
    z = gradflow.theory.window.window_zones(u.reshape(T, -1), v_threshold=1.0, surrogate="rectangle", alpha=1.0)
    Z = 6
    occ = np.stack([np.bincount(z[t], minlength=Z) for t in range(T)])
    np.testing.assert_array_equal(got["occupancy"].sum(0).numpy(), occ)
    np.testing.assert_allclose(got["spatial_sq"].sum(0).numpy(), (torch.stack(Ps) ** 2).sum((1, 2)).numpy())
    pair = np.zeros((T, Z, Z))
    for t in range(T - 1):
        pair[t] = np.bincount(z[t] * Z + z[t + 1], minlength=Z * Z).reshape(Z, Z)
    np.testing.assert_array_equal(got["pair"].sum(0).numpy(), pair)
    assert got["triple"].shape == (1 if pooled else n, T, Z, Z, Z)
    if T < 3:
        assert got["triple"].abs().sum() == 0


def _kind_cases():
    from gradflow.neurons.kind import KINDS

    for name in ("lif", "plif", "if", "lif_ral", "lif_noreset", "clif"):
        for surrogate, alpha in (("rectangle", 1.0), ("rectangle", 2.0), ("rectangle", 0.3), ("sigmoid", None)):
            for v_reset, detach in ((None, False), (None, True), (0.0, False)):
                if name in ("lif_ral", "lif_noreset") and v_reset is not None:
                    continue
                yield KINDS[name], surrogate, alpha, v_reset, detach


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pooled", [False, True])
def test_window_sums_by_zone_equal_the_sums_by_element(dtype, pooled):
    """Where a kind's dv/du is one value per zone (LIF family, soft reset, rectangle surrogate or
    detach_reset), the window sums weighted by zone equal the element-weighted ones, on potentials at
    every zone and window edge and one ulp either side; bit for bit when f^2 is 0 or 1; elsewhere the
    kind claims nothing and the elements are weighted as before."""
    from gradflow.neurons.params import make_params
    from gradflow.recorder.transport import transport_sums, zone_vu
    from gradflow.theory.window import ZONE_EDGES, zone_width

    claimed = 0
    for kind, surrogate, alpha, v_reset, detach in _kind_cases():
        p = make_params(tau=2.0, surrogate=surrogate, alpha=alpha, v_reset=v_reset, detach_reset=detach,
                        allow_no_leak=kind.name == "if")
        k = torch.tensor(0.4, dtype=dtype) if kind.name == "plif" else p.inv_tau
        h = zone_width(p.surrogate.name, p.surrogate.alpha)
        marks = torch.tensor([e * h for e in ZONE_EDGES] + [p.surrogate.alpha / 2, -p.surrogate.alpha / 2],
                             dtype=dtype) + p.v_threshold
        edge_points = torch.cat([marks, torch.nextafter(marks, marks + 1), torch.nextafter(marks, marks - 1)])
        g = torch.Generator().manual_seed(7)
        T, n = 5, 3
        us = []
        for t in range(T):
            u = torch.randn(n, 40, generator=g, dtype=dtype) * h * 2 + p.v_threshold
            u.view(-1)[:edge_points.numel()] = edge_points[torch.randperm(edge_points.numel(), generator=g)]
            us.append(u)
        Ps = [torch.randn(n, 40, generator=g, dtype=dtype) for _ in range(T)]
        prevs = [kind.State(*(torch.zeros_like(us[0]) for _ in kind.State._fields))] * T
        fs = [kind.vu(kind.jacobian(u, prev, p, k)) for u, prev in zip(us, prevs)]
        f_zone = zone_vu(kind, p, k, us[0])
        expect_claim = (kind.name in ("lif_ral", "lif_noreset")
                        or (kind.name in ("lif", "plif", "if") and v_reset is None
                            and (detach or surrogate == "rectangle")))
        assert (f_zone is not None) == expect_claim, (kind.name, surrogate, alpha, v_reset, detach)
        if f_zone is None:
            continue
        claimed += 1
        for cut in ((), (2,)):
            kw = dict(n=n, v_threshold=p.v_threshold, surrogate=p.surrogate.name, alpha=p.surrogate.alpha,
                      pooled=pooled)
            by_element = transport_sums(us, Ps, fs, cut, **kw)
            by_zone = transport_sums(us, Ps, None, cut, f_zone=f_zone, **kw)
            exact = bool(((f_zone == 0) | (f_zone.abs() == 1)).all())
            for key in by_element:
                if exact:
                    assert torch.equal(by_zone[key], by_element[key]), (kind.name, surrogate, alpha, key)
                else:
                    torch.testing.assert_close(by_zone[key], by_element[key], rtol=1e-13, atol=1e-13)
    assert claimed == 37   # LIF, PLIF, IF: 3 rectangle widths + 4 surrogates detached; lif_ral, lif_noreset: 8 each


def test_zone_values_need_zones_inside_or_outside_the_window():
    """``zone_vu`` claims nothing when a zone straddles the window's edge, for potentials that are not
    floating point (on a GPU neither: checked by reading), and for the hard reset."""
    from gradflow.neurons.lif import LIF_KIND
    from gradflow.neurons.params import make_params
    from gradflow.recorder.transport import zone_vu

    p = make_params(tau=2.0)                               # rectangle, alpha 1: window |u - 1| <= 0.5 = h
    u = torch.zeros(3)
    assert zone_vu(LIF_KIND, p, p.inv_tau, u, edges=(-1.5, 0.0, 1.5)) is None     # (-0.75, 0) holds -0.5
    assert zone_vu(LIF_KIND, p, p.inv_tau, u, edges=(-1.0, 1.0)).tolist() == [1.0, 0.0, 1.0]
    assert zone_vu(LIF_KIND, p, p.inv_tau, u).tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    assert zone_vu(LIF_KIND, p, p.inv_tau, u.to(torch.int64)) is None
    assert zone_vu(LIF_KIND, make_params(tau=2.0, v_reset=0.0), 0.5, u) is None   # hard reset: vu depends on u


@pytest.mark.parametrize("pooled", [False, True])
def test_window_sums_by_zone_keep_the_elements_answer_when_a_bin_overflows(pooled):
    """A bin whose P^2 sum overflows (finite elements) gives f^2 P^2 = 0 by element where f = 0; by zone
    0 * inf would be NaN, so such a step weights its elements. An infinite element stays NaN either way."""
    from gradflow.neurons.lif import LIF_KIND
    from gradflow.neurons.params import make_params
    from gradflow.recorder.transport import transport_sums, zone_vu

    p = make_params(tau=2.0)                        # rectangle, alpha = theta: f = 0 in the window
    n, E = 2, 4
    us = [torch.tensor([[1.2, 1.2, 0.1, 2.5]] * n, dtype=torch.float64) for _ in range(3)]
    Ps = [torch.full((n, E), 1e154, dtype=torch.float64) for _ in range(3)]
    Ps[2][0, 0] = math.inf                           # in the window one step later: f = 0 times inf
    fs = [LIF_KIND.vu(LIF_KIND.jacobian(u, None, p)) for u in us]
    f_zone = zone_vu(LIF_KIND, p, p.inv_tau, us[0])
    kw = dict(n=n, v_threshold=1.0, surrogate="rectangle", alpha=1.0, pooled=pooled)
    by_element, by_zone = transport_sums(us, Ps, fs, (), **kw), transport_sums(us, Ps, None, (), f_zone=f_zone, **kw)
    for key in by_element:
        assert torch.equal(by_element[key].nan_to_num(7.0), by_zone[key].nan_to_num(7.0)), key
    assert torch.isinf(by_element["source_mass"]).any() and (by_element["source"] == 0).any()
    assert torch.isnan(by_element["source"]).any()          # the inf element: 0 * inf in its bin
