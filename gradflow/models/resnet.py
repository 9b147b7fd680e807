"""Pre-activation spiking ResNets, ``spiking_resnet18`` and ``spiking_resnet34`` (docs/reference.md,
Architectures).

Stem ``conv1``: 3x3, stride 1, pad 1, no bias, to 64 channels. Four stages ``layer1..layer4`` of
:class:`PreActBlock` (``[2, 2, 2, 2]`` or ``[3, 4, 6, 3]`` blocks; 64, 128, 256, 512 channels; first
strides 1, 2, 2, 2). One block, with ``x`` a ``[T, N, C, H, W]`` current::

    x   = relu1(bn1(x))                          # spikes; the shortcut sees these too
    out = conv1(x)                               # 3x3, stride s, bias
    out = conv2(dropout(relu2(bn2(out))))        # 3x3, stride 1, bias
    out = out + shortcut(x)                      # 1x1 conv (stride s, bias) if shape changes, else x

Head: ``linear(dropout(flatten(avgpool4(relu1(bn1(out))))))``. The neurons are named as in the official
code (``layer1.0.relu1``, ``layer1.0.relu2``, ..., final ``relu1``), so recorder tables line up with it.
A 32x32 image reaches layer4 at 4x4, which the 4x4 average pool reduces to the 512 inputs of ``linear``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron
from .base import SpikingModel, conv_out
from .layers import TimeDropout, TimeSequential, apply_merged, batch_norm_over_time, init_weights

__all__ = ["PreActBlock", "SpikingResNet"]

STAGE_CHANNELS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)


class PreActBlock(nn.Module):
    """Pre-activation basic block over ``[T, N, C, H, W]`` (see the module docstring).

    Modules are registered in forward order (``bn1, relu1, conv1, bn2, relu2, dropout, conv2,
    shortcut``), which is also the official state_dict order.
    """

    time_major = True

    def __init__(self, in_planes: int, planes: int, stride: int, make_neuron: Callable[[], SpikingNeuron],
                 dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = make_neuron()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = make_neuron()
        self.dropout = TimeDropout(dropout)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=True)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = nn.Conv2d(in_planes, planes, 1, stride, 0, bias=True)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(batch_norm_over_time(self.bn1, x))
        out = apply_merged(self.conv1, x)
        out = self.dropout(self.relu2(batch_norm_over_time(self.bn2, out)))
        out = apply_merged(self.conv2, out)
        return out + apply_merged(self.shortcut, x)


class SpikingResNet(SpikingModel):
    """Pre-activation spiking ResNet for 32x32 images; ``blocks`` per stage, e.g. ``(2, 2, 2, 2)``.

    ``dropout`` (default 0) is the time-shared dropout inside each block and before ``linear``.
    """

    arch = "spiking_resnet"

    def __init__(
        self,
        *,
        blocks: Sequence[int],
        arch: str = "spiking_resnet",
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
        self.conv1 = nn.Conv2d(self.in_channels, 64, 3, 1, 1, bias=False)
        in_planes = 64
        for i, (n, planes, stride) in enumerate(zip(blocks, STAGE_CHANNELS, STAGE_STRIDES), start=1):
            stage = []
            for j in range(n):
                stage.append(PreActBlock(in_planes, planes, stride if j == 0 else 1, self.make_neuron, dropout))
                in_planes = planes
            setattr(self, f"layer{i}", TimeSequential(*stage))
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = self.make_neuron()
        self.dropout = TimeDropout(dropout)
        self.linear = nn.Linear(in_planes, self.num_classes)
        init_weights(self)

    def check_input_shape(self, shape: Tuple[int, ...]) -> None:
        super().check_input_shape(shape)
        sizes = []
        for h in shape[2:]:
            for stride in STAGE_STRIDES[1:]:
                h = conv_out(h, 3, stride, 1)
            sizes.append(h // 4)
        if sizes != [1, 1]:
            raise UsageError(
                f"{self.arch} pools a 4x4 map into its 512-input linear layer, so it needs 32x32 images; "
                f"got {shape[2]}x{shape[3]}."
            )

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, C, 32, 32]`` -> logits ``[T, N, classes]``."""
        out = apply_merged(self.conv1, x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.relu1(batch_norm_over_time(self.bn1, out))
        out = apply_merged(lambda z: F.avg_pool2d(z, 4).flatten(1), out)
        return apply_merged(self.linear, self.dropout(out))
