"""The user's own network: build it from their code, load its weights, feed it, read its logits.

**This imports and runs the user's code.** ``--model SPEC`` (and :func:`load_user_model`) executes the
Python file or module named in ``SPEC`` and calls the class or factory it names, with everything such
code can do; only pass code you trust. Checkpoint files, by contrast, are read without running code
(:mod:`gradflow.io.files`).

``SPEC`` is ``path/to/file.py:NAME`` or ``package.module:NAME``; ``NAME`` (dots allowed for nested
attributes) is an ``nn.Module`` subclass, a factory returning an ``nn.Module``, or a module-level
``nn.Module`` instance. Keyword arguments come from ``key=value`` strings (:func:`parse_model_args`;
values are Python literals, anything else is a string).

The pipeline of :func:`load_user_model`:

1. import the code and build the model (:func:`build_user_model`);
2. load the checkpoint's weights strictly, from any container gradflow knows (a gradflow checkpoint,
   ``{"net"}``, ``{"model"}``, ``{"state_dict"}``, ``{"model_state_dict"}`` or a bare state_dict;
   DataParallel's ``module.`` prefix removed) into the model as the user wrote it, or, when they were
   saved after conversion, into the converted model;
3. swap the spiking neurons for gradflow's (:func:`gradflow.adapters.convert`), so they can be recorded.

:func:`model_logits` then feeds an input batch to the model's own ``forward`` (states reset first, as
``functional.reset_net`` would) and :func:`extract_logits` finds the logits in what it returns:
per-step ``[T, N, C]``, aggregated ``[N, C]``, or one element of a tuple/list/dict such as snnTorch's
``(spk_rec, mem_rec)`` (``output_index`` chooses it). The returned :class:`Logits` says which it used.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..adapters import convert
from ..errors import DataError, GradflowError, UsageError
from ..neurons import SpikingNeuron
from .files import describe, one_line, read_file
from .statedict import find_state_dict, fit_report, misfit_sentence, strip_prefix

__all__ = [
    "UserModel",
    "Logits",
    "parse_model_args",
    "import_model_object",
    "build_user_model",
    "load_user_model",
    "reset_states",
    "extract_logits",
    "model_logits",
]

_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_model_args(items: Sequence[str]) -> Dict[str, Any]:
    """``["width=64", "name=vgg", "sizes=[1, 2]"]`` -> ``{"width": 64, "name": "vgg", "sizes": [1, 2]}``.

    A value is read as a Python literal (numbers, quoted strings, lists, tuples, dicts, ``True``,
    ``None``; ``true``/``false``/``none`` too); anything else stays a string. Raises
    :class:`UsageError` for an item without ``=``, a key that is not an identifier, or a repeated key.

    >>> parse_model_args(["num_classes=10", "beta=0.9", "act=atan", "learn=true"])
    {'num_classes': 10, 'beta': 0.9, 'act': 'atan', 'learn': True}
    """
    out: Dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"A model argument is key=value, got {item!r}.", arguments=("model_args",))
        if not key.isidentifier():
            raise UsageError(f"The model argument name {key!r} is not a Python identifier.", arguments=("model_args",))
        if key in out:
            raise UsageError(f"The model argument {key!r} is given twice.", arguments=("model_args",))
        text = text.strip()
        if text.lower() in _WORDS:
            out[key] = _WORDS[text.lower()]
            continue
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = text
    return out


def _where_in(err: BaseException, path: Optional[Path]) -> str:
    """`` (file.py, line N)`` for the innermost frame of ``err`` in ``path`` (or anywhere), else ''."""
    frames = traceback.extract_tb(err.__traceback__)
    if path is not None:
        mine = [f for f in frames if Path(f.filename).resolve() == path]
        frames = mine or frames
    if not frames:
        return ""
    return f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})"


def _raised(what: str, err: BaseException, path: Optional[Path] = None) -> UsageError:
    """One sentence for an exception raised by the user's code: what ran, the exception, the line."""
    text = str(err).strip().rstrip(".")
    detail = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return UsageError(one_line(f"{what} raised {detail}{_where_in(err, path)}."))


@contextmanager
def _on_path(folder: Optional[Path]):
    """``folder`` first on ``sys.path`` inside the block (sibling imports of a user's file work)."""
    if folder is None:
        yield
        return
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _split_spec(spec: str) -> Tuple[str, str]:
    target, sep, name = str(spec).rpartition(":")
    if not sep or not target or not name:
        raise UsageError(f"model_spec must be path/to/file.py:NAME or package.module:NAME, got {spec!r}.",
                         arguments=("model_spec",))
    return target, name


def _import_file(path: Path):
    if not path.is_file():
        raise UsageError(f"No such file: {path}." if not path.exists() else f"{path} is not a Python file.",
                         arguments=("model_spec",))
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"_gradflow_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} cannot be imported as a Python file.", arguments=("model_spec",))
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with _on_path(path.parent):
            spec.loader.exec_module(module)
    except BaseException as err:  # noqa: BLE001 - the user's code may raise anything, even SystemExit
        sys.modules.pop(mod_name, None)
        if isinstance(err, KeyboardInterrupt):
            raise
        raise _raised(f"Importing {path}", err, path) from None
    return module


def import_model_object(model_spec: str) -> Tuple[Any, str, Optional[Path]]:
    """``(object, "file.py:NAME" or "module:NAME", the file or None)`` for a ``--model`` SPEC.

    Runs the named file or module (see the module docstring). Raises :class:`UsageError` for a missing
    file, a module that cannot be imported, code that raises while importing, or a missing ``NAME``.
    """
    target, name = _split_spec(model_spec)
    path: Optional[Path] = None
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).expanduser().resolve()
        module = _import_file(path)
        label = f"{Path(target).name}:{name}"
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as err:
            if err.name and (target == err.name or target.startswith(err.name + ".")):
                raise UsageError(f"Cannot import the module {target!r} (no module named {err.name!r}); give "
                                 "path/to/file.py:NAME or put the package on PYTHONPATH.", arguments=("model_spec",)) from None
            raise _raised(f"Importing {target}", err) from None
        except BaseException as err:  # noqa: BLE001 - the user's code may raise anything
            if isinstance(err, KeyboardInterrupt):
                raise
            raise _raised(f"Importing {target}", err) from None
        label = f"{target}:{name}"
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            public = sorted(k for k, v in vars(module).items()
                            if not k.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v)
                                                          or isinstance(v, nn.Module)))
            hint = f" (it defines {', '.join(public[:8])}{', ...' if len(public) > 8 else ''})" if public else ""
            raise UsageError(f"{target} has no attribute {name!r}{hint}.", arguments=("model_spec",))
        obj = getattr(obj, part)
    return obj, label, path


def build_user_model(model_spec: str, kwargs: Optional[Mapping[str, Any]] = None) -> Tuple[nn.Module, str]:
    """``(model, description)``: import ``spec`` and call its class or factory with ``kwargs``.

    Raises :class:`UsageError` when the arguments do not fit the signature (naming its parameters),
    when the call raises (with the exception and the line in the user's file), or when the result is
    not an ``nn.Module``.
    """
    obj, label, path = import_model_object(model_spec)
    kwargs = dict(kwargs or {})
    if isinstance(obj, nn.Module):
        if kwargs:
            raise UsageError(f"{label} is an already built {type(obj).__name__}; it takes no model arguments.",
                             arguments=("model_args",))
        return obj, f"{label} (a {type(obj).__name__} instance)"
    if not callable(obj):
        raise UsageError(f"{label} is a {type(obj).__name__}, not a class or a function that builds a model.",
                         arguments=("model_spec",))
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as err:
            params = ", ".join(p for p in sig.parameters if p not in ("self", "args", "kwargs")) or "none"
            raise UsageError(f"{label} cannot take the model arguments {sorted(kwargs)} ({err}); its parameters "
                             f"are {params}.", arguments=("model_args",)) from None
    call = f"{label}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    try:
        with _on_path(None if path is None else path.parent):
            model = obj(**kwargs)
    except BaseException as err:  # noqa: BLE001 - the user's code may raise anything
        if isinstance(err, KeyboardInterrupt):
            raise
        raise _raised(f"Building the model with {call}", err, path) from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"{call} returned {describe(model)}, not a torch.nn.Module.", arguments=("model_spec",))
    return model, call


@dataclass
class UserModel:
    """A user's network ready for analysis.

    ``model``: the network with gradflow neurons in place of its own (eval mode, CPU); ``description``:
    the call that built it (``net.py:Net(width=64)``); ``checkpoint``/``format``: where the weights
    came from (None: the model's own initial weights); ``converted``: how many neurons the adapters
    swapped; ``notes``: one line per choice made.
    """

    model: nn.Module
    description: str
    checkpoint: Optional[str] = None
    format: Optional[str] = None
    converted: int = 0
    notes: List[str] = field(default_factory=list)


def _load_strict(model: nn.Module, sd, where: str, label: str) -> None:
    misfit = fit_report(model, sd)
    if misfit:
        raise DataError(one_line(f"The weights in {where} do not fit {label}: {misfit_sentence(misfit)}.", 500))
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as err:  # noqa: BLE001 - e.g. a custom load hook of the user's model
        raise DataError(one_line(f"Loading the weights in {where} into {label} failed ({type(err).__name__}: {err}).")) from None


def _count_neurons(model: nn.Module) -> int:
    return sum(isinstance(m, SpikingNeuron) for m in model.modules())


def load_user_model(
    model_spec: str,
    checkpoint: Union[str, os.PathLike, None] = None,
    *,
    model_args: Union[Sequence[str], Mapping[str, Any]] = (),
    trust: bool = False,
) -> UserModel:
    """Build the user's model from ``model_spec``, load ``checkpoint`` strictly, convert its neurons.

    **Runs the user's code** (module docstring). ``model_args``: ``key=value`` strings or a dict.
    ``checkpoint`` is read safely unless ``trust``. Errors: :class:`UsageError` for the spec, the
    arguments and the user's code; :class:`DataError` when the file holds no state_dict or its keys,
    shapes or dtypes do not fit (summarised: counts and an example of each).
    """
    kwargs = dict(model_args) if isinstance(model_args, Mapping) else parse_model_args(model_args)
    model, call = build_user_model(model_spec, kwargs)
    label = type(model).__name__
    notes: List[str] = [f"model built by the user's code: {call}"]
    fmt = where = None
    if checkpoint is not None:
        where = str(checkpoint)
        found = find_state_dict(read_file(checkpoint, trust=trust))
        if found is None:
            raise DataError(f"{where} holds no state_dict gradflow can find (a gradflow checkpoint, {{'net': ...}}, "
                            "{'model': ...}, {'state_dict': ...} or a bare state_dict).")
        sd, prefix = strip_prefix(found.state_dict)
        fmt = found.format
        notes.append(f"weights from {found.where} ({fmt} format)" + (f", {prefix!r} prefix removed" if prefix else ""))
        if not fit_report(model, sd):
            _load_strict(model, sd, where, label)
            model = _convert(model, label)
        else:
            converted = _convert(model, label)  # saved after gradflow.convert: keys of the converted model
            if fit_report(converted, sd):
                _load_strict(model, sd, where, label)  # raises the summary against the user's own model
            _load_strict(converted, sd, where, label)
            notes.append("the weights fit the converted model (saved after gradflow.convert)")
            model = converted
    else:
        model = _convert(model, label)
        notes.append("no checkpoint: the model's initial weights")
    n = _count_neurons(model)
    notes.append(f"{n} spiking neuron module{'s' if n != 1 else ''} recorded by gradflow")
    return UserModel(model=model.eval(), description=call, checkpoint=where, format=fmt, converted=n, notes=notes)


def _convert(model: nn.Module, label: str) -> nn.Module:
    try:
        return convert(model)
    except GradflowError:
        raise
    except Exception as err:  # noqa: BLE001 - a user's module that breaks while being walked
        raise UsageError(one_line(f"Converting the neurons of {label} failed ({type(err).__name__}: {err})."),
                         arguments=("model_spec",)) from None


def reset_states(model: nn.Module) -> None:
    """Reset every neuron state kept between calls (gradflow single-step neurons, SpikingJelly memory
    modules), as ``spikingjelly.activation_based.functional.reset_net`` does; other modules untouched."""
    for m in model.modules():
        is_sj = type(m).__module__.startswith("spikingjelly") and callable(getattr(m, "reset", None))
        if (isinstance(m, SpikingNeuron) and callable(getattr(m, "reset", None))) or is_sj:
            m.reset()


@dataclass
class Logits:
    """Logits found in a model's output.

    ``value``: ``[T, N, C]`` (``kind == "per-step"``) or ``[N, C]`` (``"aggregated"``);
    ``description``: one line for reports, e.g. ``"per-step logits [T=4, N=8, C=10] (element 1 of a
    tuple of 2)"``. :meth:`per_step` gives ``[T, N, C]`` either way (``T = 1`` for aggregated logits),
    the form gradflow's losses take: the CE of aggregated logits is then exactly their cross-entropy.
    """

    value: torch.Tensor
    kind: str
    description: str

    def per_step(self) -> torch.Tensor:
        return self.value if self.kind == "per-step" else self.value.unsqueeze(0)


def _pick(out: Any, output_index: Union[int, str, None]) -> Tuple[Any, str]:
    """The element of a tuple/list/dict output that holds the logits, and how it was chosen."""
    if isinstance(out, torch.Tensor):
        if output_index is not None:
            raise UsageError("The model returned a single tensor; leave output_index unset.", arguments=("output_index",))
        return out, ""
    if isinstance(out, Mapping):
        keys = [k for k in out if isinstance(out[k], torch.Tensor)]
        if output_index is None and len(keys) == 1:
            return out[keys[0]], f" (entry {keys[0]!r}, the only tensor in the output dict)"
        if output_index is None or output_index not in out:
            raise UsageError(f"The model returned a dict with tensor entries {keys}; choose one with output_index KEY.",
                             arguments=("output_index",))
        return out[output_index], f" (entry {output_index!r} of the output dict)"
    if isinstance(out, (tuple, list)):
        shapes = ", ".join(str(list(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__ for v in out)
        tensors = [i for i, v in enumerate(out) if isinstance(v, torch.Tensor)]
        if output_index is None:
            if len(tensors) != 1:
                raise UsageError(f"The model returned a {type(out).__name__} of {len(out)} ({shapes}); choose the "
                                 f"element holding the logits with output_index 0..{len(out) - 1}.",
                                 arguments=("output_index",))
            return out[tensors[0]], f" (element {tensors[0]}, the only tensor of a {type(out).__name__} of {len(out)})"
        if isinstance(output_index, str) and output_index.lstrip("-").isdigit():
            output_index = int(output_index)
        if not isinstance(output_index, int) or not -len(out) <= output_index < len(out):
            raise UsageError(f"output_index {output_index} is out of range for a {type(out).__name__} of {len(out)} "
                             f"({shapes}).", arguments=("output_index",))
        return out[output_index], f" (element {output_index} of a {type(out).__name__} of {len(out)}: {shapes})"
    raise UsageError(f"The model returned {describe(out)}; gradflow needs logits as a tensor, or a tuple, list or "
                     "dict holding them.")


def extract_logits(out: Any, n_samples: int, *, output_index: Union[int, str, None] = None) -> Logits:
    """Find the logits for ``n_samples`` samples in a model's output ``out``.

    A 3-D tensor is per-step logits: ``[T, N, C]`` (time-major, gradflow's convention), or ``[N, T, C]``
    when only its first dimension equals ``N`` (then transposed, and the description says so). A 2-D
    tensor ``[N, C]`` is aggregated logits. Tuples, lists and dicts: see ``output_index``. Raises
    :class:`UsageError` with the shapes found when no reading fits.

    >>> lg = extract_logits((torch.zeros(4, 8, 10), torch.ones(4, 8, 10)), 8, output_index=1)
    >>> lg.kind, lg.description
    ('per-step', 'per-step logits [T=4, N=8, C=10] (element 1 of a tuple of 2: [4, 8, 10], [4, 8, 10])')
    """
    value, how = _pick(out, output_index)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise UsageError(f"The chosen model output{how} is {describe(value)}, not floating-point logits.",
                         arguments=("output_index",))
    shape = list(value.shape)
    if value.dim() == 2 and shape[0] == n_samples:
        return Logits(value, "aggregated", f"aggregated logits [N={shape[0]}, C={shape[1]}]{how}")
    if value.dim() == 3 and shape[1] == n_samples:
        return Logits(value, "per-step", f"per-step logits [T={shape[0]}, N={shape[1]}, C={shape[2]}]{how}")
    if value.dim() == 3 and shape[0] == n_samples:
        return Logits(value.transpose(0, 1), "per-step",
                      f"per-step logits [N={shape[0]}, T={shape[1]}, C={shape[2]}] read batch-first and made time-major{how}")
    raise UsageError(f"The model output{how} has shape {shape}; gradflow reads [T, N, C] or [N, C] logits with "
                     f"N={n_samples} samples.", arguments=("output_index",))


def model_logits(model: nn.Module, x: torch.Tensor, *, output_index: Union[int, str, None] = None,
                 time_major: Optional[bool] = None) -> Logits:
    """Reset the model's states, run ``model(x)`` (its own forward, ``x`` as given, cast to the model's
    floating dtype) and :func:`extract_logits` from the result.

    ``time_major`` says whether ``x`` is ``[T, N, ...]`` (the sample count is then ``x.shape[1]``);
    None: ``x.shape[0]`` is the sample count. Errors raised by the user's forward become one
    :class:`UsageError` sentence naming the exception and the input shape.
    """
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None and x.is_floating_point() and x.dtype != param.dtype:
        x = x.to(param.dtype)
    reset_states(model)
    try:
        out = model(x)
    except GradflowError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's forward may raise anything
        raise _raised(f"The model's forward on an input of shape {list(x.shape)}", err) from None
    n = x.shape[1] if time_major else x.shape[0]
    return extract_logits(out, n, output_index=output_index)
