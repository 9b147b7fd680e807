"""The analysis workflow: models or checkpoints in, an :class:`Analysis` out, a report directory on request.

This is the library pipeline behind ``gradflow analyze``; the command only parses its options and
prints::

    import gradflow
    loaded = gradflow.load_checkpoint("model.pt")            # any supported checkpoint format
    result = gradflow.analyze(loaded, samples=1024)          # record, compare with theory
    result.summary                                           # one row per layer (docs/reference.md)
    result.write("gradflow-report")                          # tables, figures, report.md, index.html

:func:`analyze` records ``samples`` input samples in several backward passes of at most ``batch_size``
samples through the recorder (:func:`gradflow.record`) and compares the measured lag decay with the
closed-form theory (:func:`gradflow.theory.theory_table`). Several models (a list or a ``{name: model}``
mapping) give one side-by-side analysis whose tables carry a last column ``run``. Every model is left as
it was found: training flags, batch-norm running statistics, parameter gradients and device.

The tables (``per_step``, ``pairs``, ``lags``, ``weights``, ``theory``, ``layers``), the per-layer
summary and every entry of ``summary.json`` are defined in ``docs/reference.md``.

>>> import gradflow
>>> net = gradflow.models.build("mlp", neuron="clif", in_features=6, widths=(16,), num_classes=3, T=4)
>>> res = analyze(net, samples=16, batch_size=8)
>>> sorted(res.tables)[:3], res.meta["samples"], res.meta["batches"]
(['lags', 'layers', 'pairs'], 16, 2)
>>> list(res.summary["layer"])
['sn1']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch

from ..errors import UsageError
from ..io.checkpoints import ASSETS, LoadedModel, load_checkpoint
from ..io.inputs import InputSource, resolve_input
from ..io.usermodel import UserModel
from ..models import neurons_of
from .config import MAX_AUTO_BATCH, MODES, AnalysisConfig, Progress, _bad
from .recording import analyze_model, estimate_memory, retained_memory
from .result import Analysis, combine, versions

__all__ = [
    "Analysis", "AnalysisConfig", "analyze", "combine", "estimate_memory", "retained_memory", "run_names", "versions",
    "MODES", "MAX_AUTO_BATCH",
]

ModelLike = Union[torch.nn.Module, LoadedModel, UserModel, str, Path]
RunItem = Union[torch.nn.Module, LoadedModel, UserModel]


def _model(item: RunItem) -> torch.nn.Module:
    model = item.model if isinstance(item, (LoadedModel, UserModel)) else item
    if not isinstance(model, torch.nn.Module):
        raise _bad("models", f"models must be gradflow models or checkpoints, got {type(model).__name__}.")
    return model


def _kind(item: RunItem) -> str:
    if isinstance(item, LoadedModel):
        return str(item.config["neuron"]).upper()
    found = neurons_of(_model(item))
    return found[0].kind.upper() if found else type(_model(item)).__name__


def _stem(item: RunItem) -> str:
    if isinstance(item, LoadedModel):
        return Path(item.path).stem
    if isinstance(item, UserModel):
        return Path(item.checkpoint).stem if item.checkpoint else item.description
    return type(item).__name__


def run_names(items: Sequence[RunItem]) -> List[str]:
    """Run labels for a comparison: the neuron kinds (``LIF``, ``CLIF``) when they differ, else the
    checkpoint file stems (a model's class name), else ``"<i>:<stem>"``."""
    kinds = [_kind(item) for item in items]
    if len(set(kinds)) == len(kinds):
        return kinds
    stems = [_stem(item) for item in items]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i}:{s}" for i, s in enumerate(stems)]


def _shown_path(path: str) -> str:
    """A checkpoint path as reports show it: package data relative to the package, others as given."""
    p = Path(path)
    try:
        return str(Path("gradflow") / p.resolve().relative_to(ASSETS.parent))
    except ValueError:
        return str(p)


def _provenance(item: RunItem) -> Dict[str, Any]:
    """``summary.json`` entries saying where a run's model and weights came from."""
    if isinstance(item, LoadedModel):
        return dict(checkpoint=_shown_path(item.path), checkpoint_format=item.format, inferred=list(item.notes),
                    checkpoint_meta={k: v for k, v in item.meta.items() if isinstance(v, (int, float, str, dict, list))})
    if isinstance(item, UserModel):
        return dict(model_code=item.description, checkpoint=item.checkpoint and _shown_path(item.checkpoint),
                    checkpoint_format=item.format, converted_neurons=item.converted, inferred=list(item.notes))
    return {}


def _as_runs(models) -> Dict[str, RunItem]:
    """``{run name: model, LoadedModel or UserModel}`` from one, a list or a mapping (paths are loaded)."""
    def loaded(m):
        return load_checkpoint(m) if isinstance(m, (str, Path)) else m

    if isinstance(models, Mapping):
        return {str(k): loaded(v) for k, v in models.items()}
    items = [loaded(m) for m in (models if isinstance(models, (list, tuple)) else [models])]
    if not items:
        raise _bad("models", "models is empty; give a model, a checkpoint or a list of them.")
    return dict(zip(run_names(items), items))


def analyze(
    models: Union[ModelLike, Sequence[ModelLike], Mapping[str, ModelLike]],
    source: Optional[InputSource] = None,
    config: Optional[AnalysisConfig] = None,
    *,
    data: Optional[str] = None,
    input_file: Optional[Union[str, Path]] = None,
    time_major: Optional[bool] = None,
    trust: bool = False,
    progress: Optional[Progress] = None,
    **options: Any,
) -> Analysis:
    """Record the gradient flow of one or several models and compare it with theory.

    ``models``: a gradflow model (``nn.Module`` with gradflow neurons), a checkpoint loaded with
    :func:`gradflow.load_checkpoint`, the user's own network loaded with
    :func:`gradflow.io.usermodel.load_user_model` (fed through its own forward; ``output_index`` picks
    the logits in its output), a checkpoint path, or a list or ``{name: ...}`` mapping of these for a
    side-by-side analysis (list entries are named by :func:`run_names`).

    Inputs: ``source`` (an :class:`gradflow.io.inputs.InputSource`) for every model, else per model
    ``input_file`` (``.pt``/``.npz`` with ``x`` and optional ``y``; ``time_major`` says whether its
    ``x`` is ``[T, N, ...]``, None: read from its shape), ``data`` (``cifar10:DIR``, ``cifar100:DIR``,
    ``task:NAME[:k=v,...]`` or ``random``), the task stored in a gradflow checkpoint, or labelled random
    input as the last resort (:func:`gradflow.io.inputs.resolve_input`). ``trust``: allow a full unpickle
    of input files (they may run code).

    ``config`` (:class:`AnalysisConfig`) and keyword ``options`` (its fields, which win) say how to
    record. ``progress(run, samples_done, samples_total)`` is called after every backward pass.

    Returns an :class:`Analysis`. Raises :class:`UsageError` for bad options or inputs and
    :class:`DataError` for unusable data.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(AnalysisConfig)})
    if unknown:
        raise UsageError(f"Unknown analysis option {unknown[0]!r}; the options are "
                         f"{', '.join(f.name for f in dataclasses.fields(AnalysisConfig))}.")
    cfg = dataclasses.replace(config or AnalysisConfig(), **options)
    results: Dict[str, Analysis] = {}
    for name, item in _as_runs(models).items():
        model = _model(item)
        task = item.meta.get("task") if isinstance(item, LoadedModel) else None
        src = source or resolve_input(model, input_file=None if input_file is None else str(input_file),
                                      data=data, task_config=task, trust=trust, time_major=time_major)
        res = analyze_model(model, src, cfg, name, progress)
        res.meta.update(_provenance(item))
        results[name] = res
    return combine(results)
