"""CIFAR-10/100 as a task, read from the standard python-version directories (no download).

The images come from :func:`gradflow.io.cifar.load_cifar` (arrays only, safe unpickling; scaled to [0, 1]
and normalised with the official CLIF code's constants) and are fed static over ``T`` steps, every
step scored, like :class:`~gradflow.tasks.shapes.Shapes`. No augmentation.

``sample(n, seed, split)`` draws ``n`` distinct images of the split (``train``: the five data batches,
``test``: the test batch) in an order fixed by ``seed``; ``n`` larger than the split is an error.
Chance accuracy is ``1 / num_classes`` (the standard splits are balanced).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch

from ..errors import UsageError
from ..io.cifar import load_cifar
from .base import Task, check_int

__all__ = ["Cifar"]


class Cifar(Task):
    """CIFAR-10 (``which="cifar10"``) or CIFAR-100 from ``root``; options ``T`` (default 4)."""

    time_major = False
    readout = None

    def __init__(self, root: str, which: str = "cifar10", T: int = 4):
        if which not in ("cifar10", "cifar100"):
            raise UsageError(f"which must be cifar10 or cifar100, got {which!r}.")
        self.root = str(root)
        self.which = which
        self.name = which
        self.num_classes = 10 if which == "cifar10" else 100
        self.T = check_int("T", T, 1, 10_000)
        self.input_shape = (3, 32, 32)
        self._cache: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    def _options(self) -> Dict[str, Any]:
        return {"root": self.root, "T": self.T}

    @property
    def config(self) -> Dict[str, Any]:
        return {"name": self.which, "root": self.root, "T": self.T}

    def split_size(self, split: str) -> int:
        """Number of images in ``split`` (reads the files once)."""
        return int(self._load(split)[1].shape[0])

    def _load(self, split: str):
        if split not in self._cache:
            self._cache[split] = load_cifar(self.root, self.which, split)
        return self._cache[split]

    def sample(self, n: int, seed: int = 0, split: str = "train"):
        n = check_int("n", n, 1)
        if split not in ("train", "test"):
            raise UsageError(f"split must be 'train' or 'test', got {split!r}.")
        x, y = self._load(split)
        if n > y.shape[0]:
            raise UsageError(f"The {self.which} {split} split has {y.shape[0]} images; asked for {n}.")
        gen = torch.Generator().manual_seed(2 * int(seed) + (split == "test"))
        idx = torch.randperm(y.shape[0], generator=gen)[:n]
        return x[idx], y[idx]


def make_cifar(which: str, root: Optional[str] = None, T: int = 4) -> Cifar:
    """``Cifar(root, which, T)``, with a clear error when ``root`` is missing."""
    if not root:
        raise UsageError(f"{which} needs its directory: give data as {which}:DIR.", arguments=("data",))
    return Cifar(root, which, T)
