"""``gradflow bench --part watch``: what :func:`gradflow.watch` costs a training loop.

For each model one SGD training step (forward, CE-over-time loss, backward, update) is timed three
ways, on two copies of the same network stepped alternately (so drift hits both alike):

* ``step_ms``: the plain step (median over ``2 probe_steps`` steps);
* ``recorded_step_ms``: a recorded step under ``gradflow.watch(every=2)`` (median over ``probe_steps``
  recorded steps, each after an unrecorded one, as in a real run), its tables, summary (1000-resample
  bootstrap) and CSV rows written at the optimiser step included;
* ``hook_us``: what an unrecorded step pays, the watch's forward-pre-hook counter, timed on a model
  with almost no compute (median over 2000 pairs of grad-enabled calls of a watched model and an
  unwatched copy, called alternately).

The overhead of a run of ``steps`` steps recording every ``every``-th (``n_rec = ceil(steps / every)``
recorded steps) follows::

    estimated_overhead = (n_rec (recorded_step - step) + (steps - n_rec) hook) / (steps * step)

and, for the models in ``direct`` (fast ones), it is also measured end to end: ``repeats`` runs of
``steps`` plain steps against ``steps`` watched steps (watch created and closed inside the timed
region), interleaved in rotating order, medians compared (``direct_overhead_pct``). On a busy machine
the direct figure carries the machine's noise (a few percent); the estimate does not depend on it.
Never use these numbers as test assertions.

>>> df = watch_bench(models=(("mlp", dict(in_features=8, widths=(8,), T=2, batch=4)),), steps=4, every=2,
...                  probe_steps=2, repeats=1, hook_calls=10)
>>> int(df.loc[0, "recorded"]), list(df.columns) == WATCH_COLUMNS
(2, True)
"""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
from typing import Callable, Optional, Sequence

import pandas as pd
import torch

from .. import losses, models as model_zoo
from ..watch.watcher import Watch

__all__ = ["WATCH_COLUMNS", "WATCH_MODELS", "WATCH_QUICK_MODELS", "watch_bench", "watch_table"]

#: Columns of :func:`watch_bench` (one row per model).
WATCH_COLUMNS = [
    "model", "neuron", "T", "batch", "steps", "every", "recorded", "step_ms", "recorded_step_ms", "hook_us",
    "estimated_overhead_pct", "direct_plain_s", "direct_watched_s", "direct_overhead_pct", "repeats", "threads",
]

#: Issue 16's setting: the demo MLP (16x16 shapes images, 128-128 hidden, batch 256) and spiking_resnet18,
#: both T = 6 on the CPU.
WATCH_MODELS = (("mlp", dict(in_features=256, widths=(128, 128), T=6, batch=256)),
                ("spiking_resnet18", dict(T=6, batch=8)))

#: ``--quick``: small versions of both.
WATCH_QUICK_MODELS = (("mlp", dict(in_features=64, widths=(64,), T=4, batch=32)),
                      ("spiking_resnet18", dict(T=2, batch=1)))


def _setup(name: str, options: dict, neuron: str):
    """``(net, step)``: a seeded network in train mode and a function doing one SGD step on a fixed batch."""
    opts = dict(options)
    T, batch = opts.pop("T"), opts.pop("batch")
    torch.manual_seed(0)
    net = model_zoo.build(name, neuron=neuron, num_classes=10, T=T, **opts).train()
    g = torch.Generator().manual_seed(1)
    shape = (batch, net.in_features) if name == "mlp" else (batch, 3, 32, 32)
    x, y = torch.rand(shape, generator=g), torch.randint(0, 10, (batch,), generator=g)
    return net, x, y


def _stepper(net, x, y) -> Callable[[], None]:
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        losses.ce_over_time(net(x), y).backward()
        opt.step()

    return step


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _hook_us(neuron: str, calls: int) -> float:
    """Microseconds an unrecorded, grad-enabled model call pays for the watch's counter: the median of
    paired differences between a watched model and an unwatched copy, called alternately (so that the
    machine's drift hits both alike)."""
    torch.manual_seed(0)
    net = model_zoo.build("mlp", neuron=neuron, num_classes=2, T=1, in_features=1, widths=(1,))
    bare = copy.deepcopy(net)
    x = torch.zeros(1, 1)
    diffs = []
    with torch.enable_grad(), Watch(net, every=10 ** 9, start=1, n_resamples=10):   # steps 1, 2, ...: none due
        net(x), bare(x)
        for i in range(calls):
            first, second = (net, bare) if i % 2 == 0 else (bare, net)   # alternate the order too
            a, b = _timed(lambda: first(x)), _timed(lambda: second(x))
            diffs.append(a - b if first is net else b - a)
    return 1e6 * statistics.median(diffs)


def _probe(name: str, options: dict, neuron: str, n: int) -> tuple:
    """Median plain and recorded step times (seconds): two model copies stepped alternately, the copy
    under ``watch(every=2)``, so that each recorded step follows an unrecorded one, as in a real run
    (caches and the allocator are not left warm by the previous recording)."""
    net, x, y = _setup(name, options, neuron)
    twin = copy.deepcopy(net)
    plain, watched_step = _stepper(net, x, y), _stepper(twin, x, y)
    with tempfile.TemporaryDirectory() as tmp, Watch(twin, every=2, out=tmp) as w:
        for _ in range(2):                               # warm-up: steps 0 (recorded, first files) and 1
            plain(), watched_step()
        t_plain, t_rec = [], []
        for i in range(2 * n):                           # steps 2, 3, ...: the even ones are recorded
            t_plain.append(_timed(plain))
            t = _timed(watched_step)                     # a recorded step writes its rows at opt.step()
            if i % 2 == 0:
                t_rec.append(t)
        t_rec[-1] += _timed(w.close)
    return statistics.median(t_plain), statistics.median(t_rec)


def _direct(name: str, options: dict, neuron: str, steps: int, every: int, repeats: int) -> tuple:
    """Median wall time of ``steps`` plain vs watched steps (rotating order over ``repeats`` rounds)."""
    net, x, y = _setup(name, options, neuron)
    times = {"plain": [], "watched": []}

    def run(kind: str) -> None:
        model = copy.deepcopy(net)
        step = _stepper(model, x, y)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            if kind == "watched":
                with Watch(model, every=every, out=tmp):
                    for _ in range(steps):
                        step()
            else:
                for _ in range(steps):
                    step()
            times[kind].append(time.perf_counter() - t0)

    run("plain")   # warm-up (allocator, first-call costs)
    times["plain"].clear()
    for r in range(repeats):
        for kind in (("plain", "watched") if r % 2 == 0 else ("watched", "plain")):
            run(kind)
    return statistics.median(times["plain"]), statistics.median(times["watched"])


def watch_bench(
    models: Sequence = WATCH_MODELS,
    neuron: str = "lif",
    *,
    steps: int = 200,
    every: int = 100,
    probe_steps: int = 5,
    repeats: int = 3,
    direct: Sequence[str] = ("mlp",),
    hook_calls: int = 2000,
    threads: Optional[int] = 1,
    log: Optional[Callable[[str], None]] = None,
) -> pd.DataFrame:
    """The watch's overhead per model (:data:`WATCH_COLUMNS`); see the module documentation.

    ``models``: ``(name, options)`` pairs with ``T`` and ``batch`` (the MLP also ``in_features``);
    ``direct``: the models also timed end to end over ``steps`` steps; ``threads``: torch CPU threads
    for the run (None keeps the current setting).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    hook = _hook_us(neuron, hook_calls)
    n_rec = math.ceil(steps / every)
    rows = []
    for name, options in models:
        t_step, t_rec = _probe(name, options, neuron, probe_steps)
        # a negative hook time is timing noise around zero: it may not lower the estimate
        est = 100 * (n_rec * (t_rec - t_step) + (steps - n_rec) * max(hook, 0.0) * 1e-6) / (steps * t_step)
        row = dict(model=name, neuron=neuron, T=int(options["T"]), batch=int(options["batch"]), steps=steps,
                   every=every, recorded=n_rec, step_ms=1e3 * t_step, recorded_step_ms=1e3 * t_rec, hook_us=hook,
                   estimated_overhead_pct=est, direct_plain_s=math.nan, direct_watched_s=math.nan,
                   direct_overhead_pct=math.nan, repeats=repeats, threads=torch.get_num_threads())
        if name in direct:
            a, b = _direct(name, options, neuron, steps, every, repeats)
            row.update(direct_plain_s=a, direct_watched_s=b, direct_overhead_pct=100 * (b / a - 1))
        rows.append(row)
        if log:
            log(watch_table([row]).splitlines()[-1])
    return pd.DataFrame(rows, columns=WATCH_COLUMNS)


def watch_table(rows) -> str:
    """The benchmark as text, one line per model."""
    head = (f"{'model':17} {'neuron':6} {'T':>2} {'batch':>5} {'step ms':>9} {'rec. step ms':>12} {'hook us':>8} "
            f"{'est. %':>7} {'direct %':>8}")
    lines = [head, "-" * len(head)]
    for r in (rows.to_dict("records") if hasattr(rows, "to_dict") else rows):
        d = r["direct_overhead_pct"]
        direct = "-" if d is None or math.isnan(d) else f"{d:8.2f}"  # JSON rows carry None for NaN
        lines.append(f"{r['model']:17} {r['neuron']:6} {r['T']:>2} {r['batch']:>5} {r['step_ms']:9.1f} "
                     f"{r['recorded_step_ms']:12.1f} {r['hook_us']:8.1f} {r['estimated_overhead_pct']:7.2f} {direct:>8}")
    return "\n".join(lines)
