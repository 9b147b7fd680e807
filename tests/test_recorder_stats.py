"""Per-sample accounting (Recorder.samples), the signed weight split and the unbiased lag ratio, each
checked against a direct computation from the kept vectors (float64)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import gradflow
from gradflow import stats
from gradflow.recorder import LayerSamples, sample_bytes

KINDS = ["lif", "clif", "plif"]


class ConvNet(nn.Module):
    """conv -> BN -> neuron -> conv -> neuron -> readout, time-major [T, N, C, H, W]."""

    def __init__(self, kind, **kw):
        super().__init__()
        self.c1, self.bn1, self.sn1 = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), gradflow.build_neuron(kind, **kw)
        self.c2, self.sn2 = nn.Conv2d(3, 3, 3, padding=1), gradflow.build_neuron(kind, **kw)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        T, N = x.shape[:2]
        h = self.sn1(self.bn1(self.c1(x.flatten(0, 1))).unflatten(0, (T, N)) * 2.0)
        h = self.sn2(self.c2(h.flatten(0, 1)).unflatten(0, (T, N)) * 2.0)
        return self.fc(h.mean((-1, -2)))


def _per_sample_sq(z):
    """||z[t, i]||^2 as [n, T] float64."""
    return z.flatten(2).double().square().sum(2).T.numpy()


def _record(kind, backend="torch", batches=(4, 3), max_lag=None, seed=0):
    torch.manual_seed(seed)
    model = ConvNet(kind, tau=1.7, surrogate="atan", backend=backend).double()
    data = [(torch.randn(5, n, 2, 4, 4, dtype=torch.float64) + 0.5, torch.randint(0, 3, (n,))) for n in batches]
    with gradflow.record(model, keep_tensors=True, max_lag=max_lag) as rec:
        for x, y in data:
            model.zero_grad()
            gradflow.losses.ce_over_time(model(x), y).backward()
    return model, data, rec


@pytest.mark.parametrize("kind", KINDS)
def test_samples_equal_direct_per_sample_norms(kind):
    _, data, rec = _record(kind, max_lag=3)
    samples = rec.samples()
    assert list(samples) == ["sn1", "sn2"]
    for layer, s in samples.items():
        assert isinstance(s, LayerSamples)
        n = sum(x.shape[1] for x, _ in data)
        assert s.spatial_sq.shape == s.temporal_sq.shape == s.total_sq.shape == (n, 5)
        assert s.spikes.shape == s.window.shape == (n, 5) and s.pair_sq.shape == (n, 5, 4)
        assert s.step.tolist() == [0] * 4 + [1] * 3 and s.numel == 3 * 4 * 4
        offset = 0
        for step, (x, _) in enumerate(data):
            kept = rec.tensors(layer, step)
            sl = slice(offset, offset + x.shape[1])
            np.testing.assert_allclose(s.spatial_sq[sl], _per_sample_sq(kept["spatial"]), rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(s.temporal_sq[sl], _per_sample_sq(kept["temporal"]), rtol=1e-12, atol=1e-300)
            np.testing.assert_allclose(s.total_sq[sl], _per_sample_sq(kept["delta"]), rtol=1e-12, atol=1e-300)
            sg = gradflow.surrogate.surrogate_grad(kept["u"] - 1.0, gradflow.surrogate.make_surrogate("atan"))
            assert np.array_equal(s.window[sl], (sg != 0).flatten(2).sum(2).T.double().numpy())
            for t, rows in enumerate(kept["pairs"]):  # rows[k] = pair[t, t+k], [k, N, ...]
                direct = rows.flatten(2).double().square().sum(2).T.numpy()  # [n, k]
                np.testing.assert_allclose(s.pair_sq[sl, t, : rows.shape[0]], direct, rtol=1e-12, atol=1e-300)
                assert (s.pair_sq[sl, t, rows.shape[0]:] == 0).all()
            offset += x.shape[1]
    # the tables are the sums over samples
    per = rec.per_step()
    for layer, s in samples.items():
        for step in (0, 1):
            sub = per[(per.layer == layer) & (per.step == step)].sort_values("t")
            m = s.step == step
            np.testing.assert_allclose(sub.grad_spatial_norm ** 2, s.spatial_sq[m].sum(0), rtol=1e-12)
            np.testing.assert_allclose(sub.grad_total_norm ** 2, s.total_sq[m].sum(0), rtol=1e-12)
            np.testing.assert_allclose(sub.firing_rate, s.spikes[m].sum(0) / (m.sum() * s.numel), rtol=1e-12)
            np.testing.assert_allclose(sub.window_fraction, s.window[m].sum(0) / (m.sum() * s.numel), rtol=1e-12)
            assert (sub.samples == m.sum()).all()


@pytest.mark.parametrize("kind", KINDS)
def test_samples_are_the_same_on_both_backends(kind):
    _, _, a = _record(kind, "torch")
    _, _, b = _record(kind, "fused")
    for layer, s in a.samples().items():
        t = b.samples()[layer]
        for f in ("spatial_sq", "temporal_sq", "total_sq", "pair_sq", "spikes", "window"):
            np.testing.assert_allclose(getattr(t, f), getattr(s, f), rtol=1e-10, atol=1e-25, err_msg=f)


def test_memory_per_sample_is_what_sample_bytes_says():
    _, data, rec = _record("clif", max_lag=2)
    for ps in rec._finished:
        kept = ps.per_sample.numel() * 8 + ps.pair_sq.numel() * 8
        assert kept == ps.n * sample_bytes(ps.T, 2, pairs=True)
    assert sample_bytes(8, None, pairs=False) == 8 * 5 * 8


@pytest.mark.parametrize("kind", KINDS)
def test_weight_projections_against_direct_vectors(kind):
    torch.manual_seed(3)
    model = ConvNet(kind, tau=1.7, surrogate="atan").double()
    x = torch.randn(5, 4, 2, 4, 4, dtype=torch.float64) + 0.5
    y = torch.randint(0, 3, (4,))
    store = {}
    h = model.sn2.register_step_observer(lambda m, tr: store.setdefault("x", tr.x))
    with gradflow.record(model, keep_tensors=True) as rec:
        gradflow.losses.ce_over_time(model(x), y).backward(retain_graph=True)
    h.remove()
    w = rec.weights()
    kept = rec.tensors("sn2")
    params = [model.c2.weight, model.c2.bias]
    gs = torch.autograd.grad(store["x"], params, kept["spatial"], retain_graph=True)
    gt = torch.autograd.grad(store["x"], params, kept["temporal"], retain_graph=True)
    for name, a, b in zip(("c2.weight", "c2.bias"), gs, gt):
        row = w[(w.layer == "sn2") & (w.param == name)].iloc[0]
        g = a + b
        torch.testing.assert_close(g, dict(model.named_parameters())[name].grad, rtol=1e-10, atol=1e-14)
        gg = g.square().sum().item()
        assert row.spatial_projection == pytest.approx((a * g).sum().item() / gg, rel=1e-8, abs=1e-12)
        assert row.temporal_projection == pytest.approx((b * g).sum().item() / gg, rel=1e-8, abs=1e-12)
        cos = (a * b).sum().item() / (a.norm().item() * b.norm().item())
        assert row.cosine == pytest.approx(cos, rel=1e-8, abs=1e-12)
        assert row.inner == pytest.approx((a * b).sum().item(), rel=1e-8, abs=1e-14)
    assert np.allclose(w.spatial_projection + w.temporal_projection, 1.0, rtol=0, atol=1e-12)
    assert (w.cosine.abs() <= 1 + 1e-12).all()


def test_lags_are_the_unbiased_transport_ratio():
    """Loss at the last step only: relative_k = ||pair[T-1-k, T-1]|| / ||P[T-1]||, not G_k / G_0."""
    torch.manual_seed(4)
    T = 6
    lif = gradflow.LIF(tau=2.0, surrogate="atan").double()
    x = (torch.randn(T, 50, dtype=torch.float64) * 0.7 + 0.6).requires_grad_()
    e = torch.randn(50, dtype=torch.float64)
    with gradflow.record(lif, keep_tensors=True) as rec:
        (lif(x)[-1] * e).sum().backward()
    lags = rec.lags()
    kept = rec.tensors("lif")
    P_last = kept["spatial"][-1].norm().item()
    assert kept["spatial"][:-1].abs().max().item() == 0.0  # only the last step has a source
    for k in range(T):
        pair = kept["pairs"][T - 1 - k][k]  # pair[T-1-k, T-1]
        row = lags[lags.lag == k].iloc[0]
        assert row.relative == pytest.approx(pair.norm().item() / P_last, rel=1e-12)
        assert row.norm == pytest.approx(pair.norm().item() / math.sqrt(T - k), rel=1e-12)  # G_k keeps its RMS
    assert lags.relative.iloc[1] < lags.norm.iloc[1] / lags.norm.iloc[0]  # the old ratio was inflated


@pytest.mark.parametrize("kind", KINDS)
def test_lag_table_matches_stats_on_summed_pairs(kind):
    _, _, rec = _record(kind, batches=(6,))
    lags = rec.lags()
    for layer, s in rec.samples().items():
        sub = lags[lags.layer == layer].sort_values("lag")
        np.testing.assert_allclose(sub.relative, stats.relative_from_pair_sq(s.pair_sq.sum(0)), rtol=1e-12)
        np.testing.assert_allclose(sub.norm, stats.lag_norm_from_pair_sq(s.pair_sq.sum(0)), rtol=1e-12)


def test_plif_layer_info_reports_the_learned_tau():
    torch.manual_seed(5)
    model = ConvNet("plif", tau=2.0).double()
    with torch.no_grad():
        model.sn1.w.fill_(0.9)
    x = torch.randn(4, 2, 2, 4, 4, dtype=torch.float64) + 0.5
    with gradflow.record(model) as rec:
        model(x).sum().backward()
    info = rec.layer_info().set_index("layer")
    learned = 1 / torch.sigmoid(torch.tensor(0.9, dtype=torch.float64)).item()
    assert info.loc["sn1", "tau"] == pytest.approx(learned, rel=1e-6)
    assert info.loc["sn2", "tau"] == pytest.approx(2.0, rel=1e-6)
    assert rec.per_step().query("layer == 'sn1'").tau.iloc[0] == pytest.approx(learned, rel=1e-6)


def test_samples_without_pairs_and_copy_of_model_untouched():
    torch.manual_seed(6)
    model = ConvNet("lif").double()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 2, 2, 4, 4, dtype=torch.float64) + 0.5
    with gradflow.record(model, pairs=False, weights=False) as rec:
        model(x).sum().backward()
    s = rec.samples()["sn1"]
    assert s.pair_sq is None and s.spatial_sq.shape == (2, 4)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) or k.endswith("running_mean") or k.endswith("running_var") \
            or k.endswith("num_batches_tracked")


def test_doctests():
    import doctest

    import gradflow.recorder
    import gradflow.recorder.decompose

    for mod in (gradflow.recorder, gradflow.recorder.decompose):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
