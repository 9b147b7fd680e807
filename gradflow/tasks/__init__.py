"""Built-in tasks, generated on the fly from a seed (no download).

=========  =====================================================  ==========================
name       what                                                   input
=========  =====================================================  ==========================
delay      delayed cue recall; difficulty = the delay ``D``        ``[T, N, F]``, T = cue+D+readout
shapes     drawn shapes (disk, square, ...), static over ``T``     ``[N, C, H, W]``
=========  =====================================================  ==========================

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

from typing import Any, Dict

from ..errors import UsageError
from .base import Task
from .delay import DelayedCue
from .shapes import SHAPE_NAMES, Shapes

__all__ = ["Task", "DelayedCue", "Shapes", "SHAPE_NAMES", "TASKS", "make_task", "parse_task"]

#: Task classes by name.
TASKS = {"delay": DelayedCue, "shapes": Shapes}


def make_task(name: str, **opts: Any) -> Task:
    """The task called ``name`` with options ``opts`` (see each class for its options)."""
    key = str(name).lower()
    if key not in TASKS:
        raise UsageError(f"Unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    cls = TASKS[key]
    try:
        return cls(**opts)
    except TypeError:
        import inspect

        known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
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
