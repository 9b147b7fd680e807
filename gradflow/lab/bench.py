"""``gradflow bench``: speed and memory of gradflow's neurons and of recording, as in-process ratios.

Two benchmarks, each returning a tidy :class:`pandas.DataFrame` (one row per case and variant):

* :func:`neuron_bench` — one forward + backward of a single multi-step neuron layer, input
  ``[T, 16, size/16]``, upstream gradient fixed. Variants:

  ``baseline``  a stateful module called once per time step, state kept between calls, autograd
                through every op (how the official CLIF code and SpikingJelly's torch backend step a
                neuron); written here, not imported;
  ``torch``     gradflow's multi-step module, ``backend='torch'`` (per-step autograd graph);
  ``fused``     gradflow's multi-step module, ``backend='fused'`` (:mod:`gradflow.fused`);
  ``spikingjelly``  SpikingJelly's ``LIFNode(step_mode='m')``, torch backend (LIF only, when installed).

* :func:`training_bench` — one full training step (forward, CE-over-time loss, backward, SGD step)
  of ``spiking_resnet18`` (T=6, batch 8, 32x32) and of an MLP: ``plain`` vs recorded with
  ``gradflow.record(model, pairs=False, weights=False)`` (``per_step``), ``weights=True``
  (``weights``) and ``pairs=True, weights=True`` (``pairs``); then the same with the neurons on the
  fused backend (``plain_fused``, ``fused_per_step``, ``fused_weights``, ``fused_pairs``: the recorder
  takes the split from the fused backward's tap). ``weights_floor`` / ``fused_weights_floor`` record
  nothing: the plain step plus, after its backward, the weight (and bias) gradient of every
  convolution and linear call whose weight the split covers, from a fixed random output gradient,
  each computed alone (:func:`weight_grad_kernel`) — the kernels any exact weight split has to add, so
  their ratio is a floor under ``weights``. ``time_ratio`` is against the plain step on the *same*
  backend (``plain`` or ``plain_fused``); ``torch_ratio`` against ``plain`` on the torch backend.

Timing: warm-up calls, then ``repeats`` rounds; in every round each variant runs once, the order
rotating from round to round so that drift (other processes, thermal state) hits all variants
alike; the reported time is the median. Ratios are against the first variant (``baseline`` /
``plain``) measured in the same process. On CUDA the time comes from CUDA events.

Memory (the method is named in every row and in the JSON ``meta``):

* ``saved_mb`` — bytes of the distinct storages autograd saves for backward during the forward,
  collected with :func:`torch.autograd.graph.saved_tensors_hooks` (the input's own storage excluded);
  exact and device-independent, but blind to temporaries of the backward.
* ``peak_mb`` — the peak extra memory of one whole call, after a warm-up call. CUDA:
  ``torch.cuda.max_memory_allocated`` minus the allocation before the call. CPU (torch does not
  count CPU allocations): the process's resident set, read from the kernel — garbage collected, freed
  heap handed back (glibc ``malloc_trim``), the peak counter reset (``/proc/self/clear_refs``), then
  ``VmHWM - VmRSS(before)`` around the call. It includes allocator slack and is rounded to pages: it is
  what the machine had to provide. ``isolated=True`` does the same in a fresh subprocess per variant
  (slower; no memory left over from other variants can be reused). NaN where ``/proc`` is missing.

>>> df = neuron_bench(neurons=("lif",), Ts=(2,), sizes=(64,), repeats=1, warmup=0, peak=False)
>>> sorted(df.variant)[:3]
['baseline', 'fused', 'spikingjelly']
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pandas as pd
import torch
from torch import nn

from ..errors import UsageError
from ..neurons import build_neuron
from ..surrogate import Surrogate, spike
from .watch_bench import WATCH_MODELS, WATCH_QUICK_MODELS, watch_bench

__all__ = [
    "NEURON_VARIANTS",
    "TRAIN_VARIANTS",
    "NEURON_COLUMNS",
    "TRAIN_COLUMNS",
    "StepwiseNeuron",
    "neuron_bench",
    "weight_grad_kernel",
    "training_bench",
    "run_bench",
    "targets",
    "QUICK",
    "FULL",
]

NEURON_VARIANTS = ("baseline", "torch", "fused", "spikingjelly")
TRAIN_VARIANTS = ("plain", "per_step", "weights", "pairs", "weights_floor", "plain_fused", "fused_per_step",
                  "fused_weights", "fused_pairs", "fused_weights_floor")

#: Columns of :func:`neuron_bench` (time in ms; ratios against ``baseline`` of the same case).
NEURON_COLUMNS = [
    "neuron", "T", "size", "variant", "time_ms", "time_ratio", "speedup", "saved_mb", "saved_ratio",
    "peak_mb", "peak_ratio", "repeats",
]
#: Columns of :func:`training_bench` (ratios against the plain step of the same model and backend;
#: ``torch_ratio`` against the plain step on the torch backend).
TRAIN_COLUMNS = [
    "model", "neuron", "T", "batch", "variant", "time_ms", "time_ratio", "torch_ratio", "peak_mb",
    "extra_peak_mb", "peak_ratio", "repeats",
]

#: Settings of ``gradflow bench --quick`` and of the full run.
QUICK = dict(
    neurons=("lif", "clif"), Ts=(4, 8), sizes=(1_000, 10_000), repeats=2, warmup=1,
    models=(("mlp", dict(in_features=64, widths=(128,), T=4, batch=16)),
            ("spiking_resnet18", dict(T=2, batch=1))),
    train_neurons=("lif",), train_repeats=1, train_warmup=1,
)
FULL = dict(
    neurons=("lif", "clif"), Ts=(4, 8, 32), sizes=(10_000, 100_000, 1_000_000), repeats=5, warmup=1,
    models=(("spiking_resnet18", dict(T=6, batch=8)),
            ("mlp", dict(in_features=784, widths=(1024, 1024), T=8, batch=64))),
    train_neurons=("lif", "clif"), train_repeats=5, train_warmup=1,
)


# ----------------------------------------------------------------------------- the baseline


class StepwiseNeuron(nn.Module):
    """Baseline: a stateful single-step LIF/CLIF module called once per time step.

    This is how the official CLIF code (``ComplementaryLIFNeuron``) and SpikingJelly's single-step
    torch backend run a neuron: the module keeps ``v`` (and ``m``) as attributes between calls,
    every call charges, fires with a surrogate spike function and resets, and autograd records each
    op. Call :meth:`reset` before a new sequence. Soft reset, ``decay_input=False`` (docs/reference.md, Neurons).
    """

    def __init__(self, kind: str = "lif", tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate: Surrogate = Surrogate("rectangle", 1.0)):
        super().__init__()
        if kind not in ("lif", "clif"):
            raise UsageError(f"The step-by-step baseline knows lif and clif, not {kind!r}.")
        self.kind, self.tau, self.v_threshold, self.sur = kind, float(tau), float(v_threshold), surrogate
        self.reset()

    def reset(self) -> None:
        """Forget the state (``v = m = 0``)."""
        self.v = 0.0
        self.m = 0.0

    def forward(self, x_t: torch.Tensor) -> torch.Tensor:
        """One step: ``x_t`` ``[N, ...]`` -> spikes ``[N, ...]``; the state is updated in place."""
        # charge
        self.v = self.v * (1.0 - 1.0 / self.tau) + x_t
        # fire
        s = spike(self.v - self.v_threshold, self.sur)
        # reset
        if self.kind == "clif":
            self.m = self.m * torch.sigmoid(self.v / self.tau) + s
            self.v = self.v - s * (self.v_threshold + torch.sigmoid(self.m))
        else:
            self.v = self.v - self.v_threshold * s
        return s


def _stepwise(module: StepwiseNeuron, x: torch.Tensor) -> torch.Tensor:
    module.reset()
    return torch.stack([module(x[t]) for t in range(x.shape[0])])


# ----------------------------------------------------------------------------- cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _neuron_case(spec: dict) -> Optional[dict]:
    """``{"run": fn, "x": input}`` for one neuron variant, or None if the variant is unavailable."""
    device = torch.device(spec["device"])
    dtype = getattr(torch, spec["dtype"])
    T, size, kind, variant = spec["T"], spec["size"], spec["neuron"], spec["variant"]
    gen = torch.Generator().manual_seed(spec.get("seed", 0))
    feat = max(1, size // 16)
    shape = (T, 16, feat) if size >= 16 else (T, size)
    # input current with many threshold crossings, fixed upstream gradient
    x = (torch.randn(shape, generator=gen) * 1.0 + 0.6).to(device, dtype).requires_grad_()
    g = torch.randn(shape, generator=gen).to(device, dtype)
    if variant == "baseline":
        mod = StepwiseNeuron(kind)
        forward = lambda: _stepwise(mod, x)  # noqa: E731
    elif variant in ("torch", "fused"):
        mod = build_neuron(kind, backend=variant).to(device, dtype)
        forward = lambda: mod(x)  # noqa: E731
    elif variant == "spikingjelly":
        if kind != "lif":
            return None
        try:
            from spikingjelly.activation_based import neuron as sjn, surrogate as sjs
        except ImportError:
            return None
        mod = sjn.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=None, detach_reset=False,
                          surrogate_function=sjs.Rect(alpha=1.0), step_mode="m").to(device, dtype)

        def forward():
            mod.reset()
            return mod(x)
    else:
        raise UsageError(f"Unknown neuron bench variant {variant!r}; choose from {', '.join(NEURON_VARIANTS)}.")

    def run():
        x.grad = None
        forward().backward(g)

    return {"run": run, "forward": forward, "x": x}


def weight_grad_kernel(module: nn.Module, inp: torch.Tensor, grad: torch.Tensor):
    """``(d weight, d bias)`` of one call ``module(inp)`` (a convolution or ``nn.Linear``) for the output
    gradient ``grad``, computed alone: no input gradient, no autograd graph (``d bias`` None without
    a bias). The weight split adds exactly this per call (:mod:`gradflow.recorder.region`).

    >>> lin = nn.Linear(3, 2); x = torch.randn(4, 3); g = torch.randn(4, 2)
    >>> gw, gb = weight_grad_kernel(lin, x, g)
    >>> bool(torch.allclose(gw, g.t() @ x)) and bool(torch.allclose(gb, g.sum(0)))
    True
    """
    if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) or getattr(module, "transposed", False):
        raise UsageError(f"The weight-gradient floor knows convolutions and linear layers, not {type(module).__name__}.")
    bias = module.bias is not None
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            g2, x2 = grad.reshape(-1, grad.shape[-1]), inp.reshape(-1, inp.shape[-1])
            return g2.t().mm(x2), (g2.sum(0) if bias else None)
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise UsageError("The weight-gradient floor needs numeric zero padding "
                             f"(got padding={module.padding!r}, padding_mode={module.padding_mode!r}).")
        _, gw, gb = torch.ops.aten.convolution_backward(
            grad, inp, module.weight, [module.out_channels] if bias else None, list(module.stride),
            list(module.padding), list(module.dilation), False, [0] * len(module.stride), module.groups,
            [False, True, bias])
        return gw, gb


def _split_modules(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> List[nn.Module]:
    """The convolution and linear modules whose weight the recorder's weight split covers (from one
    recorded backward; the gradients it leaves are cleared)."""
    import gradflow
    from gradflow import losses

    with gradflow.record(net, pairs=False, weights=True) as rec:
        losses.ce_over_time(net(x), y).backward()
    names = set(rec.weights()["param"])
    net.zero_grad(set_to_none=True)
    return [m for name, m in net.named_modules()
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and f"{name}.weight" in names]


def _train_case(spec: dict) -> dict:
    """``{"run": fn, "net", "x", "y"}``: one SGD training step of ``spec["model"]`` on ``(x, y)``, recorded
    per ``spec["variant"]`` (the floor variants: plain, then the weight-gradient kernels)."""
    import gradflow
    from gradflow import losses, models

    device = torch.device(spec["device"])
    torch.manual_seed(spec.get("seed", 0))
    opts = dict(spec.get("options", {}))
    T, batch = opts.pop("T"), opts.pop("batch")
    name, variant = spec["model"], spec["variant"]
    if variant not in TRAIN_VARIANTS:
        raise UsageError(f"Unknown training bench variant {variant!r}; choose from {', '.join(TRAIN_VARIANTS)}.")
    if name == "mlp":
        net = models.build("mlp", neuron=spec["neuron"], num_classes=10, T=T, **opts)
        x = torch.rand(batch, net.in_features)
    else:
        net = models.build(name, neuron=spec["neuron"], num_classes=10, T=T, **opts)
        x = torch.rand(batch, 3, 32, 32)
    if "fused" in variant:
        for m in net.modules():
            if hasattr(m, "backend"):
                m.backend = "fused"
    net = net.to(device).train()
    x, y = x.to(device), torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    rec_kw = {"per_step": dict(pairs=False, weights=False), "weights": dict(pairs=False, weights=True),
              "pairs": dict(pairs=True, weights=True)}.get(variant.replace("fused_", ""))
    calls: List[Tuple[nn.Module, torch.Tensor, torch.Size]] = []
    grads: Dict[Tuple[int, torch.Size], torch.Tensor] = {}
    if variant.endswith("weights_floor"):
        for m in _split_modules(net, x, y):
            m.register_forward_hook(lambda m, inp, out: calls.append((m, inp[0], out.shape)))
    gen = torch.Generator().manual_seed(2)

    def run():
        opt.zero_grad(set_to_none=True)
        calls.clear()
        if rec_kw is None:
            losses.ce_over_time(net(x), y).backward()
        else:
            with gradflow.record(net, **rec_kw):
                losses.ce_over_time(net(x), y).backward()
        for i, (m, inp, shape) in enumerate(calls):  # the floor: each call's weight gradient alone
            g = grads.get((i, shape))
            if g is None:
                g = grads[(i, shape)] = torch.randn(shape, generator=gen).to(device, inp.dtype)
            weight_grad_kernel(m, inp, g)
        calls.clear()
        opt.step()

    return {"run": run, "net": net, "x": x, "y": y}


# ----------------------------------------------------------------------------- measurement


def _time_rounds(
    runs: Dict[str, Callable[[], None]], repeats: int, warmup: int, device: torch.device
) -> Dict[str, float]:
    """Median seconds per variant; rounds interleave the variants in rotating order."""
    names = list(runs)
    for _ in range(warmup):
        for n in names:
            runs[n]()
    _sync(device)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(max(1, repeats)):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                runs[n]()
                end.record()
                torch.cuda.synchronize(device)
                times[n].append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                runs[n]()
                times[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def _saved_bytes(forward: Callable[[], torch.Tensor], exclude: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves during ``forward()`` (``exclude``'s storages left out)."""
    seen = {t.untyped_storage().data_ptr() for t in exclude}
    total = 0

    def pack(t):
        nonlocal total
        st = t.untyped_storage()
        key = st.data_ptr()
        if key not in seen:
            seen.add(key)
            total += st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return total


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _trim_heap() -> None:
    """Collect garbage and hand freed heap pages back to the kernel (glibc ``malloc_trim``)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter ``VmHWM`` to the current RSS (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_of(run: Callable[[], None], device: torch.device) -> float:
    """Peak extra memory (MB) of one ``run()`` after a warm-up call; NaN where it cannot be measured.

    CUDA: allocator statistics. CPU: ``VmHWM - VmRSS`` around the call, with the heap trimmed and the
    peak counter reset just before it.
    """
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    _trim_heap()
    if not _reset_peak_rss():
        return math.nan
    before = _rss_kb("VmRSS")
    run()
    return max(0, _rss_kb("VmHWM") - before) / 1024.0


def _child_peak(spec: dict) -> dict:
    """In a fresh process: set up one case and report :func:`_peak_of` for it."""
    torch.set_num_threads(spec.get("threads", 1))
    case = _neuron_case(spec) if spec["kind"] == "neuron" else _train_case(spec)
    return {"peak_mb": _peak_of(case["run"], torch.device(spec["device"]))}


def _peak_mb(spec: dict, case: Optional[dict] = None, isolated: bool = False) -> float:
    """Peak extra memory of one call: in this process (``case`` given), or in a fresh subprocess."""
    if not isolated or spec["device"].startswith("cuda"):
        case = case if case is not None else (_neuron_case(spec) if spec["kind"] == "neuron" else _train_case(spec))
        if case is None:
            return math.nan
        return _peak_of(case["run"], torch.device(spec["device"]))
    cmd = [sys.executable, "-m", "gradflow.lab.bench", "--child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"peak-memory subprocess failed: {proc.stderr.strip()[-500:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


# ----------------------------------------------------------------------------- benchmarks


def neuron_bench(
    neurons: Sequence[str] = ("lif", "clif"),
    Ts: Sequence[int] = (4, 8, 32),
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    variants: Sequence[str] = NEURON_VARIANTS,
    device: str = "cpu",
    dtype: str = "float32",
    repeats: int = 5,
    warmup: int = 1,
    threads: Optional[int] = None,
    peak: bool = True,
    isolated: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> pd.DataFrame:
    """Forward + backward of one neuron layer: time, saved and peak memory per variant (:data:`NEURON_COLUMNS`).

    ``size`` is the number of neurons (batch times features) per step; ``time_ratio`` is time over
    the baseline's, ``speedup`` its inverse; ``saved_ratio`` and ``peak_ratio`` are memory over the
    baseline's. ``peak=False`` skips the peak measurement; ``isolated=True`` measures it in a fresh
    subprocess per variant instead of in this process.
    """
    for v in variants:
        if v not in NEURON_VARIANTS:
            raise UsageError(f"Unknown neuron bench variant {v!r}; choose from {', '.join(NEURON_VARIANTS)}.")
    variants = ["baseline"] + [v for v in variants if v != "baseline"]
    dev = torch.device(device)
    rows = []
    for kind in neurons:
        for T in Ts:
            for size in sizes:
                base = dict(kind="neuron", neuron=kind, T=int(T), size=int(size), device=device, dtype=dtype,
                            threads=threads or torch.get_num_threads())
                cases = {v: _neuron_case(dict(base, variant=v)) for v in variants}
                cases = {v: c for v, c in cases.items() if c is not None}
                times = _time_rounds({v: c["run"] for v, c in cases.items()}, repeats, warmup, dev)
                for v, c in cases.items():
                    saved = _saved_bytes(c["forward"], exclude=(c["x"],)) / 2**20
                    pk = _peak_mb(dict(base, variant=v), c, isolated) if peak else math.nan
                    rows.append(dict(neuron=kind, T=int(T), size=int(size), variant=v, time_ms=times[v] * 1e3,
                                     saved_mb=saved, peak_mb=pk, repeats=int(repeats)))
                del cases
                if log:
                    done = [r for r in rows if r["neuron"] == kind and r["T"] == T and r["size"] == size]
                    msg = " ".join(f"{r['variant']}={r['time_ms']:.1f}ms" for r in done)
                    log(f"{msg}  [{kind} T={T} size={size}]")
    df = pd.DataFrame(rows)
    ref = df[df.variant == "baseline"].set_index(["neuron", "T", "size"])
    key = list(zip(df.neuron, df["T"], df["size"]))
    df["time_ratio"] = [_ratio(t, ref.loc[k, "time_ms"]) for t, k in zip(df.time_ms, key)]
    df["speedup"] = 1.0 / df["time_ratio"]
    df["saved_ratio"] = [_ratio(s, ref.loc[k, "saved_mb"]) for s, k in zip(df.saved_mb, key)]
    df["peak_ratio"] = [_ratio(s, ref.loc[k, "peak_mb"]) for s, k in zip(df.peak_mb, key)]
    return df[NEURON_COLUMNS]


def training_bench(
    models: Sequence = FULL["models"],
    neurons: Sequence[str] = ("lif",),
    variants: Sequence[str] = TRAIN_VARIANTS,
    device: str = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    threads: Optional[int] = None,
    peak: bool = True,
    isolated: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> pd.DataFrame:
    """One SGD training step, plain vs recorded: time and peak memory per variant (:data:`TRAIN_COLUMNS`).

    ``models``: ``(name, options)`` pairs, options holding ``T``, ``batch`` and builder options (the
    MLP needs ``in_features``). ``time_ratio``, ``peak_ratio`` and ``extra_peak_mb`` are against the
    plain step on the same neuron backend (``plain`` for the torch variants, ``plain_fused`` for the
    ``fused_*`` ones, which is then measured too); ``torch_ratio`` is time against ``plain``.
    """
    for v in variants:
        if v not in TRAIN_VARIANTS:
            raise UsageError(f"Unknown training bench variant {v!r}; choose from {', '.join(TRAIN_VARIANTS)}.")
    variants = ["plain"] + [v for v in variants if v != "plain"]
    if any(v.startswith("fused_") for v in variants) and "plain_fused" not in variants:
        variants.insert(1, "plain_fused")
    dev = torch.device(device)
    rows = []
    for name, options in models:
        for kind in neurons:
            base = dict(kind="train", model=name, neuron=kind, options=dict(options), device=device,
                        threads=threads or torch.get_num_threads())
            cases = {v: _train_case(dict(base, variant=v)) for v in variants}
            times = _time_rounds({v: c["run"] for v, c in cases.items()}, repeats, warmup, dev)
            for v in variants:
                pk = _peak_mb(dict(base, variant=v), cases[v], isolated) if peak else math.nan
                rows.append(dict(model=name, neuron=kind, T=int(options["T"]), batch=int(options["batch"]), variant=v,
                                 time_ms=times[v] * 1e3, peak_mb=pk, repeats=int(repeats)))
            del cases
            if log:
                done = {r["variant"]: r["time_ms"] for r in rows if r["model"] == name and r["neuron"] == kind}
                log(" ".join(f"{v}={t / done[_plain_of(v)]:.2f}x" for v, t in done.items()) + f"  [{name} {kind}]")
    df = pd.DataFrame(rows)
    plain = df.set_index(["model", "neuron", "variant"])
    same = [(m, n, _plain_of(v)) for m, n, v in zip(df.model, df.neuron, df.variant)]
    torch_plain = [(m, n, "plain") for m, n in zip(df.model, df.neuron)]
    df["time_ratio"] = [_ratio(t, plain.loc[k, "time_ms"]) for t, k in zip(df.time_ms, same)]
    df["torch_ratio"] = [_ratio(t, plain.loc[k, "time_ms"]) for t, k in zip(df.time_ms, torch_plain)]
    df["extra_peak_mb"] = [p - plain.loc[k, "peak_mb"] for p, k in zip(df.peak_mb, same)]
    df["peak_ratio"] = [_ratio(p, plain.loc[k, "peak_mb"]) for p, k in zip(df.peak_mb, same)]
    return df[TRAIN_COLUMNS]


def _plain_of(variant: str) -> str:
    """The plain step a training variant is compared with: the same neuron backend."""
    return "plain_fused" if variant.startswith("fused") or variant == "plain_fused" else "plain"


#: Targets (issue 12): name -> (table, row selector, column, comparison, bound). Recording ratios are
#: against the plain step on the same backend.
TARGETS = {
    "clif_fused_speedup_T8_1e6": (
        "neurons", dict(neuron="clif", T=8, size=1_000_000, variant="fused"), "speedup", ">=", 3.0),
    "clif_fused_peak_ratio_T8_1e6": (
        "neurons", dict(neuron="clif", T=8, size=1_000_000, variant="fused"), "peak_ratio", "<=", 0.5),
}
for _kind in ("lif", "clif"):
    for _backend in ("", "fused_"):
        for _variant, _bound in (("per_step", 1.10), ("weights", 1.40), ("pairs", 1.50)):
            TARGETS[f"resnet18_{_kind}_{_backend}{_variant}_time_ratio"] = (
                "training", dict(model="spiking_resnet18", neuron=_kind, variant=_backend + _variant), "time_ratio",
                "<=", _bound)
del _kind, _backend, _variant, _bound


def targets(neurons: Optional[pd.DataFrame], training: Optional[pd.DataFrame]) -> dict:
    """Each target of :data:`TARGETS` with its measured value (None where not measured) and ``met``."""
    tables = {"neurons": neurons, "training": training}
    out = {}
    for key, (table, sel, col, op, bound) in TARGETS.items():
        df = tables[table]
        value = None
        if df is not None and len(df):
            mask = pd.Series(True, index=df.index)
            for c, v in sel.items():
                mask &= df[c] == v
            vals = df.loc[mask, col].dropna()
            if len(vals):
                value = float(vals.iloc[0])
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
    return out


def run_bench(
    quick: bool = False,
    device: str = "cpu",
    threads: Optional[int] = 1,
    parts: Sequence[str] = ("neurons", "training"),
    peak: bool = True,
    isolated: bool = False,
    log: Optional[Callable[[str], None]] = None,
) -> dict:
    """The benchmarks named in ``parts`` (``neurons``, ``training``, ``watch``) with the ``--quick`` or
    full settings; a JSON-ready dict.

    Keys: ``meta`` (versions, device, threads, dtype, methods, settings), ``neurons``, ``training``
    and ``watch`` (lists of row dicts, :data:`NEURON_COLUMNS` / :data:`TRAIN_COLUMNS` /
    :data:`gradflow.lab.watch_bench.WATCH_COLUMNS`: the overhead of ``gradflow.watch(every=100)``) and
    ``targets`` (see :func:`targets`). ``threads`` sets ``torch.set_num_threads`` (CPU) for the run
    and its subprocesses; None keeps torch's default.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device.")
    if threads is not None:
        if threads < 1:
            raise UsageError(f"threads must be a positive integer, got {threads!r}.")
        torch.set_num_threads(threads)
    cfg = QUICK if quick else FULL
    on_cuda = device.startswith("cuda")
    meta = {
        "gradflow_bench": 1,
        "quick": bool(quick),
        "device": device,
        "device_name": (torch.cuda.get_device_name(torch.device(device)) if on_cuda
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "timing": ("CUDA events" if on_cuda else "time.perf_counter") + "; median of repeats after warm-up, "
                  "variants interleaved in rotating order; ratios against the first variant in the same process",
        "memory_saved": "saved_mb: distinct storages packed by torch.autograd.graph.saved_tensors_hooks during the "
                        "forward (input storage excluded)",
        "memory_peak": ("peak_mb: torch.cuda.max_memory_allocated minus allocation before the call, after warm-up"
                        if on_cuda else
                        "peak_mb: VmHWM - VmRSS around one call after a warm-up call, gc + malloc_trim and a peak "
                        "reset via /proc/self/clear_refs" + (", each variant in a fresh subprocess" if isolated else
                                                            ", in this process")) if peak else "not measured",
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if k != "models"},
        "models": [[name, dict(opts)] for name, opts in cfg["models"]],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    nb = tb = None
    if "neurons" in parts:
        nb = neuron_bench(cfg["neurons"], cfg["Ts"], cfg["sizes"], device=device, repeats=cfg["repeats"],
                          warmup=cfg["warmup"], threads=threads, peak=peak, isolated=isolated, log=log)
    if "training" in parts:
        tb = training_bench(cfg["models"], cfg["train_neurons"], device=device, repeats=cfg["train_repeats"],
                            warmup=cfg["train_warmup"], threads=threads, peak=peak, isolated=isolated, log=log)
    wb = None
    if "watch" in parts:
        wb = watch_bench(WATCH_QUICK_MODELS if quick else WATCH_MODELS, threads=threads, log=log,
                         **(dict(steps=20, every=10, probe_steps=2, repeats=1, probe_seconds=0.0, first_runs=1)
                            if quick else {}))
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "meta": meta,
        "neurons": [] if nb is None else _records(nb),
        "training": [] if tb is None else _records(tb),
        "watch": [] if wb is None else _records(wb),
        "targets": targets(nb, tb),
    }


def _records(df: pd.DataFrame) -> list:
    """Rows as plain dicts with NaN -> None (valid JSON)."""
    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return out


if __name__ == "__main__":  # peak-memory child: python -m gradflow.lab.bench --child SPEC_JSON
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        print(json.dumps(_child_peak(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m gradflow.lab.bench --child SPEC_JSON (internal; use `gradflow bench`)")
