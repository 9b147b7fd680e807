"""The recorder's window-model inputs equal the theory's numpy reference (float64, 1e-12)."""

from __future__ import annotations

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
