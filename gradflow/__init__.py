"""gradflow: where the gradients of a spiking network go, and why they vanish over time.

gradflow instruments LIF, CLIF and PLIF networks with autograd hooks and records, per layer and per
time step, the spatial and temporal parts of the gradient (SPEC §2), then compares them with
closed-form predictions (:mod:`gradflow.theory`).

>>> import gradflow, torch
>>> net = gradflow.models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=3)
>>> x, y = torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1])
>>> with gradflow.record(net) as rec:
...     gradflow.losses.ce_over_time(net(x), y).backward()
>>> list(rec.per_step().columns[:4])
['step', 'layer', 'layer_index', 'neuron']
"""

__version__ = "0.1.0"

from . import losses, neurons, surrogate  # noqa: E402
from .errors import DataError, GradflowError, UsageError  # noqa: E402
from .neurons import CLIF, LIF, PLIF, build_neuron  # noqa: E402

__all__ = [
    "__version__",
    "GradflowError",
    "UsageError",
    "DataError",
    "LIF",
    "CLIF",
    "PLIF",
    "build_neuron",
    "losses",
    "neurons",
    "surrogate",
    "models",
    "record",
    "Recorder",
    "convert",
]


def __getattr__(name):
    # Heavier pieces load on first use, so `import gradflow` stays quick for the CLI.
    import importlib

    if name in {"models", "theory", "report", "tasks"}:
        return importlib.import_module(f".{name}", __name__)
    if name in {"record", "Recorder"}:
        return getattr(importlib.import_module(".recorder", __name__), name)
    if name == "convert":
        return importlib.import_module(".convert", __name__).convert
    raise AttributeError(f"module 'gradflow' has no attribute {name!r}")
