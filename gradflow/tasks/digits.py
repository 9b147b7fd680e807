"""Real handwritten digits that ship with scikit-learn: a static image task fed over ``T`` steps.

The data are scikit-learn's bundled copy of the UCI optical digits test set
(:func:`sklearn.datasets.load_digits`): 1797 real 8x8 grey-level images of the digits 0-9 (174-183 per
class), pixel values 0..16. Nothing is downloaded; scikit-learn is an optional dependency
(``pip install scikit-learn``, or ``pip install "snn-gradflow[dev]"``).

Preprocessing, fixed for a given ``split_seed``:

* a stratified train/test split (:func:`sklearn.model_selection.train_test_split`, ``test_size``
  images for test, default 400, the rest for training; the same split for every training ``seed``);
* pixels scaled to ``[0, 1]`` (divided by 16) and, with ``normalize=True`` (default), standardised
  ``(x - mean) / std`` with the mean and standard deviation of all training-split pixels;
* optionally upsampled to ``size x size`` (bilinear, ``align_corners=False``) for conv nets that need
  larger inputs (``snn5_noAP`` and the CIFAR ResNets need 32), and repeated to ``channels`` channels.

Like :class:`~gradflow.tasks.shapes.Shapes` the image is static: :meth:`sample` returns
``[N, channels, size, size]`` and the model repeats it at each of the ``T`` steps (direct encoding, as
the CLIF paper feeds its images). Every step is scored (``readout=None``); chance is 10%.

``sample(n, seed, split)`` returns ``n`` distinct images of the split in an order fixed by ``seed``
(a permutation drawn from ``torch.Generator().manual_seed(2 * seed + (split == "test"))``); asking for
more images than the split holds is a :class:`~gradflow.errors.UsageError`.

>>> task = Digits(T=4)                                                  # doctest: +SKIP
>>> x, y = task.sample(5, seed=0)                                       # doctest: +SKIP
>>> tuple(x.shape), task.split_size("train"), task.split_size("test")   # doctest: +SKIP
((5, 1, 8, 8), 1397, 400)
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from .base import SPLITS, Task, check_int

__all__ = ["Digits", "load_digits_arrays", "DIGITS_TOTAL"]

#: Number of images in scikit-learn's digits data set.
DIGITS_TOTAL = 1797

_INSTALL = ('The digits task needs scikit-learn, which is not installed: pip install scikit-learn '
            '(or pip install "snn-gradflow[dev]").')


@functools.lru_cache(maxsize=1)
def load_digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(images float64 [1797, 8, 8] in 0..16, labels int64 [1797])``.

    Read once per process from the copy bundled with scikit-learn (no download); raises
    :class:`UsageError` with the install command when scikit-learn is missing.
    """
    try:
        from sklearn.datasets import load_digits   # optional dependency, imported only when needed
    except ImportError:
        raise UsageError(_INSTALL) from None
    data = load_digits()
    return np.asarray(data.images, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


def _split_indices(labels: np.ndarray, test_size: int, split_seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train indices, test indices)``, each sorted, from scikit-learn's splitter."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise UsageError(_INSTALL) from None
    idx = np.arange(labels.shape[0])
    train, test = train_test_split(idx, test_size=test_size, random_state=split_seed, stratify=labels)
    return np.sort(train), np.sort(test)


class Digits(Task):
    """scikit-learn's handwritten digits (module docstring). Options: ``T`` (steps the image is shown,
    default 6), ``size`` (image side after bilinear upsampling, 8..64, default 8 = no upsampling),
    ``channels`` (1 or 3: the grey image repeated), ``test_size`` (images in the test split, 10..1000,
    default 400), ``split_seed`` (the split's seed, default 0), ``normalize`` (standardise with the
    training split's pixel mean and std, default 1 = yes)."""

    name = "digits"
    num_classes = 10
    time_major = False
    readout = None

    def __init__(self, T: int = 6, size: int = 8, channels: int = 1, test_size: int = 400,
                 split_seed: int = 0, normalize: int = 1):
        self.T = check_int("T", T, 1, 10_000)
        self.size = check_int("size", size, 8, 64)
        self.channels = check_int("channels", channels, 1, 3)
        if self.channels == 2:
            raise UsageError("Task option channels must be 1 or 3, got 2.")
        self.test_size = check_int("test_size", test_size, 10, 1000)
        self.split_seed = check_int("split_seed", split_seed, 0)
        self.normalize = bool(check_int("normalize", normalize, 0, 1))
        self.input_shape = (self.channels, self.size, self.size)
        self._data: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    def _options(self) -> Dict[str, Any]:
        return {"T": self.T, "size": self.size, "channels": self.channels, "test_size": self.test_size,
                "split_seed": self.split_seed, "normalize": int(self.normalize)}

    # -- the fixed split
    def _prepare(self) -> None:
        images, labels = load_digits_arrays()
        train_idx, test_idx = _split_indices(labels, self.test_size, self.split_seed)
        x = images / 16.0
        if self.normalize:
            mean, std = float(x[train_idx].mean()), float(x[train_idx].std())
            x = (x - mean) / std
        xt = torch.from_numpy(x).float().unsqueeze(1)                          # [1797, 1, 8, 8]
        if self.size != 8:
            xt = F.interpolate(xt, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.channels > 1:
            xt = xt.expand(-1, self.channels, -1, -1).contiguous()
        yt = torch.from_numpy(labels)
        for split, idx in (("train", train_idx), ("test", test_idx)):
            ii = torch.from_numpy(idx)
            self._data[split] = (xt[ii].contiguous(), yt[ii].contiguous())

    def arrays(self, split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
        """The whole ``split`` in its fixed order: ``x`` float32 ``[n, channels, size, size]``, ``y`` int64."""
        if split not in SPLITS:
            raise UsageError(f"split must be 'train' or 'test', got {split!r}.")
        if not self._data:
            self._prepare()
        return self._data[split]

    def split_size(self, split: str) -> int:
        """Number of images in ``split`` (``test_size`` for test, ``1797 - test_size`` for train)."""
        return int(self.arrays(split)[1].shape[0])

    def sample(self, n: int, seed: int = 0, split: str = "train"):
        """``n`` distinct images of ``split`` in an order fixed by ``seed`` (module docstring)."""
        n = check_int("n", n, 1)
        x, y = self.arrays(split)
        if n > y.shape[0]:
            raise UsageError(f"The digits {split} split has {y.shape[0]} images; asked for {n}.")
        gen = torch.Generator().manual_seed(2 * int(seed) + SPLITS[split])
        idx = torch.randperm(y.shape[0], generator=gen)[:n]
        return x[idx], y[idx]
