"""SpikingJelly's older ``clock_driven`` API and the official CLIF code's neurons -> gradflow.

Neither is importable here: SpikingJelly 2.0 has no ``spikingjelly.clock_driven``, and the official CLIF
code (github.com/HuuYuLong/Complementary-LIF, ``modules/neuron.py`` and ``modules/surrogate.py``) is a
repository, not a package, built on that old API. So this file holds LOCAL STAND-INS: the
``clock_driven`` base classes as SpikingJelly 0.0.0.0.12 wrote them (``BaseNode``, ``LIFNode``,
``ParametricLIFNode``, ``IFNode`` and their ``MultiStep*`` loops, registered under the module name
``spikingjelly.clock_driven.neuron``), and the official ``ComplementaryLIFNeuron``,
``MultiStepCLIFNeuron``, ``BPTTNeuron``, ``PLIFNeuron``, ``CLIFSpike`` and ``Rectangle`` with their
forward passes copied operation for operation (module names ``modules.neuron`` / ``modules.surrogate``).
Surrogates other than ``Rectangle`` are SpikingJelly 2.0's (same formulas as the old ones).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradflow
from gradflow.errors import UsageError
from gradflow.neurons import CLIF, LIF, PLIF

pytest.importorskip("spikingjelly")
from spikingjelly.activation_based import surrogate as sjs  # noqa: E402

from test_adapters_spikingjelly import assert_same  # noqa: E402


# ----------------------------------------------------------------------------- clock_driven stand-ins

class MemoryModule(nn.Module):
    """``spikingjelly.clock_driven.base.MemoryModule``: named memories with defaults, ``reset()``."""

    def __init__(self):
        super().__init__()
        self._memories, self._memories_rv = {}, {}

    def register_memory(self, name, value):
        self._memories[name] = value
        self._memories_rv[name] = value

    def reset(self):
        for k, v in self._memories_rv.items():
            self._memories[k] = v

    def __getattr__(self, name):
        if "_memories" in self.__dict__ and name in self.__dict__["_memories"]:
            return self.__dict__["_memories"][name]
        return super().__getattr__(name)

    def __setattr__(self, name, value):
        if "_memories" in self.__dict__ and name in self.__dict__["_memories"]:
            self.__dict__["_memories"][name] = value
        else:
            super().__setattr__(name, value)


class BaseNode(MemoryModule):
    def __init__(self, v_threshold=1., v_reset=0., surrogate_function=sjs.Sigmoid(), detach_reset=False):
        super().__init__()
        self.register_memory("v", 0. if v_reset is None else v_reset)
        self.v_threshold, self.v_reset = v_threshold, v_reset
        self.detach_reset, self.surrogate_function = detach_reset, surrogate_function

    def neuronal_fire(self):
        return self.surrogate_function(self.v - self.v_threshold)

    def neuronal_reset(self, spike):
        spike_d = spike.detach() if self.detach_reset else spike
        if self.v_reset is None:
            self.v = self.v - spike_d * self.v_threshold
        else:
            self.v = (1. - spike_d) * self.v + spike_d * self.v_reset

    def forward(self, x):
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike


class LIFNode(BaseNode):
    def __init__(self, tau=2., decay_input=True, v_threshold=1., v_reset=0., surrogate_function=sjs.Sigmoid(),
                 detach_reset=False, cupy_fp32_inference=False):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset)
        self.tau, self.decay_input = tau, decay_input

    def neuronal_charge(self, x):
        if self.decay_input:
            if self.v_reset is None or self.v_reset == 0.:
                self.v = self.v + (x - self.v) / self.tau
            else:
                self.v = self.v + (x - (self.v - self.v_reset)) / self.tau
        else:
            if self.v_reset is None or self.v_reset == 0.:
                self.v = self.v * (1. - 1. / self.tau) + x
            else:
                self.v = self.v - (self.v - self.v_reset) / self.tau + x


class ParametricLIFNode(BaseNode):
    def __init__(self, init_tau=2.0, decay_input=True, v_threshold=1., v_reset=0.,
                 surrogate_function=sjs.Sigmoid(), detach_reset=False):
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset)
        self.decay_input = decay_input
        self.w = nn.Parameter(torch.as_tensor(-math.log(init_tau - 1.)))

    def neuronal_charge(self, x):
        if self.decay_input:
            if self.v_reset is None or self.v_reset == 0.:
                self.v = self.v + (x - self.v) * self.w.sigmoid()
            else:
                self.v = self.v + (x - (self.v - self.v_reset)) * self.w.sigmoid()
        else:
            if self.v_reset is None or self.v_reset == 0.:
                self.v = self.v * (1. - self.w.sigmoid()) + x
            else:
                self.v = self.v - (self.v - self.v_reset) * self.w.sigmoid() + x


def _multi_step(single):
    class MultiStep(single):
        def __init__(self, *args, backend="torch", **kwargs):
            super().__init__(*args, **kwargs)
            self.backend = backend

        def forward(self, x_seq):
            return torch.stack([super(MultiStep, self).forward(x) for x in x_seq])

    MultiStep.__name__ = MultiStep.__qualname__ = "MultiStep" + single.__name__
    return MultiStep


MultiStepLIFNode = _multi_step(LIFNode)
MultiStepParametricLIFNode = _multi_step(ParametricLIFNode)
for _cls in (MemoryModule, BaseNode, LIFNode, ParametricLIFNode, MultiStepLIFNode, MultiStepParametricLIFNode):
    _cls.__module__ = "spikingjelly.clock_driven.neuron"


# ----------------------------------------------------------------------------- the official CLIF code (copied forward passes)

class rectangle(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, vth):
        if x.requires_grad:
            ctx.save_for_backward(x)
            ctx.vth = vth
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, grad_output):
        grad_x = None
        if ctx.needs_input_grad[0]:
            x = ctx.saved_tensors[0]
            mask1 = (x.abs() > ctx.vth / 2)
            mask_ = mask1.logical_not()
            grad_x = grad_output * x.masked_fill(mask_, 1. / ctx.vth).masked_fill(mask1, 0.)
        return grad_x, None


class Rectangle(nn.Module):
    def __init__(self, alpha=1.0, spiking=True):
        super().__init__()
        self.alpha, self.spiking = alpha, spiking

    def forward(self, x):
        return rectangle.apply(x, self.alpha)


class ComplementaryLIFNeuron(LIFNode):
    def __init__(self, tau=2., decay_input=False, v_threshold=1., v_reset=None, surrogate_function=Rectangle(),
                 detach_reset=False, cupy_fp32_inference=False, **kwargs):
        super().__init__(tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, cupy_fp32_inference)
        self.register_memory('m', 0.)

    def forward(self, x):
        self.neuronal_charge(x)
        self.m = self.m * torch.sigmoid(self.v / self.tau)
        spike = self.neuronal_fire()
        self.m += spike
        self.neuronal_reset(spike)
        self.v = self.v - spike * torch.sigmoid(self.m)
        return spike

    def neuronal_charge(self, x):
        if self.decay_input:
            x = x / self.tau
        if self.v_reset is None or self.v_reset == 0:
            if type(self.v) is float:
                self.v = x
            else:
                self.v = self.v * (1 - 1. / self.tau) + x
        else:
            if type(self.v) is float:
                self.v = self.v_reset * (1 - 1. / self.tau) + self.v_reset / self.tau + x
            else:
                self.v = self.v * (1 - 1. / self.tau) + self.v_reset / self.tau + x

    def neuronal_reset(self, spike):
        if self.v_reset is None:
            self.v = self.v - spike * self.v_threshold
        else:
            self.v = (1. - spike) * self.v + spike * self.v_reset


class MultiStepCLIFNeuron(ComplementaryLIFNeuron):
    def forward(self, x_seq):
        spike_seq = []
        for t in range(x_seq.shape[0]):
            spike_seq.append(super().forward(x_seq[t]).unsqueeze(0))
        return torch.cat(spike_seq, 0)


class BPTTNeuron(LIFNode):
    def __init__(self, tau=2., decay_input=False, v_threshold=1., v_reset=None, surrogate_function=Rectangle(),
                 detach_reset=False, cupy_fp32_inference=False, **kwargs):
        super().__init__(tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, cupy_fp32_inference)


class CLIFSpike(nn.Module):
    def __init__(self, tau):
        super().__init__()
        self.spike_func = Rectangle()
        self.v_th = 1.
        self.gamma = 1 - 1. / tau

    def forward(self, x_seq):  # pragma: no cover - refused, never run
        raise NotImplementedError


for _cls in (ComplementaryLIFNeuron, MultiStepCLIFNeuron, BPTTNeuron, CLIFSpike):
    _cls.__module__ = "modules.neuron"
for _cls in (rectangle, Rectangle):
    _cls.__module__ = "modules.surrogate"


def _x(T=8, shape=(4, 30), shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, *shape, generator=g) * 0.9 + 0.7 + shift


# ----------------------------------------------------------------------------- tests

@pytest.mark.parametrize("v_reset,decay_input,detach_reset,sur", [
    (None, False, False, lambda: Rectangle(1.0)), (0.0, True, True, lambda: sjs.Sigmoid()),
    (-0.5, False, True, lambda: sjs.ATan()), (0.3, True, False, lambda: sjs.PiecewiseQuadratic()),
])
def test_clock_driven_multi_step_lif_and_plif(v_reset, decay_input, detach_reset, sur):
    for cls, kind in ((MultiStepLIFNode, LIF), (MultiStepParametricLIFNode, PLIF)):
        args = dict(decay_input=decay_input, v_reset=v_reset, surrogate_function=sur(), detach_reset=detach_reset)
        first = cls(2.5, **args) if cls is MultiStepLIFNode else cls(init_tau=2.5, **args)
        second = cls(2.5, **args) if cls is MultiStepLIFNode else cls(init_tau=2.5, **args)
        ours = gradflow.convert(second)
        assert type(ours) is kind and ours.v_reset == v_reset
        params = [(first.w, ours.w)] if kind is PLIF else []
        assert_same(first, ours, _x(shift=(1.1 if decay_input else 0.0) - (v_reset or 0.0)), params=params)


def test_clock_driven_cupy_backend_maps_to_fused():
    assert gradflow.convert(MultiStepLIFNode(2.0, backend="cupy")).backend == "fused"


@pytest.mark.parametrize("tau,sur,decay_input", [(2.0, lambda: Rectangle(1.0), False),
                                                (1.5, lambda: Rectangle(0.5), False),
                                                (3.0, lambda: sjs.Sigmoid(), True),
                                                (2.0, lambda: sjs.PiecewiseQuadratic(), False)])
def test_official_multi_step_clif_matches(tau, sur, decay_input):
    ref = MultiStepCLIFNeuron(tau=tau, surrogate_function=sur(), decay_input=decay_input, detach_reset=True)
    ours = gradflow.convert(MultiStepCLIFNeuron(tau=tau, surrogate_function=sur(), decay_input=decay_input,
                                                detach_reset=True))
    assert isinstance(ours, CLIF) and ours.detach_reset is False  # the official reset ignores detach_reset
    assert ours.tau == tau and ours.decay_input == decay_input
    assert_same(ref, ours, _x(shift=1.0 if decay_input else 0.0))


def test_official_clif_in_a_users_network_is_recognised_and_recorded():
    torch.manual_seed(0)

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 8), MultiStepCLIFNeuron(tau=2.0), nn.Linear(8, 3),
                             MultiStepLIFNode(2.0, decay_input=False, v_reset=None, surrogate_function=Rectangle()))

    ref, ours = net(), gradflow.convert(net())
    assert isinstance(ours[1], CLIF) and isinstance(ours[3], LIF)
    x = torch.rand(6, 4, 5) * 2
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))
    with gradflow.record(ours) as rec:
        ours(x).sum().backward()
    assert set(rec.per_step().neuron) == {"clif", "lif"}


def test_official_single_step_neurons_are_recognised():
    """ComplementaryLIFNeuron and BPTTNeuron run one call per step; converted once gradflow has
    single-step neurons, refused with the reason until then."""
    for make in (lambda: ComplementaryLIFNeuron(tau=2.0), lambda: BPTTNeuron(tau=2.0)):
        try:
            ours = gradflow.convert(make())
        except UsageError as err:
            assert "single-step mode" in str(err)
            continue
        ref, x = make(), _x()
        torch.testing.assert_close(torch.stack([ours(xt) for xt in x]), torch.stack([ref(xt) for xt in x]))


def test_official_code_refusals():
    with pytest.raises(UsageError, match="CLIFSpike: it applies torch.sigmoid_ to m in place"):
        gradflow.convert(nn.Sequential(nn.Linear(2, 2), CLIFSpike(tau=2.0)))
    with pytest.raises(UsageError, match="v_reset=0.0 gives a hard-reset CLIF"):
        gradflow.convert(MultiStepCLIFNeuron(v_reset=0.0))
    with pytest.raises(UsageError, match="surrogate Erf has no closed form"):
        gradflow.convert(MultiStepCLIFNeuron(surrogate_function=sjs.Erf()))
