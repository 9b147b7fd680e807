"""Reading and writing checkpoints, safely by default: the one checkpoint API of gradflow.

Formats read by :func:`load_checkpoint` (docs/reference.md, "Checkpoint formats"):

* **gradflow**: ``{"gradflow": {"arch", "neuron", "tau", "T", "model": config, ...}, "state_dict": ...}``;
  the ``gradflow`` entry holds ``model.config`` and rebuilds the model by itself;
* **clif** (the official CLIF code): ``{"net": state_dict, "epoch", "max_test_acc", "optimizer", ...}``;
* **spikingjelly**: ``{"model": state_dict, "args": argparse.Namespace, ...}``;
* **state_dict**: a bare mapping of parameter names to tensors, or one under ``"state_dict"`` /
  ``"model_state_dict"``.

For the last three, the architecture and neuron come from options (``arch``, ``neuron``, ``tau``,
``T``), from ``args`` where SpikingJelly saved them, or are inferred: the number of classes and input
channels from tensor shapes, the architecture from the set of keys, PLIF from its ``w`` parameters.
Every inference is reported in :attr:`LoadedModel.notes`.

Loading never unpickles arbitrary objects unless asked: ``torch.load(weights_only=True)`` with only
``argparse.Namespace`` and numpy scalars allowed. ``trust=True`` (``--trust-checkpoint``) is the only
way to run a full unpickle, which can execute code stored in the file. A configuration read from a
file is first built on the ``meta`` device (no memory) and checked against the weights, so a corrupted
file can neither allocate a huge model nor end in anything but one :class:`DataError` sentence.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch

from .. import __version__, models
from ..errors import DataError, GradflowError, UsageError
from ..neurons import build_neuron
from ..schema import NEURON_KINDS
from .files import describe, finite_float, one_line, plain, read_file
from .statedict import FORMATS, Found, find_state_dict, fit_report, fit_score, infer_shapes, misfit_sentence, strip_prefix

__all__ = [
    "LoadedModel", "load_checkpoint", "save_checkpoint", "read_file", "FORMATS", "ASSETS", "demo_checkpoint_paths",
]

#: Version of the ``gradflow`` entry written by :func:`save_checkpoint` (1: gradflow 0.1).
FORMAT_VERSION = 2

Source = Union[str, os.PathLike, Mapping[str, Any]]


@dataclass
class LoadedModel:
    """A model built from a checkpoint, with where it came from and what was inferred.

    ``model``: the gradflow model in eval mode on the CPU; ``format``: one of :data:`FORMATS`;
    ``config``: ``model.config`` (``models.build(**config)`` rebuilds it); ``path``: the file (or
    ``"<dict>"``); ``notes``: one line per inference or override; ``meta``: JSON-safe facts stored
    beside the weights (epoch, accuracy, the training task, SpikingJelly's args, ...).
    """

    model: torch.nn.Module
    format: str
    config: Dict[str, Any]
    path: str
    notes: List[str] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)


def _open(source: Source, trust: bool):
    """``(where, loaded object)`` for a path or an already loaded checkpoint mapping."""
    if isinstance(source, Mapping):
        return "<dict>", source
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"A checkpoint is a file path or a loaded dict, not {type(source).__name__}.")
    return str(Path(source)), read_file(source, trust=trust)


def _arch_name(name: Any) -> Optional[str]:
    """The registry spelling of ``name`` (case-insensitive), or None."""
    if not isinstance(name, str):
        return None
    return {a.lower(): a for a in models.available()}.get(name.lower())


def _given(arch, neuron, T, neuron_opts: Dict[str, Any]) -> Dict[str, Any]:
    """The caller's overrides, checked (a bad value is the caller's :class:`UsageError`)."""
    out: Dict[str, Any] = {}
    if arch is not None:
        out["name"] = _arch_name(arch)
        if out["name"] is None:
            raise UsageError(f"Unknown architecture {arch!r}; choose one of {', '.join(models.available())}.")
    if neuron is not None:
        if str(neuron).lower() not in NEURON_KINDS:
            raise UsageError(f"Unknown neuron {neuron!r}; choose one of {', '.join(NEURON_KINDS)}.")
        out["neuron"] = str(neuron).lower()
    if T is not None:
        if isinstance(T, bool) or not isinstance(T, (int, float)) or int(T) != T or int(T) <= 0:
            raise UsageError(f"T must be a positive integer, got {T!r}.")
        out["T"] = int(T)
    unknown = sorted(k for k in neuron_opts if k not in models.NEURON_OPTIONS)
    if unknown:
        raise UsageError(f"Unknown neuron option {unknown[0]!r}; the options are {', '.join(models.NEURON_OPTIONS)}.")
    out.update(neuron_opts)
    return out


def _probe_neuron(kind: str, opts: Dict[str, Any]) -> None:
    """Build one neuron of ``kind`` with the caller's options: a bad value raises UsageError here."""
    try:
        build_neuron(kind, **opts)
    except TypeError as err:
        raise UsageError(f"Bad neuron options {sorted(opts)} for {kind} neurons: {err}.") from None


def _build_on_meta(cfg: Dict[str, Any], where: str, what: str):
    """``models.build(**cfg)`` on the meta device; any failure is a DataError about ``what``."""
    for key, value in cfg.items():
        if isinstance(value, (list, tuple)):
            ok = all(v is None or isinstance(v, (bool, int, float, str)) for v in value)
        else:
            ok = value is None or isinstance(value, (bool, int, float, str))
        if not ok:
            raise DataError(f"{where}: {what} holds {key}={describe(value)}, which is not a plain value.")
    try:
        with torch.device("meta"):
            return models.build(**cfg)
    except GradflowError as err:
        raise DataError(one_line(f"{where}: {what} cannot be built ({str(err).rstrip('.')}).")) from None
    except Exception as err:  # noqa: BLE001 - values read from a file: any failure means a bad file
        raise DataError(f"{where}: {what} cannot be built ({type(err).__name__}).") from None


def _hint(current: str, cfg: Dict[str, Any], sd, shapes, score: float) -> str:
    """``"; the keys fit X better (try --arch X)"`` when another architecture fits ``sd`` better."""
    fits = []
    for cand in _candidates(shapes, sd):
        if cand == current:
            continue
        try:
            with torch.device("meta"):
                m = _build_arch(cand, cfg.get("neuron", "lif"), shapes, cfg.get("T", 4), {})
        except Exception:  # noqa: BLE001 - an architecture that cannot take these shapes
            continue
        fits.append((fit_score(m, sd), cand))
    if fits:
        best_score, best = max(fits)
        if best_score > score:
            return f"; the keys fit {best} better (try --arch {best})"
    return ""


def _check_fit(meta_model, cfg, sd, shapes, where: str) -> None:
    misfit = fit_report(meta_model, sd)
    if misfit:
        hint = _hint(cfg["name"], cfg, sd, shapes, fit_score(meta_model, sd))
        raise DataError(one_line(f"The state_dict in {where} does not fit {cfg['name']}: {misfit_sentence(misfit)}{hint}.", 500))


def _from_gradflow(found: Found, sd, given: Dict[str, Any], where: str):
    """``(cfg, notes, meta)`` for a gradflow checkpoint: the saved config with the overrides applied."""
    entry = found.saved
    nested = entry.get("model")
    src = {k: v for k, v in nested.items() if isinstance(k, str)} if isinstance(nested, Mapping) else entry
    saved_name = src.get("name", entry.get("arch"))
    name = given.get("name") or _arch_name(saved_name)
    if name is None:
        raise DataError(f"{where} is a gradflow checkpoint whose architecture {describe(saved_name)} gradflow does not know.")
    accepted = {"neuron", "num_classes", "in_channels", "T"} | set(models.ARCHITECTURES[name].options)
    accepted |= set(models.NEURON_OPTIONS)
    cfg: Dict[str, Any] = {k: v for k, v in src.items() if k in accepted}
    meta = plain({k: v for k, v in entry.items() if k not in cfg and k not in ("model", "format_version", "name")})
    meta.update(plain(found.extra))
    notes: List[str] = []
    version = entry.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        notes.append(f"written by a newer gradflow (checkpoint format {version}; this one reads {FORMAT_VERSION})")
    if "name" in given and given["name"] != _arch_name(saved_name):
        notes.append(f"architecture {name} given, checkpoint says {describe(saved_name)}")
    kind = given.get("neuron", cfg.get("neuron", "lif"))
    if not isinstance(kind, str) or kind.lower() not in NEURON_KINDS:
        raise DataError(f"{where} is a gradflow checkpoint with an unknown neuron {describe(kind)}.")
    kind = kind.lower()
    _probe_neuron(kind, {k: v for k, v in given.items() if k in models.NEURON_OPTIONS})
    for key, value in given.items():
        if key == "name":
            continue
        if key not in cfg:
            notes.append(f"{key}={value} given (the checkpoint used the default)")
        elif cfg[key] != value:
            notes.append(f"{key}={value} given, checkpoint says {describe(cfg[key])}")
        cfg[key] = value
    cfg["name"], cfg["neuron"] = name, kind
    for key, keep in (("v_reset", kind != "clif"), ("init_tau", kind == "plif")):
        if not keep and key in cfg and key not in given:
            notes.append(f"dropped the saved {key}={describe(cfg.pop(key))} ({kind} neurons have no such option)")
    return cfg, notes, meta


def _saved_int(saved: Mapping[str, Any], key: str, where: str) -> Optional[int]:
    value = saved.get(key)
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and float(value) == int(value) >= 1
    if not ok:
        raise DataError(f"{where} stores {key}={describe(value)} in its args, which is not a positive integer.")
    return int(value)


def _from_foreign(found: Found, sd, given: Dict[str, Any], where: str):
    """``(cfg, notes, meta)`` for a clif / spikingjelly / state_dict file: options, args, inference."""
    saved = plain(found.saved)
    meta = {k: v for k, v in plain(found.extra).items() if k != "optimizer"}
    if saved:
        meta["args"] = saved
    notes: List[str] = []
    name = given.get("name")
    if name is None:
        for key in ("arch", "model"):
            if isinstance(saved.get(key), str):
                name = _arch_name(saved[key])
                if name is None:
                    notes.append(f"ignored the saved architecture name {describe(saved[key])} (not one gradflow knows)")
                break
    kind = given.get("neuron")
    if kind is None:
        saved_kind = saved.get("neuron", saved.get("neuron_model"))
        if isinstance(saved_kind, str) and saved_kind.lower() in NEURON_KINDS:
            kind = saved_kind.lower()
            notes.append(f"neuron {kind} taken from the checkpoint's args")
    if kind is None:
        has_w = any(k.endswith(".w") and v.dim() == 0 for k, v in sd.items())
        kind = "plif" if has_w else "lif"
        notes.append(f"neuron {kind} inferred ({'PLIF w parameters present' if has_w else 'no neuron parameters; pass --neuron clif for CLIF'})")
    opts = {k: v for k, v in given.items() if k in models.NEURON_OPTIONS}
    _probe_neuron(kind, opts)
    T = given.get("T")
    if T is None:
        T = _saved_int(saved, "T", where)
        notes.append(f"T={T} from the checkpoint args" if T is not None else "T=4 assumed (pass --T)")
        T = 4 if T is None else T
    if "tau" not in opts and saved.get("tau") is not None:
        opts["tau"] = finite_float(saved["tau"], "tau", where)
        notes.append(f"tau={opts['tau']:g} from the checkpoint args")
        try:
            build_neuron(kind, **opts)
        except (GradflowError, TypeError) as err:
            raise DataError(one_line(f"{where}: the saved tau={opts['tau']:g} does not fit {kind} neurons ({str(err).rstrip('.')}).")) from None
    return dict(name=name, neuron=kind, T=T, **opts), notes, meta


def _build_arch(arch: str, neuron: str, shapes: Dict[str, Any], T: int, neuron_kwargs: Dict[str, Any]):
    kw = dict(neuron_kwargs)
    if arch == "mlp":
        kw["in_features"] = shapes.get("in_channels")
        if "widths" in shapes:
            kw["widths"] = tuple(shapes["widths"])
        return models.build(arch, neuron=neuron, num_classes=shapes.get("num_classes", 10), T=T, **kw)
    return models.build(arch, neuron=neuron, num_classes=shapes.get("num_classes", 10),
                        in_channels=shapes.get("in_channels", 3), T=T, **kw)


def _candidates(shapes: Dict[str, Any], sd) -> List[str]:
    """Architectures worth trying for ``sd``: those whose first key is present (all if none is)."""
    prefixes = {"snn5_noAP": "features.0.fwd.0.weight", "spiking_resnet18": "conv1.weight",
                "spiking_resnet34": "conv1.weight", "spiking_vgg11_bn": "layer1.0.weight",
                "spiking_vgg13_bn": "layer1.0.weight"}
    names = [n for n in models.available() if n != "mlp" or "widths" in shapes]
    return [n for n in names if n == "mlp" or prefixes.get(n) in sd] or names


def _infer_arch(cfg: Dict[str, Any], sd, shapes, notes: List[str], where: str) -> Dict[str, Any]:
    """The full build configuration for a foreign state dict (architecture inferred if not given)."""
    neuron_kwargs = {k: v for k, v in cfg.items() if k not in ("name", "neuron", "T")}
    if shapes:
        notes.append(f"{shapes['num_classes']} classes and {shapes['in_channels']} input "
                     f"{'features' if 'widths' in shapes else 'channels'} inferred from tensor shapes")
    names = [cfg["name"]] if cfg["name"] is not None else _candidates(shapes, sd)
    fits = []
    for cand in names:
        try:
            with torch.device("meta"):
                m = _build_arch(cand, cfg["neuron"], shapes, cfg["T"], neuron_kwargs)
        except Exception:  # noqa: BLE001 - an architecture that cannot take these shapes
            continue
        fits.append((fit_score(m, sd), cand, m))
    if cfg["name"] is not None:
        if not fits:
            raise DataError(f"The state_dict in {where} cannot be given to {cfg['name']} (its tensor shapes do not fit).")
        _check_fit(fits[0][2], dict(fits[0][2].config), sd, shapes, where)
        return dict(fits[0][2].config)
    exact = [f for f in fits if f[0] == 1.0]
    if not exact:
        best = max(fits, key=lambda f: f[0])[1] if fits else None
        hint = f" (closest: {best}; try --arch {best})" if best else ""
        raise DataError(f"The state_dict in {where} does not match any known architecture{hint}; pass --arch explicitly.")
    notes.append(f"architecture {exact[0][1]} inferred from the state_dict keys")
    return dict(exact[0][2].config)


def _load_weights(cfg: Dict[str, Any], sd, where: str) -> torch.nn.Module:
    """Build ``cfg`` for real and load ``sd`` strictly (its fit was checked on the meta device)."""
    model = models.build(**cfg)
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as err:  # noqa: BLE001 - e.g. a tensor whose storage does not match its shape
        raise DataError(f"The weights in {where} cannot be loaded into {cfg['name']} ({type(err).__name__}).") from None
    return model.eval()


def load_checkpoint(
    source: Source,
    *,
    arch: Optional[str] = None,
    neuron: Optional[str] = None,
    tau: Optional[float] = None,
    v_threshold: Optional[float] = None,
    surrogate: Optional[str] = None,
    alpha: Optional[float] = None,
    T: Optional[int] = None,
    options: Optional[Mapping[str, Any]] = None,
    trust: bool = False,
) -> LoadedModel:
    """Load any supported checkpoint into a gradflow model (on the CPU, eval mode).

    ``source`` is a file path or an already loaded checkpoint dict. The keyword arguments override
    what the file says (each override of a gradflow checkpoint is noted); ``options`` passes further
    neuron options (``v_reset``, ``detach_reset``, ``decay_input``, ``init_tau``, ...).

    Raises :class:`UsageError` for the caller's mistakes (missing path, unknown architecture or neuron,
    bad option values) and :class:`DataError`, one sentence, for everything wrong with the file: not
    a PyTorch file, not a known container, a configuration that cannot be rebuilt, or a state_dict
    that does not fit (missing, unexpected and mismatched keys summarised, the best-fitting
    architecture named).
    """
    neuron_opts = dict(tau=tau, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha)
    neuron_opts = {k: v for k, v in neuron_opts.items() if v is not None}
    neuron_opts.update(dict(options or {}))
    given = _given(arch, neuron, T, neuron_opts)
    where, obj = _open(source, trust)
    found = find_state_dict(obj)
    if found is None:
        raise DataError(
            f"{where} is a PyTorch file but not a checkpoint gradflow knows (a gradflow checkpoint, the official "
            "CLIF code's {'net': ...}, SpikingJelly's {'model': ..., 'args': ...}, or a state_dict)."
        )
    sd, prefix = strip_prefix(found.state_dict)
    shapes = infer_shapes(sd)
    if found.format == "gradflow":
        cfg, notes, meta = _from_gradflow(found, sd, given, where)
        meta_model = _build_on_meta(cfg, where, "its saved model configuration")
        _check_fit(meta_model, cfg, sd, shapes, where)
        cfg = dict(meta_model.config)
    else:
        cfg, notes, meta = _from_foreign(found, sd, given, where)
        cfg = _infer_arch(cfg, sd, shapes, notes, where)
    if prefix:
        notes.append(f"removed the {prefix!r} prefix from every key")
    if trust:
        notes.insert(0, "loaded with --trust-checkpoint: the file was fully unpickled")
    model = _load_weights(cfg, sd, where)
    return LoadedModel(model=model, format=found.format, config=model.config, path=where, notes=notes, meta=meta)


def _storable(key: str, value: Any) -> Any:
    """``value`` as plain data that safe loading reads back (tuples become lists), or a UsageError."""
    if isinstance(value, (tuple, list)):
        return [_storable(key, v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise UsageError(f"save_checkpoint: the metadata entry {key!r} has non-string keys.")
        return {k: _storable(key, v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = plain(value)  # numpy scalars, one-element tensors
    if isinstance(item, (bool, int, float, str)):
        return item
    raise UsageError(
        f"save_checkpoint: the metadata entry {key!r} is a {type(value).__name__}; store numbers, strings, "
        "lists and dicts only (safe loading could not read it back)."
    )


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, /, *, task: Any = None, **meta: Any) -> Path:
    """Write a self-describing gradflow checkpoint atomically; return its path.

    The file holds ``{"gradflow": entry, "state_dict": model.state_dict()}`` (tensors moved to the CPU),
    where ``entry`` is

    * every key of ``model.config`` (so ``entry["arch"]``, ``"neuron"``, ``"tau"``, ``"T"`` read as in
      docs/reference.md), plus ``arch`` (the architecture name);
    * ``model``: ``model.config`` itself, the configuration :func:`load_checkpoint` rebuilds from;
    * ``task``: ``task.config`` (a built-in task) or the mapping given, if any;
    * ``format_version`` (:data:`FORMAT_VERSION`) and ``gradflow_version``;
    * the ``meta`` keyword arguments (``epoch``, ``accuracy``, ``seed``, ...): numbers, strings, lists
      and dicts only, so that ``torch.load(weights_only=True)`` reads every checkpoint gradflow writes.
      They may restate top-level keys (training stores the learned ``tau`` of a PLIF net), never
      ``model``.

    ``model`` must be a gradflow architecture (it carries ``config``). The file appears all at once
    (written beside the target, then renamed), so an interrupted save leaves the old file intact.

    >>> import tempfile, gradflow
    >>> net = gradflow.models.build("mlp", in_features=3, widths=(4,), num_classes=2, T=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save_checkpoint(net, f"{d}/m.pt", epoch=3)
    ...     lm = load_checkpoint(p)
    >>> lm.config == net.config, lm.meta["epoch"]
    (True, 3)
    """
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise UsageError("save_checkpoint needs a gradflow model (with a .config); build it with gradflow.models.build.")
    config = _storable("model", dict(config))
    if "model" in meta and _storable("model", meta["model"]) != config:
        raise UsageError("save_checkpoint: the metadata entry 'model' differs from model.config; leave it out.")
    entry: Dict[str, Any] = dict(config)
    entry.update(arch=config["name"], model=config, format_version=FORMAT_VERSION, gradflow_version=__version__)
    if task is not None:
        task_config = getattr(task, "config", task)
        if not isinstance(task_config, Mapping):
            raise UsageError(f"save_checkpoint: task must be a gradflow task or its config dict, not {type(task).__name__}.")
        entry["task"] = _storable("task", dict(task_config))
    for key, value in meta.items():
        entry[key] = _storable(key, value)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return _write_atomically({"gradflow": entry, "state_dict": state}, Path(path))


def _write_atomically(obj: Any, p: Path) -> Path:
    """``torch.save(obj)`` to a temporary file beside ``p``, then rename it onto ``p``."""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    except OSError as err:
        raise UsageError(f"Cannot write the checkpoint {p} ({err.strerror or type(err).__name__}).") from None
    os.close(fd)
    try:
        torch.save(obj, tmp)
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
