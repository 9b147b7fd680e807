"""The common interface of gradflow's built-in tasks.

A task is a recipe for labelled data, drawn on the fly from a seed: nothing is downloaded or cached.
Every task says how its network output is scored, because a temporal task does not read its answer
at every step:

* ``readout`` is the number of final time steps that are scored (``None``: all ``T`` steps);
* :meth:`Task.scored` keeps those steps of the per-step logits ``O[t]`` (``[T, N, classes]``);
* the loss is the chosen base loss (:func:`gradflow.losses.ce_over_time` or ``tet``) of the scored
  steps, i.e. ``(1/R) sum over the R scored steps of CE(O[t], y)``;
* the prediction is ``argmax_c`` of the mean of the scored logits over time, and accuracy is the share
  of correct predictions.

Seeds: ``sample(n, seed, split)`` draws from a generator seeded with ``2 * seed`` (train split) or
``2 * seed + 1`` (test split), so the two splits of one seed never share a draw and the same call
always returns the same tensors.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch

from ..errors import UsageError
from ..losses import get_loss

__all__ = ["Task", "check_int", "check_float"]

SPLITS = {"train": 0, "test": 1}


def check_int(name: str, value: Any, lo: int, hi: Optional[int] = None) -> int:
    """``value`` as an int in ``[lo, hi]``, or a :class:`UsageError` naming the option."""
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"Task option {name} must be an integer, got {value!r}.") from None
    if isinstance(value, float) and value != i:
        raise UsageError(f"Task option {name} must be an integer, got {value!r}.")
    if i < lo or (hi is not None and i > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise UsageError(f"Task option {name} must be {bound}, got {value!r}.")
    return i


def check_float(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float in ``[lo, hi]``, or a :class:`UsageError` naming the option."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"Task option {name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or f < lo or f > hi:
        raise UsageError(f"Task option {name} must be between {lo:g} and {hi:g}, got {value!r}.")
    return f


class Task:
    """Base class: a seeded labelled-data generator with its scoring rule.

    Subclasses set ``name``, ``num_classes``, ``T``, ``input_shape`` (one sample, without T),
    ``time_major`` (True when :meth:`sample` returns ``[T, N, ...]``, False for a static
    ``[N, ...]`` input that the model repeats over T), ``readout`` and implement :meth:`_draw`.
    """

    name: str = "?"
    num_classes: int = 2
    T: int = 1
    input_shape: Tuple[int, ...] = ()
    time_major: bool = False
    readout: Optional[int] = None

    # -- description
    @property
    def chance(self) -> float:
        """Chance accuracy: the classes are balanced in expectation, so ``1 / num_classes``."""
        return 1.0 / self.num_classes

    @property
    def in_features(self) -> int:
        """Number of input values per sample and step (``prod(input_shape)``)."""
        return int(math.prod(self.input_shape))

    @property
    def config(self) -> Dict[str, Any]:
        """Plain-data description; ``make_task(**task.config)`` rebuilds the task."""
        return {"name": self.name, **self._options()}

    def _options(self) -> Dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for people: name, options, shapes and chance accuracy."""
        opts = ", ".join(f"{k}={v}" for k, v in self._options().items())
        layout = "[T, N, " if self.time_major else "static [N, "
        shape = layout + ", ".join(map(str, self.input_shape)) + "]"
        return (f"{self.name}({opts}): input {shape}, T={self.T}, {self.num_classes} classes, "
                f"chance {self.chance:.1%}")

    def __repr__(self) -> str:
        return f"<Task {self.describe()}>"

    # -- data
    def sample(self, n: int, seed: int = 0, split: str = "train") -> Tuple[torch.Tensor, torch.Tensor]:
        """``n`` labelled samples ``(x, y)``: ``x`` float32 ``[T, N, ...]`` (time-major tasks) or
        ``[N, ...]`` (static tasks), ``y`` int64 ``[N]``. Deterministic in ``(n, seed, split)``."""
        n = check_int("n", n, 1)
        if split not in SPLITS:
            raise UsageError(f"split must be 'train' or 'test', got {split!r}.")
        gen = torch.Generator().manual_seed(2 * int(seed) + SPLITS[split])
        return self._draw(n, gen)

    def splits(self, n_train: int, n_test: int, seed: int = 0):
        """``((x_train, y_train), (x_test, y_test))`` drawn from disjoint streams of ``seed``."""
        return self.sample(n_train, seed, "train"), self.sample(n_test, seed, "test")

    def _draw(self, n: int, gen: torch.Generator):
        raise NotImplementedError

    # -- scoring
    def scored(self, logits: torch.Tensor) -> torch.Tensor:
        """The scored steps of per-step logits ``[T, N, C]``: the last ``readout`` ones (or all)."""
        if logits.dim() != 3:
            raise UsageError(f"Expected per-step logits [T, N, classes], got shape {tuple(logits.shape)}.")
        if self.readout is None:
            return logits
        return logits[-self.readout:]

    def loss(self, logits: torch.Tensor, y: torch.Tensor, kind: str = "ce") -> torch.Tensor:
        """Base loss ``kind`` (``ce`` = CE over time, ``tet``) of the scored steps only."""
        return get_loss(kind)(self.scored(logits), y)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class predictions ``[N]``: argmax of the time-mean of the scored logits."""
        return self.scored(logits).mean(0).argmax(-1)

    def accuracy(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        """Share of samples whose :meth:`predict` equals ``y``."""
        return float((self.predict(logits) == y).float().mean())
