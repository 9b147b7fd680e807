"""A fully connected spiking network for small tasks.

``mlp``: ``in_features -> widths[0] -> ... -> widths[-1] -> num_classes``. Hidden layer ``i`` (from 1)
is ``fc{i}`` (Linear), ``sn{i}`` (neuron), ``drop{i}`` (:class:`TimeDropout`); the readout ``classifier``
is a Linear on the last spikes, applied at every step. No batch norm, so the function of one sample does
not depend on the rest of the batch.

>>> net = SpikingMLP(neuron="lif", num_classes=3, in_features=4, widths=(8, 8), T=2)
>>> [name for name, _ in net.neuron_layers()]
['sn1', 'sn2']
>>> net(torch.randn(5, 4)).shape                           # static [N, F] -> [T, N, classes]
torch.Size([2, 5, 3])
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..errors import UsageError
from .base import SpikingModel
from .layers import TimeDropout, apply_merged, init_weights

__all__ = ["SpikingMLP"]


class SpikingMLP(SpikingModel):
    """Spiking MLP: inputs ``[N, F]`` (static, repeated over T) or ``[T, N, F]``; logits ``[T, N, classes]``.

    ``widths``: hidden layer sizes (at least one); ``dropout``: probability of the time-shared dropout
    after each hidden neuron layer.
    """

    arch = "mlp"
    static_rank = 2

    def __init__(
        self,
        *,
        neuron: str = "lif",
        num_classes: int = 10,
        in_features: int,
        widths: Sequence[int] = (128, 128),
        T: int = 4,
        dropout: float = 0.0,
        neuron_kwargs: Optional[Dict[str, Any]] = None,
    ):
        widths = _check_widths(widths)
        super().__init__(
            neuron=neuron, num_classes=num_classes, in_channels=in_features, T=T,
            neuron_kwargs=neuron_kwargs,
            options={"in_features": int(in_features), "widths": list(widths), "dropout": float(dropout)},
        )
        self.in_features = int(in_features)
        self.widths = tuple(widths)
        self.depth = len(widths)
        prev = self.in_features
        for i, width in enumerate(widths, start=1):
            setattr(self, f"fc{i}", nn.Linear(prev, width))
            setattr(self, f"sn{i}", self.make_neuron())
            setattr(self, f"drop{i}", TimeDropout(dropout))
            prev = width
        self.classifier = nn.Linear(prev, num_classes)
        init_weights(self)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, F]`` -> logits ``[T, N, classes]``."""
        for i in range(1, self.depth + 1):
            x = apply_merged(getattr(self, f"fc{i}"), x)
            x = getattr(self, f"sn{i}")(x)
            x = getattr(self, f"drop{i}")(x)
        return apply_merged(self.classifier, x)


def _check_widths(widths) -> tuple:
    if isinstance(widths, int):
        widths = (widths,)
    try:
        out = tuple(int(w) for w in widths)
        ok = len(out) > 0 and all(w > 0 and w == float(v) for w, v in zip(out, widths))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"widths must be a non-empty list of positive integers, got {widths!r}.")
    return out
