"""One run of the paper-claim experiments: train in the CLIF paper's regime, measure the gradient flow.

:func:`train_and_measure` trains one network on a static image task (scikit-learn's digits by default,
:class:`gradflow.tasks.digits.Digits`; CIFAR with ``data="cifar10:DIR"``) as the CLIF paper trains
(SGD with momentum 0.9, cosine learning-rate schedule over the epochs, TET loss with lambda 0.05,
tau 2, threshold 1, rectangle surrogate of width ``alpha``) and records its gradient flow at
initialisation, half-way and at the end.

Neuron variants (:data:`VARIANTS`), all with the same initial weights for a given seed (the neurons
have no parameters, so ``torch.manual_seed(seed)`` before building gives every variant the same
weights):

==========  ============================================================================================
lif         LIF, soft reset
clif        CLIF (paper Eq. 19)
lif_dr      LIF with ``detach_reset=True``: the reset carries no gradient, so the one-step factor
            ``du[t+1]/du[t]`` is always ``gamma`` (the path the paper says vanishes is kept open)
clif_nom    CLIF with ``m_grad=False``: ``m`` shapes the forward pass as usual but no gradient flows
            through it (docs/reference.md, Neurons)
==========  ============================================================================================

Training: ``truncate=1`` trains with spatial gradients only (every neuron state detached at every
step, :func:`gradflow.train.set_truncation`); ``truncate=None`` is full BPTT.

Measurement (:func:`measure_flow`) at each point runs on a copy of the network with truncation removed,
so a ``truncate=1`` network is measured with the temporal gradient it *would* get: the question is what
its dynamics transport, not what its training used. Batch-norm running statistics of the copy are
re-estimated on the training images (a cumulative average over up to 512 images in training mode)
before it is put in eval mode, so the untrained network is measured with sensible statistics and every
sample's gradient is independent of the others in its batch. The probe is a fixed set of ``probe``
test images (the first of the test split in the order of seed 0), in ``passes`` backward passes of the
task's loss; :func:`gradflow.report.layer_statistics` turns the recorded tables (and per-sample sums,
where the recorder keeps them) into per-layer ``relative_k`` (every lag), ``half_life``, ``decay_rate``
and ``weight_temporal_projection`` with 95% percentile-bootstrap intervals; firing rate and window
occupancy (share of elements with ``sg(u - theta) != 0``) get bootstrap intervals over passes.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import stats as sps
from torch import nn

from ... import models, report, stats
from ...errors import UsageError
from ...models.base import SpikingModel, conv_out
from ...models.layers import TimeSequential, apply_merged, init_weights
from ...models.snn5 import ConvBNSpike
from ...recorder import record
from ...surrogate import surrogate_grad
from ...tasks import Task, parse_data, parse_task
from ...tasks.digits import Digits
from ...train import evaluate, model_input, set_truncation

__all__ = ["Variant", "VARIANTS", "RunSpec", "RunResult", "DigitsCNN", "make_task", "build_model",
           "train_and_measure", "measure_flow", "POINTS", "paired", "verdict"]

Log = Optional[Callable[[str], None]]

#: Measurement points in training order.
POINTS = ("init", "mid", "end")


class Variant(NamedTuple):
    """A neuron variant: the neuron kind, the neuron attributes set after building, a label."""

    kind: str
    options: Dict[str, Any]
    label: str


#: The four neurons of the ablation (module docstring).
VARIANTS: Dict[str, Variant] = {
    "lif": Variant("lif", {}, "LIF"),
    "clif": Variant("clif", {}, "CLIF"),
    "lif_dr": Variant("lif", {"detach_reset": True}, "LIF + detach_reset"),
    "clif_nom": Variant("clif", {"m_grad": False}, "CLIF, no m gradient"),
}


@dataclass(frozen=True)
class RunSpec:
    """One run. ``truncate``: 1 (spatial only) or None (full BPTT); ``alpha``: rectangle width;
    ``data``: None (digits) or a task spec (``digits:size=32``, ``cifar10:DIR``, ``shapes:...``);
    ``n_train``/``n_test``: images used (None: the whole split); ``measure``: the points recorded;
    ``probe``/``passes``: probe images and backward passes per point; ``max_lag``: None = min(T-1, 8)."""

    arch: str = "mlp"
    variant: str = "lif"
    T: int = 6
    alpha: float = 1.0
    truncate: Optional[int] = None
    seed: int = 0
    epochs: int = 20
    lr: float = 0.1
    batch_size: int = 64
    weight_decay: float = 0.0
    tau: float = 2.0
    theta: float = 1.0
    loss: str = "tet"
    data: Optional[str] = None
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    widths: Tuple[int, ...] = (128, 128)
    measure: Tuple[str, ...] = POINTS
    probe: int = 256
    passes: int = 16
    max_lag: Optional[int] = None
    n_resamples: int = 1000
    device: str = "cpu"
    backend: str = "fused"

    @property
    def bptt(self) -> str:
        """``"k1"`` (spatial only) or ``"full"``."""
        return "k1" if self.truncate == 1 else "full"

    def key(self) -> str:
        """A file-name-safe identifier of the run's configuration and seed."""
        data = "digits" if self.data is None else self.data.split(":")[0]
        return (f"{data}_{self.arch}_T{self.T}_a{self.alpha:g}_{self.variant}_{self.bptt}_e{self.epochs}"
                f"_s{self.seed}")

    def labels(self) -> Dict[str, Any]:
        """The identifying columns of every table row of this run."""
        return {"arch": self.arch, "T": self.T, "alpha": self.alpha, "variant": self.variant,
                "neuron": VARIANTS[self.variant].kind, "bptt": self.bptt, "seed": self.seed}


class RunResult(NamedTuple):
    """``run``: one row (labels, accuracies, seconds); ``flow``: one row per (point, layer);
    ``profile``: one row per (point, layer, lag)."""

    run: Dict[str, Any]
    flow: List[Dict[str, Any]]
    profile: List[Dict[str, Any]]


# ----------------------------------------------------------------------------- task and model


class DigitsCNN(SpikingModel):
    """``digits_cnn``: a small conv net for 8x8 images (two conv-BN-spike blocks, linear readout).

    ``features.0``: Conv 3x3/1 (pad 1) ``in -> channels[0]``, BN, neuron ``features.0.act``;
    ``features.1``: Conv 3x3/2 (pad 1) ``channels[0] -> channels[1]``, BN, neuron ``features.1.act``;
    then flatten and ``classifier = Linear(channels[1] * h * h, classes)`` with ``h = ceil(size / 2)``.
    Input ``[N, C, size, size]`` static or ``[T, N, C, size, size]``; logits ``[T, N, classes]``.
    """

    arch = "digits_cnn"

    def __init__(self, *, neuron: str = "lif", num_classes: int = 10, in_channels: int = 1, T: int = 6,
                 size: int = 8, channels: Tuple[int, int] = (16, 32),
                 neuron_kwargs: Optional[Dict[str, Any]] = None):
        c0, c1 = (int(c) for c in channels)
        super().__init__(neuron=neuron, num_classes=num_classes, in_channels=in_channels, T=T,
                         neuron_kwargs=neuron_kwargs, options={"size": int(size), "channels": [c0, c1]})
        self.size = int(size)
        self.features = TimeSequential(
            ConvBNSpike(self.in_channels, c0, 3, 1, 1, self.make_neuron()),
            ConvBNSpike(c0, c1, 3, 2, 1, self.make_neuron()),
        )
        h = conv_out(self.size, 3, 2, 1)
        self.classifier = nn.Linear(c1 * h * h, self.num_classes)
        init_weights(self)

    def check_input_shape(self, shape: Tuple[int, ...]) -> None:
        super().check_input_shape(shape)
        if tuple(shape[2:]) != (self.size, self.size):
            raise UsageError(f"digits_cnn was built for {self.size}x{self.size} images; the input is "
                             f"{shape[2]}x{shape[3]}.")

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, N, C, size, size]`` -> logits ``[T, N, classes]``."""
        return apply_merged(self.classifier, self.features(x).flatten(2))


#: Image side and channels the digits are prepared at for each architecture (the CIFAR nets need 32x32).
_DIGITS_SHAPE = {"mlp": (8, 1), "digits_cnn": (8, 1)}


def make_task(spec: RunSpec) -> Task:
    """The run's task with ``spec.T`` steps: digits sized for the architecture, or ``spec.data``."""
    if spec.data is None:
        size, channels = _DIGITS_SHAPE.get(spec.arch, (32, 3))
        return Digits(T=spec.T, size=size, channels=channels)
    kind = spec.data.split(":", 1)[0].lower()
    if kind in ("cifar10", "cifar100"):
        return parse_data(spec.data, spec.T)
    return parse_task(spec.data, T=spec.T)


def _variant(spec: RunSpec) -> Variant:
    if spec.variant not in VARIANTS:
        raise UsageError(f"Unknown variant {spec.variant!r}; choose one of {', '.join(VARIANTS)}.")
    return VARIANTS[spec.variant]


def build_model(spec: RunSpec, task: Task) -> nn.Module:
    """The run's network for ``task``, seeded with ``spec.seed``, variant options applied.

    Every variant's options must be attributes of the neuron modules (``detach_reset``, ``m_grad``);
    an attribute the installed neurons do not have is a :class:`UsageError` rather than a silent no-op.
    """
    var = _variant(spec)
    nk = dict(tau=spec.tau, v_threshold=spec.theta, surrogate="rectangle", alpha=spec.alpha)
    torch.manual_seed(spec.seed)
    if spec.arch == "mlp":
        model = models.build("mlp", neuron=var.kind, num_classes=task.num_classes, T=task.T,
                             in_features=task.in_features, widths=list(spec.widths), **nk)
    elif spec.arch == "digits_cnn":
        model = DigitsCNN(neuron=var.kind, num_classes=task.num_classes, in_channels=task.input_shape[0],
                          T=task.T, size=task.input_shape[-1], neuron_kwargs=nk)
    else:
        model = models.build(spec.arch, neuron=var.kind, num_classes=task.num_classes, T=task.T,
                             in_channels=task.input_shape[0], **nk)
    for neuron in models.neurons_of(model):
        for name, value in var.options.items():
            if not hasattr(type(neuron), name):
                raise UsageError(f"The {var.kind} neurons of this gradflow have no option {name!r}, which "
                                 f"variant {spec.variant!r} needs.")
            setattr(neuron, name, value)
    models.set_backend(model, spec.backend)
    if spec.truncate is not None:
        set_truncation(model, spec.truncate)
    return model


def _input(spec: RunSpec, task: Task, x: torch.Tensor) -> torch.Tensor:
    return model_input(x, "mlp" if spec.arch == "mlp" else "image", task)


def _split(task: Task, split: str, n: Optional[int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of ``split`` (None: the whole split when the task has a fixed one, else 2048); at most
    the split's size."""
    if hasattr(task, "split_size"):
        size = task.split_size(split)
        n = size if n is None else min(n, size)
    elif n is None:
        n = 2048
    return task.sample(n, seed, split)


# ----------------------------------------------------------------------------- measurement


def _calibrate_bn(model: nn.Module, spec: RunSpec, task: Task, x: torch.Tensor) -> None:
    """Re-estimate batch-norm running statistics on ``x`` (cumulative average, training mode, no grad)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, x.shape[0], 128):
            model(_input(spec, task, x[i:i + 128]))
    for bn in bns:
        bn.momentum = 0.1


def _activity(per_step, layer_samples, n_resamples: int, seed: int) -> Dict[str, float]:
    """Firing rate and window occupancy of one layer with bootstrap intervals.

    With the recorder's per-sample counts (``spikes``/``window`` ``[n, T]`` and ``numel``) the samples
    are resampled and the rate is ``sum of counts / (T * numel * samples)``; without them the per-pass
    means of the ``per_step`` table are resampled (:func:`gradflow.stats.bootstrap_mean`).
    """
    out: Dict[str, float] = {}
    counts = {m: getattr(layer_samples, c, None) for m, c in (("firing_rate", "spikes"), ("window_fraction", "window"))}
    for m, c in counts.items():
        if c is not None:
            c = np.asarray(c, dtype=np.float64)
            size = np.full(c.shape[0], float(c.shape[1] * int(layer_samples.numel)))
            ci = stats.bootstrap(np.stack([c.sum(axis=1), size], axis=1), lambda s: s[:, 0] / s[:, 1],
                                 n_resamples=n_resamples, seed=seed)
            enough = c.shape[0] >= 2
        else:
            v = per_step.groupby("step")[m].mean().to_numpy(float)
            ci = stats.bootstrap_mean(v, n_resamples=n_resamples, seed=seed)
            enough = np.isfinite(v).sum() >= 2
        out[m] = float(ci.estimate)
        out[f"{m}_ci_low"] = float(ci.low) if enough else math.nan
        out[f"{m}_ci_high"] = float(ci.high) if enough else math.nan
    return out


def _persistence(rec, neuron, layer: str, spec: RunSpec) -> Dict[str, float]:
    """``window_persistence`` of one layer with its bootstrap interval over samples.

    The share of the sources' squared spatial gradient that sits on neurons which were already inside
    the surrogate window one step earlier::

        S = sum_{t, i} ||P[t+1]_i * 1[sg(u[t]_i - theta) != 0]||^2 / sum_{t, i} ||P[t+1]_i||^2

    (i: samples). For LIF with the rectangle surrogate the one-step factor is ``gamma`` outside the
    window and ``gamma (1 - theta / alpha)`` inside, so ``relative_1^2 = gamma^2 (1 - S) +
    gamma^2 (1 - theta/alpha)^2 S`` exactly (0 inside at ``alpha = theta``: the paper's vanishing path).
    """
    num, den = [], []
    for step in range(rec.steps):
        kept = rec.tensors(layer, step)
        u, P = kept["u"].double(), kept["spatial"].double()
        inside = surrogate_grad(u[:-1] - neuron.v_threshold, neuron.sur) != 0
        p2 = P[1:].square()
        num.append((p2 * inside).flatten(2).sum(dim=(0, 2)))
        den.append(p2.flatten(2).sum(dim=(0, 2)))
    units = torch.stack([torch.cat(num), torch.cat(den)], dim=1).cpu().numpy()
    if units.shape[0] == 0 or units[:, 1].sum() <= 0:
        return {"window_persistence": math.nan, "window_persistence_ci_low": math.nan,
                "window_persistence_ci_high": math.nan}
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = stats.bootstrap(units, lambda s: s[:, 0] / s[:, 1], n_resamples=spec.n_resamples, seed=spec.seed)
    return {"window_persistence": float(ci.estimate), "window_persistence_ci_low": float(ci.low),
            "window_persistence_ci_high": float(ci.high)}


_FLOW_METRICS = ("temporal_share", "weight_temporal_projection", "relative_1", "half_life", "decay_rate")


def measure_flow(model: nn.Module, spec: RunSpec, task: Task, probe: Tuple[torch.Tensor, torch.Tensor],
                 calib: torch.Tensor) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Record the gradient flow of a copy of ``model`` on ``probe`` (module docstring).

    Returns ``(flow, profile)``: one row per layer (metrics with ``_ci_low``/``_ci_high``, ``samples``,
    ``resampled``) and one row per layer and lag (``relative`` with its interval).
    """
    net = copy.deepcopy(model)
    set_truncation(net, None)
    _calibrate_bn(net, spec, task, calib)
    net.eval()
    x, y = probe
    dev = next(net.parameters()).device
    K = spec.max_lag if spec.max_lag is not None else min(task.T - 1, 8)
    size = max(1, math.ceil(x.shape[0] / spec.passes))
    with record(net, pairs=True, weights=True, max_lag=K, keep_tensors=True) as rec:
        for i in range(0, x.shape[0], size):
            logits = net(_input(spec, task, x[i:i + size].to(dev)))
            task.loss(logits, y[i:i + size].to(dev), spec.loss).backward()
            net.zero_grad(set_to_none=True)
    tables = {"per_step": rec.per_step(), "pairs": rec.pairs(), "lags": rec.lags(), "weights": rec.weights()}
    samples = rec.samples() if hasattr(rec, "samples") else None
    st = report.layer_statistics(tables, samples, n_resamples=spec.n_resamples, seed=spec.seed)
    ps = tables["per_step"]
    flow = []
    for _, r in st.summary.iterrows():
        row = {"layer": r["layer"], "layer_index": int(r["layer_index"]), "samples": int(x.shape[0]),
               "passes": int(r["steps"]), "resampled": r["resampled"]}
        for m in _FLOW_METRICS:
            row[m] = float(r[m])
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = float(r[f"{m}_ci_low"]), float(r[f"{m}_ci_high"])
        row.update(_activity(ps[ps["layer"] == r["layer"]], None if samples is None else samples.get(r["layer"]),
                             spec.n_resamples, spec.seed))
        row.update(_persistence(rec, dict(net.named_modules())[r["layer"]], r["layer"], spec))
        row["temporal_zero_fraction"] = float(r["temporal_zero_fraction"])
        flow.append(row)
    profile = [{"layer": p["layer"], "layer_index": int(p["layer_index"]), "lag": int(p["lag"]),
                "relative": float(p["relative"]), "relative_ci_low": float(p["relative_ci_low"]),
                "relative_ci_high": float(p["relative_ci_high"])} for _, p in st.profile.iterrows()]
    return flow, profile


# ----------------------------------------------------------------------------- one run


def _epoch(model: nn.Module, spec: RunSpec, task: Task, opt: torch.optim.Optimizer, data, order) -> Tuple[float, float]:
    """One pass over the training data in shuffled mini-batches; returns (mean loss, accuracy)."""
    x, y = data
    dev = next(model.parameters()).device
    model.train()
    tot, correct = 0.0, 0
    for i in range(0, len(order), spec.batch_size):
        idx = order[i:i + spec.batch_size]
        xb, yb = x[idx].to(dev), y[idx].to(dev)
        logits = model(_input(spec, task, xb))
        loss = task.loss(logits, yb, spec.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += float(loss.detach()) * len(idx)
        correct += int((task.predict(logits.detach()) == yb).sum())
    return tot / len(order), correct / len(order)


def train_and_measure(spec: RunSpec, log: Log = None) -> RunResult:
    """Train one network as ``spec`` says and measure it at ``spec.measure`` (module docstring).

    The optimiser is SGD (momentum 0.9, ``lr``, ``weight_decay``) with a cosine schedule stepped once per
    epoch over ``epochs`` epochs; mini-batch order comes from a generator seeded with ``seed + 12345``,
    the same for every variant. Accuracy is the last epoch's test accuracy (no selection on the test set).
    """
    t0 = time.perf_counter()
    task = make_task(spec)
    train_data = _split(task, "train", spec.n_train, spec.seed)
    test_data = _split(task, "test", spec.n_test, 0)
    probe = _split(task, "test", min(spec.probe, test_data[1].shape[0]), 0)
    calib = train_data[0][:512]
    model = build_model(spec, task).to(torch.device(spec.device))
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(spec.epochs, 1))
    gen = torch.Generator().manual_seed(spec.seed + 12345)
    at = {"init": 0, "mid": spec.epochs // 2, "end": spec.epochs}
    flow: List[Dict[str, Any]] = []
    profile: List[Dict[str, Any]] = []

    def measure(epoch: int) -> None:
        for point in spec.measure:
            if at[point] == epoch and not any(r["point"] == point for r in flow):
                f, p = measure_flow(model, spec, task, probe, calib)
                flow.extend(dict(point=point, epoch=epoch, **r) for r in f)
                profile.extend(dict(point=point, epoch=epoch, **r) for r in p)

    measure(0)
    train_loss = train_acc = math.nan
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(train_data[1].shape[0], generator=gen)
        train_loss, train_acc = _epoch(model, spec, task, opt, train_data, order)
        sched.step()
        measure(epoch)
    ev = evaluate(model, task, *test_data, arch="mlp" if spec.arch == "mlp" else "image", loss=spec.loss,
                  rates=True)
    run = dict(spec.labels(), test_accuracy=ev["accuracy"], test_loss=ev["loss"], train_accuracy=train_acc,
               train_loss=train_loss, test_firing_rate=ev["firing_rate"], epochs=spec.epochs, lr=spec.lr,
               seconds=time.perf_counter() - t0)
    labels = spec.labels()
    if log:
        log(f"{spec.key()}: test acc {run['test_accuracy']:.3f} ({run['seconds']:.0f} s)")
    return RunResult(run, [dict(labels, **r) for r in flow], [dict(labels, **r) for r in profile])


def spec_dict(spec: RunSpec) -> Dict[str, Any]:
    """``spec`` as plain data (for caches and logs)."""
    return asdict(spec)


# ----------------------------------------------------------------------------- statistics over seeds


def paired(values: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """Mean of per-seed paired differences with a Student-t interval, and the sign counts.

    ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` (sd with ddof 1); NaN bounds for n < 2.

    >>> r = paired([1.0, 2.0, 3.0])
    >>> r["mean"], round(r["ci_low"], 3), round(r["ci_high"], 3), r["n"], r["n_positive"]
    (2.0, -0.484, 4.484, 3, 3)
    """
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    n = int(v.size)
    out = {"mean": math.nan, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": n,
           "n_positive": int((v > 0).sum()), "n_negative": int((v < 0).sum())}
    if n == 0:
        return out
    out["mean"] = float(v.mean())
    if n >= 2:
        sd = float(v.std(ddof=1))
        half = float(sps.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
        out.update(sd=sd, ci_low=out["mean"] - half, ci_high=out["mean"] + half)
    return out


def verdict(low: float, high: float) -> str:
    """``"> 0"`` when the interval lies above 0, ``"< 0"`` below, ``"cannot tell"`` otherwise."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "cannot tell"
    if low > 0:
        return "> 0"
    if high < 0:
        return "< 0"
    return "cannot tell"
