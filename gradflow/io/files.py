"""Reading a user's file safely: one :class:`~gradflow.errors.DataError` sentence for any bad bytes.

:func:`read_file` is the only place gradflow calls ``torch.load``. It loads with
``weights_only=True`` (tensors, containers, numbers, strings, ``argparse.Namespace`` and numpy scalars
and arrays; nothing that can run code) unless ``trust=True``. Whatever the file holds, the outcome is
the loaded object or one sentence: a missing path and a directory are usage errors (exit code 2);
empty, truncated, corrupted, foreign or code-carrying files are data errors (exit code 1).

:func:`plain` turns values read from a file (checkpoint metadata) into JSON-safe Python values, so that
a report never fails on what a checkpoint carried beside its weights.

>>> plain({"epoch": 3, "acc": [0.5, 0.75], "opt": object()})
{'epoch': 3, 'acc': [0.5, 0.75]}
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, List, Mapping

import torch

from ..errors import DataError, UsageError

__all__ = ["read_file", "check_readable", "plain", "safe_globals", "finite_float", "describe", "one_line"]


def safe_globals() -> List[Any]:
    """The non-tensor globals safe loading may rebuild: ``argparse.Namespace`` (SpikingJelly's
    ``args``) and numpy scalars, dtypes and arrays (checkpoints that saved numpy accuracies)."""
    allowed: List[Any] = [argparse.Namespace]
    import numpy as np

    allowed += [np.dtype, np.ndarray]
    for mod_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(mod_name, fromlist=["scalar", "_reconstruct"])
        except ImportError:  # pragma: no cover - depends on the numpy version
            continue
        allowed += [mod.scalar, mod._reconstruct]
        break
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def check_readable(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """``path`` as a :class:`Path` if it names a non-empty regular file; else one clear error.

    Missing paths, directories and unreadable files raise :class:`UsageError` (the argument is wrong);
    an empty file or a device raises :class:`DataError`.
    """
    p = Path(path)
    try:
        if not p.exists():
            raise UsageError(f"No such file: {p}.")
        if p.is_dir():
            raise UsageError(f"{p} is a directory, not a {what} file.")
        if not p.is_file():
            raise DataError(f"{p} is not a regular file, so it cannot be a {what}.")
        size = p.stat().st_size
    except PermissionError:
        raise UsageError(f"{p} cannot be read (permission denied).") from None
    except OSError as err:
        raise UsageError(f"{p} cannot be read ({err.strerror or type(err).__name__}).") from None
    if size == 0:
        raise DataError(f"{p} is empty, not a {what}.")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p} cannot be read (permission denied).")
    return p


def read_file(path: str | os.PathLike, *, trust: bool = False, what: str = "checkpoint") -> Any:
    """``torch.load`` ``path`` onto the CPU; safe (``weights_only``) unless ``trust``.

    Returns the loaded object, whatever it is (callers check its type). Raises :class:`UsageError`
    for a missing, unreadable or directory path and :class:`DataError` for every file torch cannot
    load: empty, truncated, corrupted, another kind of file, or one holding Python objects that only a
    full unpickle could rebuild (the message names ``--trust-checkpoint``).

    Why a broad ``except Exception``: on corrupted bytes torch's unpickler and zip reader raise
    whatever their parsing state gives (``KeyError``, ``IndexError``, ``struct.error``,
    ``UnicodeDecodeError``, ``RuntimeError``, ...); every one of them means "not a readable file".
    """
    p = check_readable(path, what)
    try:
        with warnings.catch_warnings():
            # torch warns about odd pickle protocols in corrupted files; the outcome speaks for itself
            warnings.simplefilter("ignore", UserWarning)
            return _torch_load(p, trust)
    except pickle.UnpicklingError as err:
        msg = str(err)
        if "Weights only load failed" in msg and ("Unsupported global" in msg or "GLOBAL" in msg):
            raise DataError(
                f"{p} contains Python objects that safe loading refuses to unpickle (it could run code); "
                "if you trust its source, pass --trust-checkpoint."
            ) from None
        raise DataError(_unreadable(p, what)) from None
    except MemoryError:
        raise DataError(f"{p} declares more data than fits in memory, so it is not a usable {what}.") from None
    except PermissionError:
        raise UsageError(f"{p} cannot be read (permission denied).") from None
    except Exception:  # noqa: BLE001 - see the docstring: any parse failure means an unreadable file
        raise DataError(_unreadable(p, what)) from None


def _torch_load(p: Path, trust: bool) -> Any:
    if trust:
        return torch.load(p, map_location="cpu", weights_only=False)
    ctx = getattr(torch.serialization, "safe_globals", None)
    if ctx is None:  # pragma: no cover - torch < 2.5
        return torch.load(p, map_location="cpu", weights_only=True)
    with ctx(safe_globals()):
        return torch.load(p, map_location="cpu", weights_only=True)


def _unreadable(p: Path, what: str) -> str:
    return f"{p} is not a readable PyTorch {what} (it may be truncated or another kind of file)."


def plain(value: Any) -> Any:
    """A JSON-safe copy of ``value``: numbers, strings, booleans, None, lists and str-keyed dicts.

    numpy scalars and one-element tensors become Python numbers, ``argparse.Namespace`` a dict, tuples
    lists; anything else (tensors, optimizer states' non-plain parts, objects) is dropped, and so are
    dict entries with non-string keys and containers nested deeper than 8 levels. Non-finite floats
    stay floats (the JSON writer decides how to spell them). A dropped top-level value gives None.
    """
    out = _plain(value, 0)
    return None if out is _DROP else out


def _plain(value: Any, _depth: int) -> Any:
    if _depth > 8:
        return _DROP
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not value.is_complex() and value.layout == torch.strided:
            return value.item()
        return _DROP
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        item = value.item()
        return item if isinstance(item, (bool, int, float, str)) else _DROP
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if isinstance(k, str):
                pv = _plain(v, _depth + 1)
                if pv is not _DROP:
                    out[k] = pv
        return out
    if isinstance(value, (list, tuple)):
        items = [_plain(v, _depth + 1) for v in value]
        return [v for v in items if v is not _DROP]
    return _DROP


class _Drop:
    """Marker for values :func:`plain` leaves out."""

    def __repr__(self) -> str:  # pragma: no cover - never shown to users
        return "<dropped>"


_DROP = _Drop()


def finite_float(value: Any, name: str, where: str) -> float:
    """``float(value)`` for a number read from a file, or a :class:`DataError` naming ``name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    out = float(value) if ok and abs(value) < 1e308 else math.nan
    if not math.isfinite(out):
        raise DataError(f"{where} stores {name}={describe(value)}, which is not a finite number.")
    return out


def describe(value: Any, limit: int = 40) -> str:
    """A short one-line description of a value read from a file, for error messages.

    >>> describe("mlp"), describe(torch.zeros(2, 3)), describe("x" * 100)[-5:], describe({"a": [1, 2]})
    ("'mlp'", 'a float32 tensor of shape (2, 3)', 'xx...', "{'a': [1, 2]}")
    """
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    if type(value).__module__ == "numpy" and hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        return f"a numpy array of shape {tuple(value.shape)}"
    text = repr(value) if _only_scalars(value, 0) else f"a {type(value).__name__}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _only_scalars(value: Any, depth: int) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if depth > 3:
        return False
    if isinstance(value, (list, tuple)):
        return all(_only_scalars(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_only_scalars(k, depth + 1) and _only_scalars(v, depth + 1) for k, v in value.items())
    return False


def one_line(message: str, limit: int = 300) -> str:
    """``message`` with its whitespace collapsed to single spaces and cut to ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
