"""``snn5_noAP``: the five-layer convolutional SNN of the CLIF paper's Fig. 2 (no average pooling).

``features`` holds five :class:`ConvBNSpike` blocks, each ``fwd = Sequential(Conv2d(bias), BatchNorm2d)``
then the neuron ``act``:

=====  ===========  ======  ======  =====
block  channels     kernel  stride  pad
=====  ===========  ======  ======  =====
0      in -> 16     3       1       1
1      16 -> 64     5       2       1
2      64 -> 128    5       2       1
3      128 -> 256   5       4       1
4      256 -> 256   3       2       1
=====  ===========  ======  ======  =====

A 32x32 image shrinks to 32, 15, 7, 2, 1, so the flattened spikes feed ``classifier = Linear(256, classes)``
directly. Neuron layers are ``features.0.act`` .. ``features.4.act``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron
from .base import SpikingModel, conv_out
from .layers import TimeDropout, TimeSequential, apply_merged, init_weights

__all__ = ["ConvBNSpike", "SNN5NoAP"]

#: (out_channels, kernel, stride, padding) of the five blocks.
SNN5_LAYERS = ((16, 3, 1, 1), (64, 5, 2, 1), (128, 5, 2, 1), (256, 5, 4, 1), (256, 3, 2, 1))


class ConvBNSpike(nn.Module):
    """``act(fwd(x))`` over ``[T, N, C, H, W]``: conv and batch norm (``fwd``), then the neuron ``act``."""

    time_major = True

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int,
                 act: SpikingNeuron):
        super().__init__()
        self.fwd = TimeSequential(
            nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=True),
            nn.BatchNorm2d(out_channels),
        )
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fwd(x))


class SNN5NoAP(SpikingModel):
    """``snn5_noAP``: five conv-BN-spike blocks and a linear readout; 32x32 input.

    ``dropout`` (default 0) adds a time-shared dropout before the readout; it has no parameters, so
    state_dicts are unchanged.
    """

    arch = "snn5_noAP"

    def __init__(
        self,
        *,
        neuron: str = "lif",
        num_classes: int = 10,
        in_channels: int = 3,
        T: int = 4,
        dropout: float = 0.0,
        neuron_kwargs: Optional[Dict[str, Any]] = None,
    ):
        super().__init__(
            neuron=neuron, num_classes=num_classes, in_channels=in_channels, T=T,
            neuron_kwargs=neuron_kwargs, options={"dropout": float(dropout)},
        )
        blocks = []
        prev = self.in_channels
        for out, k, s, p in SNN5_LAYERS:
            blocks.append(ConvBNSpike(prev, out, k, s, p, self.make_neuron()))
            prev = out
        self.features = TimeSequential(*blocks)
        self.dropout = TimeDropout(dropout)
        self.classifier = nn.Linear(prev, self.num_classes)
        init_weights(self)

    def _final_size(self, h: int) -> int:
        for _, k, s, p in SNN5_LAYERS:
            h = conv_out(h, k, s, p)
        return h

    def check_input_shape(self, shape: Tuple[int, ...]) -> None:
        super().check_input_shape(shape)
        h, w = self._final_size(shape[2]), self._final_size(shape[3])
        if (h, w) != (1, 1):
            raise UsageError(
                f"snn5_noAP flattens a 1x1 map into its 256-input readout, so it needs 32x32 images; "
                f"a {shape[2]}x{shape[3]} input leaves {max(h, 0)}x{max(w, 0)}."
            )

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, C, 32, 32]`` -> logits ``[T, N, classes]``."""
        x = self.features(x)
        x = self.dropout(x.flatten(2))
        return apply_merged(self.classifier, x)
