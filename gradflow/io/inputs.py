"""Inputs for analysis: files, CIFAR directories, built-in tasks, and labelled random input.

Every source yields ``(x, y)`` batches: ``x`` static ``[N, ...]`` or time-major ``[T, N, ...]``,
``y`` integer labels ``[N]`` or None. :func:`resolve_input` turns the command line's ``--input`` /
``--data`` into an :class:`InputSource` that says what it is (``describe``), so a report always states
which inputs it used.

CIFAR directories are read by :mod:`gradflow.io.cifar`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..tasks import TASKS, make_task, parse_task
from .checkpoints import read_file
from .cifar import load_cifar

__all__ = ["InputSource", "resolve_input", "load_input_file", "check_batch"]


@dataclass
class InputSource:
    """A named source of batches: ``batches(batch_size, n_batches, seed)`` yields ``(x, y)``."""

    kind: str  # file | cifar10 | cifar100 | task | random
    describe: str
    sampler: Callable[[int, int, int], Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]]
    task: object = None

    def batches(self, batch_size: int, n_batches: int, seed: int = 0):
        return self.sampler(batch_size, n_batches, seed)


def load_input_file(path: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Read ``x`` (and optional ``y``) from a ``.pt`` (dict or tensor) or ``.npz`` file, safely."""

    p = Path(path)
    if p.suffix == ".npz":
        if not p.exists():
            raise UsageError(f"No such file: {p}.")
        try:
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise DataError(f"{p} has no array named 'x' (found {', '.join(z.files) or 'none'}).")
                x = torch.from_numpy(np.array(z["x"]))
                y = torch.from_numpy(np.array(z["y"])) if "y" in z.files else None
        except DataError:
            raise
        except Exception:
            raise DataError(f"{p} is not a readable .npz file.") from None
    else:
        obj = read_file(p, what="input")
        if isinstance(obj, torch.Tensor):
            x, y = obj, None
        elif isinstance(obj, dict) and "x" in obj:
            x, y = obj["x"], obj.get("y")
        else:
            raise DataError(f"{p} holds neither a tensor nor a dict with 'x'.")
        if not isinstance(x, torch.Tensor) or (y is not None and not isinstance(y, torch.Tensor)):
            raise DataError(f"{p}: 'x' and 'y' must be tensors.")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)):
        raise DataError(f"{p}: x has dtype {x.dtype}; expected real numbers.")
    x = x.float() if not x.is_floating_point() else x
    if y is not None:
        if y.is_floating_point() or y.is_complex():
            if not torch.equal(y, y.round()):
                raise DataError(f"{p}: labels y must be integers, got dtype {y.dtype}.")
        y = y.long()
    return x, y


def check_batch(x: torch.Tensor, y: Optional[torch.Tensor], model, *, static_rank: int) -> None:
    """Check labels against the model's classes and the batch dimension."""
    n = x.shape[0] if x.dim() == static_rank else x.shape[1]
    if y is None:
        return
    if y.dim() != 1 or y.shape[0] != n:
        raise DataError(f"Labels y have shape {tuple(y.shape)} but the input has {n} samples.")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
        raise DataError(
            f"Labels must lie in 0..{model.num_classes - 1} for this {model.num_classes}-class model; "
            f"found {int(y.min())}..{int(y.max())}."
        )


def _slices(x, y, time_major: bool):
    def sampler(batch_size, n_batches, seed):
        n = x.shape[1] if time_major else x.shape[0]
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g) if n > batch_size else torch.arange(n)
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            if idx.numel() == 0:
                break
            xb = x[:, idx] if time_major else x[idx]
            yield xb, (None if y is None else y[idx])

    return sampler


def resolve_input(
    model,
    *,
    input_file: Optional[str] = None,
    data: Optional[str] = None,
    task_config: Optional[dict] = None,
    trust: bool = False,
) -> InputSource:
    """Pick the input source: ``--input`` file, ``--data cifar10:DIR|cifar100:DIR|task:SPEC|random``,
    the task stored in a gradflow checkpoint, or random input (clearly labelled) as the last resort."""
    static_rank = getattr(model, "static_rank", 4)
    if input_file is not None and data is not None:
        raise UsageError("Give either --input or --data, not both.")
    if input_file is not None:
        x, y = load_input_file(input_file)
        if x.dim() not in (static_rank, static_rank + 1):
            raise DataError(
                f"{input_file}: x has shape {tuple(x.shape)}; this model takes [N, ...] with {static_rank} "
                f"dimensions or [T, N, ...] with {static_rank + 1}."
            )
        time_major = x.dim() == static_rank + 1
        check_batch(x, y, model, static_rank=static_rank)
        n = x.shape[1] if time_major else x.shape[0]
        return InputSource("file", f"file {input_file} ({n} samples{'' if y is not None else ', no labels'})",
                           _slices(x, y, time_major))
    if data is not None:
        kind, _, rest = data.partition(":")
        kind = kind.lower()
        if kind in ("cifar10", "cifar100"):
            if not rest:
                raise UsageError(f"--data {kind} needs a directory: --data {kind}:DIR.")
            x, y = load_cifar(rest, kind, "test", trust=trust)
            check_batch(x, y, model, static_rank=static_rank)
            return InputSource(kind, f"{kind.upper()} test split from {rest}", _slices(x, y, False))
        if kind == "task":

            return _task_source(parse_task(rest), model)
        if kind == "random":
            return _random_source(model)

        if kind in TASKS:

            return _task_source(parse_task(data), model)
        raise UsageError(
            f"Unknown --data {data!r}; use cifar10:DIR, cifar100:DIR, task:NAME[:opts] "
            f"({', '.join(TASKS)}) or random."
        )
    if task_config:

        cfg = dict(task_config)
        return _task_source(make_task(cfg.pop("name"), **cfg), model)
    return _random_source(model)


def _task_source(task, model) -> InputSource:
    def sampler(batch_size, n_batches, seed):
        for b in range(n_batches):
            x, y = task.sample(batch_size, seed=seed + 1000 * b, split="test")
            yield x, y

    return InputSource("task", f"built-in task {task.describe()} (test split)", sampler, task=task)


def _random_source(model) -> InputSource:
    static_rank = getattr(model, "static_rank", 4)
    if static_rank == 2:
        shape = (getattr(model, "in_features", model.in_channels),)
    else:
        shape = (model.in_channels, 32, 32)

    def sampler(batch_size, n_batches, seed):
        g = torch.Generator().manual_seed(seed)
        for _ in range(n_batches):
            x = torch.randn(batch_size, *shape, generator=g)
            y = torch.randint(0, model.num_classes, (batch_size,), generator=g)
            yield x, y

    return InputSource(
        "random", f"RANDOM input N(0, 1) of shape [N, {', '.join(map(str, shape))}] with random labels "
        "(no data given: gradients describe the untrained input statistics, not a real task)", sampler,
    )
