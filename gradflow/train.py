"""Training spiking networks on gradflow's built-in tasks, and CLIF -> LIF inference.

:func:`train` is a quiet library function: it builds a model (:func:`gradflow.models.build`), trains it
on a task from :mod:`gradflow.tasks` as a :class:`TrainConfig` says, and returns a :class:`TrainResult`
with the trained model, a history table (one row per epoch) and, with ``record_every``, the recorder's
tables over training. The ``gradflow train`` command is a thin layer over it.

Loss and accuracy follow the task's scoring rule (:meth:`gradflow.tasks.Task.loss`): CE over time
(docs/reference.md, Losses) of the scored steps — all T steps for static tasks, the last ``readout``
steps for the delay task — or TET with ``loss="tet"``; the prediction is the argmax of the time-mean of
the scored logits.

Truncated BPTT (``truncate=k``): every neuron of the model gets ``module.truncate = k``. In the forward
pass nothing changes. In the backward pass the neuron state entering step ``t`` — the membrane ``v[t-1]``,
and for CLIF also the complementary potential ``m[t-1]`` — is detached for every ``t > 0`` with
``t % k == 0``. So the time axis is cut into blocks ``[0, k), [k, 2k), ...``; a gradient that starts at
step ``t'`` reaches earlier steps through a neuron's own state only inside its block, i.e. at most
``t' mod k`` steps back. Spatial paths (layer to layer, the readout, at the same step) are never cut,
and gradflow's architectures have no other path across time. ``k = 1`` leaves only spatial gradients;
``k >= T`` is full BPTT. Note that the CLIF paper's ``k`` may mean a sliding window (each gradient goes
exactly up to ``k - 1`` steps back); the two agree for ``k = 1`` and ``k >= T``.

Checkpoints are written by :func:`gradflow.io.checkpoints.save_checkpoint` (docs/reference.md,
Checkpoints) with the metadata of :func:`checkpoint_meta`: ``arch``, ``neuron``, ``tau``, ``T``, every
key of ``model.config``, ``model`` (``model.config`` itself), ``task`` (``task.config``), ``epoch``,
``accuracy`` (test), ``loss`` (test), ``seed``, ``truncate``, ``optimizer``, ``lr``, ``loss_kind`` and
``gradflow_version``; all plain values, so ``torch.load(weights_only=True)`` reads them, and
:func:`gradflow.load_checkpoint` rebuilds the model.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

import pandas as pd
import torch
from torch import nn

from . import __version__, models
from .errors import UsageError
from .io import checkpoints
from .losses import get_loss
from .models import neurons_of, set_backend, set_truncation, swap_neurons
from .schema import BACKENDS, NEURON_KINDS, OPTIMIZERS
from .tasks import Task, make_task, parse_task
from .watch import Watch

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "evaluate",
    "set_truncation",  # defined in gradflow.models.surgery, used here
    "swap_neurons",  # defined in gradflow.models.surgery, used here
    "checkpoint_meta",
    "model_input",
    "OPTIMIZERS",
]

#: Default hidden widths of the ``mlp`` architecture when trained here.
DEFAULT_WIDTHS = (64, 64)

Progress = Callable[[Iterable, int, str], Iterable]


def _bad(argument: str, message: str) -> UsageError:
    """A :class:`UsageError` whose ``arguments`` name the setting, so the CLI can show its flag."""
    return UsageError(message, arguments=(argument,))


def _check_int(name: str, value: Any, lo: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise _bad(name, f"{name} must be {what}, got {value!r}.")


@dataclass
class TrainConfig:
    """What :func:`train` does (every field is also a keyword argument of :func:`train`).

    Data: ``task`` (a :class:`gradflow.tasks.Task` or a spec such as ``"delay:delay=8"``), ``T`` (steps
    of a static task; a time-major task fixes its own), ``n_train`` / ``n_test`` samples drawn from
    ``seed`` (which also seeds the initial weights and the batch order), ``resample`` (a fresh training
    set every epoch: epoch ``e`` uses the train split of seed ``seed + 100003 * (e - 1)``, so train and
    test streams never meet and there is no over-fitting at equal compute).

    Model: ``arch`` (:func:`gradflow.models.available`), ``neuron`` (``lif``, ``clif``, ``plif``), ``tau``
    (PLIF: the initial tau), ``model_kwargs`` (further :func:`gradflow.models.build` options, e.g.
    ``{"widths": [64, 64]}``), ``backend`` (``torch`` or ``fused``: the neurons' implementation, same
    numbers, not stored in checkpoints).

    Optimisation: ``epochs``, ``optimizer`` (``sgd`` with momentum 0.9, or ``adam``), ``lr``,
    ``weight_decay``, ``batch_size``, ``loss`` (``ce`` or ``tet``), ``truncate`` (truncated-BPTT block
    length, module docstring), ``switch_to`` / ``at_epoch`` (after epoch ``at_epoch`` every neuron
    becomes a ``switch_to`` neuron with the same weights, the paper's Fig. 3a; the optimizer is rebuilt
    only if the parameters change, i.e. to or from PLIF).

    Recording: ``record_every=N`` records the recorder's tables on a fixed probe batch (the first
    ``record_batch`` training samples of epoch 1, kept also when ``resample`` draws new data) before
    training and after every N-th epoch (and the last), with ``record_pairs`` also the pair norms and
    ``max_lag`` as the largest lag.

    ``device``: a torch device name. Raises :class:`UsageError` naming the field on a bad value.

    >>> TrainConfig(task="delay:delay=2", epochs=3).epochs
    3
    >>> TrainConfig(switch_to="clif")
    Traceback (most recent call last):
    ...
    gradflow.errors.UsageError: switch_to and at_epoch go together: give both or neither.
    """

    task: Union[str, Task] = "delay"
    T: Optional[int] = None
    n_train: int = 2048
    n_test: int = 1024
    seed: int = 0
    resample: bool = False
    arch: str = "mlp"
    neuron: str = "lif"
    tau: float = 2.0
    model_kwargs: Optional[Dict[str, Any]] = None
    backend: str = "torch"
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    loss: str = "ce"
    truncate: Optional[int] = None
    switch_to: Optional[str] = None
    at_epoch: Optional[int] = None
    record_every: Optional[int] = None
    record_batch: int = 128
    record_pairs: bool = False
    max_lag: Optional[int] = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "batch_size", "record_batch"):
            _check_int(name, getattr(self, name), 1)
        _check_int("epochs", self.epochs, 0)
        for name in ("T", "truncate", "record_every"):
            _check_int(name, getattr(self, name), 1, optional=True)
        _check_int("max_lag", self.max_lag, 0, optional=True)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise _bad("lr", f"lr must be a positive number, got {self.lr!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", f"Unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
        if self.backend not in BACKENDS:
            raise _bad("backend", f"Unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}.")
        get_loss(self.loss)
        if (self.switch_to is None) != (self.at_epoch is None):
            raise UsageError("switch_to and at_epoch go together: give both or neither.",
                             arguments=("switch_to", "at_epoch"))
        if self.switch_to is not None and str(self.switch_to).lower() not in NEURON_KINDS:
            raise _bad("switch_to", f"Unknown neuron {self.switch_to!r} for switch_to; choose one of "
                                    f"{', '.join(NEURON_KINDS)}.")
        if self.at_epoch is not None and not (0 <= self.at_epoch <= self.epochs):
            raise _bad("at_epoch", f"at_epoch must be between 0 and epochs={self.epochs}, got {self.at_epoch}.")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``model``: the trained network (eval mode). ``history``: one row per epoch, ``epoch = 0`` being the
    untrained network, columns ``epoch, neuron, train_loss, train_accuracy, test_loss, test_accuracy,
    seconds`` (train columns are running means over the epoch's batches, NaN at epoch 0). ``records``:
    with ``record_every``, the recorder tables ``per_step``, ``lags``, ``weights`` (and ``pairs``) each
    with an extra ``epoch`` column; else an empty dict. ``task``: the task trained on. ``meta``: the
    checkpoint metadata of the final model. ``records_dir``: the watched run directory the records were
    committed to while training, if any.
    """

    model: nn.Module
    history: pd.DataFrame
    records: Dict[str, pd.DataFrame]
    task: Task
    meta: Dict[str, Any]
    records_dir: Optional[str] = None

    def write(self, out: Union[str, os.PathLike]) -> List[str]:
        """Write ``model.pt`` (a gradflow checkpoint), ``history.csv`` and ``<table>.csv`` for every
        recorded table into the directory ``out`` (created if missing); returns the file names. Tables
        already committed to ``out`` during training (``records_dir``) are left as they are."""
        os.makedirs(out, exist_ok=True)
        checkpoints.save_checkpoint(self.model, os.path.join(out, "model.pt"), **self.meta)
        self.history.to_csv(os.path.join(out, "history.csv"), index=False)
        watched = self.records_dir is not None and os.path.samefile(self.records_dir, out)
        for name, df in self.records.items():
            if not watched:
                df.to_csv(os.path.join(out, f"{name}.csv"), index=False)
        return ["model.pt", "history.csv"] + [f"{n}.csv" for n in self.records] + (["watch.json"] if watched else [])


def model_input(x: torch.Tensor, arch: str, task: Task) -> torch.Tensor:
    """Shape a task batch for ``arch``: the MLP gets flat features, image nets the images as they are."""
    if arch == "mlp":
        return x.flatten(2) if task.time_major else x.flatten(1)
    if task.time_major and len(task.input_shape) < 3:
        raise UsageError(f"Architecture {arch!r} needs image input; task {task.name!r} gives "
                         f"{len(task.input_shape)}-d features per step. Use the mlp architecture.")
    return x


def build_for_task(task: Task, arch: str = "mlp", neuron: str = "lif", tau: float = 2.0,
                   **kwargs: Any) -> nn.Module:
    """A fresh ``arch`` network sized for ``task`` (classes, input, T); ``kwargs`` go to ``build``."""
    opts: Dict[str, Any] = dict(kwargs)
    if arch == "mlp":
        opts.setdefault("widths", list(DEFAULT_WIDTHS))
        opts["in_features"] = task.in_features
    else:
        opts["in_channels"] = task.input_shape[0]
    return models.build(arch, neuron=neuron, num_classes=task.num_classes, T=task.T, tau=tau, **opts)


def _plain(v: Any) -> Any:
    """``v`` with tuples turned into lists, recursively (plain data for checkpoints)."""
    if isinstance(v, (tuple, list)):
        return [_plain(i) for i in v]
    if isinstance(v, dict):
        return {str(k): _plain(i) for k, i in v.items()}
    return v


def checkpoint_meta(model: nn.Module, task: Task, **extra: Any) -> Dict[str, Any]:
    """The metadata a training checkpoint stores beside the weights (see the module docstring)."""
    cfg = _plain(dict(model.config))
    neurons = neurons_of(model)
    meta: Dict[str, Any] = dict(cfg)
    meta.update({
        "arch": cfg.get("name", type(model).__name__),
        "neuron": cfg.get("neuron", neurons[0].kind if neurons else None),
        "tau": float(neurons[0].current_tau()) if neurons else cfg.get("tau"),
        "T": int(cfg.get("T", task.T)),
        "model": cfg,
        "task": _plain(task.config),
        "gradflow_version": __version__,
    })
    meta.update(_plain(extra))
    return meta


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor, *, arch: str = "mlp",
             loss: str = "ce", batch_size: int = 256, rates: bool = False) -> Dict[str, float]:
    """``{"loss", "accuracy"}`` of ``model`` (eval mode) on ``(x, y)``; with ``rates`` also the mean
    ``firing_rate`` over all neurons, steps and samples."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    spikes: List[Tuple[float, int]] = []
    handles = []
    if rates:
        def hook(_m, _inp, out):
            spikes.append((float(out.sum()), out.numel()))
        handles = [m.register_forward_hook(hook) for m in neurons_of(model)]
    try:
        n = y.shape[0]
        tot_loss, correct = 0.0, 0
        for i in range(0, n, batch_size):
            xb, yb = _batch(x, y, task, slice(i, i + batch_size))
            logits = model(model_input(xb.to(dev), arch, task))
            tot_loss += float(task.loss(logits, yb.to(dev), loss)) * yb.shape[0]
            correct += int((task.predict(logits).cpu() == yb).sum())
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    out = {"loss": tot_loss / n, "accuracy": correct / n}
    if rates:
        s, cnt = sum(a for a, _ in spikes), sum(b for _, b in spikes)
        out["firing_rate"] = s / max(cnt, 1)
    return out


def _batch(x: torch.Tensor, y: torch.Tensor, task: Task, idx):
    """Samples ``idx`` (a slice or an index tensor) of a dataset; the sample axis is 1 for time-major tasks."""
    xb = x[:, idx] if task.time_major else x[idx]
    return xb, y[idx]


# ----------------------------------------------------------------------------- one training run


def _resolve_task(task: Union[str, Task], T: Optional[int]) -> Task:
    if isinstance(task, str):
        task = parse_task(task)
    if not isinstance(task, Task):
        raise _bad("task", f"task must be a task name or a gradflow.tasks.Task, got {type(task).__name__}.")
    if T is not None and int(T) != task.T:
        if task.time_major:
            raise _bad("T", f"Task {task.name!r} fixes its own number of steps ({task.T}); leave T unset or "
                            "change the task's options.")
        task = make_task(**{**task.config, "T": int(T)})
    return task


def _optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class _Run:
    """The state of one training run: settings, task, model, optimizer, data and what was recorded."""

    cfg: TrainConfig
    task: Task
    model: nn.Module
    opt: torch.optim.Optimizer
    train_data: Tuple[torch.Tensor, torch.Tensor]
    test_data: Tuple[torch.Tensor, torch.Tensor]
    shuffle: torch.Generator
    dev: torch.device
    watch: Optional[Watch] = None
    switched_at: Optional[int] = None
    probe: Optional[Tuple[torch.Tensor, torch.Tensor]] = None   # drawn at the first record, then kept

    @classmethod
    def start(cls, cfg: TrainConfig, records_dir: Optional[Union[str, os.PathLike]] = None) -> "_Run":
        task = _resolve_task(cfg.task, cfg.T)
        dev = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        model = build_for_task(task, cfg.arch, cfg.neuron, cfg.tau, **(cfg.model_kwargs or {})).to(dev)
        set_backend(model, cfg.backend)
        if cfg.truncate is not None:
            set_truncation(model, cfg.truncate)
        train_data, test_data = task.splits(cfg.n_train, cfg.n_test, cfg.seed)
        watch = None
        if cfg.record_every:
            watch = Watch(model, every=None, count="manual", out=records_dir, pairs=cfg.record_pairs, weights=True,
                          max_lag=cfg.max_lag, seed=cfg.seed)
        return cls(cfg, task, model, _optimizer(cfg, model.parameters()), train_data, test_data,
                   torch.Generator().manual_seed(cfg.seed + 12345), dev, watch)

    def test_row(self, epoch: int, train_loss: float, train_accuracy: float, seconds: float) -> Dict[str, Any]:
        ev = evaluate(self.model, self.task, *self.test_data, arch=self.cfg.arch, loss=self.cfg.loss)
        return {"epoch": epoch, "neuron": neurons_of(self.model)[0].kind, "train_loss": train_loss,
                "train_accuracy": train_accuracy, "test_loss": ev["loss"], "test_accuracy": ev["accuracy"],
                "seconds": seconds}

    def record(self, epoch: int) -> None:
        """One recorded forward/backward on the fixed probe batch, a step ``train_step = epoch`` of the
        run's :class:`gradflow.watch.Watch` (no update; gradients and buffers restored)."""
        cfg = self.cfg
        if self.probe is None:   # the first record_batch training samples of epoch 1 (resample draws new ones later)
            self.probe = _batch(*self.train_data, self.task, slice(0, min(cfg.record_batch, cfg.n_train)))
        px, py = self.probe
        buffers = copy.deepcopy(dict(self.model.named_buffers()))
        self.model.zero_grad(set_to_none=True)
        try:
            with self.watch.recording(train_step=epoch):
                logits = self.model(model_input(px.to(self.dev), cfg.arch, self.task))
                self.task.loss(logits, py.to(self.dev), cfg.loss).backward()
        finally:
            self.model.zero_grad(set_to_none=True)
            with torch.no_grad():
                for k, v in self.model.named_buffers():
                    v.copy_(buffers[k])

    def records(self) -> Dict[str, pd.DataFrame]:
        """Close the watch; its tables with an ``epoch`` column (= ``train_step``), or ``{}``."""
        if self.watch is None:
            return {}
        self.watch.close()
        tables = {}
        for name, df in self.watch.tables().items():
            first = [c for c in df.columns if c != "train_step"]  # documented columns first, extras after
            tables[name] = df[first + ["train_step"]].assign(epoch=df["train_step"])
        return tables

    def switch(self, epoch: int) -> None:
        """After epoch ``at_epoch``: swap the neurons (rebuilding the optimizer if parameters changed)."""
        before = [id(p) for p in self.model.parameters()]
        swap_neurons(self.model, self.cfg.switch_to)
        self.model.to(self.dev)
        if [id(p) for p in self.model.parameters()] != before:
            self.opt = _optimizer(self.cfg, self.model.parameters())
        self.switched_at = epoch - 1

    def epoch(self, epoch: int, progress: Optional[Progress]) -> Dict[str, Any]:
        """Train one epoch over shuffled mini-batches; returns its history row."""
        cfg = self.cfg
        if cfg.resample and epoch > 1:
            self.train_data = self.task.sample(cfg.n_train, cfg.seed + 100003 * (epoch - 1), "train")
        self.model.train()
        order = torch.randperm(cfg.n_train, generator=self.shuffle)
        n_batches = math.ceil(cfg.n_train / cfg.batch_size)
        batches: Iterable[int] = range(n_batches)
        if progress is not None:
            batches = progress(batches, n_batches, f"epoch {epoch}/{cfg.epochs}")
        tot_loss, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
        for b in batches:
            xb, yb = _batch(*self.train_data, self.task, order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            xb, yb = xb.to(self.dev), yb.to(self.dev)
            logits = self.model(model_input(xb, cfg.arch, self.task))
            lval = self.task.loss(logits, yb, cfg.loss)
            self.opt.zero_grad(set_to_none=True)
            lval.backward()
            self.opt.step()
            tot_loss += float(lval.detach()) * yb.shape[0]
            correct += int((self.task.predict(logits.detach()) == yb).sum())
            seen += yb.shape[0]
        return self.test_row(epoch, tot_loss / seen, correct / seen, time.perf_counter() - t0)

    def meta(self, last: Dict[str, Any]) -> Dict[str, Any]:
        cfg = self.cfg
        return checkpoint_meta(
            self.model, self.task, epoch=int(last["epoch"]), accuracy=float(last["test_accuracy"]),
            loss=float(last["test_loss"]), seed=int(cfg.seed), truncate=cfg.truncate, optimizer=cfg.optimizer,
            lr=float(cfg.lr), loss_kind=cfg.loss, switched_at=self.switched_at, resample=bool(cfg.resample),
            n_train=int(cfg.n_train), batch_size=int(cfg.batch_size),
        )


def _config(config: Union[TrainConfig, str, Task, None], options: Dict[str, Any]) -> TrainConfig:
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise UsageError(f"Unknown training option {unknown[0]!r}; the options are {', '.join(names)}.")
    if isinstance(config, TrainConfig):
        return dataclasses.replace(config, **options)
    if config is not None:
        options = {"task": config, **options}
    return TrainConfig(**options)


def train(
    config: Union[TrainConfig, str, Task, None] = None,
    /,
    *,
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    records_dir: Optional[Union[str, os.PathLike]] = None,
    progress: Optional[Progress] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
    **options: Any,
) -> TrainResult:
    """Train a network as ``config`` says and return a :class:`TrainResult`.

    ``config``: a :class:`TrainConfig`, or a task (spec string or :class:`gradflow.tasks.Task`) with
    the other settings as keyword ``options`` (any :class:`TrainConfig` field; options also override
    the fields of a given config). ``checkpoint``: path of the final gradflow checkpoint (written by
    :func:`gradflow.io.checkpoints.save_checkpoint`). ``records_dir``: with ``record_every``, the
    directory the recorded tables are committed to while training (a :class:`gradflow.watch.Watch` run
    directory, crash-safe, read by ``gradflow report DIR``; None: kept in memory only).
    ``progress(iterable, total, label)`` wraps each epoch's batch loop (a progress bar);
    ``on_epoch(row)`` sees each history row as it is made.

    >>> res = train("delay:delay=1", epochs=1, n_train=64, n_test=32, model_kwargs={"widths": [8]})
    >>> list(res.history.columns[:3]), len(res.history)
    (['epoch', 'neuron', 'train_loss'], 2)
    """
    cfg = _config(config, options)
    run = _Run.start(cfg, records_dir)
    try:
        rows = _epochs(run, progress, on_epoch)
    finally:
        records = run.records()
    meta = run.meta(rows[-1])
    if checkpoint is not None:
        checkpoints.save_checkpoint(run.model, checkpoint, **meta)
    history = pd.DataFrame(rows, columns=list(rows[0]))
    return TrainResult(run.model, history, records, run.task, meta,
                       None if records_dir is None or not records else str(records_dir))


def _epochs(run: _Run, progress: Optional[Progress], on_epoch) -> List[Dict[str, Any]]:
    """Epoch 0 (the untrained network), then every training epoch; returns the history rows."""
    cfg = run.cfg
    rows = [run.test_row(0, math.nan, math.nan, 0.0)]
    if on_epoch:
        on_epoch(rows[-1])
    if cfg.record_every:
        run.record(0)
    for epoch in range(1, cfg.epochs + 1):
        if cfg.at_epoch is not None and epoch == cfg.at_epoch + 1:
            run.switch(epoch)
        rows.append(run.epoch(epoch, progress))
        if on_epoch:
            on_epoch(rows[-1])
        if cfg.record_every and (epoch % cfg.record_every == 0 or epoch == cfg.epochs):
            run.record(epoch)
    run.model.eval()
    return rows


# ----------------------------------------------------------------------------- CLIF -> LIF
