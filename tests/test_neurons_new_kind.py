"""A neuron kind added in a few lines (snnTorch's reset after the leak) runs on both backends and is
recorded exactly, with no change to the modules, the fused backend or the recorder."""

from __future__ import annotations

import pytest
import torch

import gradflow
from gradflow.neurons import LIFState, NeuronParams, SpikingNeuron
from gradflow.neurons.kind import FusedForward
from gradflow.neurons.lif import LIFJacobian, LIFKind, surrogate_window



class ResetAfterLeakKind(LIFKind):
    """snnTorch-style: the reset is subtracted after the leak, ``u[t+1] = gamma u[t] - theta s[t] + x``.

    As a LIF-family kind with state ``v[t] = gamma u[t] - theta s[t]`` and charge ``u = v + x``:
    ``vu = gamma - theta sg``, ``a = du[t+1]/dv[t] = 1``.
    """

    name = "test_reset_after_leak"

    def charge(self, x, state, p, k=None):
        return state.v + x

    def fire_reset(self, u, state, p, k=None):
        k = p.inv_tau if k is None else k
        s = self.fire(u, p)
        sr = s.detach() if p.detach_reset else s
        return s, LIFState(u * (1.0 - k) - p.v_threshold * sr)

    def charge_gain(self, p, k=None):
        return 1.0

    def input_gain(self, p, k=None):
        return 1.0

    def jacobian(self, u, prev=None, p=NeuronParams(), k=None, ws=None):  # may ignore the workspace
        k = p.inv_tau if k is None else k
        sg, theta_sg = surrogate_window(u, p)
        vu = torch.full_like(u, 1.0 - k) if p.detach_reset else (1.0 - k) - theta_sg
        return LIFJacobian(sg, vu, 1.0)

    def fused_forward(self, x, k, p, want_states):
        with torch.no_grad():  # the plain step loop is bit-identical by construction
            state = self.init_state(x[0], p)
            us, ss, prev = [], [], []
            for t in range(x.shape[0]):
                prev.append(state.v)
                s, state, u = self.step(x[t], state, p, k)
                us.append(u)
                ss.append(s)
        u = torch.stack(us)
        return FusedForward(torch.stack(ss), (u,), u, LIFState(torch.stack(prev)) if want_states else None)


class ResetAfterLeak(SpikingNeuron):
    dynamics = ResetAfterLeakKind()
    kind = dynamics.name


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_a_new_kind_runs_on_both_backends_and_records(backend):
    """A kind is one subclass: both backends, the shared adjoint and the recorder work unchanged."""
    torch.manual_seed(3)
    x = (torch.randn(6, 40, dtype=torch.float64) * 0.8 + 0.6).requires_grad_()
    e = torch.randn(6, 40, dtype=torch.float64)
    # the recursion written out: u[t+1] = gamma u[t] - theta s[t] + x[t+1]
    s_ref, mem = [], torch.zeros(40, dtype=torch.float64)
    xr = x.detach().clone().requires_grad_()
    for t in range(6):
        mem = (0.5 * mem - (s_ref[-1] if s_ref else 0.0)) + xr[t] if t else xr[t]
        s_ref.append(gradflow.surrogate.spike(mem - 1.0, gradflow.surrogate.Surrogate("rectangle", 1.0)))
    ref = torch.stack(s_ref)
    (ref * e).sum().backward()
    mod = ResetAfterLeak(tau=2.0, backend=backend).double()
    with gradflow.record(mod, keep_tensors=True) as rec:
        s = mod(x)
        (s * e).sum().backward()
    assert torch.equal(s, ref)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=1e-12)
    kept = rec.tensors(mod.kind)
    torch.testing.assert_close(kept["spatial"] + kept["temporal"], kept["delta"], rtol=1e-12, atol=1e-12)
    for t, rows in enumerate(kept["pairs"]):
        torch.testing.assert_close(rows.sum(0), kept["delta"][t], rtol=1e-12, atol=1e-12)
    assert set(rec.per_step().neuron) == {"test_reset_after_leak"}


