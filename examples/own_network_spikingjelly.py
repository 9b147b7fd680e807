"""Your own SpikingJelly network in gradflow: convert its neurons, record where the gradients go.

Run: ``python examples/own_network_spikingjelly.py``. ``gradflow.convert`` replaces every SpikingJelly
``LIFNode``/``ParametricLIFNode``/``IFNode`` by a gradflow neuron that computes the same spikes and
gradients (docs/reference.md, Adapters); the rest of the network is untouched.
"""

import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate

import gradflow

torch.manual_seed(0)
net = torch.nn.Sequential(
    layer.Conv2d(2, 8, 3, padding=1), layer.BatchNorm2d(8),
    neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True),
    layer.Flatten(), layer.Linear(8 * 8 * 8, 10),
    neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
)
functional.set_step_mode(net, "m")  # whole sequences [T, N, ...] per call

x = torch.rand(6, 16, 2, 8, 8) * 2  # [T, N, C, H, W]
y = torch.randint(0, 10, (16,))
reference = net(x).detach()
functional.reset_net(net)

gradflow.convert(net)  # in place
assert torch.equal(net(x), reference)  # the same spikes

with gradflow.record(net) as rec:
    gradflow.losses.ce_over_time(net(x), y).backward()
per_step = rec.per_step()
print(per_step.groupby("layer")[["grad_spatial_norm", "grad_temporal_norm"]].mean())
