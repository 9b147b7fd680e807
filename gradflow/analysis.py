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

import contextlib
import dataclasses
import math
import platform
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import scipy
import torch

from . import __version__, report, stats, theory
from .errors import DataError, UsageError
from .io.checkpoints import ASSETS, LoadedModel, load_checkpoint
from .io.inputs import InputSource, resolve_input
from .losses import get_loss
from .neurons import SpikingNeuron
from .recorder import record
from .schema import RECORD_MODES

__all__ = [
    "Analysis", "AnalysisConfig", "analyze", "combine", "estimate_memory", "run_names", "versions",
    "MODES", "MAX_AUTO_BATCH",
]

#: How the model runs while it is recorded: ``eval`` (batch norm uses its running statistics) or
#: ``train`` (batch statistics; the running statistics are restored afterwards).
MODES = RECORD_MODES

#: The largest batch the automatic batch size picks (larger batches barely speed up a CPU).
MAX_AUTO_BATCH = 256

#: ``progress(run, samples_done, samples_total)``, called after every recorded backward pass.
Progress = Callable[[str, int, int], None]

ModelLike = Union[torch.nn.Module, LoadedModel, str, Path]


def _bad(argument: str, message: str) -> UsageError:
    """A :class:`UsageError` about the library argument ``argument`` (named in ``err.arguments``, so
    that the command line can show its own flag in its place: ``max_lag`` -> ``--max-lag``)."""
    return UsageError(message, arguments=(argument,))


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(name, f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class AnalysisConfig:
    """How :func:`analyze` records (every field is also a keyword argument of :func:`analyze`).

    ``samples``: input samples to record in all (default 1024), in backward passes of ``batch_size``
    samples (the last pass takes the remainder). ``batch_size=None`` picks the largest power of two up
    to :data:`MAX_AUTO_BATCH` whose estimated memory (:func:`estimate_memory`) fits ``memory_limit_gb``.
    ``seed``: seed of the input batches. ``loss``: ``ce`` (mean over t of the cross-entropy of the step
    logits) or ``tet``; a built-in task scores its own readout steps with it. ``mode``: one of
    :data:`MODES`. ``device``: ``cpu``, ``cuda`` or ``cuda:N``. ``pairs``: record the pair norms, the
    lag table and the theory comparison (cost grows with ``T * (max_lag + 1)``). ``weights``: record
    the spatial/temporal split of the weight gradients. ``max_lag``: the largest lag recorded
    (None: all ``T - 1``). ``memory_limit_gb``: refuse to record when the estimated memory of one
    backward pass exceeds it (None: no check). ``theory_model``: the theory's prediction model for
    ``predicted_relative`` (None: the theory's default; :data:`gradflow.theory.MODELS`). ``resamples``:
    bootstrap resamples of the report's 95% intervals (over samples, seeded with ``seed``).

    Raises :class:`UsageError` naming the field on a bad value.

    >>> AnalysisConfig(samples=64).batches(16)
    4
    >>> AnalysisConfig(max_lag=-1)
    Traceback (most recent call last):
    ...
    gradflow.errors.UsageError: max_lag must be a non-negative integer, got -1.
    """

    samples: int = 1024
    batch_size: Optional[int] = None
    seed: int = 0
    loss: str = "ce"
    mode: str = "eval"
    device: str = "cpu"
    pairs: bool = True
    weights: bool = True
    max_lag: Optional[int] = None
    memory_limit_gb: Optional[float] = 8.0
    theory_model: Optional[str] = None
    resamples: int = stats.DEFAULT_RESAMPLES

    def __post_init__(self) -> None:
        _positive_int("samples", self.samples)
        _positive_int("resamples", self.resamples)
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _bad("seed", f"seed must be an integer, got {self.seed!r}.")
        get_loss(self.loss)
        if self.mode not in MODES:
            raise _bad("mode", f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise _bad("device", f"device must be cpu, cuda or cuda:N, got {self.device!r}.") from None
        if self.max_lag is not None and (isinstance(self.max_lag, bool) or not isinstance(self.max_lag, int)
                                         or self.max_lag < 0):
            raise _bad("max_lag", f"max_lag must be a non-negative integer, got {self.max_lag!r}.")
        if self.memory_limit_gb is not None and not (self.memory_limit_gb > 0):
            raise _bad("memory_limit_gb", f"memory_limit_gb must be positive, got {self.memory_limit_gb!r}.")
        if self.theory_model is not None and self.theory_model not in theory.MODELS:
            raise _bad("theory_model", f"theory_model must be one of {', '.join(theory.MODELS)}, "
                                       f"got {self.theory_model!r}.")

    def batches(self, batch_size: int) -> int:
        """Backward passes needed for :attr:`samples` at ``batch_size`` samples each."""
        return math.ceil(self.samples / batch_size)


@dataclass
class Analysis:
    """The result of :func:`analyze`: tables, the per-layer summary and the run's metadata.

    ``tables``: the recorder's ``per_step``, ``pairs``, ``lags``, ``weights``, the ``theory`` comparison
    and ``layers`` (each recorded layer's neuron options); with several runs each has a last column
    ``run``. ``meta``: what ``summary.json`` holds besides the per-layer summary (model, neuron, T, tau,
    loss, accuracy, inputs, samples, settings, versions; with several runs ``meta["runs"]`` holds each
    run's own). ``samples``: the recorder's per-sample sums that the intervals resample (None when the
    recorder does not provide them: backward passes are resampled instead). ``warnings``: sentences
    about what may make numbers unreliable (non-finite gradients, a skipped theory comparison).
    ``config``: the settings it was recorded with.
    """

    tables: Dict[str, pd.DataFrame]
    meta: Dict[str, Any]
    samples: Optional[dict] = None
    warnings: List[str] = field(default_factory=list)
    config: AnalysisConfig = field(default_factory=AnalysisConfig)

    @cached_property
    def statistics(self) -> "report.Statistics":
        """Per-layer summary and lag profile with 95% bootstrap intervals
        (:func:`gradflow.report.layer_statistics`), computed once."""
        return report.layer_statistics(self.tables, self.samples, n_resamples=self.config.resamples,
                                       seed=self.config.seed)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (run,) layer with intervals (columns in docs/reference.md)."""
        return self.statistics.summary

    def findings(self) -> List[str]:
        """The report's findings in words, one sentence per layer or comparison."""
        return report.findings(self.summary)

    @property
    def title(self) -> str:
        """``"gradflow: LIF (mlp) vs CLIF (mlp)"`` for a comparison, ``"gradflow: mlp"`` for one run."""
        runs = self.meta.get("runs")
        if runs:
            return "gradflow: " + " vs ".join(f"{name} ({r['model']})" for name, r in runs.items())
        return f"gradflow: {self.meta.get('model', 'model')}"

    def write(self, out: Union[str, Path], *, force: bool = False, title: Optional[str] = None) -> Path:
        """Write the report directory ``out`` atomically (layout in ``docs/reference.md``); returns its path.

        Raises :class:`UsageError` when ``out`` exists and ``force`` is false, or when it exists but is
        not a previous report.
        """
        st = self.statistics
        return report.write_report(out, summary_json=self.meta, samples=self.samples, title=title or self.title,
                                   tables=dict(self.tables, summary=st.summary, lag_profile=st.profile),
                                   force=force, n_resamples=self.config.resamples, seed=self.config.seed)


# ----------------------------------------------------------------------------- helpers


def versions() -> Dict[str, str]:
    """Versions of gradflow and the libraries that shape its numbers."""
    return {
        "gradflow": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "pandas": pd.__version__, "python": platform.python_version(),
    }


def run_names(loaded: Sequence[LoadedModel]) -> List[str]:
    """Run labels for a comparison: the neuron kinds (``LIF``, ``CLIF``) when they differ, else the file
    stems, else ``"<i>:<stem>"``."""
    kinds = [lm.config["neuron"].upper() for lm in loaded]
    if len(set(kinds)) == len(kinds):
        return kinds
    stems = [Path(lm.path).stem for lm in loaded]
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


def _device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _bad("device", f"device {name!r} was asked for but no CUDA device is available here.")
    return dev


def _static_rank(model: torch.nn.Module) -> int:
    return getattr(model, "static_rank", 4)


def _n_samples(model: torch.nn.Module, x: torch.Tensor) -> int:
    return x.shape[0] if x.dim() == _static_rank(model) else x.shape[1]


def _first_samples(model: torch.nn.Module, x: torch.Tensor, y, n: int):
    """The first ``n`` samples of a batch (sample axis 0 for static input, 1 for time-major input)."""
    xs = x[:n] if x.dim() == _static_rank(model) else x[:, :n]
    return xs, (None if y is None else y[:n])


def estimate_memory(model: torch.nn.Module, x: torch.Tensor, *, pairs: bool, max_lag: Optional[int]) -> float:
    """Estimated peak bytes of one recorded forward+backward of the batch ``x``.

    One no-grad forward of a single sample measures each neuron layer's size ``E_l`` (elements per
    step). The autograd graph of the neurons keeps about 8 tensors of ``T * E_l`` per layer; the
    recorder adds, for the layer it is finishing, about 12 such tensors (u, delta, spatial, temporal,
    eps, Jacobian entries) and, with pairs, 3 tensors of ``(K + 1) * E_l`` (``K`` the largest lag).
    The estimate is proportional to the number of samples in ``x``.
    """
    sizes: List[int] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: sizes.append(out.shape[0] * out[0, :1].numel()))
               for m in model.modules() if isinstance(m, SpikingNeuron)]
    try:
        one, _ = _first_samples(model, x, None, 1)
        with torch.no_grad():
            model(one)
    finally:
        for h in handles:
            h.remove()
    if not sizes:
        return 0.0
    n = _n_samples(model, x)
    T = getattr(model, "T", 1)
    elem = torch.finfo(x.dtype).bits // 8 if x.is_floating_point() else 4
    per_layer = [s * n * elem for s in sizes]  # T * E_l * N * bytes
    K = (T - 1) if max_lag is None else min(max_lag, T - 1)
    graph = 8 * sum(per_layer)
    transient = max(12 * b + (3 * (K + 1) * b / T if pairs else 0) for b in per_layer)
    return float(graph + transient)


def _batch_size(model: torch.nn.Module, source: InputSource, cfg: AnalysisConfig, dev, dtype) -> int:
    """``cfg.batch_size``, checked against the memory limit, or the automatic choice (see AnalysisConfig)."""
    probe = next(iter(source.batches(1, 1, cfg.seed)), None)
    if probe is None:
        raise DataError("The input source gave no batches to analyse.")
    per_sample = estimate_memory(model, probe[0].to(dev, dtype=dtype), pairs=cfg.pairs, max_lag=cfg.max_lag)
    limit = None if cfg.memory_limit_gb is None else cfg.memory_limit_gb * 2**30
    cap = min(cfg.samples, MAX_AUTO_BATCH)
    if cfg.batch_size is not None:
        size = min(cfg.batch_size, cfg.samples)
    elif limit is None or cap * per_sample <= limit:
        size = cap
    else:  # the largest power of two that fits (1 if none does: refused below)
        size = 2 ** max(0, int(math.floor(math.log2(limit / per_sample))))
    if limit is not None and size * per_sample > limit:
        need = size * per_sample
        amount = f"{need / 2**30:.1f} GiB" if need >= 0.1 * 2**30 else f"{need / 2**20:.2g} MiB"
        raise UsageError(
            f"Recording {size} sample(s) per backward pass needs about {amount}, "
            f"above the {cfg.memory_limit_gb:g} GiB limit; use max_lag, a smaller batch_size, or raise "
            "memory_limit_gb.", arguments=("max_lag", "batch_size", "memory_limit_gb"))
    return size


@contextlib.contextmanager
def _left_as_found(model: torch.nn.Module) -> Iterator[List[torch.nn.Parameter]]:
    """Restore the model's training flags, batch-norm buffers, gradients and device on exit.

    Yields the parameters with their gradients cleared (the recording's backward passes must not add
    to the caller's gradients).
    """
    was_training = {m: m.training for m in model.modules()}
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    params = list(model.parameters())
    old_grads = [p.grad for p in params]
    old_device = params[0].device if params else torch.device("cpu")
    try:
        for p in params:
            p.grad = None
        yield params
    finally:
        model.to(old_device)
        for m, flag in was_training.items():
            m.training = flag
        if bn_state:
            sd = model.state_dict()
            for k, v in bn_state.items():
                sd[k].copy_(v)
        for p, g in zip(params, old_grads):
            p.grad = g


# ----------------------------------------------------------------------------- one run


@dataclass
class _Tally:
    """Loss and accuracy over the recorded batches."""

    losses: List[float] = field(default_factory=list)
    sizes: List[int] = field(default_factory=list)
    correct: int = 0
    nonfinite: int = 0

    @property
    def samples(self) -> int:
        return int(sum(self.sizes))

    @property
    def loss(self) -> float:
        return float(np.average(self.losses, weights=self.sizes))


def _labels(model: torch.nn.Module, x: torch.Tensor, y, dev) -> torch.Tensor:
    """The batch's labels on ``dev``, checked; without labels, the model's own predictions."""
    if y is None:
        with torch.no_grad():
            return model(x).mean(0).argmax(-1)
    y = y.to(dev)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
        raise DataError(f"Labels must lie in 0..{model.num_classes - 1}; found {int(y.min())}..{int(y.max())}.")
    return y


def _record_batches(model, source: InputSource, cfg: AnalysisConfig, label: str,
                    progress: Optional[Progress]) -> Tuple[Any, _Tally, int]:
    """Record ``cfg.samples`` samples of ``source``; returns the closed recorder, the tally, the batch size."""
    dev = _device(cfg.device)
    task = getattr(source, "task", None)
    loss_fn = get_loss(cfg.loss)
    tally = _Tally()
    with _left_as_found(model) as params:
        model.to(dev)
        model.train(cfg.mode == "train")
        dtype = params[0].dtype if params else torch.float32
        size = _batch_size(model, source, cfg, dev, dtype)
        with record(model, pairs=cfg.pairs, weights=cfg.weights, max_lag=cfg.max_lag) as rec:
            for x, y in source.batches(size, cfg.batches(size), cfg.seed):
                x, y = _first_samples(model, x, y, cfg.samples - tally.samples)
                x = x.to(dev, dtype=dtype)
                y = _labels(model, x, y, dev)
                logits = model(x)
                value = task.loss(logits, y, kind=cfg.loss) if task is not None else loss_fn(logits, y)
                value.backward()
                for p in params:
                    p.grad = None
                with torch.no_grad():
                    pred = task.predict(logits) if task is not None else logits.mean(0).argmax(-1)
                tally.correct += int((pred == y).sum())
                tally.losses.append(float(value.detach()))
                tally.nonfinite += not math.isfinite(tally.losses[-1])
                tally.sizes.append(int(y.numel()))
                if progress is not None:
                    progress(label, tally.samples, cfg.samples)
    if not tally.losses:
        raise DataError("The input source gave no batches to analyse.")
    return rec, tally, size


def _recorded_tables(rec, cfg: AnalysisConfig) -> Dict[str, pd.DataFrame]:
    tables = {"per_step": rec.per_step(), "layers": rec.layer_info()}
    if cfg.pairs:
        tables["pairs"] = rec.pairs()
        tables["lags"] = rec.lags()
    if cfg.weights:
        tables["weights"] = rec.weights()
    return tables


def _theory(tables: Dict[str, pd.DataFrame], cfg: AnalysisConfig, warnings: List[str]) -> pd.DataFrame:
    """The theory comparison of the recorded lag decay (never sinks a measurement: failures warn)."""
    layers = tables["layers"]
    first = layers.iloc[0]
    options = {} if cfg.theory_model is None else {"model": cfg.theory_model}
    try:
        return theory.theory_table(
            tables["lags"], tables["per_step"], neuron=None, tau={r.layer: float(r.tau) for r in layers.itertuples()},
            v_threshold=float(first["v_threshold"]), surrogate=str(first["surrogate"]), alpha=float(first["alpha"]),
            v_reset=None if first["reset"] == "soft" else float(first["v_reset"]),
            detach_reset=bool(first["detach_reset"]), decay_input=bool(first["decay_input"]),
            max_lag=cfg.max_lag, **options,
        )
    except Exception as err:  # noqa: BLE001 - theory must never sink a measurement
        warnings.append(f"theory comparison skipped: {err}")
        return pd.DataFrame(columns=list(theory.THEORY_COLUMNS))


def _tau_summary(layers: pd.DataFrame):
    taus = layers["tau"].astype(float).round(6).unique()
    return float(taus[0]) if len(taus) == 1 else {r.layer: float(r.tau) for r in layers.itertuples()}


def _meta(model, source: InputSource, cfg: AnalysisConfig, tables, tally: _Tally, batch_size: int,
          warnings: List[str]) -> Dict[str, Any]:
    """The ``summary.json`` entries of one run (docs/reference.md, summary.json)."""
    layers, per = tables["layers"], tables["per_step"]
    first = layers.iloc[0]
    task = getattr(source, "task", None)
    labelled = getattr(source, "kind", "") != "random"  # random labels: accuracy means nothing
    return {
        "model": (getattr(model, "config", None) or {}).get("name", type(model).__name__),
        "neuron": str(first["neuron"]),
        "T": int(getattr(model, "T", int(per["t"].max()) + 1)),
        "tau": _tau_summary(layers),
        "v_threshold": float(first["v_threshold"]),
        "surrogate": str(first["surrogate"]),
        "alpha": float(first["alpha"]),
        "reset": str(first["reset"]),
        "loss": tally.loss,
        "loss_per_batch": tally.losses,
        "loss_kind": cfg.loss if task is None else f"task:{cfg.loss}",
        "accuracy": tally.correct / tally.samples if labelled and tally.samples else None,
        "inputs": getattr(source, "describe", str(source)),
        "input_kind": getattr(source, "kind", "?"),
        "samples": tally.samples,
        "batch_size": batch_size,
        "batches": len(tally.losses),
        "seed": cfg.seed,
        "mode": cfg.mode,
        "device": str(_device(cfg.device)),
        "pairs": cfg.pairs,
        "max_lag": cfg.max_lag,
        "layers": int(len(layers)),
        "nonfinite": int(per["nonfinite"].sum()),
        "warnings": warnings,
        "versions": versions(),
    }


def _analyze_one(model: torch.nn.Module, source: InputSource, cfg: AnalysisConfig, label: str,
                 progress: Optional[Progress]) -> Analysis:
    """Record one model and build its :class:`Analysis`."""
    rec, tally, batch_size = _record_batches(model, source, cfg, label, progress)
    tables = _recorded_tables(rec, cfg)
    warnings: List[str] = []
    if cfg.pairs:
        tables["theory"] = _theory(tables, cfg, warnings)
    nonfinite = int(tables["per_step"]["nonfinite"].sum())
    if nonfinite or tally.nonfinite:
        warnings.append(
            f"{nonfinite} non-finite gradient entries (NaN/Inf) were recorded"
            + (f" and {tally.nonfinite} batch losses were not finite" if tally.nonfinite else "")
            + "; affected numbers are NaN in the tables."
        )
    samples = rec.samples() if hasattr(rec, "samples") else None  # per-sample sums (newer recorders)
    meta = _meta(model, source, cfg, tables, tally, batch_size, warnings)
    return Analysis(tables=tables, meta=meta, samples=samples, warnings=warnings, config=cfg)


# ----------------------------------------------------------------------------- the pipeline


def _as_runs(models) -> Dict[str, Union[torch.nn.Module, LoadedModel]]:
    """``{run name: model or LoadedModel}`` from one model, a list or a mapping (paths are loaded)."""
    def loaded(m):
        return load_checkpoint(m) if isinstance(m, (str, Path)) else m

    if isinstance(models, Mapping):
        return {str(k): loaded(v) for k, v in models.items()}
    items = [loaded(m) for m in (models if isinstance(models, (list, tuple)) else [models])]
    if not items:
        raise _bad("models", "models is empty; give a model, a checkpoint or a list of them.")
    if all(isinstance(m, LoadedModel) for m in items):
        names = run_names(items)
    else:
        names = [type(items[0]).__name__] if len(items) == 1 else [f"run{i}" for i in range(len(items))]
    return dict(zip(names, items))


def analyze(
    models: Union[ModelLike, Sequence[ModelLike], Mapping[str, ModelLike]],
    source: Optional[InputSource] = None,
    config: Optional[AnalysisConfig] = None,
    *,
    data: Optional[str] = None,
    input_file: Optional[Union[str, Path]] = None,
    trust: bool = False,
    progress: Optional[Progress] = None,
    **options: Any,
) -> Analysis:
    """Record the gradient flow of one or several models and compare it with theory.

    ``models``: a gradflow model (``nn.Module`` with gradflow neurons), a checkpoint loaded with
    :func:`gradflow.load_checkpoint`, a checkpoint path, or a list or ``{name: ...}`` mapping of these
    for a side-by-side analysis (list entries are named by :func:`run_names`).

    Inputs: ``source`` (an :class:`gradflow.io.inputs.InputSource`) for every model, else per model
    ``input_file`` (``.pt``/``.npz`` with ``x`` and optional ``y``), ``data`` (``cifar10:DIR``,
    ``cifar100:DIR``, ``task:NAME[:k=v,...]`` or ``random``), the task stored in a gradflow checkpoint,
    or labelled random input as the last resort (:func:`gradflow.io.inputs.resolve_input`). ``trust``:
    allow a full unpickle of input files (they may run code).

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
        loaded = item if isinstance(item, LoadedModel) else None
        model = loaded.model if loaded is not None else item
        if not isinstance(model, torch.nn.Module):
            raise _bad("models", f"models must be gradflow models or checkpoints, got {type(model).__name__}.")
        src = source or resolve_input(model, input_file=None if input_file is None else str(input_file),
                                      data=data, task_config=loaded.meta.get("task") if loaded else None,
                                      trust=trust)
        res = _analyze_one(model, src, cfg, name, progress)
        if loaded is not None:
            res.meta.update(checkpoint=_shown_path(loaded.path), checkpoint_format=loaded.format,
                            inferred=list(loaded.notes),
                            checkpoint_meta={k: v for k, v in loaded.meta.items()
                                             if isinstance(v, (int, float, str, dict, list))})
        results[name] = res
    return combine(results)


def combine(results: Mapping[str, Analysis]) -> Analysis:
    """Several analyses side by side: every table gets a last column ``run`` (extra columns follow the
    documented ones); ``meta["runs"]`` holds each run's metadata and the shared settings are repeated
    at the top level. One analysis is returned as it is."""
    if len(results) == 1:
        return next(iter(results.values()))
    tables: Dict[str, pd.DataFrame] = {}
    for name in dict.fromkeys(k for res in results.values() for k in res.tables):
        parts = [res.tables[name].assign(run=run) for run, res in results.items() if name in res.tables]
        tables[name] = pd.concat(parts, ignore_index=True)
    first = next(iter(results.values())).meta
    meta: Dict[str, Any] = {"runs": {run: res.meta for run, res in results.items()}, "versions": versions()}
    for key in ("T", "inputs", "samples", "batch_size", "batches", "seed", "mode", "device"):
        meta[key] = first.get(key)
    for key in ("model", "neuron"):
        meta[key] = " vs ".join(str(r.meta[key]) for r in results.values())
    for key in ("tau", "loss", "accuracy"):
        meta[key] = {run: r.meta[key] for run, r in results.items()}
    warnings = [f"{run}: {w}" for run, r in results.items() for w in r.warnings]
    meta["warnings"] = warnings
    samples = None
    if all(r.samples is not None for r in results.values()):
        samples = {run: r.samples for run, r in results.items()}
    return Analysis(tables=tables, meta=meta, samples=samples, warnings=warnings,
                    config=next(iter(results.values())).config)
