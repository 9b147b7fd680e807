"""Spiking architectures by name: a small MLP and the official CLIF code's networks (docs/reference.md,
Architectures).

:func:`build` makes a model from its registry name; :func:`available` lists the names. Every model maps
a static input (repeated over ``T`` steps) or a time-major ``[T, N, ...]`` input to per-step logits
``[T, N, classes]``, and carries ``model.config`` so that ``build(**model.config)`` rebuilds it.

================== ========================================================================
name               architecture
================== ========================================================================
mlp                fully connected, ``in_features -> widths... -> classes`` (small tasks)
snn5_noAP          the paper's Fig. 2 five-layer conv net, 32x32 input
spiking_resnet18   pre-activation spiking ResNet-18 (``[2, 2, 2, 2]``), 32x32 input
spiking_resnet34   pre-activation spiking ResNet-34 (``[3, 4, 6, 3]``), 32x32 input
spiking_vgg11_bn   spiking VGG-11 with batch norm, input >= 32x32
spiking_vgg13_bn   spiking VGG-13 with batch norm, input >= 32x32
================== ========================================================================

The last five have the official code's state_dict keys and shapes (they load its checkpoints with
``strict=True``) and its neuron module names, and compute what that code computes when called once per
time step on a static image: convolutions run on time-merged ``[T*N, ...]`` tensors, batch norm uses
per-step statistics in training mode, dropout keeps one mask per sample over all steps
(:mod:`gradflow.models.layers`).

>>> net = build("snn5_noAP", neuron="clif", num_classes=10, T=2, tau=2.0)
>>> net(torch.randn(3, 3, 32, 32)).shape
torch.Size([2, 3, 10])
>>> [name for name, _ in net.neuron_layers()][:2]
['features.0.act', 'features.1.act']
>>> build(**net.config).config == net.config
True
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import torch  # noqa: F401  (used by the doctest above)

from ..errors import UsageError
from ..neurons import NEURONS, build_neuron
from ..surrogate import Surrogate
from .base import SpikingModel, positive_int
from .layers import (
    TimeDropout,
    TimeSequential,
    apply_merged,
    apply_time_major,
    batch_norm_over_time,
    merge_time,
    split_time,
)
from .mlp import SpikingMLP
from .resnet import PreActBlock, SpikingResNet
from .snn5 import ConvBNSpike, SNN5NoAP
from .surgery import neuron_options, neurons_of, set_backend, set_truncation, swap_neurons
from .vgg import VGG_CFGS, SpikingVGG

__all__ = [
    "ARCHITECTURES",
    "NEURON_OPTIONS",
    "ArchSpec",
    "available",
    "build",
    "neurons_of",
    "neuron_options",
    "set_backend",
    "set_truncation",
    "swap_neurons",
    "SpikingModel",
    "SpikingMLP",
    "SNN5NoAP",
    "SpikingResNet",
    "SpikingVGG",
    "PreActBlock",
    "ConvBNSpike",
    "TimeSequential",
    "TimeDropout",
    "merge_time",
    "split_time",
    "apply_merged",
    "apply_time_major",
    "batch_norm_over_time",
]

#: Keyword arguments of :func:`build` that go to every neuron (``init_tau`` only for PLIF; for PLIF
#: ``tau`` is the initial tau as well).
NEURON_OPTIONS = (
    "tau", "v_threshold", "v_reset", "surrogate", "alpha", "detach_reset", "decay_input",
    "init_tau", "smooth_forward",
)


class ArchSpec(NamedTuple):
    """A registry entry: ``factory(**kwargs)`` makes the model; ``options`` are the architecture's own
    keyword arguments with their defaults; ``summary`` is one line for listings."""

    factory: Callable[..., SpikingModel]
    options: Dict[str, Any]
    summary: str


#: Registry: architecture name -> :class:`ArchSpec`.
ARCHITECTURES: Dict[str, ArchSpec] = {
    "mlp": ArchSpec(
        SpikingMLP, {"in_features": None, "widths": (128, 128), "dropout": 0.0},
        "fully connected spiking net, in_features -> widths -> classes",
    ),
    "snn5_noAP": ArchSpec(SNN5NoAP, {"dropout": 0.0}, "the CLIF paper's five-layer conv net (32x32)"),
    "spiking_resnet18": ArchSpec(
        functools.partial(SpikingResNet, blocks=(2, 2, 2, 2), arch="spiking_resnet18"),
        {"dropout": 0.0}, "pre-activation spiking ResNet-18 (32x32)",
    ),
    "spiking_resnet34": ArchSpec(
        functools.partial(SpikingResNet, blocks=(3, 4, 6, 3), arch="spiking_resnet34"),
        {"dropout": 0.0}, "pre-activation spiking ResNet-34 (32x32)",
    ),
    "spiking_vgg11_bn": ArchSpec(
        functools.partial(SpikingVGG, cfg=VGG_CFGS["vgg11"], arch="spiking_vgg11_bn"),
        {"dropout": 0.0}, "spiking VGG-11 with batch norm (>= 32x32)",
    ),
    "spiking_vgg13_bn": ArchSpec(
        functools.partial(SpikingVGG, cfg=VGG_CFGS["vgg13"], arch="spiking_vgg13_bn"),
        {"dropout": 0.0}, "spiking VGG-13 with batch norm (>= 32x32)",
    ),
}


def available() -> List[str]:
    """The architecture names :func:`build` knows.

    >>> available()[:2]
    ['mlp', 'snn5_noAP']
    """
    return list(ARCHITECTURES)


def _resolve_name(name: str) -> str:
    by_lower = {key.lower(): key for key in ARCHITECTURES}
    key = by_lower.get(str(name).lower())
    if key is None:
        raise UsageError(f"Unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}.")
    return key


def _checked_neuron_options(kind: str, given: Dict[str, Any]) -> Dict[str, Any]:
    """Normalise the neuron keyword arguments of :func:`build` and check them by building one neuron."""
    out = dict(given)
    sur = out.get("surrogate")
    if isinstance(sur, Surrogate):
        out["surrogate"] = sur.name
        out.setdefault("alpha", sur.alpha)
    if "init_tau" in out and kind != "plif":
        raise UsageError(f"init_tau applies to PLIF neurons only; use tau for {kind} neurons.")
    if kind == "if":
        out.pop("tau", None)  # an IF neuron has no leak (tau = inf): a time constant does not apply
    try:
        build_neuron(kind, **out)
    except TypeError as err:
        raise UsageError(f"Bad neuron options {sorted(out)} for {kind} neurons: {err}.") from None
    return out


def build(
    name: str,
    neuron: str = "lif",
    num_classes: int = 10,
    in_channels: Optional[int] = None,
    T: int = 4,
    **kwargs: Any,
) -> SpikingModel:
    """Make the architecture ``name`` with ``neuron`` (``lif``, ``clif``, ``plif``) layers.

    ``num_classes``: logits per step; ``in_channels``: input channels of the conv nets (default 3; for
    ``mlp`` an alias of ``in_features``); ``T``: steps a static input is repeated over. Further keyword
    arguments are the architecture's options (``dropout`` everywhere, ``in_features`` and ``widths`` for
    ``mlp``; see ``ARCHITECTURES[name].options``) or neuron options passed to every neuron
    (:data:`NEURON_OPTIONS`: ``tau``, ``v_threshold``, ``v_reset``, ``surrogate``, ``alpha``,
    ``detach_reset``, ``decay_input``; for PLIF ``tau`` is the initial tau). Weights are initialised
    from torch's global generator (seed it for reproducible models).

    Raises :class:`UsageError` for an unknown name, neuron or option, or a bad value.

    >>> net = build("mlp", neuron="plif", in_features=4, widths=(8,), num_classes=3, T=2, tau=3.0)
    >>> round(net.sn1.current_tau(), 6), net.config["widths"]
    (3.0, [8])
    """
    arch = _resolve_name(name)
    spec = ARCHITECTURES[arch]
    kind = str(neuron).lower()
    if kind not in NEURONS:
        raise UsageError(f"Unknown neuron {neuron!r}; choose one of {', '.join(NEURONS)}.")
    options = dict(spec.options)
    neuron_kwargs: Dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in options:
            options[key] = value
        elif key in NEURON_OPTIONS:
            neuron_kwargs[key] = value
        else:
            known = ", ".join(list(spec.options) + list(NEURON_OPTIONS))
            raise UsageError(f"Unknown option {key!r} for {arch}; the options are {known}.")
    neuron_kwargs = _checked_neuron_options(kind, neuron_kwargs)
    common = dict(neuron=kind, num_classes=num_classes, T=T, neuron_kwargs=neuron_kwargs)
    if arch == "mlp":
        features = options.pop("in_features")
        if features is None:
            features = in_channels
        elif in_channels is not None and in_channels != features:
            raise UsageError(f"mlp got in_features={features} but in_channels={in_channels}; give one of them.")
        if features is None:
            raise UsageError("mlp needs in_features (the size F of an [N, F] input).")
        return spec.factory(in_features=positive_int("in_features", features), **options, **common)
    return spec.factory(in_channels=3 if in_channels is None else in_channels, **options, **common)
