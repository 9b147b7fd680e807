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
from typing import Callable, Iterator, Mapping, Optional, Tuple

import numpy as np
import torch

from ..errors import DataError, GradflowError, UsageError
from ..tasks import TASKS, make_task, parse_task
from .files import check_readable, describe, one_line, read_file
from .cifar import load_cifar

__all__ = ["InputSource", "resolve_input", "load_input_file", "check_batch"]


@dataclass
class InputSource:
    """A named source of batches: ``batches(batch_size, n_batches, seed)`` yields ``(x, y)``.

    ``time_major``: whether ``x`` batches are ``[T, N, ...]`` (True) or ``[N, ...]`` (False); None where
    batches of a gradflow model may be either (its rank says which).
    """

    kind: str  # file | cifar10 | cifar100 | task | random
    describe: str
    sampler: Callable[[int, int, int], Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]]
    task: object = None
    time_major: Optional[bool] = None

    def batches(self, batch_size: int, n_batches: int, seed: int = 0):
        """Up to ``n_batches`` batches ``(x, y)`` of ``batch_size`` samples; ``seed`` fixes which samples
        (a file or CIFAR is shuffled once per seed and cut into consecutive batches, without repeats)."""
        return self.sampler(batch_size, n_batches, seed)


_REAL = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
_INT = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _tensor(value, name: str, p: Path) -> torch.Tensor:
    """``value`` (a tensor or numpy array read from ``p``) as a dense CPU tensor, or a DataError."""
    if isinstance(value, np.ndarray):
        try:
            value = torch.from_numpy(np.ascontiguousarray(value))
        except (TypeError, ValueError):
            raise DataError(f"{p}: {name} is a numpy array of type {value.dtype}, not numbers.") from None
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{p}: {name} must be a tensor or an array, got {type(value).__name__}.")
    if value.layout != torch.strided or value.is_quantized:
        raise DataError(f"{p}: {name} is a {str(value.layout).replace('torch.', '')} tensor; save a dense one.")
    return value


def _read_npz(p: Path):
    check_readable(p, "input")
    try:
        with np.load(p, allow_pickle=False) as z:
            files = list(z.files)
            if "x" not in files:
                raise DataError(f"{p} has no array named 'x' (found {', '.join(files) or 'none'}).")
            return {"x": np.array(z["x"]), "y": np.array(z["y"]) if "y" in files else None}
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - numpy's zip and header parsers raise many types on bad bytes
        raise DataError(f"{p} is not a readable .npz file.") from None


def load_input_file(path: str) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Read ``x`` (and optional labels ``y``) from a ``.pt`` (a tensor, or a dict with ``"x"``) or an
    ``.npz`` file, safely (no code runs); ``x`` comes back as a float tensor, ``y`` as int64 ``[N]``.

    Raises :class:`UsageError` for a missing path and :class:`DataError`, one sentence, for any file
    that is not such an input: unreadable bytes, other contents, ``x`` empty, not real-valued or
    holding NaN/inf, labels that are not whole numbers.
    """
    p = Path(path)
    obj = _read_npz(p) if p.suffix == ".npz" else read_file(p, what="input")
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        x, y = obj, None
    elif isinstance(obj, Mapping) and "x" in obj:
        x, y = obj["x"], obj.get("y")
    else:
        raise DataError(f"{p} holds neither a tensor nor a dict with 'x'.")
    x = _tensor(x, "x", p)
    if not (x.is_floating_point() or x.dtype in _REAL):
        raise DataError(f"{p}: x has dtype {x.dtype}; expected real numbers.")
    if x.dim() == 0 or x.numel() == 0:
        raise DataError(f"{p}: x has shape {tuple(x.shape)}, which holds no samples.")
    x = x if x.is_floating_point() else x.float()
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{p}: x contains NaN or infinite values.")
    if y is not None:
        y = _labels(_tensor(y, "y", p), p)
    return x, y


def _labels(y: torch.Tensor, p: Path) -> torch.Tensor:
    """Labels as int64, or a DataError when they are not whole numbers."""
    if y.dtype in _INT:
        return y.long()
    if y.is_floating_point() and bool(torch.isfinite(y).all()) and torch.equal(y, y.round()):
        if y.numel() == 0 or float(y.abs().max()) < 2 ** 53:
            return y.long()
    raise DataError(f"{p}: labels y must be whole numbers, got dtype {y.dtype}.")


def check_batch(x: torch.Tensor, y: Optional[torch.Tensor], model, *, static_rank: int) -> None:
    """Check labels against the model's classes (``model.num_classes`` when it has one) and the
    number of samples (``x`` is ``[N, ...]`` with ``static_rank`` dimensions or ``[T, N, ...]``)."""
    n = x.shape[0] if x.dim() == static_rank else x.shape[1]
    if y is None:
        return
    if y.dim() != 1 or y.shape[0] != n:
        raise DataError(f"Labels y have shape {tuple(y.shape)} but the input has {n} samples.")
    classes = getattr(model, "num_classes", None)
    if y.numel() and classes is not None and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise DataError(
            f"Labels must lie in 0..{classes - 1} for this {classes}-class model; "
            f"found {int(y.min())}..{int(y.max())}."
        )


def _check_fits_model(x: torch.Tensor, model, static_rank: int, name: str) -> bool:
    """Check ``x`` against a gradflow model's step count and input shape; True when time-major."""
    if x.dim() not in (static_rank, static_rank + 1):
        raise DataError(
            f"{name}: x has shape {tuple(x.shape)}; this model takes [N, ...] with {static_rank} "
            f"dimensions or [T, N, ...] with {static_rank + 1}."
        )
    time_major = x.dim() == static_rank + 1
    n = x.shape[1] if time_major else x.shape[0]
    if n == 0:
        raise DataError(f"{name}: x has shape {tuple(x.shape)}, which holds no samples.")
    T = getattr(model, "T", None)
    if time_major and T is not None and x.shape[0] != T:
        raise DataError(f"{name}: x has {x.shape[0]} time steps but the model was built with T={T}.")
    check = getattr(model, "check_input_shape", None)
    if check is not None:
        try:
            check(tuple(x.shape[1:]) if time_major else tuple(x.shape))
        except UsageError as err:
            raise DataError(f"{name}: {err}") from None
    return time_major


def _slices(x, y, time_major: bool):
    """A sampler over the samples of ``x`` (dimension 1 if ``time_major`` else 0) and labels ``y``:
    one seeded permutation, consecutive batches, stopping when the samples run out."""

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


def _user_layout(x: torch.Tensor, y: Optional[torch.Tensor], time_major: Optional[bool], name: str) -> bool:
    """Whether ``x`` (for a model built from the user's code) is time-major: as given, else read from
    which dimension matches the number of labels, else ``[N, ...]``."""
    if time_major and x.dim() < 2:
        raise DataError(f"{name}: x has shape {tuple(x.shape)}, too few dimensions for [T, N, ...].")
    if y is not None:
        if y.dim() != 1:
            raise DataError(f"Labels y have shape {tuple(y.shape)}; expected one label per sample.")
        n = y.shape[0]
        first, second = x.shape[0] == n, x.dim() > 1 and x.shape[1] == n
        if time_major is None and second and not first:
            time_major = True
        if (x.shape[1] if time_major else x.shape[0]) != n:
            raise DataError(f"{name}: there are {n} labels but x has shape {tuple(x.shape)} "
                            f"(samples along dimension {1 if time_major else 0}).")
    return bool(time_major)


def resolve_input(
    model,
    *,
    input_file: Optional[str] = None,
    data: Optional[str] = None,
    task_config: Optional[dict] = None,
    trust: bool = False,
    time_major: Optional[bool] = None,
) -> InputSource:
    """Pick the input source: ``--input`` file, ``--data cifar10:DIR|cifar100:DIR|task:SPEC|random``,
    the task stored in a gradflow checkpoint, or random input (clearly labelled) as the last resort.

    For a gradflow model the input's rank says whether it is time-major, and its shape is checked
    against the model. For any other model (one built from the user's code) nothing about the shape is
    known: ``time_major`` says whether a file's ``x`` is ``[T, N, ...]``; None reads it from the labels
    (the dimension whose size is their number) and otherwise takes ``[N, ...]``. Random input needs a
    gradflow model.
    """
    if input_file is not None and data is not None:
        raise UsageError("Give either --input or --data, not both.")
    if not hasattr(model, "static_rank"):
        return _user_input(model, input_file, data, trust, time_major)
    static_rank = model.static_rank
    if input_file is not None:
        x, y = load_input_file(input_file)
        time_major = _check_fits_model(x, model, static_rank, input_file)
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
        task = _saved_task(task_config)
        x, _ = task.sample(1, seed=0, split="test")
        try:
            _check_fits_model(x, model, static_rank, "The checkpoint's saved task")
        except DataError as err:
            raise DataError(f"{str(err).rstrip('.')}; pass --input or --data.") from None
        return _task_source(task, model)
    return _random_source(model)


def _saved_task(task_config) -> object:
    """The built-in task a checkpoint says it was trained on; a DataError if it names none."""
    if not isinstance(task_config, Mapping) or not isinstance(task_config.get("name"), str):
        raise DataError("The checkpoint's saved task is not a task description; pass --input or --data.")
    cfg = {k: v for k, v in task_config.items() if isinstance(k, str)}
    name = cfg.pop("name")
    try:
        return make_task(name, **cfg)
    except Exception as err:  # noqa: BLE001 - values read from a file
        detail = str(err).rstrip(".") if isinstance(err, GradflowError) else type(err).__name__
        raise DataError(one_line(f"The checkpoint's saved task {describe(name)} cannot be rebuilt ({detail}); "
                                 "pass --input or --data.")) from None


def _user_input(model, input_file, data, trust, time_major) -> InputSource:
    """The input source for a model built from the user's code (no shape checks beyond the labels)."""
    if input_file is not None:
        x, y = load_input_file(input_file)
        tm = _user_layout(x, y, time_major, input_file)
        n = x.shape[1] if tm else x.shape[0]
        layout = "[T, N, ...]" if tm else "[N, ...]"
        return InputSource("file", f"file {input_file} ({n} samples as {layout}{'' if y is not None else ', no labels'})",
                           _slices(x, y, tm), time_major=tm)
    kind = (data or "").partition(":")[0].lower()
    if kind in ("cifar10", "cifar100"):
        dirname = data.partition(":")[2]
        if not dirname:
            raise UsageError(f"--data {kind} needs a directory: --data {kind}:DIR.")
        x, y = load_cifar(dirname, kind, "test", trust=trust)
        return InputSource(kind, f"{kind.upper()} test split from {dirname}", _slices(x, y, False), time_major=False)
    if kind == "task" or kind in TASKS:
        src = _task_source(parse_task(data.partition(":")[2] if kind == "task" else data), model)
        src.time_major = True
        return src
    raise UsageError("A model built from your own code needs an input: give input_file (--input) or data "
                     "(--data cifar10:DIR, cifar100:DIR or task:NAME).")


def _task_source(task, model) -> InputSource:
    """Test-split batches of a built-in task; batch ``b`` uses the seed ``seed + 1000 b``."""

    def sampler(batch_size, n_batches, seed):
        for b in range(n_batches):
            x, y = task.sample(batch_size, seed=seed + 1000 * b, split="test")
            yield x, y

    return InputSource("task", f"built-in task {task.describe()} (test split)", sampler, task=task)


def _random_source(model) -> InputSource:
    """Standard-normal static inputs of the model's input shape (32x32 images for conv nets) with uniform
    random labels; clearly labelled as random in ``describe``, the last resort when no data is given."""
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
