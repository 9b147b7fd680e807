"""The :class:`Watch` object behind :func:`gradflow.watch` (see the package documentation)."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..errors import UsageError
from ..recorder import record
from .store import RunStore
from .summary import SUMMARY_COLUMNS, as_frame, summary_columns

__all__ = ["watch", "Watch", "COUNT_MODES"]

#: How steps are counted: each grad-enabled ``model(...)`` call, or each :meth:`Watch.step` call.
COUNT_MODES = ("forward", "manual")


def _rank() -> int:
    """This process's rank under ``torch.distributed`` (0 when it is not initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def _broadcast(obj):
    """``obj`` as rank 0 has it (a no-op without ``torch.distributed``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
    return obj


def _compiling() -> bool:
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling()) if is_compiling is not None else False


class _EagerStance:
    """``torch.compiler.set_stance("force_eager")`` shared by every watch that is recording.

    Entered when the first recorded step begins and left when the last one ends, so that watches of
    several models (whose recorded steps overlap in any order) restore the user's stance exactly once.
    A no-op on torch versions without ``set_stance``.
    """

    def __init__(self):
        self.users = 0
        self._ctx = None

    def enter(self) -> None:
        self.users += 1
        set_stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
        if self.users == 1 and set_stance is not None:
            self._ctx = set_stance("force_eager")   # takes effect now; remembers the previous stance

    def exit(self) -> None:
        self.users -= 1
        if self.users == 0 and self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


_EAGER = _EagerStance()


def _transport_rows(rec, step: int) -> Optional[Dict[str, list]]:
    """The window model's inputs of this step (``Recorder.transport_inputs()``, one row per backward pass
    with ``transport="pooled"``, summed; ``zone_edges`` kept as is) as the columns ``layer, inputs
    (JSON), train_step``; None when the recorder does not collect them."""
    if not getattr(rec, "transport_enabled", False):
        return None
    cols: Dict[str, list] = {"layer": [], "inputs": [], "train_step": []}
    for layer, inputs in rec.transport_inputs().items():
        summed = {k: (np.asarray(v) if k == "zone_edges" else np.asarray(v).sum(axis=0)).tolist()
                  for k, v in inputs.items()}
        cols["layer"].append(layer)
        cols["inputs"].append(json.dumps(summed))
        cols["train_step"].append(step)
    return cols


class Watch:
    """Records every ``every``-th step of a training loop into ``out``; see :func:`watch` and the module docs.

    Attributes: ``train_step`` (the step now running, counted from 0 over resumed runs),
    ``passes`` (backward passes recorded so far), ``out`` (the directory, or None), ``rank``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        every: Optional[int] = 100,
        out: Union[str, os.PathLike, None] = None,
        pairs: bool = False,
        weights: bool = True,
        max_lag: Optional[int] = None,
        layers: Optional[Sequence[str]] = None,
        loggers: Sequence[object] = (),
        count: str = "forward",
        n_resamples: int = 1000,
        seed: int = 0,
        start: Optional[int] = None,
    ):
        if not isinstance(model, nn.Module):
            raise UsageError(f"gradflow.watch expects a torch.nn.Module, got {type(model).__name__}.",
                             arguments=("model",))
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise UsageError(f"every must be a positive integer (or None for explicit recording only), "
                             f"got {every!r}.", arguments=("every",))
        if count not in COUNT_MODES:
            raise UsageError(f"Unknown count {count!r}; choose one of {', '.join(COUNT_MODES)}.",
                             arguments=("count",))
        for name, value, least in (("n_resamples", n_resamples, 1), ("start", start, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise UsageError(f"{name} must be an integer >= {least}, got {value!r}.", arguments=(name,))
        self.model, self.every, self.count = model, every, count
        # torch.compile(model) wraps the model: record the original, so layer names read as in eager code
        self._target = model._orig_mod if type(model).__name__ == "OptimizedModule" else model
        self.n_resamples, self.seed = n_resamples, int(seed)
        self._record_kw = dict(pairs=True, weights=bool(weights), max_lag=max_lag, layers=layers,
                               transport="pooled")   # transport.csv holds sums over the step's samples
        record(self._target, **self._record_kw)  # validates model, max_lag and layers now, not at step N
        self.write_pairs = bool(pairs)
        self.loggers = list(loggers)
        self.rank = _rank()
        settings = dict(every=every, pairs=bool(pairs), weights=bool(weights), max_lag=max_lag,
                        layers=None if layers is None else list(layers), count=count,
                        n_resamples=n_resamples, seed=self.seed)
        self.out = None if out is None else Path(out).expanduser()
        self._store = RunStore(self.out, settings, writer=self.rank == 0, start=start)
        state = _broadcast(self._store.state_counters())
        self.train_step, self.passes = int(state["train_step"]), int(state["passes"])
        self._rec = None           # the recorder of the step being recorded, if any
        self._rec_step: Optional[int] = None
        self._stance = False       # holding the shared force_eager stance while recording
        self._opt_hook = None      # optimiser post-hook while recording
        self._explicit = False     # inside recording()
        self._warned_compile = False
        self._started = False      # a step of this session has begun (forward seen, or step() called)
        self._closed = False
        self._pre = model.register_forward_pre_hook(self._on_forward) if count == "forward" else None
        if count == "manual" and self._due(self.train_step):
            self._attach(self.train_step)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Write the step in flight (if it was recorded and its backward ran), remove every hook, close loggers."""
        if self._closed:
            return
        self._closed = True
        try:
            self._flush()
        finally:
            if self._pre is not None:
                self._pre.remove()
                self._pre = None
            self._store.close(next_step=self._next_step())
            for lg in self.loggers:
                close = getattr(lg, "close", None)
                if close is not None:
                    close()

    @property
    def recording_now(self) -> bool:
        """True while a recorder is attached (a recorded step is in flight)."""
        return self._rec is not None

    @property
    def num_hooks(self) -> int:
        """Hooks this watch holds on the model now (the counter, plus the recorder's while recording)."""
        n = 1 if self._pre is not None else 0
        return n + (self._rec.num_hooks if self._rec is not None else 0)

    def _due(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0

    def _next_step(self) -> int:
        """The step a resumed run starts with: after the current one, if it has begun."""
        return self.train_step + 1 if self._started else self.train_step

    # ------------------------------------------------------------------ counting
    def _on_forward(self, module, args) -> None:
        """Forward pre-hook of the watched model: one grad-enabled call is one step."""
        if self._explicit or not torch.is_grad_enabled():
            return
        if _compiling():
            if not self._warned_compile:
                self._warned_compile = True
                warnings.warn("gradflow.watch: the model is called inside a torch.compile'd function, whose "
                              "hooks are traced away; its steps are not counted or recorded. Compile the model "
                              "(torch.compile(model)) rather than the training step.", RuntimeWarning,
                              stacklevel=2)
            return
        if self._rec is not None:
            self._flush(next_forward=True)
        if self._started:
            self.train_step += 1
        self._started = True
        if self._due(self.train_step):
            self._attach(self.train_step)

    def step(self) -> None:
        """End the current step (``count="manual"``): write it if it was recorded, then start the next.

        Call it once per backward pass (or once per optimiser step; a recorded step then holds every
        backward pass made in it). With ``count="forward"`` steps are counted for you and this raises.
        """
        if self.count != "manual":
            raise UsageError("Watch.step() is for count='manual'; with count='forward' every grad-enabled "
                             "call of the model is a step.", arguments=("count",))
        self._flush()
        self.train_step += 1
        self._started = False
        if self._due(self.train_step):
            self._attach(self.train_step)

    @contextlib.contextmanager
    def recording(self, train_step: Optional[int] = None) -> Iterator["Watch"]:
        """Record every backward pass inside the block as one step labelled ``train_step``.

        For probes outside the schedule (``gradflow train --record-every`` records a fixed batch each
        epoch this way, ``train_step=epoch``). Counting pauses inside the block; the step counter is not
        advanced. ``train_step`` defaults to the current step.
        """
        self._flush()
        self._explicit = True
        try:
            self._attach(self.train_step if train_step is None else int(train_step))
            yield self
            self._flush()
        finally:
            self._detach()
            self._explicit = False

    # ------------------------------------------------------------------ recording
    def _attach(self, step: int) -> None:
        self._rec = record(self._target, **self._record_kw).__enter__()
        self._rec_step = step
        _EAGER.enter()
        self._stance = True
        self._opt_hook = register_optimizer_step_post_hook(self._on_optimizer_step)

    def _detach(self):
        """Remove the recorder's hooks and the helpers of a recorded step; returns the recorder."""
        rec, self._rec = self._rec, None
        if rec is not None:
            rec.__exit__(None, None, None)
        if self._opt_hook is not None:
            self._opt_hook.remove()
            self._opt_hook = None
        if self._stance:
            _EAGER.exit()
            self._stance = False
        return rec

    def _on_optimizer_step(self, optimizer, args, kwargs) -> None:
        if self._rec is not None and self._rec.steps > 0 and not self._explicit:
            self._flush()

    def _flush(self, next_forward: bool = False) -> None:
        """Close the recorded step (if any) and append its tables; nothing when no backward pass ran.

        ``next_forward``: called because the next step's forward began (a recorded forward without a
        backward before it is then worth a warning).
        """
        step = self._rec_step
        rec = self._detach()
        if rec is None:
            return
        if rec.steps == 0:
            if next_forward:
                warnings.warn(f"gradflow.watch: step {step} was to be recorded, but the next call of the model "
                              "came before any backward pass; nothing was recorded. If your loop calls the model "
                              "more than once per backward pass, use count='manual' and Watch.step().",
                              RuntimeWarning, stacklevel=3)
            return
        if self.count == "manual":
            self._started = True
        # dicts of columns, not DataFrames: they only become CSV text
        tables = {"per_step": rec.columns("per_step"), "lags": rec.columns("lags"),
                  "layers": rec.columns("layer_info")}
        if self._record_kw["weights"]:
            tables["weights"] = rec.columns("weights")
        samples = rec.samples() if hasattr(rec, "samples") else None
        if self.write_pairs or samples is None:
            tables["pairs"] = rec.columns("pairs")   # without per-sample sums the summary needs the pair norms
        for cols in tables.values():
            if "step" in cols:
                cols["step"] = np.asarray(cols["step"], dtype=np.int64) + self.passes
            cols["train_step"] = np.full(len(next(iter(cols.values()))), step, dtype=np.int64)  # after the documented ones
        summary = summary_columns(tables, samples, n_resamples=self.n_resamples, seed=self.seed)
        if not self.write_pairs:
            tables.pop("pairs", None)
        transport = _transport_rows(rec, step)
        if transport is not None:
            tables["transport"] = transport
        self.passes += rec.steps
        tables["summary"] = summary
        self._store.append(tables, passes=self.passes, next_step=max(step + 1, self._next_step()))
        if self.rank == 0 and self.loggers:
            frame = as_frame(summary)
            for lg in self.loggers:
                lg.log_step(frame, step)

    # ------------------------------------------------------------------ results
    def tables(self) -> Dict[str, pd.DataFrame]:
        """Every table recorded so far (read back from ``out``, or kept in memory when ``out`` is None)."""
        return self._store.tables()

    def summary(self) -> pd.DataFrame:
        """``summary.csv``: one row per (recorded step, layer), :data:`SUMMARY_COLUMNS`."""
        return self.tables().get("summary", pd.DataFrame(columns=list(SUMMARY_COLUMNS)))


def watch(
    model: nn.Module,
    *,
    every: Optional[int] = 100,
    out: Union[str, os.PathLike, None] = None,
    pairs: bool = False,
    weights: bool = True,
    max_lag: Optional[int] = None,
    layers: Optional[Sequence[str]] = None,
    loggers: Sequence[object] = (),
    count: str = "forward",
    n_resamples: int = 1000,
    seed: int = 0,
    start: Optional[int] = None,
) -> Watch:
    """Watch ``model`` in your own training loop: record steps ``0, every, 2*every, ...`` into ``out``.

    Use it as a context manager (``with gradflow.watch(...) as w:``) or keep the object and call
    ``w.close()`` at the end. Arguments:

    * ``every``: record every ``every``-th step (None: only inside :meth:`Watch.recording`);
    * ``out``: the run directory (created; re-opened to resume); None keeps the tables in memory;
    * ``pairs``: also write ``pairs.csv`` (``||pair[t, t']||``, one row per (t, t') and layer; lags,
      relative_k and half-lives are recorded either way); ``weights``: record the spatial/temporal
      split of the weight gradients (``weights.csv``, the summary's ``weight_temporal_projection``);
      ``max_lag``: largest lag recorded (None: T-1); ``layers``: neuron layer names (default all);
    * ``loggers``: objects with ``log_step(summary, train_step)`` (and optionally ``close()``), e.g.
      :class:`gradflow.loggers.TensorBoardLogger`; called on rank 0 after each recorded step;
    * ``count``: ``"forward"`` (each grad-enabled model call is a step) or ``"manual"``
      (:meth:`Watch.step` ends a step); see the module documentation for gradient accumulation;
    * ``n_resamples``, ``seed``: the bootstrap of the per-step intervals (:func:`step_summary`);
    * ``start``: the number of the first step (default: continue a resumed run, else 0), e.g. the step
      of the checkpoint a crashed run restarts from.
    """
    return Watch(model, every=every, out=out, pairs=pairs, weights=weights, max_lag=max_lag, layers=layers,
                 loggers=loggers, count=count, n_resamples=n_resamples, seed=seed, start=start)
