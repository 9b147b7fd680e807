"""``gradflow.watch(model, every=N, out=DIR)``: record every N-th step of your own training loop.

One line around an ordinary loop records the gradient flow through time while the network trains::

    with gradflow.watch(model, every=100, out="runs/gradflow") as w:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step(); opt.zero_grad()
    # then: gradflow report runs/gradflow

**What a step is.** With ``count="forward"`` (the default) one *step* is one call of ``model`` made with
gradients enabled; calls under ``torch.no_grad()`` / ``inference_mode`` (validation) are not steps. A
loop with gradient accumulation makes one forward and one backward per micro-batch, so every
micro-batch is a step and "every N-th step" is every N-th backward pass. A loop that calls the model
several times before one backward (siamese inputs, an unrolled RNN driven call by call) should use
``count="manual"`` and call :meth:`Watch.step` once per backward pass (or once per optimiser step:
then the recorded step holds every backward pass made in it). Steps are numbered from 0 (``train_step``);
steps ``0, N, 2N, ...`` are recorded.

**Cost.** Between recorded steps the model carries one forward-pre-hook on its top module (a counter;
with ``count="manual"`` not even that) and no other hook. For a recorded step the recorder
(:func:`gradflow.record`) is attached just before its forward and detached at the next step's
forward, at the next ``optimizer.step()`` (a global optimiser post-hook held only while a recorder is
attached), at :meth:`Watch.step` or at :meth:`Watch.close`, whichever comes first; its tables are then
appended to ``out``. The recorded step itself costs what :func:`gradflow.record` costs.

**What is written** (``out``; every column is defined in docs/reference.md, "Watched runs"):

* ``per_step.csv``, ``lags.csv``, ``weights.csv`` (``weights=True``), ``pairs.csv`` (``pairs=True``),
  ``layers.csv``: the recorder's tables, with ``step`` the recorded backward pass (0, 1, ... over
  the whole run) and an extra last column ``train_step``; ``transport.csv``: the theory's window-model
  inputs of each step (when the recorder collects them, ``Recorder.transport_inputs()``);
* ``summary.csv``: one row per (recorded step, layer) with 95% bootstrap intervals over the step's
  samples (:func:`step_summary`, :data:`SUMMARY_COLUMNS`);
* ``watch.json``: the state (next step, passes recorded, committed size of every table).

Rows are appended as each recorded step is closed, each table in one write, then ``watch.json`` is
replaced atomically: a crash or Ctrl-C loses at most the step in flight, and :func:`read_run` (and a
re-opened watch, which truncates the torn tail) reads only committed rows. Re-opening the same ``out``
resumes: step numbers continue. Memory does not grow with the number of steps (each recorded step
gets a fresh recorder, dropped after writing). With ``out=None`` the tables are kept in memory
instead (:meth:`Watch.tables`), which grows with every recorded step.

**Special cases.** ``torch.autocast``: recorded as any step (the recorder sums squared norms in
float64). ``torch.compile``: the recorded step runs eagerly (``torch.compiler.set_stance("force_eager")``,
so the neurons' hooks see every time step) and all other steps run compiled; a model called *inside*
a compiled function (a compiled training step) cannot be recorded, which :class:`Watch` says in a
warning. ``torch.distributed``: every rank records (the recorder sums squared norms over ranks), only
rank 0 writes, and a resumed run's counters are broadcast from rank 0.

>>> import tempfile, torch, gradflow
>>> net = gradflow.models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=3)
>>> x, y = torch.rand(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
>>> out = tempfile.mkdtemp()
>>> with gradflow.watch(net, every=2, out=out, n_resamples=50) as w:
...     for _ in range(5):
...         gradflow.losses.ce_over_time(net(x), y).backward()
>>> gradflow.watch.read_run(out).summary[["train_step", "layer"]].values.tolist()
[[0, 'sn1'], [2, 'sn1'], [4, 'sn1']]
"""

from __future__ import annotations

import importlib
import sys
import types

from .store import TABLE_NAMES, WatchedRun, read_run
from .summary import INTERVAL_METRICS, SUMMARY_COLUMNS, step_summary

__all__ = ["watch", "Watch", "read_run", "WatchedRun", "step_summary", "SUMMARY_COLUMNS", "INTERVAL_METRICS",
           "TABLE_NAMES", "COUNT_MODES"]

# The recording side needs torch; reading a run (read_run, gradflow report) does not. So the names of
# watcher.py are loaded on first use, and `import gradflow.watch` alone never imports torch.
_WATCHER = ("watch", "Watch", "COUNT_MODES")


def _watcher():
    return importlib.import_module(".watcher", __name__)


def __getattr__(name: str):
    if name in _WATCHER:
        return getattr(_watcher(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_WATCHER))


class _CallableModule(types.ModuleType):
    """``gradflow.watch`` is this package; calling it calls :func:`gradflow.watch.watcher.watch`, so
    ``import gradflow.watch`` (which binds the package to ``gradflow.watch``) cannot hide the function."""

    def __call__(self, model, **options):
        return _watcher().watch(model, **options)


sys.modules[__name__].__class__ = _CallableModule
