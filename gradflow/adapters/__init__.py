"""Adapters: swap other libraries' spiking neurons for gradflow neurons that compute the same thing.

Each adapter module offers ``LIBRARY`` (its name in messages), ``SUPPORTED`` (the classes it converts),
``claims(module) -> bool`` (is this one of my library's spiking neurons?) and
``convert_module(module) -> nn.Module`` (the gradflow neuron with the same forward and the same
gradients, or one :class:`~gradflow.UsageError` sentence naming the class and the option gradflow
cannot reproduce). :func:`convert` walks a model and asks every adapter in :data:`ADAPTERS`, in order
(the most specific first); adding a library means one module here plus its tests. Which classes and
options each adapter covers: docs/reference.md, Adapters.
"""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron
from . import official_clif, snntorch, spikingjelly

__all__ = ["ADAPTERS", "convert", "find_adapter"]

#: The adapters :func:`convert` consults, in order.
ADAPTERS = (official_clif, spikingjelly, snntorch)


def find_adapter(module: nn.Module):
    """The adapter module that claims ``module``, or None."""
    for adapter in ADAPTERS:
        if adapter.claims(module):
            return adapter
    return None


def convert(model: nn.Module) -> nn.Module:
    """Replace every foreign spiking neuron in ``model`` by its gradflow equivalent (in place); return it.

    A model that *is* such a neuron is returned converted. Other modules are left as they are, and so
    is a model converted before (converting twice changes nothing). Raises :class:`~gradflow.UsageError`
    when nothing can be converted and the model holds no gradflow neuron, or when a neuron uses an
    option gradflow cannot reproduce exactly (the message names it).
    """
    if not isinstance(model, nn.Module):
        raise UsageError(f"gradflow.convert expects a torch.nn.Module, got {type(model).__name__}.")
    adapter = find_adapter(model)
    if adapter is not None:
        return adapter.convert_module(model)
    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            adapter = find_adapter(child)
            if adapter is not None:
                setattr(parent, child_name, adapter.convert_module(child))
                count += 1
    done = any(isinstance(m, SpikingNeuron) or getattr(m, "_gradflow_converted", False) for m in model.modules())
    if count == 0 and not done:
        known = "; ".join(f"{a.LIBRARY} {', '.join(a.SUPPORTED)}" for a in ADAPTERS)
        raise UsageError(
            f"No spiking neuron gradflow can convert was found in {type(model).__name__} (gradflow converts "
            f"{known}; see docs/reference.md, Adapters)."
        )
    return model
