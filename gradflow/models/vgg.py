"""Spiking VGG with batch norm, ``spiking_vgg11_bn`` and ``spiking_vgg13_bn`` (docs/reference.md,
Architectures).

Five stages ``layer1..layer5``; each is a :class:`TimeSequential` of ``[Conv3x3(pad 1, bias),
BatchNorm2d, neuron, TimeDropout]`` per convolution, then ``AvgPool2d(2)``. So a stage with two convs
has its neurons at indices 2 and 6 (``layer3.2``, ``layer3.6``) and its pool at 8, as in the official
code. Then ``AdaptiveAvgPool2d(7)`` and ``classifier = Sequential(Flatten, Linear(512*7*7, classes))``.
Inputs must be at least 32x32 (five halvings); a 32x32 image reaches the adaptive pool at 1x1.

=========  ======================================================
VGG11      [64], [128], [256, 256], [512, 512], [512, 512]
VGG13      [64, 64], [128, 128], [256, 256], [512, 512], [512, 512]
=========  ======================================================
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import UsageError
from .base import SpikingModel
from .layers import TimeDropout, TimeSequential, apply_merged, init_weights

__all__ = ["VGG_CFGS", "SpikingVGG"]

#: Channels of the convolutions in each of the five stages.
VGG_CFGS = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


class SpikingVGG(SpikingModel):
    """Spiking VGG-BN of stage configuration ``cfg`` (one of :data:`VGG_CFGS`' values).

    ``dropout`` (default 0) is the probability of the time-shared dropout after every neuron layer.
    """

    arch = "spiking_vgg"

    def __init__(
        self,
        *,
        cfg: Sequence[Sequence[int]],
        arch: str = "spiking_vgg",
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
        self.arch = arch
        prev = self.in_channels
        for i, stage in enumerate(cfg, start=1):
            mods = []
            for width in stage:
                mods += [
                    nn.Conv2d(prev, width, 3, 1, 1, bias=True),
                    nn.BatchNorm2d(width),
                    self.make_neuron(),
                    TimeDropout(dropout),
                ]
                prev = width
            mods.append(nn.AvgPool2d(2))
            setattr(self, f"layer{i}", TimeSequential(*mods))
        self.num_stages = len(cfg)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = TimeSequential(nn.Flatten(), nn.Linear(prev * 7 * 7, self.num_classes))
        init_weights(self)

    def check_input_shape(self, shape: Tuple[int, ...]) -> None:
        super().check_input_shape(shape)
        least = 2 ** self.num_stages
        if min(shape[2:]) < least:
            raise UsageError(
                f"{self.arch} halves the image {self.num_stages} times, so it needs inputs of at least "
                f"{least}x{least}; got {shape[2]}x{shape[3]}."
            )

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, C, H, W]`` -> logits ``[T, N, classes]``."""
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        x = apply_merged(self.avgpool, x)
        return self.classifier(x)
