"""Training spiking networks on gradflow's built-in tasks, and CLIF -> LIF inference.

:func:`train` is a quiet library function: it builds a model (:func:`gradflow.models.build`), trains it
on a task from :mod:`gradflow.tasks` and returns a :class:`TrainResult` with the trained model, a
history table (one row per epoch) and, with ``record_every``, the recorder's tables over training.
The ``gradflow train`` command is a thin layer over it.

Loss and accuracy follow the task's scoring rule (:meth:`gradflow.tasks.Task.loss`): CE over time
(SPEC §4) of the scored steps — all T steps for static tasks, the last ``readout`` steps for the delay
task — or TET with ``loss="tet"``; the prediction is the argmax of the time-mean of the scored logits.

Truncated BPTT (``truncate=k``): every neuron of the model gets ``module.truncate = k``. In the forward
pass nothing changes. In the backward pass the neuron state entering step ``t`` — the membrane ``v[t-1]``,
and for CLIF also the complementary potential ``m[t-1]`` — is detached for every ``t > 0`` with
``t % k == 0``. So the time axis is cut into blocks ``[0, k), [k, 2k), ...``; a gradient that starts at
step ``t'`` reaches earlier steps through a neuron's own state only inside its block, i.e. at most
``t' mod k`` steps back. Spatial paths (layer to layer, the readout, at the same step) are never cut,
and gradflow's architectures have no other path across time. ``k = 1`` leaves only spatial gradients;
``k >= T`` is full BPTT. Note that the CLIF paper's ``k`` may mean a sliding window (each gradient goes
exactly up to ``k - 1`` steps back); the two agree for ``k = 1`` and ``k >= T``.

Checkpoints (SPEC §5) are ``{"gradflow": meta, "state_dict": ...}`` where ``meta`` has ``arch``,
``neuron``, ``tau``, ``T``, every key of ``model.config``, ``model`` (``model.config`` itself, so
``models.build(**meta["model"])`` rebuilds the network), ``task`` (``task.config``), ``epoch``,
``accuracy`` (test), ``loss`` (test), ``seed``, ``truncate``, ``optimizer``, ``lr``, ``loss_kind`` and
``gradflow_version``; all plain values, so ``torch.load(weights_only=True)`` reads them.
"""

from __future__ import annotations

import copy
import math
import os
import time
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Union

import pandas as pd
import torch
from torch import nn

from .errors import DataError, UsageError
from .neurons import SpikingNeuron, build_neuron
from .tasks import Task, make_task, parse_task

__all__ = [
    "TrainResult",
    "train",
    "evaluate",
    "set_truncation",
    "swap_neurons",
    "save_checkpoint",
    "load_checkpoint",
    "clif_to_lif",
    "model_input",
    "OPTIMIZERS",
]

OPTIMIZERS = ("sgd", "adam")

#: Default hidden widths of the ``mlp`` architecture when trained here.
DEFAULT_WIDTHS = (64, 64)


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``model``: the trained network (eval mode). ``history``: one row per epoch, ``epoch = 0`` being the
    untrained network, columns ``epoch, neuron, train_loss, train_accuracy, test_loss, test_accuracy,
    seconds`` (train columns are running means over the epoch's batches, NaN at epoch 0). ``records``:
    with ``record_every``, the recorder tables ``per_step``, ``lags``, ``weights`` (and ``pairs``) each
    with an extra ``epoch`` column; else an empty dict. ``task``: the task trained on. ``meta``: the
    checkpoint metadata of the final model.
    """

    model: nn.Module
    history: pd.DataFrame
    records: Dict[str, pd.DataFrame]
    task: Task
    meta: Dict[str, Any]


# ----------------------------------------------------------------------------- model helpers


def neurons_of(model: nn.Module) -> List[SpikingNeuron]:
    """Every spiking neuron module of ``model`` in registration order."""
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def set_truncation(model: nn.Module, k: Optional[int]) -> int:
    """Set ``truncate = k`` on every neuron of ``model`` (None: full BPTT); returns how many were set.

    See the module docstring for exactly what is detached.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise UsageError(f"truncate must be a positive integer number of steps, got {k!r}.")
    layers = neurons_of(model)
    if not layers:
        raise UsageError("The model has no gradflow spiking neurons to truncate.")
    for m in layers:
        m.truncate = k
    return len(layers)


def _neuron_kwargs(old: SpikingNeuron, kind: str) -> Dict[str, Any]:
    kw = {
        "tau": old.current_tau(), "v_threshold": old.v_threshold, "surrogate": old.sur.name,
        "alpha": old.sur.alpha, "detach_reset": old.detach_reset, "decay_input": old.decay_input,
        "truncate": old.truncate,
    }
    if kind != "clif":
        kw["v_reset"] = old.v_reset
    return kw


def swap_neurons(model: nn.Module, kind: str, **overrides: Any) -> nn.Module:
    """Replace every neuron of ``model`` in place by a ``kind`` neuron, keeping all weights.

    The new neurons copy ``tau`` (PLIF: its current value), threshold, surrogate, reset, detach and
    truncation options of the old ones; ``overrides`` (e.g. ``v_reset=0.0``) win. The model's
    ``config`` follows (``neuron`` and the neuron keyword arguments), so checkpoints stay
    self-describing. Returns ``model``.
    """
    kind = str(kind).lower()
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikingNeuron):
                kw = _neuron_kwargs(child, kind)
                kw.update(overrides)
                new = build_neuron(kind, **kw)
                p = next(child.parameters(), None)
                if p is not None:
                    new.to(p.device)
                new.train(child.training)
                setattr(parent, name, new)
                replaced += 1
    if not replaced:
        raise UsageError("The model has no gradflow spiking neurons to swap.")
    if hasattr(model, "neuron_kind"):
        model.neuron_kind = kind
    if isinstance(getattr(model, "neuron_kwargs", None), dict):
        nk = dict(model.neuron_kwargs)
        nk.update({k: v for k, v in overrides.items() if k != "truncate"})
        if kind == "clif":
            nk.pop("v_reset", None)
        model.neuron_kwargs = {k: v for k, v in nk.items() if v is not None or k != "v_reset"}
    return model


def model_input(x: torch.Tensor, arch: str, task: Task) -> torch.Tensor:
    """Shape a task batch for ``arch``: the MLP gets flat features, image nets the images as they are."""
    if arch == "mlp":
        return x.flatten(2) if task.time_major else x.flatten(1)
    if task.time_major and len(task.input_shape) < 3:
        raise UsageError(f"Architecture {arch!r} needs image input; task {task.name!r} gives "
                         f"{len(task.input_shape)}-d features per step. Use --arch mlp.")
    return x


def build_for_task(task: Task, arch: str = "mlp", neuron: str = "lif", tau: float = 2.0,
                   **kwargs: Any) -> nn.Module:
    """A fresh ``arch`` network sized for ``task`` (classes, input, T); ``kwargs`` go to ``build``."""
    from . import models

    opts: Dict[str, Any] = dict(kwargs)
    if arch == "mlp":
        opts.setdefault("widths", list(DEFAULT_WIDTHS))
        opts["in_features"] = task.in_features
    else:
        opts["in_channels"] = task.input_shape[0]
    return models.build(arch, neuron=neuron, num_classes=task.num_classes, T=task.T, tau=tau, **opts)


# ----------------------------------------------------------------------------- checkpoints


def _plain(v: Any) -> Any:
    """``v`` with tuples turned into lists, recursively (plain data for checkpoints)."""
    if isinstance(v, (tuple, list)):
        return [_plain(i) for i in v]
    if isinstance(v, dict):
        return {str(k): _plain(i) for k, i in v.items()}
    return v


def checkpoint_meta(model: nn.Module, task: Task, **extra: Any) -> Dict[str, Any]:
    """The ``"gradflow"`` dict of a checkpoint (see the module docstring)."""
    from . import __version__

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


def save_checkpoint(path: Union[str, os.PathLike], model: nn.Module, task: Task, **extra: Any) -> Dict:
    """Write ``{"gradflow": meta, "state_dict": ...}`` to ``path`` atomically; returns ``{"gradflow": meta}``.

    The file is written by :func:`gradflow.io.checkpoints.save_checkpoint`; ``meta`` is
    :func:`checkpoint_meta` (model config, task, training facts).
    """
    from .io import checkpoints

    meta = checkpoint_meta(model, task, **extra)
    checkpoints.save_checkpoint(model, path, **meta)
    return {"gradflow": meta}


def load_checkpoint(source: Union[str, os.PathLike, Dict], **neuron_overrides: Any):
    """``(model, meta)`` from a gradflow checkpoint file or dict (safe load, ``weights_only=True``).

    ``neuron_overrides`` (e.g. ``neuron="lif", v_reset=0.0``) change the rebuilt neurons; the weights
    are loaded with ``strict=True`` either way.
    """
    from . import models

    if isinstance(source, dict):
        ckpt = source
    else:
        from .io.checkpoints import read_file

        ckpt = read_file(source)  # safe load (weights_only), one-sentence errors
    if not isinstance(ckpt, dict) or "gradflow" not in ckpt or "state_dict" not in ckpt:
        raise DataError("Not a gradflow checkpoint: expected a dict with 'gradflow' and 'state_dict' keys.")
    meta = ckpt["gradflow"]
    cfg = dict(meta.get("model") or {k: v for k, v in meta.items() if k not in _META_ONLY})
    cfg.setdefault("name", meta.get("arch"))
    cfg.update(neuron_overrides)
    if cfg.get("neuron") == "clif":
        cfg.pop("v_reset", None)
    model = models.build(**cfg)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    model.eval()
    return model, meta


_META_ONLY = {"arch", "task", "epoch", "accuracy", "loss", "seed", "truncate", "optimizer", "lr",
              "loss_kind", "gradflow_version", "model", "history", "switched_at", "resample", "n_train",
              "batch_size"}


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor, *, arch: str = "mlp",
             loss: str = "ce", batch_size: int = 256, rates: bool = False) -> Dict[str, float]:
    """``{"loss", "accuracy"}`` of ``model`` (eval mode) on ``(x, y)``; with ``rates`` also the mean
    ``firing_rate`` over all neurons, steps and samples."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    spikes: List[float] = []
    handles = []
    if rates:
        def hook(_m, _inp, out):
            spikes.append((float(out.sum()), out.numel()))
        handles = [m.register_forward_hook(hook) for m in neurons_of(model)]
    try:
        n = y.shape[0]
        tot_loss, correct = 0.0, 0
        for i in range(0, n, batch_size):
            xb, yb = _batch(x, y, task, i, i + batch_size)
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


def _batch(x: torch.Tensor, y: torch.Tensor, task: Task, lo: int, hi: int, idx=None):
    """Rows ``lo:hi`` (or ``idx``) of a dataset; the sample axis is 1 for time-major tasks."""
    if idx is None:
        idx = slice(lo, hi)
    xb = x[:, idx] if task.time_major else x[idx]
    return xb, y[idx]


# ----------------------------------------------------------------------------- recording


def _record(model: nn.Module, task: Task, xb: torch.Tensor, yb: torch.Tensor, arch: str, loss: str,
            epoch: int, max_lag: Optional[int], pairs: bool) -> Dict[str, pd.DataFrame]:
    """One recorded forward/backward on a probe batch (no update; batch-norm buffers restored)."""
    from . import record

    buffers = copy.deepcopy({k: v for k, v in model.named_buffers()})
    model.zero_grad(set_to_none=True)
    try:
        with record(model, pairs=True, weights=True, max_lag=max_lag) as rec:
            task.loss(model(model_input(xb, arch, task)), yb, loss).backward()
        tables = {"per_step": rec.per_step(), "lags": rec.lags(), "weights": rec.weights()}
        if pairs:
            tables["pairs"] = rec.pairs()
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(buffers[k])
    for df in tables.values():
        df["epoch"] = epoch
    return tables


# ----------------------------------------------------------------------------- training


def _optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise UsageError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def _resolve_task(task: Union[str, Task], T: Optional[int]) -> Task:
    if isinstance(task, str):
        task = parse_task(task)
    if not isinstance(task, Task):
        raise UsageError(f"task must be a task name or a gradflow.tasks.Task, got {type(task).__name__}.")
    if T is not None and int(T) != task.T:
        if task.time_major:
            raise UsageError(f"Task {task.name!r} fixes T={task.T} (its time line); leave --T unset "
                             f"or change the task's options.")
        task = make_task(**{**task.config, "T": int(T)})
    return task


def train(
    task: Union[str, Task] = "delay",
    *,
    arch: str = "mlp",
    neuron: str = "lif",
    tau: float = 2.0,
    T: Optional[int] = None,
    epochs: int = 10,
    optimizer: str = "adam",
    lr: float = 5e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    n_train: int = 2048,
    n_test: int = 1024,
    seed: int = 0,
    truncate: Optional[int] = None,
    switch_to: Optional[str] = None,
    at_epoch: Optional[int] = None,
    loss: str = "ce",
    record_every: Optional[int] = None,
    resample: bool = False,
    record_batch: int = 128,
    record_pairs: bool = False,
    max_lag: Optional[int] = None,
    model_kwargs: Optional[Dict[str, Any]] = None,
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    device: Union[str, torch.device] = "cpu",
    progress: Optional[Callable[[Iterable, int, str], Iterable]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> TrainResult:
    """Train ``arch`` with ``neuron`` neurons on ``task`` and return a :class:`TrainResult`.

    ``task``: a :class:`gradflow.tasks.Task` or a spec like ``"delay:delay=8"``. ``T`` sets a static
    task's number of steps (a time-major task fixes its own). The data are ``n_train`` training and
    ``n_test`` test samples drawn from ``seed``; ``seed`` also seeds the initial weights and the
    batch order. ``resample=True`` draws a fresh training set for every epoch (epoch ``e`` uses the
    train split of seed ``seed + 100003 * (e - 1)``; train and test streams never meet), which removes
    over-fitting at equal compute. ``truncate``: truncated BPTT block length (module docstring). ``switch_to`` /
    ``at_epoch``: after epoch ``at_epoch`` the neurons become ``switch_to`` neurons with the same
    weights (the paper's Fig. 3a; the optimizer is rebuilt only if the parameters change, i.e. to or
    from PLIF). ``record_every=N``: recorder tables on a fixed probe batch of ``record_batch``
    training samples before training and after every N-th epoch (and the last), each row tagged with
    ``epoch``. ``checkpoint``: path of the final gradflow checkpoint. ``progress(iterable, total,
    label)`` wraps each epoch's batch loop (a progress bar); ``on_epoch(row)`` sees each history row.

    >>> res = train("delay:delay=1", epochs=1, n_train=64, n_test=32, model_kwargs={"widths": [8]})
    >>> list(res.history.columns[:3]), len(res.history)
    (['epoch', 'neuron', 'train_loss'], 2)
    """
    task = _resolve_task(task, T)
    if epochs < 0 or int(epochs) != epochs:
        raise UsageError(f"epochs must be a non-negative integer, got {epochs!r}.")
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"lr must be a positive number, got {lr!r}.")
    if batch_size < 1:
        raise UsageError(f"batch_size must be positive, got {batch_size!r}.")
    if (switch_to is None) != (at_epoch is None):
        raise UsageError("--switch-to and --at-epoch go together: give both or neither.")
    if at_epoch is not None and not (0 <= at_epoch <= epochs):
        raise UsageError(f"at_epoch must be between 0 and epochs={epochs}, got {at_epoch}.")
    if record_every is not None and record_every < 1:
        raise UsageError(f"record_every must be a positive number of epochs, got {record_every!r}.")
    loss_kind = loss
    from .losses import get_loss

    get_loss(loss_kind)  # validate the name early
    dev = torch.device(device)

    torch.manual_seed(seed)
    model = build_for_task(task, arch, neuron, tau, **(model_kwargs or {})).to(dev)
    if truncate is not None:
        set_truncation(model, truncate)
    (x_tr, y_tr), (x_te, y_te) = task.splits(n_train, n_test, seed)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
    shuffle = torch.Generator().manual_seed(seed + 12345)

    records: Dict[str, List[pd.DataFrame]] = {}
    probe = None
    if record_every:
        pn = min(record_batch, n_train)
        px, py = _batch(x_tr, y_tr, task, 0, pn)
        probe = (px.to(dev), py.to(dev))

    def add_records(epoch: int) -> None:
        for k, df in _record(model, task, probe[0], probe[1], arch, loss_kind, epoch, max_lag,
                             record_pairs).items():
            records.setdefault(k, []).append(df)

    rows: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    ev = evaluate(model, task, x_te, y_te, arch=arch, loss=loss_kind)
    row0 = {"epoch": 0, "neuron": neurons_of(model)[0].kind, "train_loss": float("nan"),
            "train_accuracy": float("nan"), "test_loss": ev["loss"], "test_accuracy": ev["accuracy"],
            "seconds": time.perf_counter() - t0}
    rows.append(row0)
    if on_epoch:
        on_epoch(row0)
    if record_every:
        add_records(0)
    switched_at = None
    n_batches = math.ceil(n_train / batch_size)
    for epoch in range(1, int(epochs) + 1):
        if at_epoch is not None and epoch == at_epoch + 1:
            before = [id(p) for p in model.parameters()]
            swap_neurons(model, switch_to)
            model.to(dev)
            if [id(p) for p in model.parameters()] != before:
                opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
            switched_at = at_epoch
        if resample and epoch > 1:
            x_tr, y_tr = task.sample(n_train, seed + 100003 * (epoch - 1), "train")
        model.train()
        order = torch.randperm(n_train, generator=shuffle)
        tot_loss, correct, seen = 0.0, 0, 0
        batches = range(n_batches)
        if progress is not None:
            batches = progress(batches, n_batches, f"epoch {epoch}/{epochs}")
        t0 = time.perf_counter()
        for b in batches:
            xb, yb = _batch(x_tr, y_tr, task, 0, 0, order[b * batch_size:(b + 1) * batch_size])
            xb, yb = xb.to(dev), yb.to(dev)
            logits = model(model_input(xb, arch, task))
            lval = task.loss(logits, yb, loss_kind)
            opt.zero_grad(set_to_none=True)
            lval.backward()
            opt.step()
            tot_loss += float(lval.detach()) * yb.shape[0]
            correct += int((task.predict(logits.detach()) == yb).sum())
            seen += yb.shape[0]
        ev = evaluate(model, task, x_te, y_te, arch=arch, loss=loss_kind)
        row = {"epoch": epoch, "neuron": neurons_of(model)[0].kind, "train_loss": tot_loss / seen,
               "train_accuracy": correct / seen, "test_loss": ev["loss"], "test_accuracy": ev["accuracy"],
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        if on_epoch:
            on_epoch(row)
        if record_every and (epoch % record_every == 0 or epoch == epochs):
            add_records(epoch)
    model.eval()
    history = pd.DataFrame(rows, columns=list(row0))
    last = rows[-1]
    meta_extra = dict(epoch=int(last["epoch"]), accuracy=float(last["test_accuracy"]),
                      loss=float(last["test_loss"]), seed=int(seed), truncate=truncate,
                      optimizer=optimizer, lr=float(lr), loss_kind=loss_kind, switched_at=switched_at,
                      resample=bool(resample), n_train=int(n_train), batch_size=int(batch_size))
    if checkpoint is not None:
        meta = save_checkpoint(checkpoint, model, task, **meta_extra)["gradflow"]
    else:
        meta = checkpoint_meta(model, task, **meta_extra)
    tables = {k: pd.concat(v, ignore_index=True) for k, v in records.items()}
    return TrainResult(model, history, tables, task, meta)


# ----------------------------------------------------------------------------- CLIF -> LIF


def clif_to_lif(
    checkpoint: Union[str, os.PathLike, Dict],
    reset_values: Sequence[float] = (-0.5, -0.25, 0.0, 0.25, 0.5),
    *,
    n_test: int = 1024,
    seed: Optional[int] = None,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Run a CLIF-trained checkpoint with LIF neurons (paper Table 8) and sweep the reset value.

    The weights stay; every CLIF neuron becomes a LIF neuron with the same tau, threshold and
    surrogate and a hard reset to ``v_reset`` (``v[t] = (1 - s[t]) u[t] + s[t] v_reset``, SPEC §1),
    once per value in ``reset_values``. Reference rows: the checkpoint as trained (CLIF) and LIF with
    the soft reset. The data are ``n_test`` test samples of the checkpoint's task (its seed unless
    ``seed`` is given).

    Returns one row per setting: ``neuron, reset, v_reset, accuracy, loss, firing_rate``
    (firing rate = mean spikes per neuron and step).
    """
    model, meta = load_checkpoint(checkpoint)
    if meta.get("neuron") != "clif":
        raise UsageError(f"clif-to-lif needs a CLIF-trained checkpoint; this one has neuron={meta.get('neuron')!r}.")
    task = make_task(**meta["task"])
    arch = meta["arch"]
    s = int(meta.get("seed", 0) if seed is None else seed)
    x, y = task.sample(n_test, s, "test")
    kind = meta.get("loss_kind", "ce")
    rows = []

    def run(neuron: str, reset: str, v_reset) -> None:
        ev = evaluate(model, task, x, y, arch=arch, loss=kind, batch_size=batch_size, rates=True)
        rows.append({"neuron": neuron, "reset": reset, "v_reset": v_reset, **ev})

    run("clif", "clif", float("nan"))
    swap_neurons(model, "lif", v_reset=None)
    run("lif", "soft", float("nan"))
    for r in reset_values:
        swap_neurons(model, "lif", v_reset=float(r))
        run("lif", "hard", float(r))
    return pd.DataFrame(rows, columns=["neuron", "reset", "v_reset", "accuracy", "loss", "firing_rate"])
