"""CUDA: the recorder keeps every statistic on the device and never synchronises inside the backward
(hooks, taps, the hook-free weight split, the engine callback), on both neuron backends; the fused
backward matches CPU autograd. Skipped without a GPU (``python -m gradflow.lab.gpu_check`` runs them)."""

from __future__ import annotations

import pytest
import torch

import gradflow

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_no_host_sync_inside_backward(kind, backend, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    torch.manual_seed(0)
    net = gradflow.models.build("snn5_noAP", neuron=kind, num_classes=10, T=4).cuda().train()
    ref = gradflow.models.build("snn5_noAP", neuron=kind, num_classes=10, T=4).cuda().train()
    ref.load_state_dict(net.state_dict())
    for model in (net, ref):
        for m in model.modules():
            if isinstance(m, gradflow.neurons.SpikingNeuron):
                m.backend = backend
    x = torch.randn(4, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (4,), device="cuda")
    with gradflow.record(net, pairs=True, weights=True) as rec:
        logits = net(x)
        loss = gradflow.losses.ce_over_time(logits, y)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss.backward()  # every recorder hook, tap, weight split and the end callback run inside
        finally:
            torch.cuda.set_sync_debug_mode("default")
    per = rec.per_step()  # one transfer per table, outside the backward
    assert per.grad_total_norm.gt(0).any()
    assert rec.lags().relative.iloc[0] == 1.0
    w = rec.weights()
    assert ((w.spatial_projection + w.temporal_projection - 1).abs() < 1e-4).all()
    s = next(iter(rec.samples().values()))
    assert s.spatial_sq.shape == (4, 4) and s.pair_sq.shape == (4, 4, 4)
    gradflow.losses.ce_over_time(ref(x), y).backward()
    for (n, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        assert torch.equal(p.grad, q.grad), n


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
def test_recorded_tables_match_cpu(kind):
    """The same float64 model recorded on the GPU and on the CPU gives the same tables (to rounding)."""
    torch.manual_seed(1)
    net = gradflow.models.build("mlp", neuron=kind, in_features=12, widths=(16, 16), num_classes=3, T=5).double()
    gpu = gradflow.models.build("mlp", neuron=kind, in_features=12, widths=(16, 16), num_classes=3, T=5).double()
    gpu.load_state_dict(net.state_dict())
    gpu = gpu.cuda()
    x = torch.rand(6, 12, dtype=torch.float64)
    y = torch.randint(0, 3, (6,))
    tables = []
    for model, dev in ((net, "cpu"), (gpu, "cuda")):
        with gradflow.record(model) as rec:
            gradflow.losses.ce_over_time(model(x.to(dev)), y.to(dev)).backward()
        tables.append((rec.per_step(), rec.lags(), rec.weights()))
    for a, b in zip(*tables):
        for col in a.columns:
            if a[col].dtype.kind == "f":
                assert b[col].to_numpy() == pytest.approx(a[col].to_numpy(), rel=1e-9, abs=1e-12, nan_ok=True), col
