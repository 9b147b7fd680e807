"""``gradflow bench --part watch``: what :func:`gradflow.watch` costs a training loop.

For each model one SGD training step (forward, CE-over-time loss, backward, update) of one network
under ``gradflow.watch(every=4)`` is timed step by step, cycles of four steps after a warm-up cycle
(at least ``probe_steps``, more until ``probe_seconds`` have passed, at most 50; the reference steps
interleaved with the recorded ones, so drift hits both alike):

* ``recorded_step_ms``: the recorded step (median), its tables, summary (1000-resample bootstrap) and
  CSV rows written at the optimiser step included;
* ``after_step_ms``: the unrecorded step right after it (median): it pays for the caches and the
  memory the recorded step took;
* ``step_ms``: the plain step: the median of the other two steps of each cycle, less ``hook_us``;
* ``first_ms``: what a run pays once, measured in a fresh process (the median of ``first_runs``
  processes, five by default, for a step under 0.1 s): ``gradflow.watch(...)`` itself, plus its
  first recorded step minus a later one, plus ``close()`` (the first recorded step of a process draws
  and caches the bootstrap's resample counts, opens the files, runs code for the first time); the
  process has made plain steps before, so the plain run's own first-step costs are not counted;
* ``hook_us``: what an unrecorded step pays, the watch's forward-pre-hook counter, timed on a model
  with almost no compute (median over 2000 pairs of grad-enabled calls of a watched model and an
  unwatched copy, called alternately).

The overhead of a run of ``steps`` steps recording every ``every``-th (``n_rec = ceil(steps / every)``
recorded steps, each followed by an unrecorded one when ``every > 1``) follows::

    extra = first + n_rec (recorded_step - step) + n_after (after_step - step) + (steps - n_rec - n_after) hook
    estimated_overhead = extra / (steps * step)          n_after = min(n_rec, steps - n_rec) if every > 1 else 0

(a negative ``first`` or ``hook``, timing noise around a small cost, counts as 0) and, for the
models in ``direct`` (fast ones), it is also measured end to end: ``repeats`` runs of ``steps``
plain steps against ``steps`` watched steps (watch created and closed inside the timed region),
interleaved in rotating order, medians compared (``direct_overhead_pct``). On a busy machine
the direct figure carries the machine's noise (a few percent); the estimate does not depend on it.
Never use these numbers as test assertions.

>>> df = watch_bench(models=(("mlp", dict(in_features=8, widths=(8,), T=2, batch=4)),), steps=4, every=2,
...                  probe_steps=2, repeats=1, hook_calls=10, first=False, probe_seconds=0.0)
>>> int(df.loc[0, "recorded"]), list(df.columns) == WATCH_COLUMNS
(2, True)
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

import pandas as pd
import torch

from .. import losses, models as model_zoo
from ..errors import DataError
from ..watch.watcher import Watch

__all__ = ["WATCH_COLUMNS", "WATCH_MODELS", "WATCH_QUICK_MODELS", "watch_bench", "watch_table", "first_cost"]

#: Columns of :func:`watch_bench` (one row per model).
WATCH_COLUMNS = [
    "model", "neuron", "T", "batch", "steps", "every", "recorded", "step_ms", "recorded_step_ms", "after_step_ms",
    "first_ms", "hook_us", "estimated_overhead_pct", "direct_plain_s", "direct_watched_s", "direct_overhead_pct",
    "repeats", "threads",
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


def _probe(name: str, options: dict, neuron: str, n: int, seconds: float = 0.0, most: int = 50) -> tuple:
    """Median plain, recorded and after-recorded step times (seconds) of one network under
    ``watch(every=4)``: per cycle of four steps, the recorded step, the step after it, and two
    unrecorded steps that serve as the plain reference (their hook, a few microseconds, is taken off
    by the caller). One network, so that every step finds the caches and the memory its neighbours
    left, as in a real run; the reference steps are interleaved with the recorded ones, so drift hits
    both alike. At least ``n`` cycles, more (up to ``most``) until ``seconds`` of cycles have run: a
    fast step gets more samples for its medians."""
    net, x, y = _setup(name, options, neuron)
    step = _stepper(net, x, y)
    with tempfile.TemporaryDirectory() as tmp, Watch(net, every=4, out=tmp):
        for _ in range(4):                               # warm-up: one cycle (the first recording, files)
            step()
        t_rec, t_after, t_plain = [], [], []
        start, cycles = time.perf_counter(), 0
        while cycles < n or (cycles < most and time.perf_counter() - start < seconds):
            for k in range(4):                           # every fourth step is recorded
                t = _timed(step)                         # a recorded step writes its rows at opt.step()
                (t_rec, t_after, t_plain, t_plain)[k].append(t)
            cycles += 1
    return statistics.median(t_plain), statistics.median(t_rec), statistics.median(t_after)


def first_cost(name: str, options: dict, neuron: str, n: int = 3) -> float:
    """Seconds a watched run pays once (``first_ms``; module documentation), in this process: call it in a
    fresh one. Plain steps first (the plain run's own first-step costs are not the watch's), then
    ``Watch(...)``, ``2 n + 1`` steps (recorded: 0, 2, ...) and ``close()``; returns init + close + the
    first recorded step minus the median of the later ones."""
    net, x, y = _setup(name, options, neuron)
    step = _stepper(net, x, y)
    for _ in range(3):
        step()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        w = Watch(net, every=2, out=tmp)
        t_init = time.perf_counter() - t0
        times = [_timed(step) for _ in range(2 * n + 1)]
        t_close = _timed(w.close)
    return t_init + t_close + times[0] - statistics.median(times[2::2])


def _first_in_subprocess(name: str, options: dict, neuron: str, threads: Optional[int]) -> float:
    """:func:`first_cost` in a fresh Python process (same interpreter and thread setting)."""
    code = ("import json, sys, torch\n"
            "from gradflow.lab.watch_bench import first_cost\n"
            "args = json.loads(sys.argv[1])\n"
            "if args['threads'] is not None: torch.set_num_threads(args['threads'])\n"
            "print(json.dumps(first_cost(args['name'], args['options'], args['neuron'])))\n")
    arg = json.dumps(dict(name=name, options=options, neuron=neuron, threads=threads))
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"The fresh process that measures first_ms for {name} failed: {last}")
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


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
    first: bool = True,
    probe_seconds: float = 3.0,
    first_runs: int = 5,
    log: Optional[Callable[[str], None]] = None,
) -> pd.DataFrame:
    """The watch's overhead per model (:data:`WATCH_COLUMNS`); see the module documentation.

    ``models``: ``(name, options)`` pairs with ``T`` and ``batch`` (the MLP also ``in_features``);
    ``direct``: the models also timed end to end over ``steps`` steps; ``threads``: torch CPU threads
    for the run (None keeps the current setting); ``first``: measure the one-time cost in a fresh
    process (False: ``first_ms`` is NaN and counts as 0); ``probe_seconds``: run more probe cycles
    (up to 50) until this much time has passed, so that fast models get more samples; ``first_runs``:
    fresh processes whose median is ``first_ms``, for models whose step takes under 0.1 s (one
    otherwise).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    hook = _hook_us(neuron, hook_calls)
    n_rec = math.ceil(steps / every)
    n_after = min(n_rec, steps - n_rec) if every > 1 else 0
    rows = []
    for name, options in models:
        t_ref, t_rec, t_after = _probe(name, options, neuron, probe_steps, seconds=probe_seconds)
        t_step = t_ref - max(hook, 0.0) * 1e-6          # the reference steps carry the watch's counter
        t_first = math.nan
        if first:
            runs = max(1, first_runs) if t_ref < 0.1 else 1
            t_first = statistics.median(_first_in_subprocess(name, options, neuron, threads) for _ in range(runs))
        # a negative hook or one-time cost is timing noise around zero: it may not lower the estimate
        first_s = 0.0 if math.isnan(t_first) else max(t_first, 0.0)
        extra = (first_s + n_rec * (t_rec - t_step) + n_after * (t_after - t_step)
                 + (steps - n_rec - n_after) * max(hook, 0.0) * 1e-6)
        row = dict(model=name, neuron=neuron, T=int(options["T"]), batch=int(options["batch"]), steps=steps,
                   every=every, recorded=n_rec, step_ms=1e3 * t_step, recorded_step_ms=1e3 * t_rec,
                   after_step_ms=1e3 * t_after, first_ms=1e3 * t_first, hook_us=hook,
                   estimated_overhead_pct=100 * extra / (steps * t_step), direct_plain_s=math.nan,
                   direct_watched_s=math.nan, direct_overhead_pct=math.nan, repeats=repeats,
                   threads=torch.get_num_threads())
        if name in direct:
            a, b = _direct(name, options, neuron, steps, every, repeats)
            row.update(direct_plain_s=a, direct_watched_s=b, direct_overhead_pct=100 * (b / a - 1))
        rows.append(row)
        if log:
            log(watch_table([row]).splitlines()[-1])
    return pd.DataFrame(rows, columns=WATCH_COLUMNS)


def watch_table(rows) -> str:
    """The benchmark as text, one line per model."""
    head = (f"{'model':17} {'neuron':6} {'T':>2} {'batch':>5} {'step ms':>9} {'rec. step ms':>12} "
            f"{'after ms':>9} {'first ms':>9} {'hook us':>8} {'est. %':>7} {'direct %':>8}")
    lines = [head, "-" * len(head)]

    def num(v, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if v is None or math.isnan(v) else f"{v:{width}.{digits}f}"  # JSON: None for NaN

    for r in (rows.to_dict("records") if hasattr(rows, "to_dict") else rows):
        lines.append(f"{r['model']:17} {r['neuron']:6} {r['T']:>2} {r['batch']:>5} {r['step_ms']:9.1f} "
                     f"{r['recorded_step_ms']:12.1f} {num(r.get('after_step_ms'), 9, 1)} "
                     f"{num(r.get('first_ms'), 9, 1)} {r['hook_us']:8.1f} {r['estimated_overhead_pct']:7.2f} "
                     f"{num(r['direct_overhead_pct'], 8, 2)}")
    return "\n".join(lines)
