"""Changing a built model in place: its neurons' backend, truncation of back-propagation through time,
and the neuron kind itself (weights kept).

>>> from gradflow import models
>>> net = models.build("mlp", neuron="lif", in_features=4, widths=(6, 6), num_classes=3, T=2)
>>> set_truncation(net, 2), set_backend(net, "fused")
(2, 2)
>>> [m.kind for m in neurons_of(swap_neurons(net, "clif"))]
['clif', 'clif']
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron, build_neuron

__all__ = ["neurons_of", "neuron_options", "set_backend", "set_truncation", "swap_neurons"]


def neurons_of(model: torch.nn.Module) -> List[SpikingNeuron]:
    """Every gradflow spiking neuron module of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def neuron_options(neuron: SpikingNeuron, kind: Optional[str] = None) -> Dict[str, Any]:
    """The keyword arguments that rebuild ``neuron`` as a ``kind`` neuron (default: its own kind).

    ``tau`` (PLIF: its current value), ``v_threshold``, ``surrogate`` and ``alpha``, ``detach_reset``,
    ``decay_input``, ``truncate``, ``backend``, and ``v_reset`` unless ``kind`` is ``clif`` (CLIF has
    no hard reset).

    >>> from gradflow.neurons import build_neuron
    >>> opts = neuron_options(build_neuron("plif", tau=3.0), "clif")
    >>> round(opts["tau"], 6), "v_reset" in opts
    (3.0, False)
    """
    kind = neuron.kind if kind is None else str(kind).lower()
    out = {
        "tau": neuron.current_tau(), "v_threshold": neuron.v_threshold, "surrogate": neuron.sur.name,
        "alpha": neuron.sur.alpha, "detach_reset": neuron.detach_reset, "decay_input": neuron.decay_input,
        "truncate": neuron.truncate, "backend": neuron.backend,
    }
    if kind != "clif":
        out["v_reset"] = neuron.v_reset
    return out


def set_backend(model: torch.nn.Module, backend: str) -> int:
    """Run every neuron of ``model`` on ``backend`` (``torch`` or ``fused``: same numbers, see
    :class:`gradflow.neurons.SpikingNeuron`); returns how many neurons were set."""
    layers = neurons_of(model)
    for m in layers:
        m.backend = backend
    return len(layers)


def set_truncation(model: nn.Module, k: Optional[int]) -> int:
    """Set ``truncate = k`` on every neuron of ``model`` (None: full BPTT); returns how many were set.

    In the backward pass the neuron state entering every step ``t > 0`` with ``t % k == 0`` is detached
    (:mod:`gradflow.train` explains the blocks this makes); the forward pass is unchanged.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise UsageError(f"truncate must be a positive integer number of steps, got {k!r}.", arguments=("truncate",))
    layers = neurons_of(model)
    if not layers:
        raise UsageError("The model has no gradflow spiking neurons to truncate.")
    for m in layers:
        m.truncate = k
    return len(layers)


def swap_neurons(model: nn.Module, kind: str, **overrides: Any) -> nn.Module:
    """Replace every neuron of ``model`` in place by a ``kind`` neuron, keeping all weights.

    The new neurons copy the old ones' options (:func:`gradflow.models.neuron_options`: ``tau`` at its
    current value for PLIF, threshold, surrogate, reset, detach, truncation, backend); ``overrides``
    (e.g. ``v_reset=0.0``) win. The model's ``config`` follows (``neuron`` and the neuron keyword
    arguments), so checkpoints stay self-describing. Returns ``model``.
    """
    kind = str(kind).lower()
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikingNeuron):
                new = build_neuron(kind, **{**neuron_options(child, kind), **overrides})
                p = next(child.parameters(), None)
                if p is not None:
                    new.to(p.device)
                new.train(child.training)
                setattr(parent, name, new)
                replaced += 1
    if not replaced:
        raise UsageError("The model has no gradflow spiking neurons to swap.")
    if hasattr(model, "neuron_kind"):
        model.neuron_kind = kind
    if isinstance(getattr(model, "neuron_kwargs", None), dict):
        nk = dict(model.neuron_kwargs)
        nk.update({k: v for k, v in overrides.items() if k != "truncate"})
        if kind == "clif":
            nk.pop("v_reset", None)
        model.neuron_kwargs = {k: v for k, v in nk.items() if v is not None or k != "v_reset"}
    return model
