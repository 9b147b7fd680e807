"""Small, seeded sweeps that regenerate the committed reports under ``reports/``.

Each experiment trains (or records) a grid of small networks with :func:`gradflow.train.train`, one run
per configuration and seed, and writes to its output directory:

* ``runs.csv`` -- one row per run: the configuration, ``seed``, final ``test_accuracy`` and ``test_loss``
  (the last epoch's, never the best: no selection on the test set) and ``seconds``;
* ``summary.csv`` and ``summary.md`` -- mean and standard deviation over seeds per configuration;
* further tables (e.g. ``weights.csv``, the recorder's weight split over training) and ``figures/*.png``.

``report.md`` beside them is written by a person from these numbers; the experiment never touches it.
``gradflow experiment NAME --out reports/NAME`` regenerates everything else.

This module is the registry (:data:`EXPERIMENTS`: names, where each experiment lives, one line about
it) and imports nothing heavy, so the command line can list the experiments without loading torch;
:func:`run_experiment` imports the experiment's module when it runs it.

=====================  ==================================================================================
name                   what
=====================  ==================================================================================
lif-vs-clif-delay      accuracy vs the delay D of the delayed-cue task, LIF vs CLIF at equal budget, and the
                       signed temporal projection of each layer's weight gradient and the gradient reaching
                       the cue, with intervals, before and during training
lif-vs-clif-delay-lr   the same at D = 4, 5 for three learning rates (is the LIF-CLIF gap an lr effect?)
tau-truncation         LIF accuracy for tau x truncation k (paper Table 3), temporal and static task
tau-truncation-snn5    the static half with the paper's conv net snn5_noAP (tau 1.1/2, k = 1/T)
lif-vs-clif-T          accuracy vs T on the static shapes task (paper Fig. 2b)
lif-vs-clif-T-snn5     the same with the paper's Fig. 2 network snn5_noAP on 32x32 shapes
clif-to-lif            CLIF-trained nets run with LIF neurons and a hard reset, sweeping v_reset (Table 8)
resnet18-gradflow      spiking_resnet18 on 32x32 shapes, LIF vs CLIF, at initialisation and after a short
                       run: per-layer signed weight projection, cosine and transport (relative_k), with
                       intervals
paper-claim            LIF/CLIF ablation on real digits: truncation x surrogate width, gradient measured
                       with intervals
lif-vs-clif-T-digits   accuracy and relative_k vs T up to 64 on digits
=====================  ==================================================================================

Some experiments take further ``options`` (:func:`run_experiment`): ``data`` (e.g. ``cifar10:DIR``),
``arch``, ``device`` and ``epochs`` scale them beyond the committed run.

>>> list(EXPERIMENTS)[:2]
['lif-vs-clif-delay', 'lif-vs-clif-delay-lr']
>>> EXPERIMENTS["clif-to-lif"].module
'clif_to_lif'
"""

from __future__ import annotations

import importlib
import inspect
import os
import time
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

from ...errors import UsageError

__all__ = ["EXPERIMENTS", "Experiment", "run_experiment"]

Log = Optional[Callable[[str], None]]


class Experiment(NamedTuple):
    """A registry entry: ``module.function(out, seeds, quick, log)`` runs it and returns its tables."""

    module: str
    function: str
    about: str


#: Experiments by name (each function lives in ``gradflow.lab.experiments.<module>``).
EXPERIMENTS: Dict[str, Experiment] = {
    "lif-vs-clif-delay": Experiment("delay", "run_delay", "accuracy vs delay, LIF vs CLIF"),
    "lif-vs-clif-delay-lr": Experiment("delay", "run_delay_lr", "the delay gap at three learning rates"),
    "tau-truncation": Experiment("truncation", "run_tau_truncation", "LIF accuracy for tau x truncation k"),
    "tau-truncation-snn5": Experiment("truncation", "run_tau_truncation_snn5", "the same with snn5_noAP"),
    "lif-vs-clif-T": Experiment("t_sweep", "run_T_sweep", "accuracy vs T on static shapes"),
    "lif-vs-clif-T-snn5": Experiment("t_sweep", "run_T_sweep_snn5", "the same with snn5_noAP"),
    "clif-to-lif": Experiment("clif_to_lif", "run_clif_to_lif", "CLIF weights run with LIF neurons"),
    "resnet18-gradflow": Experiment("resnet", "run_resnet18", "ResNet-18 gradient flow, LIF vs CLIF"),
    "paper-claim": Experiment("paper_claim", "run_paper_claim", "LIF/CLIF ablation on real digits: truncation "
                              "x surrogate width, gradient measured with intervals"),
    "lif-vs-clif-T-digits": Experiment("t_sweep_digits", "run_t_sweep_digits",
                                       "accuracy and relative_k vs T up to 64 on digits"),
}


def run_experiment(name: str, out: str, *, seeds: Sequence[int] = (0, 1, 2), quick: bool = False,
                   log: Log = None, options: Optional[Dict[str, Any]] = None):
    """Run experiment ``name`` with ``seeds`` and write its tables and figures to ``out``.

    ``quick=True`` shrinks every grid and budget to seconds (for tests; the numbers mean nothing).
    ``options``: keyword arguments for experiments that take them (``data``, ``arch``, ``device``,
    ``epochs``); one the experiment does not take is a :class:`UsageError` naming it.
    Returns the tables by name; each is also written as ``out/<name>.csv``, and ``summary`` also as
    ``out/summary.md`` with ``mean ± std`` cells.
    """
    if name not in EXPERIMENTS:
        raise UsageError(f"Unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}.")
    if not seeds:
        raise UsageError("seeds is empty; give at least one seed.", arguments=("seeds",))
    entry = EXPERIMENTS[name]
    # imported here, not at the top: the registry must stay light (the runners need torch)
    runner = getattr(importlib.import_module(f".{entry.module}", __name__), entry.function)
    common = importlib.import_module(".common", __name__)
    options = dict(options or {})
    takes = inspect.signature(runner).parameters
    for key in options:
        if key not in takes:
            raise UsageError(f"Experiment {name} does not take {key}.", arguments=(key,))
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    tables = runner(out, list(seeds), quick, log, **options)
    for key, df in tables.items():
        df.to_csv(os.path.join(out, f"{key}.csv"), index=False)
    common.write_summary(tables["summary"], out, f"{name}: summary (seeds {', '.join(map(str, seeds))}; "
                                          f"{time.perf_counter() - t0:.0f} s)")
    return tables
