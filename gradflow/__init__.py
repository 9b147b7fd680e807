"""gradflow: where the gradients of a spiking network go, and why they vanish over time.

gradflow instruments LIF, CLIF and PLIF networks with autograd hooks and records, per layer and per
time step, the spatial and temporal parts of the gradient, then compares them with closed-form
predictions (:mod:`gradflow.theory`). Every recorded number and table column is defined in
``docs/reference.md``; the formulas are derived in ``docs/theory.md``.

The package is lazy: ``import gradflow`` loads nothing heavy, and each name below is imported on first
use, so ``import gradflow.theory`` never loads torch.

>>> import gradflow, torch
>>> net = gradflow.models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=3)
>>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
>>> with gradflow.record(net) as rec:
...     gradflow.losses.ce_over_time(net(x), y).backward()
>>> list(rec.per_step().columns[:4])
['step', 'layer', 'layer_index', 'neuron']
"""

from __future__ import annotations

import importlib

__version__ = "0.2.6"

# public name -> (module, attribute); attribute None means the module itself
_LAZY = {
    # recording
    "record": (".recorder", "record"),
    "Recorder": (".recorder", "Recorder"),
    # recording during training
    "watch": (".watch", None),  # a callable module: gradflow.watch(model, every=N, out=DIR)
    "Watch": (".watch", "Watch"),
    "loggers": (".loggers", None),
    # workflows
    "analyze": (".analysis", "analyze"),
    "load_checkpoint": (".io.checkpoints", "load_checkpoint"),
    "save_checkpoint": (".io.checkpoints", "save_checkpoint"),
    # neurons
    "LIF": (".neurons", "LIF"),
    "CLIF": (".neurons", "CLIF"),
    "PLIF": (".neurons", "PLIF"),
    "build_neuron": (".neurons", "build_neuron"),
    # errors
    "GradflowError": (".errors", "GradflowError"),
    "UsageError": (".errors", "UsageError"),
    "DataError": (".errors", "DataError"),
    # subpackages and modules
    "adapters": (".adapters", None),
    "convert": (".convert", None),  # a callable module: gradflow.convert(model)
    "errors": (".errors", None),
    "io": (".io", None),
    "losses": (".losses", None),
    "models": (".models", None),
    "neurons": (".neurons", None),
    "recorder": (".recorder", None),
    "report": (".report", None),
    "schema": (".schema", None),
    "stats": (".stats", None),
    "surrogate": (".surrogate", None),
    "tasks": (".tasks", None),
    "theory": (".theory", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'gradflow' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
