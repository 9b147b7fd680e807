"""Where a watched run's numbers go besides its directory: TensorBoard, and a PyTorch Lightning callback.

A logger is any object with ``log_step(summary, train_step)`` (and optionally ``close()``); it is
handed to :func:`gradflow.watch` as ``loggers=[...]`` and called on rank 0 after every recorded step
with that step's ``summary.csv`` rows (:data:`gradflow.watch.SUMMARY_COLUMNS`). Each layer
gives one scalar per metric in :data:`LOGGED_METRICS`, tagged ``gradflow/<metric>/<layer>``:

* ``temporal_share`` and ``weight_temporal_projection`` (how much of the gradient, and of the weight
  update, comes through time), ``relative_1`` and ``half_life`` (how fast it fades with the lag),
  ``firing_rate`` and ``window_fraction`` (window occupancy); docs/reference.md, "Watched runs".

Non-finite values (a half-life that never falls to 1/2 is ``inf``) are not logged.

* :class:`TensorBoardLogger` writes them with ``torch.utils.tensorboard.SummaryWriter`` (needs the
  ``tensorboard`` package);
* ``GradflowCallback`` (``from gradflow.loggers import GradflowCallback``) is a Lightning
  ``Callback`` that watches the ``LightningModule`` during ``fit`` and sends the same scalars to the
  trainer's logger (needs ``lightning`` or ``pytorch_lightning``).

Neither package is imported until one of these is used: ``import gradflow`` never loads them.

>>> import pandas as pd
>>> scalars(pd.DataFrame({"layer": ["sn1"], "relative_1": [0.4], "half_life": [float("inf")]}))
{'gradflow/relative_1/sn1': 0.4}
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import pandas as pd

from .errors import UsageError
from .watch.watcher import Watch

__all__ = ["LOGGED_METRICS", "scalars", "TensorBoardLogger", "GradflowCallback", "lightning_module"]

#: Summary columns sent to loggers, per layer.
LOGGED_METRICS = ("temporal_share", "weight_temporal_projection", "relative_1", "half_life", "firing_rate",
                  "window_fraction")


def scalars(summary: pd.DataFrame, prefix: str = "gradflow",
            metrics: Sequence[str] = LOGGED_METRICS) -> Dict[str, float]:
    """``{"<prefix>/<metric>/<layer>": value}`` for the finite values of one step's summary rows."""
    out = {}
    for _, row in summary.iterrows():
        for m in metrics:
            if m in row.index:
                v = float(row[m])
                if math.isfinite(v):
                    out[f"{prefix}/{m}/{row['layer']}"] = v
    return out


class TensorBoardLogger:
    """Scalars for TensorBoard: ``gradflow/<metric>/<layer>`` at ``global_step = train_step``.

    ``log_dir``: where a new ``SummaryWriter`` writes (closed by :meth:`close`), or pass your own
    ``writer`` (left open). Raises :class:`~gradflow.errors.UsageError` when tensorboard is missing.
    """

    def __init__(self, log_dir: Union[str, os.PathLike, None] = None, *, writer=None, prefix: str = "gradflow"):
        if writer is None:
            try:
                tb = importlib.import_module("torch.utils.tensorboard")
            except ImportError as err:
                raise UsageError(f"TensorBoardLogger needs the tensorboard package ({err}); "
                                 "pip install tensorboard.") from None
            writer = tb.SummaryWriter(log_dir=None if log_dir is None else str(log_dir))
            self._own = True
        else:
            self._own = False
        self.writer, self.prefix = writer, prefix

    def log_step(self, summary: pd.DataFrame, train_step: int) -> None:
        """Add one scalar per (metric, layer) of ``summary`` at ``train_step``, then flush."""
        for tag, value in scalars(summary, self.prefix).items():
            self.writer.add_scalar(tag, value, global_step=int(train_step))
        self.writer.flush()

    def close(self) -> None:
        """Close the writer if this logger made it."""
        if self._own:
            self.writer.close()


def lightning_module():
    """The Lightning package in use: ``lightning.pytorch``, else ``pytorch_lightning``.

    Raises :class:`~gradflow.errors.UsageError` when neither can be imported (with the reason).
    """
    errors = []
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - a broken install raises more than ImportError
            errors.append(f"{name}: {type(err).__name__}: {err}")
    raise UsageError("GradflowCallback needs PyTorch Lightning, which cannot be imported (" + "; ".join(errors) + ").")


class _TrainerLogger:
    """Sends a watched step's scalars to ``trainer.logger`` at the trainer's ``global_step``."""

    def __init__(self, trainer, prefix: str = "gradflow"):
        self.trainer, self.prefix = trainer, prefix

    def log_step(self, summary: pd.DataFrame, train_step: int) -> None:
        logger = getattr(self.trainer, "logger", None)
        if logger is not None:
            logger.log_metrics(scalars(summary, self.prefix), step=int(self.trainer.global_step))


def _callback_class():
    """Build ``GradflowCallback`` on the installed Lightning's ``Callback`` (once)."""
    pl = lightning_module()

    class GradflowCallback(pl.Callback):
        """Watch a LightningModule while it trains: ``Trainer(callbacks=[GradflowCallback(every=100)])``.

        Every ``every``-th training batch (each batch is one backward pass, also with
        ``accumulate_grad_batches``) is recorded by :class:`gradflow.watch.Watch` (``count="manual"``:
        the callback ends a step after each training batch) into ``out`` (default
        ``<trainer.default_root_dir>/gradflow``); the per-layer scalars also go to the trainer's logger.
        Further keyword ``options`` are passed to :func:`gradflow.watch` (``pairs``, ``weights``,
        ``max_lag``, ``layers``, ``loggers``, ``n_resamples``, ``seed``).
        """

        def __init__(self, every: int = 100, out: Union[str, os.PathLike, None] = None, **options):
            super().__init__()
            if "count" in options:
                raise UsageError("GradflowCallback counts training batches itself; do not pass count.",
                                 arguments=("count",))
            self.every, self.out, self.options = every, out, options
            self.watch: Optional[Watch] = None

        def on_train_start(self, trainer, pl_module) -> None:
            out = self.out if self.out is not None else Path(trainer.default_root_dir) / "gradflow"
            options = dict(self.options)
            loggers = list(options.pop("loggers", ())) + [_TrainerLogger(trainer)]
            self.watch = Watch(pl_module, every=self.every, out=out, count="manual", loggers=loggers, **options)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.watch is not None:
                self.watch.step()

        def _close(self) -> None:
            if self.watch is not None:
                self.watch.close()

        def on_train_end(self, trainer, pl_module) -> None:
            self._close()

        def on_exception(self, trainer, pl_module, exception) -> None:
            self._close()

    GradflowCallback.__module__ = __name__
    GradflowCallback.__qualname__ = "GradflowCallback"
    return GradflowCallback


def __getattr__(name: str):
    if name == "GradflowCallback":   # built on first use, so that Lightning is imported only then
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
