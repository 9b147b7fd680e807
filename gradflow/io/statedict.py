"""State dicts: finding them in a checkpoint, checking them, and saying why one does not fit a model.

A *state dict* here is a non-empty mapping of parameter names (``str``) to dense tensors, as
``nn.Module.state_dict()`` returns. Checkpoints wrap it in a container; :func:`find_state_dict` knows
these (see docs/reference.md, "Checkpoint formats"):

============== ================================================================================
format         container
============== ================================================================================
gradflow       ``{"gradflow": {...config and metadata...}, "state_dict": sd}``
clif           the official CLIF code: ``{"net": sd, "epoch", "max_test_acc", "optimizer", ...}``
spikingjelly   SpikingJelly's examples: ``{"model": sd, "args": argparse.Namespace, ...}``
state_dict     a bare ``sd``, or ``{"state_dict": sd, ...}`` / ``{"model_state_dict": sd, ...}``
============== ================================================================================

:func:`fit_report` compares a state dict with a model (names, shapes and the kind of dtype: floating
parameters need floating tensors, integer buffers integer ones) and :func:`misfit_sentence` turns the
result into one sentence. Models built on the ``meta`` device (no memory) can be checked the same way,
so a file's configuration is never built for real before its weights are known to fit.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
from torch import nn

__all__ = [
    "FORMATS",
    "Found",
    "find_state_dict",
    "as_state_dict",
    "strip_prefix",
    "infer_shapes",
    "Misfit",
    "fit_report",
    "misfit_sentence",
    "fit_score",
]

#: Checkpoint container formats, in the order :func:`find_state_dict` tries them.
FORMATS = ("gradflow", "clif", "spikingjelly", "state_dict")

#: Prefixes that wrappers add to every key: DataParallel/DDP (``module.``), ``torch.compile``.
_PREFIXES = ("module.", "_orig_mod.")


class Found(NamedTuple):
    """What :func:`find_state_dict` found: the format, the state dict, the rest of the container
    (``extra``: every other entry, unchecked) and, for gradflow and SpikingJelly files, the saved
    configuration entry (``saved``: the ``gradflow`` mapping or ``vars(args)``; else empty)."""

    format: str
    state_dict: Dict[str, torch.Tensor]
    extra: Dict[str, Any]
    saved: Dict[str, Any]
    where: str  # in words, for notes: "the 'net' entry"


def as_state_dict(obj: Any) -> Optional[Dict[str, torch.Tensor]]:
    """``obj`` as a plain dict if it is a usable state dict, else None.

    Usable: a non-empty mapping whose keys are strings and whose values are dense (strided),
    non-quantized real or boolean tensors.

    >>> as_state_dict({"w": torch.zeros(2)}) is not None, as_state_dict({"w": [0.0]}), as_state_dict({})
    (True, None, None)
    """
    if not isinstance(obj, Mapping) or len(obj) == 0:
        return None
    out: Dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            return None
        if v.layout != torch.strided or v.is_quantized or v.is_complex() or v.device.type == "meta":
            return None
        out[k] = v
    return out


def _str_keys(obj: Mapping) -> Dict[str, Any]:
    return {k: v for k, v in obj.items() if isinstance(k, str)}


def find_state_dict(obj: Any) -> Optional[Found]:
    """The state dict inside a loaded checkpoint object and the container it came in, or None.

    >>> find_state_dict({"net": {"fc.weight": torch.zeros(2, 3)}, "epoch": 3}).format
    'clif'
    >>> find_state_dict([1, 2]) is None
    True
    """
    if not isinstance(obj, Mapping):
        return None
    if "gradflow" in obj and isinstance(obj["gradflow"], Mapping):
        sd = as_state_dict(obj.get("state_dict"))
        if sd is None:
            return None
        extra = {k: v for k, v in _str_keys(obj).items() if k not in ("gradflow", "state_dict")}
        return Found("gradflow", sd, extra, _str_keys(obj["gradflow"]), "the 'state_dict' entry")
    for key, fmt in (("net", "clif"), ("model", "spikingjelly"), ("state_dict", "state_dict"),
                     ("model_state_dict", "state_dict")):
        if key not in obj:
            continue
        sd = as_state_dict(obj[key])
        if sd is None:
            continue
        extra = {k: v for k, v in _str_keys(obj).items() if k != key}
        saved: Dict[str, Any] = {}
        args = obj.get("args")
        if fmt == "spikingjelly":
            if isinstance(args, argparse.Namespace):
                saved = _str_keys(vars(args))
            elif isinstance(args, Mapping):
                saved = _str_keys(args)
        return Found(fmt, sd, extra, saved, f"the {key!r} entry")
    sd = as_state_dict(obj)
    if sd is not None:
        return Found("state_dict", sd, {}, {}, "the file itself (a bare state_dict)")
    return None


def strip_prefix(sd: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Optional[str]]:
    """``(sd without a wrapper prefix, the prefix or None)``; the prefix is removed only when every
    key carries it (``module.`` from DataParallel/DDP, ``_orig_mod.`` from ``torch.compile``)."""
    keys = list(sd)
    for prefix in _PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return {k[len(prefix):]: v for k, v in sd.items()}, prefix
    return dict(sd), None


def infer_shapes(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """``in_channels`` and ``num_classes`` from the first and last weight of rank >= 2 (in file
    order), and for fully connected nets (every such weight 2-D) the hidden ``widths``."""
    ws = [v for k, v in sd.items() if k.endswith("weight") and v.dim() >= 2]
    if not ws:
        return {}
    out: Dict[str, Any] = {"in_channels": int(ws[0].shape[1]), "num_classes": int(ws[-1].shape[0])}
    if all(v.dim() == 2 for v in ws):
        out["widths"] = [int(v.shape[0]) for v in ws[:-1]]
    return out


class Misfit(NamedTuple):
    """Keys of a state dict against a model: ``missing`` (in the model only), ``unexpected`` (in the
    file only), ``shapes`` (``"key (file shape) vs (model shape)"``) and ``dtypes`` (``"key
    file-dtype vs model-dtype"``). Falsy when everything fits."""

    missing: List[str]
    unexpected: List[str]
    shapes: List[str]
    dtypes: List[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes or self.dtypes)

    def count(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.shapes) + len(self.dtypes)


def _dtype_kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "float" if t.is_floating_point() else "int"


def fit_report(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> Misfit:
    """How ``sd`` fails to fit ``model.state_dict()`` (an empty :class:`Misfit` when it fits).

    Floating parameters accept any floating dtype (a float16 checkpoint loads into float32), integer
    buffers any integer dtype; other combinations are listed in ``dtypes``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes, dtypes = [], []
    for k, mine in own.items():
        if k not in sd:
            continue
        theirs = sd[k]
        if tuple(theirs.shape) != tuple(mine.shape):
            shapes.append(f"{k} {tuple(theirs.shape)} vs {tuple(mine.shape)}")
        elif _dtype_kind(theirs) != _dtype_kind(mine):
            dtypes.append(f"{k} {str(theirs.dtype).replace('torch.', '')} vs {str(mine.dtype).replace('torch.', '')}")
    return Misfit(missing, unexpected, shapes, dtypes)


def misfit_sentence(m: Misfit) -> str:
    """The parts of a :class:`Misfit` as one clause: ``"2 missing (e.g. fc.bias), 1 unexpected (...)"``."""
    parts = []
    m = Misfit(*([_short(k) for k in group] for group in m))
    if m.missing:
        parts.append(f"{len(m.missing)} missing (e.g. {m.missing[0]})")
    if m.unexpected:
        parts.append(f"{len(m.unexpected)} unexpected (e.g. {m.unexpected[0]})")
    if m.shapes:
        parts.append(f"{len(m.shapes)} with other shapes (e.g. {m.shapes[0]})")
    if m.dtypes:
        parts.append(f"{len(m.dtypes)} with other dtypes (e.g. {m.dtypes[0]})")
    return ", ".join(parts)


def _short(key: str, limit: int = 80) -> str:
    text = " ".join(key.split()) or repr(key)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit_score(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> float:
    """1.0 for a perfect fit, lower the more keys are missing, unexpected or of another shape/dtype."""
    m = fit_report(model, sd)
    n = max(len(model.state_dict()), 1)
    return 1.0 - m.count() / (n + len(m.unexpected))
