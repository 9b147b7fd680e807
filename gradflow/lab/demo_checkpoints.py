"""The built-in demo checkpoints: a small LIF and a small CLIF network trained by gradflow itself.

They ship as package data (``gradflow/assets/demo_lif.pt``, ``demo_clif.pt``, each well under 1 MB,
found by :func:`gradflow.io.checkpoints.demo_checkpoint_paths`) so that ``gradflow analyze`` with no argument produces a full LIF-vs-CLIF report on a fresh machine.
Regenerate them (a few minutes on a laptop CPU) with::

    python -m gradflow.lab.demo_checkpoints            # writes gradflow/assets/demo_{lif,clif}.pt

Both are trained by :func:`gradflow.train.train` on the built-in delayed-cue task with identical
settings (:data:`DEMO_SETTINGS`) and seed; only the neuron differs.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Dict

from ..io.checkpoints import ASSETS
from ..train import TrainConfig, train

__all__ = ["DEMO_SETTINGS", "make_demo_checkpoints"]

#: Training settings shared by the LIF and the CLIF demo checkpoint (the neuron is set per checkpoint).
DEMO_SETTINGS = TrainConfig(
    task="delay:delay=4,noise=0.05",
    arch="mlp",
    tau=2.0,
    epochs=15,
    optimizer="adam",
    lr=3e-3,
    batch_size=64,
    n_train=2048,
    n_test=512,
    seed=0,
    model_kwargs={"widths": [64, 64]},
)


def make_demo_checkpoints(out_dir: Path = ASSETS, **overrides) -> Dict[str, dict]:
    """Train the LIF and CLIF demo networks and save them to ``out_dir``; returns final history rows.

    ``overrides`` change :data:`DEMO_SETTINGS` (any :class:`gradflow.train.TrainConfig` field).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for kind in ("lif", "clif"):
        cfg = dataclasses.replace(DEMO_SETTINGS, neuron=kind, **overrides)
        res = train(cfg, checkpoint=out_dir / f"demo_{kind}.pt")
        results[kind] = res.history.iloc[-1].to_dict()
    return results


if __name__ == "__main__":  # pragma: no cover - regeneration script
    for kind, row in make_demo_checkpoints().items():
        print(f"{kind}: test accuracy {row['test_accuracy']:.3f}, test loss {row['test_loss']:.3f}", file=sys.stderr)
