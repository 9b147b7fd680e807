"""Spiking neurons: one object per kind owns its maths; thin multi-step modules run it (docs/reference.md).

Sequences are time-major, ``[T, N, ...]``. A step is three named phases, charge -> fire -> reset::

    u[t] = gamma * v[t-1] + x[t]                 charge (hard reset: leak toward v_reset; decay_input)
    s[t] = H(u[t] - theta)                       fire, surrogate gradient sg(u[t] - theta)
    v[t] = u[t] - theta * s[t]                   reset: LIF soft (or hard: (1 - s) u + s v_reset)
    m[t] = m[t-1] sigmoid(u[t]/tau) + s[t]       CLIF's complementary potential, then
    v[t] = u[t] - s[t] (theta + sigmoid(m[t]))   CLIF's reset

Layout:

* :mod:`~gradflow.neurons.params` — :class:`NeuronParams` (plain floats) and the shared charge and fire;
* :mod:`~gradflow.neurons.kind` — :class:`NeuronKind`, the contract of a kind: step, closed-form
  one-step Jacobian, adjoint step, fused loop; :data:`KINDS` holds them by name;
* :mod:`~gradflow.neurons.lif` (LIF, PLIF) and :mod:`~gradflow.neurons.clif` (CLIF) — the kinds;
* :mod:`~gradflow.neurons.adjoint` — the reverse sweep, the recorder's temporal part and the pair
  transport, written once for every kind;
* :mod:`~gradflow.neurons.fused` — one autograd node for all steps, driven by the kind's adjoint;
* :mod:`~gradflow.neurons.module` — :class:`SpikingNeuron`, :class:`LIF`, :class:`CLIF`,
  :class:`PLIF`, :func:`build_neuron`.

>>> lif = LIF(tau=2.0)
>>> lif(torch.tensor([[0.6], [0.6], [0.6], [1.2]]))[:, 0].tolist()   # u = 0.6, 0.9, 1.05 -> spike, ...
[0.0, 0.0, 1.0, 1.0]
>>> KINDS["clif"].dense(KINDS["clif"].jacobian(torch.tensor([0.0]), CLIFState(*torch.zeros(2, 1)),
...                                            NeuronParams()))["mm"]     # dm/dm[t-1] = sigmoid(u/tau)
tensor([0.5000])
"""

from __future__ import annotations

import torch  # noqa: F401  (the doctest above)

from ..schema import BACKENDS
from ..surrogate import Surrogate
from .adjoint import PairCarry, cut_steps, pair_transport, sweep, temporal_from_delta
from .clif import CLIF_KIND, CLIFJacobian, CLIFKind, CLIFState, clif_fire_reset, clif_step
from .fused import FusedNeuron, clif_multistep, lif_multistep, multistep
from .kind import KINDS, AdjointStep, FusedForward, NeuronKind, get_kind, jacobian_at, register_kind
from .lif import LIF_KIND, PLIF_KIND, LIFJacobian, LIFKind, LIFState, PLIFKind, lif_fire_reset, lif_step
from .module import CLIF, LIF, NEURONS, PLIF, NeuronOutput, NeuronTrace, SpikingNeuron, build_neuron, reset_net
from .extra import IF, IF_KIND, LIF_NORESET_KIND, LIF_RAL_KIND, LeakyNoReset, LeakyRAL  # noqa: E402
from .params import NeuronParams, Scalar, charge, charge_dk, charge_gain, fire, input_gain, make_params

__all__ = [
    # parameters and shared phases
    "NeuronParams", "make_params", "charge", "fire", "charge_gain", "input_gain", "charge_dk", "Scalar",
    "Surrogate",
    # kinds
    "NeuronKind", "KINDS", "register_kind", "get_kind", "jacobian_at", "AdjointStep", "FusedForward",
    "LIFKind", "PLIFKind", "CLIFKind", "LIF_KIND", "PLIF_KIND", "CLIF_KIND",
    "LIFState", "CLIFState", "LIFJacobian", "CLIFJacobian",
    "lif_fire_reset", "clif_fire_reset", "lif_step", "clif_step",
    # adjoint loops and the fused backend
    "sweep", "temporal_from_delta", "pair_transport", "PairCarry", "cut_steps",
    "FusedNeuron", "multistep", "lif_multistep", "clif_multistep",
    # modules
    "SpikingNeuron", "LIF", "CLIF", "PLIF", "NEURONS", "BACKENDS", "build_neuron", "NeuronTrace",
    "NeuronOutput", "reset_net",
    # kinds for other libraries (gradflow.neurons.extra)
    "IF", "LeakyRAL", "LeakyNoReset", "IF_KIND", "LIF_RAL_KIND", "LIF_NORESET_KIND",
]

NEURONS.setdefault("if", IF)  # build_neuron("if")


