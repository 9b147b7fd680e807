"""Inputs for analysis: files, CIFAR directories, built-in tasks, and labelled random input.

Every source yields ``(x, y)`` batches: ``x`` static ``[N, ...]`` or time-major ``[T, N, ...]``,
``y`` integer labels ``[N]`` or None. :func:`resolve_input` turns the command line's ``--input`` /
``--data`` into an :class:`InputSource` that says what it is (``describe``), so a report always states
which inputs it used.

CIFAR is read from the standard *python version* directories (``cifar-10-batches-py`` with
``test_batch``, ``cifar-100-python`` with ``test``) with a restricted unpickler that accepts only
numpy arrays, so a tampered file cannot run code. Images are scaled to [0, 1] and normalised with the
official CLIF code's constants: CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010);
CIFAR-100 mean (0.5071, 0.4867, 0.4408), std (0.2675, 0.2565, 0.2761).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch

from .errors import DataError, UsageError

__all__ = ["InputSource", "resolve_input", "load_input_file", "load_cifar", "CIFAR_STATS", "check_batch"]

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


@dataclass
class InputSource:
    """A named source of batches: ``batches(batch_size, n_batches, seed)`` yields ``(x, y)``."""

    kind: str  # file | cifar10 | cifar100 | task | random
    describe: str
    sampler: Callable[[int, int, int], Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]]
    task: object = None

    def batches(self, batch_size: int, n_batches: int, seed: int = 0):
        return self.sampler(batch_size, n_batches, seed)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, numbers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _read_cifar_batch(path: Path, trust: bool = False) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read {path}: {err.strerror}.") from None
    try:
        if trust:
            return pickle.loads(raw, encoding="bytes")
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        if "refused global" in str(err):
            raise DataError(
                f"{path} contains Python objects other than arrays (it could run code when unpickled); "
                "if you trust its source, pass --trust-checkpoint."
            ) from None
        raise DataError(f"{path} is not a CIFAR python-version batch file.") from None
    except Exception:
        raise DataError(f"{path} is not a CIFAR python-version batch file.") from None


def load_cifar(spec_dir: str, which: str = "cifar10", split: str = "test", trust: bool = False):
    """Read a CIFAR python-version split: normalised ``x [N, 3, 32, 32]`` float32, labels ``y [N]`` int64."""
    root = Path(spec_dir)
    if not root.exists():
        raise UsageError(f"No such directory: {root}.")
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory (give the CIFAR python-version folder).")
    sub = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[which]
    base = root / sub if (root / sub).is_dir() else root
    if which == "cifar10":
        files = [base / "test_batch"] if split == "test" else [base / f"data_batch_{i}" for i in range(1, 6)]
        label_key = b"labels"
    else:
        files = [base / split]
        label_key = b"fine_labels"
    present = [f for f in files if f.is_file()]
    if not present:
        raise DataError(f"{base} holds no CIFAR {which} {split} batch ({files[0].name} not found).")
    xs, ys = [], []
    for f in present:
        d = _read_cifar_batch(f, trust=trust)
        if not isinstance(d, dict) or b"data" not in d or label_key not in d:
            raise DataError(f"{f} is not a CIFAR {which} batch (no data/labels entries).")
        data = np.asarray(d[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{f} has data of shape {data.shape} and type {data.dtype}, not N x 3072 uint8.")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).float().div_(255.0)
    mean, std = CIFAR_STATS[which]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x, torch.from_numpy(np.concatenate(ys))


def load_input_file(path: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Read ``x`` (and optional ``y``) from a ``.pt`` (dict or tensor) or ``.npz`` file, safely."""
    from .checkpoints import read_file

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
            from .tasks import parse_task

            return _task_source(parse_task(rest), model)
        if kind == "random":
            return _random_source(model)
        from .tasks import TASKS

        if kind in TASKS:
            from .tasks import parse_task

            return _task_source(parse_task(data), model)
        raise UsageError(
            f"Unknown --data {data!r}; use cifar10:DIR, cifar100:DIR, task:NAME[:opts] "
            f"({', '.join(TASKS)}) or random."
        )
    if task_config:
        from .tasks import make_task

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
