"""What every adapter shares: finding a library's classes in a module's MRO, refusing in one sentence,
and building the gradflow neuron that computes the same thing.

An adapter describes a foreign neuron as a :class:`NeuronSpec` (a gradflow kind and its options, the
step mode, the backend) and :func:`build` makes the module. Every refusal names the library, the class
and the option (:func:`unsupported`), so a user learns in one line what gradflow cannot reproduce
exactly and why.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn

from ..errors import UsageError
from ..neurons import NEURONS, SpikingNeuron
from ..neurons.extra import IF, LeakyNoReset, LeakyRAL

__all__ = ["NeuronSpec", "build", "unsupported", "library_classes", "first_library_class", "redefined",
           "scalar"]


@dataclass
class NeuronSpec:
    """A foreign neuron in gradflow's terms.

    ``kind``: the gradflow neuron kind (``lif``, ``plif``, ``clif``, ``if``, ...); ``options``: keyword
    arguments of the kind's module (``tau``, ``v_threshold``, ``v_reset``,
    ``surrogate``, ``alpha``, ``detach_reset``, ``decay_input``); ``step_mode``: ``"m"`` (whole
    sequences ``[T, N, ...]`` per call) or ``"s"`` (one step ``[N, ...]`` per call, state kept until
    reset); ``backend``: ``"torch"`` or ``"fused"``; ``parameters``: tensors to copy into the new module
    (PLIF's ``w``); ``source``: the foreign module, for messages and device/dtype.
    """

    kind: str
    options: Dict[str, Any]
    step_mode: str = "m"
    backend: str = "torch"
    parameters: Dict[str, torch.Tensor] = field(default_factory=dict)
    source: Optional[nn.Module] = None


#: Kinds whose modules live in :mod:`gradflow.neurons.extra` (not in ``build_neuron``'s table).
_EXTRA_MODULES = {"if": IF, "lif_ral": LeakyRAL, "lif_noreset": LeakyNoReset}


def build(spec: NeuronSpec) -> SpikingNeuron:
    """The gradflow neuron for ``spec``, with its parameters copied and on the source's device/dtype.

    A single-step spec needs a module that takes ``step_mode`` (gradflow's single-step neurons, issue
    14.1); until the modules have it, it is refused with one sentence saying how to switch modes.
    """
    cls = _EXTRA_MODULES.get(spec.kind) or NEURONS[spec.kind]
    options = dict(spec.options, backend=spec.backend)
    if spec.step_mode != "m":
        if "step_mode" not in inspect.signature(SpikingNeuron.__init__).parameters:
            raise UsageError(
                f"Cannot convert {type(spec.source).__name__} in single-step mode (one call per time step): "
                "gradflow's neurons run whole sequences in this version; switch it to multi-step mode "
                "(SpikingJelly: functional.set_step_mode(net, 'm'))."
            )
        options["step_mode"] = spec.step_mode
    module = cls(**options)
    with torch.no_grad():
        for name, value in spec.parameters.items():
            getattr(module, name).copy_(value.detach().reshape(getattr(module, name).shape))
    ref = next(iter(spec.parameters.values()), None)
    if ref is not None:
        module = module.to(device=ref.device, dtype=ref.dtype)
    if spec.source is not None:
        module.train(spec.source.training)
    return module


def unsupported(library: str, module: nn.Module, what: str) -> UsageError:
    """``UsageError("Cannot convert <library> <Class>: <what>.")`` (``what`` without a final period)."""
    return UsageError(f"Cannot convert {library} {type(module).__name__}: {what.rstrip('.')}.")


def library_classes(module: nn.Module, prefixes: Sequence[str]) -> List[type]:
    """The classes in ``type(module)``'s MRO defined in modules whose name starts with one of ``prefixes``."""
    return [c for c in type(module).__mro__ if any(c.__module__.startswith(p) for p in prefixes)]


def first_library_class(module: nn.Module, prefixes: Sequence[str], names: Iterable[str]) -> Optional[type]:
    """The most derived class of ``module`` that is a library class (``prefixes``) named one of ``names``."""
    wanted = set(names)
    for cls in library_classes(module, prefixes):
        if cls.__name__ in wanted:
            return cls
    return None


def redefined(module: nn.Module, base: type, methods: Iterable[str]) -> List[str]:
    """The ``methods`` that ``type(module)`` defines differently from ``base`` (a user's subclass that
    changes what the neuron computes cannot be converted by the base class's rules)."""
    cls = type(module)
    return [m for m in methods if getattr(cls, m, None) is not getattr(base, m, None)]


def scalar(library: str, module: nn.Module, name: str, value: Any) -> float:
    """``value`` (a number or a one-element tensor) as a float, else a refusal naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise unsupported(library, module, f"{name} has {value.numel()} values (one per neuron); gradflow "
                                               f"neurons take one {name} per layer")
        return float(value.detach().reshape(()))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise unsupported(library, module, f"{name}={value!r} is not a number")
    return float(value)
