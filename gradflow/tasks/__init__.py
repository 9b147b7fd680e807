"""Built-in tasks, generated on the fly from a seed (no download).

==========  ====================================================  ==========================
name        what                                                  input
==========  ====================================================  ==========================
delay       delayed cue recall; difficulty = the delay ``D``       ``[T, N, F]``, T = cue+D+readout
shapes      drawn shapes (disk, square, ...), static over ``T``    ``[N, C, H, W]``
digits      scikit-learn's handwritten digits (1797 real 8x8       ``[N, 1, S, S]``
            images), static over ``T``
cifar10     CIFAR-10 from a local python-version directory         ``[N, 3, 32, 32]``
cifar100    CIFAR-100 from a local python-version directory        ``[N, 3, 32, 32]``
==========  ====================================================  ==========================

Every task has ``sample(n, seed, split)``, ``splits(n_train, n_test, seed)``, ``T``,
``input_shape``, ``num_classes``, ``chance``, ``time_major``, ``readout`` and the scoring methods
``loss``, ``predict``, ``accuracy`` (:mod:`gradflow.tasks.base`). ``config`` is plain data, and
``make_task(**task.config)`` rebuilds the task; on the command line a task is written
``NAME:key=value,key=value`` (:func:`parse_task`).

>>> task = make_task("delay", delay=8)
>>> task.T, task.chance
(11, 0.25)
>>> parse_task("shapes:num_classes=8,T=6").config["T"]
6
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Dict, Optional

from ..errors import UsageError
from .base import Task
from .cifar import Cifar, make_cifar
from .delay import DelayedCue
from .digits import Digits
from .shapes import SHAPE_NAMES, Shapes

__all__ = ["Task", "DelayedCue", "Shapes", "Digits", "Cifar", "SHAPE_NAMES", "TASKS", "make_task", "parse_task",
           "parse_data"]

#: Task factories by name (the names, in this order, are :data:`gradflow.schema.TASKS`; a test checks).
#: CIFAR needs ``root``, a local directory; digits needs scikit-learn.
TASKS = {
    "delay": DelayedCue,
    "shapes": Shapes,
    "digits": Digits,
    "cifar10": functools.partial(Cifar, which="cifar10"),
    "cifar100": functools.partial(Cifar, which="cifar100"),
}


def make_task(name: str, **opts: Any) -> Task:
    """The task called ``name`` with options ``opts`` (see each class for its options)."""
    key = str(name).lower()
    if key not in TASKS:
        raise UsageError(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    cls = TASKS[key]
    try:
        return cls(**opts)
    except TypeError:
        known = [p for p in inspect.signature(cls).parameters if p not in ("self", "which")]
        bad = sorted(set(opts) - set(known))
        raise UsageError(f"Unknown option(s) {', '.join(bad)} for task {key!r}; "
                         f"it takes {', '.join(known)}.") from None


def _value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_task(spec: str, **overrides: Any) -> Task:
    """A task from ``NAME`` or ``NAME:key=value,...`` (e.g. ``delay:delay=8,num_classes=2``).

    ``D`` is accepted as a short name for ``delay``. Keyword ``overrides`` that are not None win.
    """
    name, _, rest = str(spec).partition(":")
    opts: Dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"Task options are key=value pairs separated by commas, got {item!r} in {spec!r}.")
        key = key.strip()
        opts["delay" if key == "D" else key] = _value(val.strip())
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return make_task(name.strip(), **opts)


def parse_data(spec: str, T: Optional[int] = None) -> Task:
    """A dataset task from ``cifar10:DIR`` or ``cifar100:DIR`` (``T`` steps, default 4)."""
    kind, _, root = str(spec).partition(":")
    if kind.lower() not in ("cifar10", "cifar100"):
        raise UsageError(f"Unknown data {spec!r}; use cifar10:DIR or cifar100:DIR.", arguments=("data",))
    return make_cifar(kind.lower(), root, 4 if T is None else T)
