"""CLIF -> LIF inference (paper Table 8): a CLIF-trained network run with LIF neurons and a hard reset.

The paper reports that weights trained with CLIF keep most of their accuracy when CLIF neurons are
replaced by LIF neurons with a hard reset to a well-chosen ``v_reset``. :func:`clif_to_lif` sweeps that
reset value on the checkpoint's own task; ``gradflow clif-to-lif`` is the command line for it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import pandas as pd

from .errors import UsageError
from .io import checkpoints
from .models.surgery import swap_neurons
from .tasks import make_task
from .train import evaluate

__all__ = ["clif_to_lif", "DEFAULT_RESETS"]

#: The reset values :func:`clif_to_lif` sweeps by default.
DEFAULT_RESETS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5)


def clif_to_lif(
    checkpoint: Union[str, os.PathLike, checkpoints.LoadedModel],
    reset_values: Sequence[float] = DEFAULT_RESETS,
    *,
    n_test: int = 1024,
    seed: Optional[int] = None,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Run a CLIF-trained checkpoint with LIF neurons (paper Table 8) and sweep the reset value.

    ``checkpoint``: a gradflow training checkpoint (path, or loaded with :func:`gradflow.load_checkpoint`).
    The weights stay; every CLIF neuron becomes a LIF neuron with the same tau, threshold and
    surrogate and a hard reset to ``v_reset`` (``v[t] = (1 - s[t]) u[t] + s[t] v_reset``,
    docs/reference.md, Neurons), once per value in ``reset_values``. Reference rows: the checkpoint as
    trained (CLIF) and LIF with the soft reset. The data are ``n_test`` test samples of the checkpoint's
    task (its seed unless ``seed`` is given).

    Returns one row per setting: ``neuron, reset, v_reset, accuracy, loss, firing_rate``
    (firing rate = mean spikes per neuron and step).
    """
    lm = checkpoint if isinstance(checkpoint, checkpoints.LoadedModel) else checkpoints.load_checkpoint(checkpoint)
    model, meta = lm.model, lm.meta
    if lm.config.get("neuron") != "clif":
        raise UsageError(f"CLIF -> LIF inference needs a CLIF-trained checkpoint; this one has "
                         f"{lm.config.get('neuron')} neurons.")
    if not isinstance(meta.get("task"), dict):
        raise UsageError("CLIF -> LIF inference needs a checkpoint written by gradflow train (it names its task).")
    task = make_task(**meta["task"])
    arch = lm.config["name"]
    x, y = task.sample(n_test, int(meta.get("seed", 0) if seed is None else seed), "test")
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
