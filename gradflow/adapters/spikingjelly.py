"""Adapter: SpikingJelly neurons -> gradflow neurons, so that a SpikingJelly model can be recorded.

Supported: ``spikingjelly.activation_based.neuron.LIFNode`` and ``ParametricLIFNode`` in multi-step
mode (``step_mode='m'``) with the torch backend. Every parameter that changes the forward pass or the
gradient is carried over: ``tau`` (PLIF: the learned ``w``), ``decay_input``, ``v_threshold``,
``v_reset``, ``detach_reset`` and the surrogate with its ``alpha``.

SpikingJelly's surrogates map as: ``Sigmoid(alpha)`` -> ``sigmoid``, ``ATan(alpha)`` -> ``atan``,
``PiecewiseQuadratic(alpha)`` -> ``triangle``, ``Rect(alpha)`` -> ``rectangle`` with width
``1/alpha`` (SpikingJelly's ``alpha`` is the rectangle's height; gradflow's is its width).
"""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from ..neurons import LIF, PLIF, SpikingNeuron

__all__ = ["claims", "convert_module"]

_NODES = ("LIFNode", "ParametricLIFNode")

_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan", "PiecewiseQuadratic": "triangle", "Rect": "rectangle"}


def _surrogate_of(node) -> tuple:
    fn = node.surrogate_function
    name = type(fn).__name__
    if name not in _SURROGATES:
        known = ", ".join(_SURROGATES)
        raise UsageError(f"Cannot convert the SpikingJelly surrogate {name}; supported: {known}.")
    if not getattr(fn, "spiking", True):
        raise UsageError("Cannot convert a SpikingJelly surrogate with spiking=False (a non-spiking forward).")
    alpha = float(fn.alpha)
    return _SURROGATES[name], (1.0 / alpha if name == "Rect" else alpha)


def _convert_node(node) -> SpikingNeuron:
    kind = type(node).__name__
    if getattr(node, "step_mode", "m") != "m":
        raise UsageError(
            f"SpikingJelly {kind} runs in single-step mode; set step_mode='m' "
            "(functional.set_step_mode(net, 'm')) so that gradflow sees whole sequences."
        )
    surrogate, alpha = _surrogate_of(node)
    common = dict(
        v_threshold=float(node.v_threshold),
        v_reset=None if node.v_reset is None else float(node.v_reset),
        surrogate=surrogate,
        alpha=alpha,
        detach_reset=bool(node.detach_reset),
        decay_input=bool(node.decay_input),
    )
    if kind == "ParametricLIFNode":
        new = PLIF(init_tau=2.0, **common)
        new.w.data.copy_(node.w.detach().reshape(()))
        return new.to(node.w.device)
    return LIF(tau=float(node.tau), **common)


def claims(module: nn.Module) -> bool:
    """True for the SpikingJelly neuron classes this adapter converts."""
    return type(module).__name__ in _NODES and "spikingjelly" in type(module).__module__


def convert_module(module: nn.Module) -> SpikingNeuron:
    """The gradflow neuron that computes what ``module`` (a claimed SpikingJelly node) computes."""
    return _convert_node(module)
