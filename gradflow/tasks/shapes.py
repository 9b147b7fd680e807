"""Procedurally drawn shapes: a static image classification task fed over ``T`` steps.

Each sample is a ``[channels, size, size]`` image of one filled shape on a dark background plus
Gaussian pixel noise. The class is the shape, in this order (the first ``num_classes`` are used)::

    0 disk   1 square   2 triangle   3 cross   4 ring   5 diamond   6 horizontal bar   7 vertical bar

Each drawing varies: centre uniform in the middle 40% of the image, radius ``r`` uniform in
``[0.2, 0.35] * size``, brightness uniform in ``[0.6, 1.0]`` per channel, then noise of standard
deviation ``noise``. The image is static: :meth:`sample` returns ``[N, C, H, W]`` and the model
repeats it at each of the ``T`` steps, as the CLIF paper feeds CIFAR (direct encoding).

Every step is scored (``readout=None``): CE over time and the argmax of the time-mean logits.
Chance accuracy is ``1 / num_classes``.

>>> task = Shapes(num_classes=4, size=12, T=3)
>>> x, y = task.sample(6, seed=1)
>>> tuple(x.shape), task.input_shape, task.chance
((6, 1, 12, 12), (1, 12, 12), 0.25)
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from .base import Task, check_float, check_int

__all__ = ["Shapes", "SHAPE_NAMES"]

#: Class names in label order.
SHAPE_NAMES = ("disk", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar")


def _mask(k: int, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Inside-mask of shape ``k`` on coordinates normalised by the radius (y points down)."""
    ax, ay = dx.abs(), dy.abs()
    if k == 0:                                                       # disk
        return dx * dx + dy * dy <= 1.0
    if k == 1:                                                       # square
        return torch.maximum(ax, ay) <= 0.8
    if k == 2:                                                       # triangle, apex up
        return (dy <= 0.8) & (ax <= (dy + 1.0) * 0.5) & (dy >= -1.0)
    if k == 3:                                                       # cross
        return ((ax <= 0.25) & (ay <= 1.0)) | ((ay <= 0.25) & (ax <= 1.0))
    if k == 4:                                                       # ring
        rr = dx * dx + dy * dy
        return (rr <= 1.0) & (rr >= 0.4)
    if k == 5:                                                       # diamond
        return ax + ay <= 1.0
    if k == 6:                                                       # horizontal bar
        return (ay <= 0.3) & (ax <= 1.0)
    return (ax <= 0.3) & (ay <= 1.0)                                 # vertical bar


class Shapes(Task):
    """Static shape images. Options: ``num_classes`` (2..8, default 4), ``size`` (image side, 8..128,
    default 16), ``channels`` (default 1), ``noise`` (pixel noise std, default 0.3), ``T`` (steps the
    image is shown, default 4)."""

    name = "shapes"
    time_major = False
    readout = None

    def __init__(self, num_classes: int = 4, size: int = 16, channels: int = 1, noise: float = 0.3,
                 T: int = 4):
        self.num_classes = check_int("num_classes", num_classes, 2, len(SHAPE_NAMES))
        self.size = check_int("size", size, 8, 128)
        self.channels = check_int("channels", channels, 1, 16)
        self.noise = check_float("noise", noise, 0.0, 10.0)
        self.T = check_int("T", T, 1, 10_000)
        self.input_shape = (self.channels, self.size, self.size)

    def _options(self) -> Dict[str, Any]:
        return {"num_classes": self.num_classes, "size": self.size, "channels": self.channels,
                "noise": self.noise, "T": self.T}

    def _draw(self, n: int, gen: torch.Generator):
        S, C = self.size, self.channels
        y = torch.randint(0, self.num_classes, (n,), generator=gen)
        centre = (0.3 + 0.4 * torch.rand(n, 2, generator=gen)) * S          # [N, (cx, cy)] pixels
        radius = (0.2 + 0.15 * torch.rand(n, generator=gen)) * S
        gain = 0.6 + 0.4 * torch.rand(n, C, generator=gen)
        grid = torch.arange(S, dtype=torch.float32) + 0.5
        dx = (grid.view(1, 1, S) - centre[:, 0].view(n, 1, 1)) / radius.view(n, 1, 1)   # [N, 1, W]
        dy = (grid.view(1, S, 1) - centre[:, 1].view(n, 1, 1)) / radius.view(n, 1, 1)   # [N, H, 1]
        dx, dy = torch.broadcast_tensors(dx, dy)
        mask = torch.zeros(n, S, S)
        for k in range(self.num_classes):
            idx = (y == k).nonzero().flatten()
            mask[idx] = _mask(k, dx[idx], dy[idx]).float()                  # [N_k, H, W]
        x = mask.unsqueeze(1) * gain.view(n, C, 1, 1)
        x = x + self.noise * torch.randn(n, C, S, S, generator=gen)
        return x, y
