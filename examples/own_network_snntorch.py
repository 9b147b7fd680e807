"""Your own snnTorch network in gradflow: the tutorial net, converted, runs your loop unchanged.

Run: ``python examples/own_network_snntorch.py``. ``gradflow.convert`` replaces every ``snn.Leaky`` by a
``snn.Leaky`` subclass that computes with gradflow's neuron equations (snnTorch's reset after the leak,
its threshold convention and surrogates): the same spikes and membrane potentials, and the same
gradients to float32 rounding, with snnTorch's call signature (``spk, mem = lif(x, mem)``), and the
recorder sees every step.
"""

import torch
import snntorch as snn

import gradflow


class Net(torch.nn.Module):
    def __init__(self, steps=10):
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = torch.nn.Linear(20, 32), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = torch.nn.Linear(32, 4), snn.Leaky(beta=0.9)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec, mem_rec = [], []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk_rec.append(spk2)
            mem_rec.append(mem2)
        return torch.stack(spk_rec), torch.stack(mem_rec)


torch.manual_seed(0)
net = Net()
x, y = torch.rand(16, 20), torch.randint(0, 4, (16,))
spk_ref, mem_ref = net(x)

gradflow.convert(net)  # in place; net.lif1 is still an snn.Leaky
spk, mem = net(x)
assert torch.equal(spk, spk_ref)
torch.testing.assert_close(mem, mem_ref)

# the converted neurons are single-step gradflow neurons: the recorder assembles the steps of the loop
with gradflow.record(net, weights=False) as rec:
    spk, mem = net(x)
    loss = gradflow.losses.ce_over_time(mem, y)  # snnTorch's usual readout: the membrane potential
    loss.backward()
print(f"loss {loss.item():.4f}")
print(rec.per_step().groupby("layer")[["grad_spatial_norm", "grad_temporal_norm"]].mean())
