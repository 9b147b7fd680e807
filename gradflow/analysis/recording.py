"""One model recorded over many input samples: memory estimate, batch size, the recorded backward passes
(leaving the model as it was found), the theory comparison and the run's ``summary.json`` entries."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import pandas as pd
import torch

from .. import theory
from ..errors import DataError, UsageError
from ..io.inputs import InputSource
from ..io.usermodel import model_logits
from ..losses import get_loss
from ..models import SpikingModel
from ..neurons import SpikingNeuron
from ..recorder import record, sample_bytes
from .config import MAX_AUTO_BATCH, AnalysisConfig, Progress, _bad
from .result import Analysis, versions

__all__ = ["estimate_memory", "retained_memory", "analyze_model"]


def _device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise _bad("device", f"device {name!r} was asked for but no CUDA device is available here.")
    return dev


@dataclass
class _Forward:
    """How a model is fed and read: its input layout and where its per-step logits are.

    gradflow's architectures (:class:`gradflow.models.SpikingModel`) return per-step logits
    ``[T, N, C]`` and take a static ``[N, ...]`` or time-major ``[T, N, ...]`` input (their rank says
    which). Any other model (the user's own network, :func:`gradflow.io.usermodel.load_user_model`) is
    run by :func:`gradflow.io.usermodel.model_logits`: states reset, its own forward, logits found in
    its output (``output_index`` picks a tuple element); ``time_major`` comes from the input source.
    """

    model: torch.nn.Module
    time_major: Optional[bool] = None
    output_index: Union[int, str, None] = None
    logits_description: Optional[str] = None

    @property
    def native(self) -> bool:
        return isinstance(self.model, SpikingModel)

    def is_time_major(self, x: torch.Tensor) -> bool:
        if self.time_major is not None:
            return bool(self.time_major)
        return self.native and x.dim() == self.model.static_rank + 1

    def first(self, x: torch.Tensor, y, n: int):
        """The first ``n`` samples of a batch (sample axis 1 for time-major input, else 0)."""
        xs = x[:, :n] if self.is_time_major(x) else x[:n]
        return xs, (None if y is None else y[:n])

    def count(self, x: torch.Tensor) -> int:
        return x.shape[1] if self.is_time_major(x) else x.shape[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, N, C]`` of the batch ``x``."""
        if self.native:
            return self.model(x)
        found = model_logits(self.model, x, output_index=self.output_index, time_major=self.is_time_major(x))
        self.logits_description = found.description
        return found.per_step()


def _layer_sizes(fwd: _Forward, x: torch.Tensor) -> List[int]:
    """Elements per sample of every neuron layer over all steps (``T * E_l``), from one no-grad forward
    of the first sample of ``x`` (a layer called once per step adds up its calls)."""
    sizes: Dict[int, int] = {}

    def count(mod, inp, out):
        spikes = out[0] if isinstance(out, (tuple, list)) else out  # snnTorch's Leaky returns (spk, mem)
        sizes[id(mod)] = sizes.get(id(mod), 0) + spikes.numel()

    handles = [m.register_forward_hook(count) for m in fwd.model.modules() if isinstance(m, SpikingNeuron)]
    try:
        one, _ = fwd.first(x, None, 1)
        with torch.no_grad():
            fwd.logits(one)
    finally:
        for h in handles:
            h.remove()
    return list(sizes.values())


def _steps(model: torch.nn.Module, x: torch.Tensor, fwd: _Forward) -> int:
    """The model's number of time steps T (its ``T``, else the length of a time-major input, else 1)."""
    return int(getattr(model, "T", x.shape[0] if fwd.is_time_major(x) else 1))


def estimate_memory(model: torch.nn.Module, x: torch.Tensor, *, pairs: bool, max_lag: Optional[int],
                    time_major: Optional[bool] = None, output_index: Union[int, str, None] = None) -> float:
    """Estimated peak bytes of one recorded forward+backward of the batch ``x``.

    One no-grad forward of a single sample measures each neuron layer's size ``E_l`` (elements per
    step). The autograd graph of the neurons keeps about 8 tensors of ``T * E_l`` per layer; the
    recorder adds, for the layer it is finishing, about 12 such tensors (u, delta, spatial, temporal,
    eps, Jacobian entries) and, with pairs, 3 tensors of ``(K + 1) * E_l`` (``K`` the largest lag).
    The estimate is proportional to the number of samples in ``x``; what the recorder keeps per sample
    across passes is :func:`retained_memory`. ``time_major``: whether ``x`` is ``[T, N, ...]`` (None:
    a gradflow model's rank says); ``output_index``: where the logits are in the output of a model that
    is not a gradflow architecture (:func:`gradflow.io.usermodel.extract_logits`).
    """
    return _pass_bytes(_Forward(model, time_major, output_index), x, pairs, max_lag)


def _pass_bytes(fwd: _Forward, x: torch.Tensor, pairs: bool, max_lag: Optional[int]) -> float:
    sizes = _layer_sizes(fwd, x)
    if not sizes:
        return 0.0
    n = fwd.count(x)
    T = _steps(fwd.model, x, fwd)
    elem = torch.finfo(x.dtype).bits // 8 if x.is_floating_point() else 4
    per_layer = [s * n * elem for s in sizes]  # T * E_l * N * bytes
    K = (T - 1) if max_lag is None else min(max_lag, T - 1)
    graph = 8 * sum(per_layer)
    transient = max(12 * b + (3 * (K + 1) * b / T if pairs else 0) for b in per_layer)
    return float(graph + transient)


def retained_memory(model: torch.nn.Module, x: torch.Tensor, samples: int, *, pairs: bool,
                    max_lag: Optional[int], time_major: Optional[bool] = None,
                    output_index: Union[int, str, None] = None) -> float:
    """Bytes the recorder keeps for ``samples`` samples until the end of the analysis: per sample and
    layer :func:`gradflow.recorder.sample_bytes` (the per-sample sums the intervals resample)."""
    return _kept_bytes(_Forward(model, time_major, output_index), x, samples, pairs, max_lag)


def _kept_bytes(fwd: _Forward, x: torch.Tensor, samples: int, pairs: bool, max_lag: Optional[int]) -> float:
    sizes = _layer_sizes(fwd, x)
    return float(samples * len(sizes) * sample_bytes(_steps(fwd.model, x, fwd), max_lag, pairs, transport=pairs))


def _amount(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 0.1 * 2**30 else f"{nbytes / 2**20:.2g} MiB"


def _batch_size(fwd: _Forward, source: InputSource, cfg: AnalysisConfig, dev, dtype) -> int:
    """``cfg.batch_size``, checked against the memory limit, or the automatic choice (see AnalysisConfig).

    The limit covers one backward pass (:func:`estimate_memory`) plus what is kept for all
    ``cfg.samples`` samples (:func:`retained_memory`).
    """
    probe = next(iter(source.batches(1, 1, cfg.seed)), None)
    if probe is None:
        raise DataError("The input source gave no batches to analyse.")
    x = probe[0].to(dev, dtype=dtype)
    per_sample = _pass_bytes(fwd, x, cfg.pairs, cfg.max_lag)
    kept = _kept_bytes(fwd, x, cfg.samples, cfg.pairs, cfg.max_lag)
    limit = None if cfg.memory_limit_gb is None else cfg.memory_limit_gb * 2**30 - kept
    cap = min(cfg.samples, MAX_AUTO_BATCH)
    if cfg.batch_size is not None:
        size = min(cfg.batch_size, cfg.samples)
    elif limit is None or cap * per_sample <= limit:
        size = cap
    elif limit <= 0:
        size = 1
    else:  # the largest power of two that fits (1 if none does: refused below)
        size = 2 ** max(0, int(math.floor(math.log2(limit / per_sample))))
    if limit is not None and size * per_sample > limit:
        raise UsageError(
            f"Recording {cfg.samples} samples, {size} per backward pass, needs about "
            f"{_amount(size * per_sample + kept)}, above the {cfg.memory_limit_gb:g} GiB limit; use max_lag, "
            "a smaller batch_size or fewer samples, or raise memory_limit_gb.",
            arguments=("max_lag", "batch_size", "samples", "memory_limit_gb"))
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
    labelled: bool = True  # every batch came with labels

    @property
    def samples(self) -> int:
        return int(sum(self.sizes))

    @property
    def loss(self) -> float:
        return float(np.average(self.losses, weights=self.sizes))


def _labels(y, logits: torch.Tensor, dev) -> torch.Tensor:
    """The batch's labels on ``dev``, checked against the ``C`` classes of the logits ``[T, N, C]``;
    without labels, the model's own predictions (argmax of the time-mean logits)."""
    if y is None:
        return logits.detach().mean(0).argmax(-1)
    y = y.to(dev)
    C = logits.shape[-1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
        raise DataError(f"Labels must lie in 0..{C - 1}; found {int(y.min())}..{int(y.max())}.")
    return y


def _record_batches(fwd: _Forward, source: InputSource, cfg: AnalysisConfig, label: str,
                    progress: Optional[Progress]) -> Tuple[Any, _Tally, int]:
    """Record ``cfg.samples`` samples of ``source``; returns the closed recorder, the tally, the batch size."""
    model = fwd.model
    dev = _device(cfg.device)
    task = getattr(source, "task", None)
    loss_fn = get_loss(cfg.loss)
    tally = _Tally()
    with _left_as_found(model) as params:
        model.to(dev)
        model.train(cfg.mode == "train")
        dtype = params[0].dtype if params else torch.float32
        size = _batch_size(fwd, source, cfg, dev, dtype)
        with record(model, pairs=cfg.pairs, weights=cfg.weights, max_lag=cfg.max_lag, transport=cfg.pairs) as rec:
            for x, y in source.batches(size, cfg.batches(size), cfg.seed):
                x, y = fwd.first(x, y, cfg.samples - tally.samples)
                logits = fwd.logits(x.to(dev, dtype=dtype))
                tally.labelled &= y is not None
                y = _labels(y, logits, dev)
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


def _summed(per_sample: Optional[Dict[str, Dict[str, np.ndarray]]]) -> Optional[Dict[str, Dict[str, np.ndarray]]]:
    """The window predictor's inputs per layer (:func:`gradflow.theory.transport_inputs`) summed over
    the recorded samples (``Recorder.transport_inputs()`` keeps them per sample), or None."""
    if not per_sample:
        return None
    return {layer: {k: (v if k == "zone_edges" else np.asarray(v).sum(axis=0)) for k, v in inputs.items()}
            for layer, inputs in per_sample.items()}


def _theory(tables: Dict[str, pd.DataFrame], cfg: AnalysisConfig, transport, warnings: List[str]) -> pd.DataFrame:
    """The theory comparison of the recorded lag decay (never sinks a measurement: failures warn).

    ``transport``: the default window model's inputs per layer (:func:`_summed`); without them the
    theory falls back to its ``independent`` model and says so in the table's ``model`` column.
    """
    layers = tables["layers"]
    first = layers.iloc[0]
    # the Monte Carlo 'simulation' comparison costs seconds per layer; analyze compares with 'independent'
    options = {"extra_models": ("independent",)}
    if cfg.theory_model is not None:
        options["model"] = cfg.theory_model
    if transport is not None:
        options["transport"] = transport
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


def _meta(fwd: _Forward, source: InputSource, cfg: AnalysisConfig, tables, tally: _Tally, batch_size: int,
          warnings: List[str]) -> Dict[str, Any]:
    """The ``summary.json`` entries of one run (docs/reference.md, summary.json)."""
    model = fwd.model
    layers, per = tables["layers"], tables["per_step"]
    first = layers.iloc[0]
    task = getattr(source, "task", None)
    # accuracy only where labels are known: not for random labels, nor for inputs without labels
    labelled = getattr(source, "kind", "") != "random" and tally.labelled
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
        "logits": fwd.logits_description or "per-step logits [T, N, C] of a gradflow architecture",
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
        "n_layers": int(len(layers)),
        "nonfinite": int(per["nonfinite"].sum()),
        "warnings": warnings,
        "versions": versions(),
    }


def analyze_model(model: torch.nn.Module, source: InputSource, cfg: AnalysisConfig, label: str,
                  progress: Optional[Progress]) -> Analysis:
    """Record one model and build its :class:`Analysis`."""
    fwd = _Forward(model, getattr(source, "time_major", None), cfg.output_index)
    rec, tally, batch_size = _record_batches(fwd, source, cfg, label, progress)
    tables = _recorded_tables(rec, cfg)
    warnings: List[str] = []
    transport = None
    if cfg.pairs:
        transport = rec.transport_inputs() or None
        tables["theory"] = _theory(tables, cfg, _summed(transport), warnings)
    nonfinite = int(tables["per_step"]["nonfinite"].sum())
    if nonfinite or tally.nonfinite:
        warnings.append(
            f"{nonfinite} non-finite gradient entries (NaN/Inf) were recorded"
            + (f" and {tally.nonfinite} batch losses were not finite" if tally.nonfinite else "")
            + "; affected numbers are NaN in the tables."
        )
    meta = _meta(fwd, source, cfg, tables, tally, batch_size, warnings)
    return Analysis(tables=tables, meta=meta, samples=rec.samples(), transport=transport, warnings=warnings,
                    config=cfg)
