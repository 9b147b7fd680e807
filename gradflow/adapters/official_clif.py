"""Adapter: the official CLIF code's neurons (Huang et al., ICML 2024; github.com/HuuYuLong/Complementary-LIF,
``modules/neuron.py``) -> gradflow's CLIF.

That code builds its neurons on SpikingJelly's ``clock_driven`` API:

* ``ComplementaryLIFNeuron`` (single-step) and ``MultiStepCLIFNeuron`` (its multi-step loop) compute
  paper Eq. 19 in this order: charge ``u = v (1 - 1/tau) + x`` (``x / tau`` with ``decay_input``),
  ``m = m * sigmoid(u / tau)``, ``s = H(u - theta)``, ``m = m + s``, ``v = u - s theta``,
  ``v = v - s sigmoid(m)``. Its reset never detaches ``s`` (its ``_reset`` ignores ``detach_reset``), so
  the gradflow CLIF has ``detach_reset=False`` whatever the attribute says. -> :class:`~gradflow.CLIF`.
* ``BPTTNeuron`` and ``PLIFNeuron`` are SpikingJelly's ``LIFNode``/``ParametricLIFNode`` with other
  defaults; :mod:`gradflow.adapters.spikingjelly` converts them.
* ``CLIFSpike`` (a multi-step sketch the official networks do not use) is refused: it applies
  ``torch.sigmoid_`` to ``m`` in place, so the ``m`` it carries to the next step is ``sigmoid(m)``, not
  the paper's ``m``.

A class is recognised by its name and by deriving from SpikingJelly's ``LIFNode`` (wherever the user's
copy of ``modules/neuron.py`` lives). The surrogate is the code's own ``Rectangle(alpha)`` (gradflow's
``rectangle`` with the same alpha) or a SpikingJelly one (:func:`~gradflow.adapters.spikingjelly.surrogate_of`).
The CLIF with a hard reset (``v_reset`` given) is not paper Eq. 19 and is refused.
"""

from __future__ import annotations

from torch import nn

from ..neurons import SpikingNeuron
from .common import NeuronSpec, build, library_classes, scalar, unsupported
from .spikingjelly import surrogate_of

__all__ = ["LIBRARY", "SUPPORTED", "claims", "convert_module", "spec_of"]

LIBRARY = "the official CLIF code's"

#: The official classes this adapter converts, with their step mode.
SUPPORTED = {"ComplementaryLIFNeuron": "s", "MultiStepCLIFNeuron": "m"}
_REFUSED = {
    "CLIFSpike": "it applies torch.sigmoid_ to m in place, so the m it carries to the next step is sigmoid(m), "
                 "not paper Eq. 19's m; use ComplementaryLIFNeuron or MultiStepCLIFNeuron",
}


def _official_class(module: nn.Module):
    for cls in type(module).__mro__:
        if cls.__name__ in SUPPORTED and not cls.__module__.startswith("spikingjelly"):
            return cls
    return None


def claims(module: nn.Module) -> bool:
    """True for ``ComplementaryLIFNeuron`` / ``MultiStepCLIFNeuron`` (and subclasses) built on a
    SpikingJelly ``LIFNode``, and for the refused ``CLIFSpike``."""
    if type(module).__name__ in _REFUSED:
        return all(hasattr(module, a) for a in ("spike_func", "v_th", "gamma"))
    if _official_class(module) is None:
        return False
    return any(c.__name__ == "LIFNode" for c in library_classes(module, ("spikingjelly.",)))


def spec_of(node: nn.Module) -> NeuronSpec:
    """The :class:`NeuronSpec` of a claimed official CLIF neuron."""
    if type(node).__name__ in _REFUSED:
        raise unsupported(LIBRARY, node, _REFUSED[type(node).__name__])
    cls = _official_class(node)
    if node.v_reset is not None:
        raise unsupported(LIBRARY, node, f"v_reset={node.v_reset} gives a hard-reset CLIF, which is not paper "
                                         "Eq. 19; gradflow's CLIF has the soft reset only")
    sur, alpha = surrogate_of(node, LIBRARY)
    options = dict(
        tau=scalar(LIBRARY, node, "tau", node.tau),
        v_threshold=scalar(LIBRARY, node, "v_threshold", node.v_threshold),
        surrogate=sur,
        alpha=alpha,
        detach_reset=False,  # the official _reset ignores detach_reset
        decay_input=bool(node.decay_input),
    )
    step_mode = SUPPORTED[cls.__name__]
    if type(node) is not cls and type(node).forward is not cls.forward:
        raise unsupported(LIBRARY, node, f"it is a subclass of {cls.__name__} that redefines forward")
    return NeuronSpec("clif", options, step_mode, "torch", {}, node)


def convert_module(module: nn.Module) -> SpikingNeuron:
    """The gradflow CLIF that computes what ``module`` computes."""
    return build(spec_of(module))
