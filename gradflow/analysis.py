"""The analysis behind ``gradflow analyze``: record batches, compare with theory, return tables.

:func:`analyze` runs the recorder over a few batches of a model and returns an :class:`Analysis` with
the SPEC §3 tables, ``theory`` (measured vs predicted lag decay, :func:`gradflow.theory.theory_table`)
and the ``summary`` dictionary written to ``summary.json``. :func:`combine` puts several analyses side
by side with a ``run`` column. The model is left as it was found (training flag, gradients).

>>> import gradflow, torch
>>> from gradflow.io.inputs import resolve_input
>>> net = gradflow.models.build("mlp", neuron="clif", in_features=6, widths=(16,), num_classes=3, T=4)
>>> res = analyze(net, resolve_input(net), batch_size=8, batches=2)
>>> sorted(res.tables)[:3], res.summary["batches"]
(['lags', 'layers', 'pairs'], 2)
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

import numpy as np
import pandas as pd
import torch

from . import __version__
from .errors import DataError, UsageError
from .losses import get_loss
from .neurons import SpikingNeuron
from .recorder import record

__all__ = ["Analysis", "analyze", "combine", "estimate_memory", "versions"]


@dataclass
class Analysis:
    """Tables (``per_step``, ``pairs``, ``lags``, ``weights``, ``theory``, ``layers``) and summary."""

    tables: Dict[str, pd.DataFrame]
    summary: Dict[str, object]
    warnings: List[str] = field(default_factory=list)


def versions() -> Dict[str, str]:
    """Versions of gradflow and the libraries that shape its numbers."""
    import scipy

    return {
        "gradflow": __version__, "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "pandas": pd.__version__, "python": platform.python_version(),
    }


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"Unknown device {name!r}; use cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA device is available here.")
    return dev


def estimate_memory(model: torch.nn.Module, x: torch.Tensor, *, pairs: bool, max_lag: Optional[int]) -> float:
    """Estimated peak bytes of one recorded forward+backward of the batch ``x``.

    One no-grad forward of a single sample measures each neuron layer's size ``E_l`` (elements per
    step). The autograd graph of the neurons keeps about 8 tensors of ``T * E_l`` per layer; the
    recorder adds, for the layer it is finishing, about 12 such tensors (u, delta, spatial, temporal,
    eps, Jacobian entries) and, with pairs, 3 tensors of ``(K + 1) * E_l`` (``K`` the largest lag).
    """
    sizes: List[int] = []
    handles = []
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            handles.append(m.register_forward_hook(lambda mod, inp, out: sizes.append(out.shape[0] * out[0, :1].numel())))
    try:
        one = x[:1] if x.dim() == getattr(model, "static_rank", 4) else x[:, :1]
        with torch.no_grad():
            model(one)
    finally:
        for h in handles:
            h.remove()
    n = x.shape[0] if x.dim() == getattr(model, "static_rank", 4) else x.shape[1]
    T = getattr(model, "T", 1)
    elem = torch.finfo(x.dtype).bits // 8 if x.is_floating_point() else 4
    if not sizes:
        return 0.0
    per_layer = [s * n * elem for s in sizes]  # T * E_l * N * bytes
    K = (T - 1) if max_lag is None else min(max_lag, T - 1)
    graph = 8 * sum(per_layer)
    transient = max(12 * b + (3 * (K + 1) * b / T if pairs else 0) for b in per_layer)
    return float(graph + transient)


def analyze(
    model: torch.nn.Module,
    source,
    *,
    batch_size: int = 32,
    batches: int = 1,
    seed: int = 0,
    loss: str = "ce",
    mode: str = "eval",
    device: str = "cpu",
    pairs: bool = True,
    weights: bool = True,
    max_lag: Optional[int] = None,
    memory_limit_gb: Optional[float] = 8.0,
    theory_model: str = "independent",
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> Analysis:
    """Record ``batches`` batches of ``source`` through ``model`` and compare with theory.

    ``mode``: ``eval`` (batch norm uses running statistics) or ``train`` (batch statistics; running
    statistics are restored afterwards). ``loss``: ``ce`` (mean over t of CE of the step logits) or
    ``tet``; a built-in task scores with its own readout. Raises :class:`UsageError` on bad options and
    when the estimated memory exceeds ``memory_limit_gb`` (suggesting ``--max-lag`` or a smaller batch).
    """
    if mode not in ("eval", "train"):
        raise UsageError(f"--mode must be eval or train, got {mode!r}.")
    for name, v in (("batch size", batch_size), ("batches", batches)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise UsageError(f"The {name} must be a positive integer, got {v!r}.")
    if max_lag is not None and max_lag < 0:
        raise UsageError(f"--max-lag must be >= 0, got {max_lag}.")
    loss_fn = get_loss(loss)
    dev = _device(device)
    task = getattr(source, "task", None)
    was_training = {m: m.training for m in model.modules()}
    bn_state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    params = list(model.parameters())
    old_grads = [p.grad for p in params]
    old_device = params[0].device if params else torch.device("cpu")
    losses, correct, counted, n_used = [], 0, 0, 0
    nonfinite_losses = 0
    try:
        model.to(dev)
        model.train(mode == "train")
        for p in params:
            p.grad = None
        it = source.batches(batch_size, batches, seed)
        it = progress(it) if progress is not None else it
        with record(model, pairs=pairs, weights=weights, max_lag=max_lag) as rec:
            first = True
            for x, y in it:
                x = x.to(dev, dtype=params[0].dtype if params else x.dtype)
                if first and memory_limit_gb is not None:
                    need = estimate_memory(model, x, pairs=pairs, max_lag=max_lag)
                    if need > memory_limit_gb * 2**30:
                        raise UsageError(
                            f"Recording this batch needs about {need / 2**30:.1f} GiB, above the "
                            f"{memory_limit_gb:g} GiB limit; use --max-lag, a smaller --batch-size, "
                            "or raise --memory-limit."
                        )
                    first = False
                if y is None:
                    # no labels: the gradient of the loss towards the model's own predictions
                    with torch.no_grad():
                        y = model(x).mean(0).argmax(-1)
                y = y.to(dev)
                if y.numel() and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
                    raise DataError(
                        f"Labels must lie in 0..{model.num_classes - 1}; found {int(y.min())}..{int(y.max())}."
                    )
                logits = model(x)
                value = task.loss(logits, y, kind=loss) if task is not None else loss_fn(logits, y)
                value.backward()
                for p in params:
                    p.grad = None
                lv = float(value.detach())
                nonfinite_losses += not math.isfinite(lv)
                losses.append(lv)
                with torch.no_grad():
                    pred = task.predict(logits) if task is not None else logits.mean(0).argmax(-1)
                    correct += int((pred == y).sum())
                    counted += int(y.numel())
                n_used += int(y.numel())
        if not losses:
            raise DataError("The input source gave no batches to analyse.")
        tables = {
            "per_step": rec.per_step(),
            "pairs": rec.pairs() if pairs else None,
            "lags": rec.lags() if pairs else None,
            "weights": rec.weights() if weights else None,
            "layers": rec.layer_info(),
        }
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
    tables = {k: v for k, v in tables.items() if v is not None}
    warnings: List[str] = []
    layers = tables["layers"]
    if pairs:
        tables["theory"] = _theory(tables, layers, max_lag, theory_model, warnings)
    per = tables["per_step"]
    nonfinite = int(per["nonfinite"].sum())
    if nonfinite or nonfinite_losses:
        warnings.append(
            f"{nonfinite} non-finite gradient entries (NaN/Inf) were recorded"
            + (f" and {nonfinite_losses} batch losses were not finite" if nonfinite_losses else "")
            + "; affected numbers are NaN in the tables."
        )
    cfg = getattr(model, "config", {}) or {}
    first_layer = layers.iloc[0]
    summary = {
        "model": cfg.get("name", type(model).__name__),
        "neuron": str(first_layer["neuron"]),
        "T": int(getattr(model, "T", per["T"].iloc[0])),
        "tau": _tau_summary(layers),
        "v_threshold": float(first_layer["v_threshold"]),
        "surrogate": str(first_layer["surrogate"]),
        "alpha": float(first_layer["alpha"]),
        "reset": str(first_layer["reset"]),
        "loss": float(np.mean(losses)),
        "loss_per_batch": losses,
        "loss_kind": loss if task is None else f"task:{loss}",
        "accuracy": (correct / counted) if counted else None,
        "inputs": getattr(source, "describe", str(source)),
        "input_kind": getattr(source, "kind", "?"),
        "samples": n_used,
        "batch_size": batch_size,
        "batches": len(losses),
        "seed": seed,
        "mode": mode,
        "device": str(dev),
        "pairs": pairs,
        "max_lag": max_lag,
        "layers": int(len(layers)),
        "nonfinite": nonfinite,
        "warnings": warnings,
        "versions": versions(),
    }
    if getattr(source, "kind", "") == "random":
        summary["accuracy"] = None  # random labels: accuracy means nothing
    return Analysis(tables=tables, summary=summary, warnings=warnings)


def _tau_summary(layers: pd.DataFrame):
    taus = layers["tau"].astype(float).round(6).unique()
    return float(taus[0]) if len(taus) == 1 else {r.layer: float(r.tau) for r in layers.itertuples()}


def _theory(tables, layers, max_lag, model_name, warnings) -> pd.DataFrame:
    from . import theory

    first = layers.iloc[0]
    tau = {r.layer: float(r.tau) for r in layers.itertuples()}
    try:
        return theory.theory_table(
            tables["lags"], tables["per_step"], neuron=None, tau=tau, v_threshold=float(first["v_threshold"]),
            surrogate=str(first["surrogate"]), alpha=float(first["alpha"]),
            v_reset=None if first["reset"] == "soft" else float(first["v_reset"]),
            detach_reset=bool(first["detach_reset"]), decay_input=bool(first["decay_input"]),
            model=model_name, max_lag=max_lag,
        )
    except Exception as err:  # theory must never sink a measurement
        warnings.append(f"theory comparison skipped: {err}")
        return pd.DataFrame(columns=list(theory.THEORY_COLUMNS))


def combine(results: Dict[str, Analysis]) -> Analysis:
    """Several analyses side by side: every table gets a last column ``run`` (SPEC §3: extra columns
    follow the documented ones); the summary lists the runs."""
    if len(results) == 1:
        return next(iter(results.values()))
    tables: Dict[str, pd.DataFrame] = {}
    names = set()
    for res in results.values():
        names.update(res.tables)
    for name in names:
        parts = []
        for run, res in results.items():
            if name in res.tables:
                df = res.tables[name].copy()
                df["run"] = run
                parts.append(df)
        tables[name] = pd.concat(parts, ignore_index=True)
    summary = {"runs": {run: res.summary for run, res in results.items()}, "versions": versions()}
    first = next(iter(results.values())).summary
    for key in ("T", "inputs", "batch_size", "batches", "seed", "mode", "device"):
        summary[key] = first.get(key)
    summary["model"] = " vs ".join(str(r.summary["model"]) for r in results.values())
    summary["neuron"] = " vs ".join(str(r.summary["neuron"]) for r in results.values())
    summary["tau"] = {run: r.summary["tau"] for run, r in results.items()}
    summary["loss"] = {run: r.summary["loss"] for run, r in results.items()}
    summary["accuracy"] = {run: r.summary["accuracy"] for run, r in results.items()}
    warnings = [f"{run}: {w}" for run, r in results.items() for w in r.warnings]
    summary["warnings"] = warnings
    return Analysis(tables=tables, summary=summary, warnings=warnings)
