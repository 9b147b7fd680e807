"""Adapter: SpikingJelly neurons -> gradflow neurons (both the ``activation_based`` and the older
``clock_driven`` API).

Converted exactly (outputs, input and parameter gradients equal to float32 rounding, same spikes):

============================== ======================= =============================================
SpikingJelly class             gradflow                 notes
============================== ======================= =============================================
``LIFNode``                    :class:`~gradflow.LIF`   ``tau``, ``decay_input``, soft or hard reset
``ParametricLIFNode``          :class:`~gradflow.PLIF`  the learned ``w`` is copied
``IFNode``                     ``IF`` (kind ``if``)     LIF with ``tau = inf``: ``u[t] = v[t-1] + x[t]``
``MultiStep*`` (clock_driven)  the same, multi-step
============================== ======================= =============================================

Every option that changes the forward pass or a gradient is carried over: ``tau`` (PLIF: ``w``),
``decay_input``, ``v_threshold``, ``v_reset`` (hard reset: the leak pulls toward it and the potential
starts there, as in SpikingJelly), ``detach_reset`` and the surrogate. The step mode is kept
(``step_mode`` of ``activation_based`` nodes; ``clock_driven``'s ``MultiStep*`` classes are multi-step,
the others single-step). SpikingJelly's ``cupy`` and ``triton`` backends map to gradflow's ``fused``
backend, ``torch`` to ``torch``. A user's subclass converts like its base class when it redefines none
of the methods that compute the neuron (``forward``, ``neuronal_charge``, ...); the official CLIF code's
``BPTTNeuron`` and ``PLIFNeuron`` are such subclasses.

Surrogates (SpikingJelly's ``alpha`` -> gradflow's): ``Sigmoid(alpha)`` -> ``sigmoid`` (same alpha),
``ATan(alpha)`` -> ``atan``, ``PiecewiseQuadratic(alpha)`` -> ``triangle``, ``Rect(alpha)`` ->
``rectangle`` of width ``1/alpha`` (SpikingJelly's alpha is the height; its window excludes the edge
``|x| = 1/(2 alpha)``, gradflow's includes it, which only matters at that exact value), and the official
CLIF code's ``Rectangle(alpha)`` -> ``rectangle`` with the same alpha. Every other surrogate, neuron
class or option is refused with one sentence naming it (docs/reference.md, Adapters).
"""

from __future__ import annotations

from torch import nn

from ..neurons import SpikingNeuron
from .common import NeuronSpec, build, first_library_class, library_classes, redefined, scalar, unsupported

__all__ = ["LIBRARY", "SUPPORTED", "claims", "convert_module", "surrogate_of", "spec_of"]

LIBRARY = "SpikingJelly"
_PREFIXES = ("spikingjelly.",)

_LIF = ("LIFNode", "MultiStepLIFNode")
_PLIF = ("ParametricLIFNode", "MultiStepParametricLIFNode")
_IF = ("IFNode", "MultiStepIFNode")
#: The SpikingJelly classes this adapter converts.
SUPPORTED = _LIF + _PLIF + _IF

#: Methods whose redefinition in a subclass changes what the neuron computes.
_SEMANTIC = ("forward", "single_step_forward", "multi_step_forward", "neuronal_charge", "neuronal_fire",
             "neuronal_reset", "single_step_functional_forward", "multi_step_functional_forward")

_SURROGATES = {"Sigmoid": "sigmoid", "ATan": "atan", "PiecewiseQuadratic": "triangle", "Rect": "rectangle"}

#: SpikingJelly backends -> gradflow backends.
_BACKENDS = {"torch": "torch", "cupy": "fused", "triton": "fused"}


def claims(module: nn.Module) -> bool:
    """True for every SpikingJelly *spiking* neuron (a subclass of its ``BaseNode``/``SimpleBaseNode``),
    converted or refused by :func:`convert_module`; non-spiking readout nodes are left alone."""
    names = {c.__name__ for c in library_classes(module, _PREFIXES)}
    return bool(names & {"BaseNode", "SimpleBaseNode"}) or bool(names & set(SUPPORTED))


def surrogate_of(node: nn.Module, library: str = LIBRARY) -> tuple:
    """``(gradflow surrogate name, alpha)`` for ``node.surrogate_function``; a refusal otherwise."""
    fn = getattr(node, "surrogate_function", None)
    name = type(fn).__name__
    official = name == "Rectangle" and not type(fn).__module__.startswith("spikingjelly")
    if not official and (name not in _SURROGATES or not type(fn).__module__.startswith("spikingjelly")):
        known = ", ".join(list(_SURROGATES) + ["the official CLIF code's Rectangle"])
        raise unsupported(library, node, f"its surrogate {name} has no closed form in gradflow (supported: {known})")
    if not getattr(fn, "spiking", True):
        raise unsupported(library, node, f"its surrogate {name} has spiking=False (a non-spiking forward)")
    alpha = scalar(library, node, "surrogate alpha", getattr(fn, "alpha", None))
    if official:
        return "rectangle", alpha
    return _SURROGATES[name], (1.0 / alpha if name == "Rect" else alpha)


def _step_mode(node: nn.Module, base: type) -> str:
    mode = getattr(node, "step_mode", None)
    if mode is None:  # clock_driven: the class says
        mode = "m" if base.__name__.startswith("MultiStep") else "s"
    if mode not in ("s", "m"):
        raise unsupported(LIBRARY, node, f"step_mode={mode!r} is neither 's' nor 'm'")
    return mode


def _backend(node: nn.Module) -> str:
    backend = getattr(node, "backend", "torch")
    if backend not in _BACKENDS:
        raise unsupported(LIBRARY, node, f"its backend {backend!r} has no gradflow counterpart (torch, cupy, triton)")
    return _BACKENDS[backend]


def spec_of(node: nn.Module) -> NeuronSpec:
    """The :class:`NeuronSpec` of a claimed SpikingJelly neuron (refusals as one-sentence UsageErrors)."""
    base = first_library_class(node, _PREFIXES, SUPPORTED)
    if base is None:
        raise unsupported(LIBRARY, node, "gradflow converts LIFNode, ParametricLIFNode and IFNode "
                                         "(and clock_driven's MultiStep versions) only")
    changed = redefined(node, base, _SEMANTIC)
    if changed:
        raise unsupported(LIBRARY, node, f"it is a subclass of {base.__name__} that redefines {', '.join(changed)}, "
                                         "so gradflow cannot know what it computes")
    if getattr(node, "_neuron_precision", None) is not None:
        raise unsupported(LIBRARY, node, "it computes in reduced precision (set_neuron_precision); gradflow "
                                         "reproduces float32/float64 neurons only")
    if scalar(LIBRARY, node, "v_rest", getattr(node, "v_rest", 0.0)) != 0.0:
        raise unsupported(LIBRARY, node, "v_rest other than 0 is not a gradflow option")
    sur, alpha = surrogate_of(node)
    v_reset = getattr(node, "v_reset", None)
    options = dict(
        v_threshold=scalar(LIBRARY, node, "v_threshold", node.v_threshold),
        v_reset=None if v_reset is None else scalar(LIBRARY, node, "v_reset", v_reset),
        surrogate=sur,
        alpha=alpha,
        detach_reset=bool(node.detach_reset),
    )
    parameters = {}
    if base.__name__ in _IF:
        kind = "if"
    else:
        options["decay_input"] = bool(node.decay_input)
        if base.__name__ in _PLIF:
            kind = "plif"
            parameters["w"] = node.w
        else:
            kind, options["tau"] = "lif", scalar(LIBRARY, node, "tau", node.tau)
    return NeuronSpec(kind, options, _step_mode(node, base), _backend(node), parameters, node)


def convert_module(module: nn.Module) -> SpikingNeuron:
    """The gradflow neuron that computes what ``module`` (a claimed SpikingJelly neuron) computes."""
    return build(spec_of(module))
