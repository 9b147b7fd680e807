"""The common base of gradflow's architectures: input handling, configuration, neuron listing.

A :class:`SpikingModel` maps an input to per-step logits ``[T, N, classes]``. It accepts a static input
(``[N, C, H, W]`` for image nets, ``[N, F]`` for the MLP), which is repeated over its ``T`` steps (direct
encoding, as the official CLIF code feeds images), or an explicit time-major sequence ``[T, N, ...]``
with the same ``T``. Wrong ranks, channel counts, step counts and dtypes raise
:class:`gradflow.errors.UsageError` with one sentence saying what was expected.

``model.config`` holds everything :func:`gradflow.models.build` needs to rebuild the same architecture
(``build(**model.config)``); it is what gradflow checkpoints store.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron, build_neuron

__all__ = ["SpikingModel", "conv_out", "positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a :class:`UsageError` naming ``name``."""
    try:
        ok = not isinstance(value, bool) and float(value) == int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise UsageError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window along one dimension (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


class SpikingModel(nn.Module):
    """Base class: a spiking network of ``T`` steps built from one neuron kind.

    Attributes: ``arch`` (registry name), ``neuron_kind`` (``lif``, ``clif`` or ``plif``), ``T``,
    ``num_classes``, ``in_channels`` (input channels; the MLP's input features), ``neuron_kwargs``
    (passed to every neuron), ``options`` (architecture options such as ``dropout``).

    Subclasses set ``arch`` and ``static_rank`` (rank of a static input) and implement
    :meth:`forward_steps` on a checked ``[T, N, ...]`` sequence; they may override
    :meth:`check_input_shape` for size constraints of their own.
    """

    arch: str = "?"
    static_rank: int = 4

    def __init__(
        self,
        *,
        neuron: str,
        num_classes: int,
        in_channels: int,
        T: int,
        neuron_kwargs: Optional[Dict[str, Any]] = None,
        options: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        self.neuron_kind = str(neuron).lower()
        self.num_classes = positive_int("num_classes", num_classes)
        self.in_channels = positive_int("in_channels", in_channels)
        self.T = positive_int("T", T)
        self.neuron_kwargs: Dict[str, Any] = dict(neuron_kwargs or {})
        self.options: Dict[str, Any] = dict(options or {})

    # -- construction helpers
    def make_neuron(self) -> SpikingNeuron:
        """A fresh neuron module of ``neuron_kind`` with ``neuron_kwargs`` (``tau`` is PLIF's init_tau)."""
        return build_neuron(self.neuron_kind, **self.neuron_kwargs)

    @property
    def config(self) -> Dict[str, Any]:
        """Keyword arguments that rebuild this architecture: ``gradflow.models.build(**model.config)``.

        A fresh dict of plain values (``name``, ``neuron``, ``num_classes``, ``in_channels``, ``T``, the
        architecture options and the neuron keyword arguments), so it can be stored in checkpoints.
        """
        cfg: Dict[str, Any] = {
            "name": self.arch,
            "neuron": self.neuron_kind,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "T": self.T,
        }
        cfg.update(self.options)
        cfg.update(self.neuron_kwargs)
        return cfg

    def neuron_layers(self) -> List[Tuple[str, SpikingNeuron]]:
        """``(qualified name, module)`` of every spiking neuron layer, in forward order.

        gradflow's architectures register their neurons in the order the forward pass calls them, so
        this is also the order of the recorder's ``layer_index``.
        """
        return [(name, m) for name, m in self.named_modules() if isinstance(m, SpikingNeuron)]

    # -- input handling
    def _input_desc(self) -> str:
        if self.static_rank == 2:
            return "a static [N, F] or time-major [T, N, F] input"
        return "a static [N, C, H, W] or time-major [T, N, C, H, W] input"

    def check_input_shape(self, shape: Tuple[int, ...]) -> None:
        """Check one step's shape ``[N, ...]`` beyond the rank (channels; subclasses add sizes)."""
        if shape[1] != self.in_channels:
            what = "input features" if self.static_rank == 2 else "input channels"
            raise UsageError(
                f"{self.arch} was built for {self.in_channels} {what} but the input has {shape[1]} "
                f"(shape {tuple(shape)})."
            )

    def time_major_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``x`` and return it as a ``[T, N, ...]`` sequence (static inputs repeated T times)."""
        if not isinstance(x, torch.Tensor):
            raise UsageError(f"{self.arch} expects a torch.Tensor input, got {type(x).__name__}.")
        if not x.is_floating_point():
            raise UsageError(
                f"{self.arch} expects a floating-point input, got {x.dtype}; convert it first, e.g. x.float()."
            )
        param = next(self.parameters(), None)
        if param is not None and param.dtype != x.dtype:
            raise UsageError(
                f"The input dtype {x.dtype} does not match the model's {param.dtype}; "
                f"convert one of them, e.g. x.to({param.dtype}) or model.to({x.dtype})."
            )
        if x.dim() == self.static_rank:
            self.check_input_shape(tuple(x.shape))
            return x.unsqueeze(0).expand(self.T, *x.shape)
        if x.dim() == self.static_rank + 1:
            if x.shape[0] != self.T:
                raise UsageError(
                    f"{self.arch} was built with T={self.T} but the input has {x.shape[0]} time steps "
                    f"(shape {tuple(x.shape)}); pass {self.T} steps, a static input, or set model.T."
                )
            self.check_input_shape(tuple(x.shape[1:]))
            return x
        raise UsageError(f"{self.arch} expects {self._input_desc()}, got shape {tuple(x.shape)}.")

    # -- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, N, num_classes]`` of a static or time-major input."""
        return self.forward_steps(self.time_major_input(x))

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits ``[T, N, num_classes]`` of a checked ``[T, N, ...]`` sequence."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"arch={self.arch}, neuron={self.neuron_kind}, T={self.T}, num_classes={self.num_classes}"
