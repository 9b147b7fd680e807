"""CUDA: the recorder keeps statistics on the device and never synchronises inside its hooks."""

from __future__ import annotations

import pytest
import torch

import gradflow

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("kind", ["lif", "clif", "plif"])
def test_no_host_sync_inside_hooks(kind, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    torch.manual_seed(0)
    net = gradflow.models.build("snn5_noAP", neuron=kind, num_classes=10, T=4).cuda().train()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (4,), device="cuda")
    ref = gradflow.models.build("snn5_noAP", neuron=kind, num_classes=10, T=4).cuda().train()
    ref.load_state_dict(net.state_dict())
    with gradflow.record(net, pairs=True, weights=True) as rec:
        logits = net(x)
        loss = gradflow.losses.ce_over_time(logits, y)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss.backward()  # every recorder hook runs inside this call
        finally:
            torch.cuda.set_sync_debug_mode("default")
    per = rec.per_step()  # one transfer, outside the hooks
    assert per.grad_total_norm.gt(0).any()
    assert rec.lags().relative.iloc[0] == 1.0
    gradflow.losses.ce_over_time(ref(x), y).backward()
    for (n, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        assert torch.equal(p.grad, q.grad), n
