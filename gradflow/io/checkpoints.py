"""Reading and writing checkpoints (SPEC §5), safely by default.

Formats read by :func:`load_checkpoint`:

* **gradflow**: ``{"gradflow": {"arch", "neuron", "tau", "T", ...}, "state_dict": ...}``; the
  ``gradflow`` entry holds ``model.config`` and rebuilds the model by itself;
* **clif** (the official CLIF code): ``{"net": state_dict, "epoch", "max_test_acc", "optimizer", ...}``;
* **spikingjelly**: ``{"model": state_dict, "args": argparse.Namespace, ...}``;
* **state_dict**: a bare mapping of parameter names to tensors.

For the last three, the architecture and neuron come from options (``arch``, ``neuron``, ``tau``,
``T``), from ``args`` where SpikingJelly saved them, or are inferred: the number of classes and input
channels from tensor shapes, the architecture from the set of keys, PLIF from its ``w`` parameters.
Every inference is reported in :attr:`LoadedModel.notes`.

Loading never unpickles arbitrary objects unless asked: ``torch.load(weights_only=True)`` with only
``argparse.Namespace`` and numpy scalars allowed. ``trust=True`` (``--trust-checkpoint``) is the only
way to run a full unpickle, which can execute code stored in the file.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch

from ..errors import DataError, UsageError

__all__ = [
    "LoadedModel", "load_checkpoint", "save_checkpoint", "read_file", "FORMATS", "ASSETS", "demo_checkpoint_paths",
]

FORMATS = ("gradflow", "clif", "spikingjelly", "state_dict")
_FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A model built from a checkpoint, with where it came from and what was inferred."""

    model: torch.nn.Module
    format: str
    config: Dict[str, Any]
    path: str
    notes: List[str] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)


def _safe_globals() -> list:
    allowed: list = [argparse.Namespace]
    try:
        import numpy as np

        allowed += [np.dtype, np.ndarray]
        for mod_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
            try:
                mod = __import__(mod_name, fromlist=["scalar", "_reconstruct"])
                allowed += [mod.scalar, mod._reconstruct]
                break
            except (ImportError, AttributeError):
                continue
        dtypes = getattr(np, "dtypes", None)
        if dtypes is not None:
            allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return allowed


def read_file(path: str | os.PathLike, *, trust: bool = False, what: str = "checkpoint") -> Any:
    """``torch.load`` a file onto the CPU with clear errors; safe unless ``trust``.

    Raises :class:`UsageError` for a missing path or a directory and :class:`DataError` for an
    empty, truncated or foreign file, or one that needs a full unpickle (naming ``--trust-checkpoint``).
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"No such file: {p}.")
    if p.is_dir():
        raise UsageError(f"{p} is a directory, not a {what} file.")
    if p.stat().st_size == 0:
        raise DataError(f"{p} is empty, not a {what}.")
    try:
        if trust:
            return torch.load(p, map_location="cpu", weights_only=False)
        ctx = getattr(torch.serialization, "safe_globals", None)
        if ctx is not None:
            with ctx(_safe_globals()):
                return torch.load(p, map_location="cpu", weights_only=True)
        return torch.load(p, map_location="cpu", weights_only=True)  # pragma: no cover - torch < 2.5
    except pickle.UnpicklingError as err:
        msg = str(err)
        if "Weights only load failed" in msg and ("Unsupported global" in msg or "GLOBAL" in msg):
            raise DataError(
                f"{p} contains Python objects that safe loading refuses to unpickle (it could run code); "
                "if you trust its source, pass --trust-checkpoint."
            ) from None
        raise DataError(f"{p} is not a readable PyTorch {what} (it may be truncated or another kind of file).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, ImportError, TypeError) as err:
        if isinstance(err, OSError) and not isinstance(err, zipfile.BadZipFile) and "zip" not in str(err).lower():
            if isinstance(err, PermissionError):
                raise UsageError(f"{p} cannot be read (permission denied).") from None
        raise DataError(f"{p} is not a readable PyTorch {what} (it may be truncated or another kind of file).") from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_prefix(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop a ``module.`` prefix that DataParallel / DDP adds to every key."""
    keys = list(sd)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _detect(obj: Any, p: Path):
    """(format, state_dict, meta, saved_config)."""
    if isinstance(obj, Mapping):
        if "gradflow" in obj and "state_dict" in obj and isinstance(obj["gradflow"], Mapping):
            meta = {k: v for k, v in obj.items() if k not in ("state_dict", "gradflow")}
            return "gradflow", obj["state_dict"], meta, dict(obj["gradflow"])
        if "net" in obj and _is_state_dict(obj["net"]):
            meta = {k: obj[k] for k in ("epoch", "max_test_acc") if k in obj}
            return "clif", obj["net"], meta, {}
        if "model" in obj and _is_state_dict(obj["model"]):
            args = obj.get("args")
            cfg = dict(vars(args)) if isinstance(args, argparse.Namespace) else (dict(args) if isinstance(args, Mapping) else {})
            meta = {k: obj[k] for k in ("epoch", "max_test_acc") if k in obj}
            return "spikingjelly", obj["model"], meta, cfg
        if _is_state_dict(obj):
            return "state_dict", obj, {}, {}
    raise DataError(
        f"{p} is a PyTorch file but not a checkpoint gradflow knows (a gradflow checkpoint, the official "
        "CLIF code's {'net': ...}, SpikingJelly's {'model': ..., 'args': ...}, or a bare state_dict)."
    )


def _weights_in_order(sd: Mapping[str, torch.Tensor]) -> list:
    return [(k, v) for k, v in sd.items() if k.endswith("weight") and v.dim() >= 2]


def _infer_shapes(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    ws = _weights_in_order(sd)
    if not ws:
        return {}
    first, last = ws[0][1], ws[-1][1]
    out = {"in_channels": int(first.shape[1]), "num_classes": int(last.shape[0])}
    if all(v.dim() == 2 for _, v in ws):  # fully connected: widths from the chain of weights
        out["widths"] = [int(v.shape[0]) for _, v in ws[:-1]]
    return out


def _args_value(cfg: Mapping[str, Any], *names: str):
    for n in names:
        if n in cfg and cfg[n] is not None:
            return cfg[n]
    return None


def _fit_report(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> tuple:
    """(missing, unexpected, mismatched) keys of ``sd`` against ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, mismatched


def _score(model, sd) -> float:
    missing, unexpected, mismatched = _fit_report(model, sd)
    n = max(len(model.state_dict()), 1)
    return 1.0 - (len(missing) + len(unexpected) + len(mismatched)) / (n + len(unexpected))


def _candidates(shapes: Dict[str, Any], sd) -> list:
    from .. import models

    names = []
    keys = set(sd)
    for name in models.available():
        if name == "mlp":
            if "widths" in shapes:
                names.append(name)
            continue
        names.append(name)
    # cheap pre-filter on key prefixes before building anything large
    prefixes = {"snn5_noAP": "features.0.fwd.0.weight", "spiking_resnet18": "conv1.weight",
                "spiking_resnet34": "conv1.weight", "spiking_vgg11_bn": "layer1.0.weight",
                "spiking_vgg13_bn": "layer1.0.weight"}
    return [n for n in names if n == "mlp" or prefixes.get(n) in keys] or names


def _build(arch: str, neuron: str, shapes: Dict[str, Any], T: int, neuron_kwargs: Dict[str, Any]):
    from .. import models

    kw = dict(neuron_kwargs)
    if arch == "mlp":
        kw["in_features"] = shapes.get("in_channels")
        if "widths" in shapes:
            kw["widths"] = tuple(shapes["widths"])
        return models.build(arch, neuron=neuron, num_classes=shapes.get("num_classes", 10), T=T, **kw)
    return models.build(
        arch, neuron=neuron, num_classes=shapes.get("num_classes", 10), in_channels=shapes.get("in_channels", 3),
        T=T, **kw,
    )


def load_checkpoint(
    path: str | os.PathLike,
    *,
    arch: Optional[str] = None,
    neuron: Optional[str] = None,
    tau: Optional[float] = None,
    v_threshold: Optional[float] = None,
    surrogate: Optional[str] = None,
    alpha: Optional[float] = None,
    T: Optional[int] = None,
    trust: bool = False,
) -> LoadedModel:
    """Load any supported checkpoint into a gradflow model (on the CPU, eval mode).

    Options override what the file says (for gradflow checkpoints a note records each override).
    Raises :class:`UsageError` / :class:`DataError` with one sentence on every user mistake: missing
    or unreadable file, unknown format or architecture, or a state_dict that does not fit (the
    message summarises missing, unexpected and mismatched keys and names the best-fitting arch).
    """
    from .. import models

    p = Path(path)
    obj = read_file(p, trust=trust)
    fmt, sd, meta, saved = _detect(obj, p)
    sd = _strip_prefix(sd)
    notes: List[str] = []
    if trust:
        notes.append("loaded with --trust-checkpoint: the file was fully unpickled")
    if T is not None and (isinstance(T, bool) or int(T) != T or int(T) <= 0):
        raise UsageError(f"T must be a positive integer, got {T!r}.")
    if arch is not None and arch not in models.available():
        raise UsageError(f"Unknown architecture {arch!r}; choose one of {', '.join(models.available())}.")
    shapes = _infer_shapes(sd)
    neuron_kwargs: Dict[str, Any] = {}

    if fmt == "gradflow":
        cfg = dict(saved)
        cfg.pop("format_version", None)
        name, alias = cfg.pop("name", None), cfg.pop("arch", None)
        name = name or alias
        if name is not None and name in models.ARCHITECTURES:
            accepted = {"neuron", "num_classes", "in_channels", "T"} | set(models.ARCHITECTURES[name].options)
            accepted |= set(models.NEURON_OPTIONS)
            for key in [k for k in cfg if k not in accepted]:
                meta[key] = cfg.pop(key)
        overrides = dict(name=arch, neuron=neuron, tau=tau, v_threshold=v_threshold, surrogate=surrogate,
                         alpha=alpha, T=T)
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "name":
                if value != name:
                    notes.append(f"architecture {value} given, checkpoint says {name}")
                name = value
            else:
                if key not in cfg:
                    notes.append(f"{key}={value} given (the checkpoint used the default)")
                elif cfg[key] != value:
                    notes.append(f"{key}={value} given, checkpoint says {cfg[key]}")
                cfg[key] = value
        if name is None:
            raise DataError(f"{p} is a gradflow checkpoint without an architecture name.")
        model = models.build(name, **cfg)
        config = model.config
    else:
        arch_given = arch
        arch = arch or _args_value(saved, "arch", "model")
        if arch is not None and arch not in models.available():
            if arch_given is None:
                notes.append(f"ignored the saved architecture name {arch!r} (not one gradflow knows)")
                arch = None
        if neuron is None:
            saved_neuron = _args_value(saved, "neuron", "neuron_model")
            if saved_neuron is not None and str(saved_neuron).lower() in ("lif", "clif", "plif"):
                neuron = str(saved_neuron).lower()
                notes.append(f"neuron {neuron} taken from the checkpoint's args")
        has_w = any(k.endswith(".w") and v.dim() == 0 for k, v in sd.items())
        if neuron is None:
            neuron = "plif" if has_w else "lif"
            notes.append(
                f"neuron {neuron} inferred ({'PLIF w parameters present' if has_w else 'no neuron parameters; pass --neuron clif for CLIF'})"
            )
        if T is None:
            saved_T = _args_value(saved, "T")
            T = int(saved_T) if saved_T is not None else 4
            notes.append(f"T={T} {'from the checkpoint args' if saved_T is not None else 'assumed (pass --T)'}")
        if tau is None:
            saved_tau = _args_value(saved, "tau")
            if saved_tau is not None:
                tau = float(saved_tau)
                notes.append(f"tau={tau:g} from the checkpoint args")
        for key, value in dict(tau=tau, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha).items():
            if value is not None:
                neuron_kwargs[key] = value
        from ..neurons import build_neuron

        build_neuron(neuron, **neuron_kwargs)  # bad neuron options: one clear UsageError here
        if shapes:
            notes.append(
                f"{shapes['num_classes']} classes and {shapes['in_channels']} input "
                f"{'features' if 'widths' in shapes else 'channels'} inferred from tensor shapes"
            )
        if arch is None:
            fits = []
            for cand in _candidates(shapes, sd):
                try:
                    m = _build(cand, neuron, shapes, T, neuron_kwargs)
                except Exception:  # an arch that cannot take these shapes
                    continue
                fits.append((_score(m, sd), cand, m))
            exact = [f for f in fits if f[0] == 1.0]
            if not exact:
                best = max(fits, key=lambda f: f[0])[1] if fits else None
                hint = f" (closest: {best}; try --arch {best})" if best else ""
                raise DataError(
                    f"The state_dict in {p} does not match any known architecture{hint}; pass --arch explicitly."
                )
            arch, model = exact[0][1], exact[0][2]
            notes.append(f"architecture {arch} inferred from the state_dict keys")
        else:
            model = _build(arch, neuron, shapes, T, neuron_kwargs)
        config = model.config

    missing, unexpected, mismatched = _fit_report(model, sd)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes (e.g. {mismatched[0]})")
        best = None
        fits = []
        for cand in _candidates(shapes, sd):
            if cand == config["name"]:
                continue
            try:
                fits.append((_score(_build(cand, config["neuron"], shapes, config["T"], {}), sd), cand))
            except Exception:
                continue
        if fits:
            score, cand = max(fits)
            if score > _score(model, sd):
                best = cand
        hint = f"; the keys fit {best} better (try --arch {best})" if best else ""
        raise DataError(f"The state_dict in {p} does not fit {config['name']}: {', '.join(parts)}{hint}.")
    model.load_state_dict(sd, strict=True)
    model.eval()
    return LoadedModel(model=model, format=fmt, config=config, path=str(p), notes=notes, meta=meta)


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, /, **meta: Any) -> Path:
    """Write a self-describing gradflow checkpoint ``{"gradflow": config, "state_dict": ...}`` atomically.

    ``model`` must carry ``config`` (every gradflow architecture does). ``meta`` entries (``task``,
    ``epoch``, ``accuracy``...) are stored beside the config in the ``gradflow`` entry.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise UsageError("save_checkpoint needs a gradflow model (with a .config); build it with gradflow.models.build.")
    info = dict(config)
    info["format_version"] = _FORMAT_VERSION
    info["arch"] = info["name"]
    for k, v in meta.items():
        info[k] = v
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        torch.save({"gradflow": info, "state_dict": state}, tmp)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


#: Where the shipped demo checkpoints live (package data).
ASSETS = Path(__file__).resolve().parent.parent / "assets"


def demo_checkpoint_paths() -> List[Path]:
    """The LIF and CLIF demo checkpoints, in that order (DataError if the package data is missing)."""
    paths = [ASSETS / "demo_lif.pt", ASSETS / "demo_clif.pt"]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"The built-in demo checkpoint {missing[0]} is missing; regenerate it with "
            "`python -m gradflow.lab.demo_checkpoints` or pass a checkpoint path."
        )
    return paths
