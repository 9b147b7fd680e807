"""CIFAR-10/100 from the standard *python version* directories, read without running code.

``cifar-10-batches-py`` (``test_batch``, ``data_batch_1..5``) and ``cifar-100-python`` (``test``,
``train``) are pickles; a restricted unpickler accepts only dicts, bytes, numbers and numpy arrays, so
a tampered file cannot run code. Images are scaled to [0, 1] and normalised with the official CLIF
code's constants: CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010); CIFAR-100 mean
(0.5071, 0.4867, 0.4408), std (0.2675, 0.2565, 0.2761).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError

__all__ = ["CIFAR_STATS", "load_cifar"]

CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}



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
