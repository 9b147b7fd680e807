"""``gradflow train``: train a spiking network on a built-in task and save a gradflow checkpoint.

A thin command over :func:`gradflow.train.train` with a :class:`gradflow.train.TrainConfig`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, List, Optional, Sequence

import typer

from gradflow import schema
from gradflow.errors import UsageError

from .choices import Arch, Backend, Loss, Neuron, Optimizer, value
from .common import add_command, echo, progress

TASK, MODEL, OPTIMISATION, RECORDING, OUTPUT = "Task and data", "Model", "Optimisation", "Recording", "Output"

#: Library arguments whose flag has another name.
FLAGS = {"model_kwargs": "--widths", "checkpoint": "--out"}


def _prepare_out(out: Path, force: bool, recorded: Sequence[str]) -> Path:
    """Check and create the output directory before training (so nothing is trained in vain).

    ``recorded``: the files of a recorded run (watch.json and its tables); with ``force`` those of a
    previous run are removed, so the new run does not append to them.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory.")
    previous = [out / name for name in ("model.pt", *recorded) if (out / name).exists()]
    if previous and not force:
        raise UsageError(f"{str(previous[0])!r} exists; pass --force to overwrite it.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path in previous:
            if path.name != "model.pt":
                path.unlink()
    except OSError as err:
        raise UsageError(f"Cannot prepare the output directory {str(out)!r}: {err.strerror}.") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"The output directory {str(out)!r} is not writable.")
    return out


class _EpochPrinter:
    """Epoch lines on stdout and a progress bar per epoch that shows the last epoch's numbers."""

    def __init__(self, show: bool):
        self.show, self.last = show, {}

    def bar(self, iterable, total: int, label: str):
        if self.last:
            label += f" (last epoch: loss {self.last['train_loss']:.3f}, acc {self.last['train_accuracy']:.1%})"
        return progress(iterable, total=total, label=label, enabled=self.show)

    def row(self, row) -> None:
        if row["epoch"] == 0:
            echo(f"epoch 0 (untrained): test loss {row['test_loss']:.4f}  test acc {row['test_accuracy']:.1%}",
                 not self.show)
            return
        self.last = row
        echo(f"epoch {row['epoch']} [{row['neuron']}]: loss {row['train_loss']:.4f}  acc "
             f"{row['train_accuracy']:.1%}  test loss {row['test_loss']:.4f}  test acc "
             f"{row['test_accuracy']:.1%}  ({row['seconds']:.1f} s)", not self.show)


# The command's parameters, one alias each (Typer reads the help text and panel from them).
TaskOption = Annotated[str, typer.Option(
    help=f"Built-in task NAME or NAME:key=value,... with NAME one of {', '.join(schema.TASKS)}; e.g. "
    "'delay:delay=8' (a cue, D steps of distractor noise, the answer scored at the last step) or "
    "'shapes:num_classes=8' (static images).", rich_help_panel=TASK)]
DataOption = Annotated[Optional[str], typer.Option(
    help="Train on a dataset instead of --task: cifar10:DIR or cifar100:DIR (the python-version folder; "
    "no download, no augmentation; --n-train/--n-test images are drawn from its splits).",
    rich_help_panel=TASK)]
StepsOption = Annotated[Optional[int], typer.Option(
    "--T", help="Time steps of a static task (the delay task fixes its own).", show_default=False,
    rich_help_panel=TASK)]
NTrainOption = Annotated[int, typer.Option(help="Training samples drawn from the task.", rich_help_panel=TASK)]
NTestOption = Annotated[int, typer.Option(help="Test samples drawn from the task.", rich_help_panel=TASK)]
SeedOption = Annotated[int, typer.Option(
    help="Seed of the data, the initial weights and the batch order.", rich_help_panel=TASK)]
ResampleOption = Annotated[bool, typer.Option(
    help="Draw a fresh training set every epoch (no over-fitting).", rich_help_panel=TASK)]
ArchOption = Annotated[Arch, typer.Option(help="Architecture.", rich_help_panel=MODEL)]
WidthsOption = Annotated[Optional[List[int]], typer.Option(
    "--widths", metavar="WIDTH", help="Hidden width of the mlp; repeat for several layers "
    "(--widths 64 --widths 64, the default).", show_default=False, rich_help_panel=MODEL)]
NeuronOption = Annotated[Neuron, typer.Option(help="Neuron kind.", rich_help_panel=MODEL)]
TauOption = Annotated[float, typer.Option(
    help="Membrane time constant (gamma = 1 - 1/tau); PLIF's initial tau.", rich_help_panel=MODEL)]
BackendOption = Annotated[Backend, typer.Option(
    help="Neuron implementation: torch (autograd per step) or fused (one hand-derived backward; same "
    "numbers, faster).", rich_help_panel=MODEL)]
EpochsOption = Annotated[int, typer.Option(help="Training epochs.", rich_help_panel=OPTIMISATION)]
OptimizerOption = Annotated[Optimizer, typer.Option(
    help="sgd (momentum 0.9) or adam.", rich_help_panel=OPTIMISATION)]
LrOption = Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=OPTIMISATION)]
BatchSizeOption = Annotated[int, typer.Option(help="Mini-batch size.", rich_help_panel=OPTIMISATION)]
LossOption = Annotated[Loss, typer.Option(
    help="ce: cross-entropy over the scored steps; tet adds the TET regulariser.",
    rich_help_panel=OPTIMISATION)]
TruncateOption = Annotated[Optional[int], typer.Option(
    help="Truncated BPTT with blocks of k steps: the neuron state (v, and m for CLIF) entering every step "
    "t > 0 with t % k == 0 is detached, so gradients cross no block boundary through a neuron's own "
    "state; spatial paths are kept. 1 = spatial gradients only; unset or >= T = full BPTT.",
    show_default=False, rich_help_panel=OPTIMISATION)]
SwitchToOption = Annotated[Optional[Neuron], typer.Option(
    help="After --at-epoch E, replace every neuron by this kind, keeping the weights.",
    rich_help_panel=OPTIMISATION)]
AtEpochOption = Annotated[Optional[int], typer.Option(
    help="The epoch after which --switch-to happens.", rich_help_panel=OPTIMISATION)]
RecordEveryOption = Annotated[Optional[int], typer.Option(
    help="Every N epochs (and before training), record the gradient flow on a fixed probe batch into --out "
    "as a watched run (per_step, lags, weights, layers, transport and summary tables with a train_step "
    "column, watch.json) that `gradflow report` reads.", show_default=False,
    rich_help_panel=RECORDING)]
RecordBatchOption = Annotated[int, typer.Option(
    help="Probe batch size for --record-every.", rich_help_panel=RECORDING)]
RecordPairsOption = Annotated[bool, typer.Option(
    help="Also write pairs.csv with --record-every.", rich_help_panel=RECORDING)]
DeviceOption = Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.", rich_help_panel=OUTPUT)]
OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="Output directory: model.pt (a gradflow checkpoint), history.csv and, with "
    "--record-every, the recorded tables (committed during training; gradflow report DIR reads them).",
    rich_help_panel=OUTPUT)]
ForceOption = Annotated[bool, typer.Option(
    help="Overwrite a previous run in --out (model.pt, and the recorded tables of --record-every).",
    rich_help_panel=OUTPUT)]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar or epoch lines.", rich_help_panel=OUTPUT)]
AsJsonOption = Annotated[bool, typer.Option(
    "--json", help="Print the final metrics as JSON.", rich_help_panel=OUTPUT)]


def train_command(
    task: TaskOption = "delay",
    data: DataOption = None,
    T: StepsOption = None,
    n_train: NTrainOption = 2048,
    n_test: NTestOption = 1024,
    seed: SeedOption = 0,
    resample: ResampleOption = False,
    arch: ArchOption = Arch("mlp"),
    widths: WidthsOption = None,
    neuron: NeuronOption = Neuron("lif"),
    tau: TauOption = 2.0,
    backend: BackendOption = Backend("torch"),
    epochs: EpochsOption = 10,
    optimizer: OptimizerOption = Optimizer("adam"),
    lr: LrOption = 5e-3,
    batch_size: BatchSizeOption = 64,
    loss: LossOption = Loss("ce"),
    truncate: TruncateOption = None,
    switch_to: SwitchToOption = None,
    at_epoch: AtEpochOption = None,
    record_every: RecordEveryOption = None,
    record_batch: RecordBatchOption = 128,
    record_pairs: RecordPairsOption = False,
    device: DeviceOption = "cpu",
    out: OutOption = Path("gradflow-train"),
    force: ForceOption = False,
    quiet: QuietOption = False,
    as_json: AsJsonOption = False,
) -> None:
    """Train a spiking network on a built-in task or CIFAR and save a gradflow checkpoint.

    Loss and accuracy are scored on the task's readout steps (all steps for static tasks). The output
    directory gets model.pt (analyse it with gradflow analyze), history.csv (one row per epoch) and,
    with --record-every, the recorder's tables over training.
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    from gradflow.tasks import parse_data
    from gradflow.train import TrainConfig, train

    from gradflow.watch.store import STATE_FILE, TABLE_NAMES

    out = _prepare_out(out, force, [STATE_FILE] + [f"{name}.csv" for name in TABLE_NAMES])
    config = TrainConfig(
        task=parse_data(data, T) if data is not None else task, T=T, n_train=n_train, n_test=n_test,
        seed=seed, resample=resample, arch=value(arch), neuron=value(neuron), tau=tau, backend=value(backend),
        model_kwargs={"widths": list(widths)} if widths else None, epochs=epochs, optimizer=value(optimizer),
        lr=lr, batch_size=batch_size, loss=value(loss), truncate=truncate, switch_to=value(switch_to),
        at_epoch=at_epoch, record_every=record_every, record_batch=record_batch, record_pairs=record_pairs,
        device=device,
    )
    show = not quiet and not as_json
    printer = _EpochPrinter(show)
    res = train(config, records_dir=out if record_every else None, progress=printer.bar, on_epoch=printer.row)
    echo(f"task: {res.task.describe()}", not show)
    files = res.write(out)
    if as_json:
        typer.echo(json.dumps({
            "out": str(out), "files": files, "task": res.task.config, "chance": res.task.chance,
            "epoch": res.meta["epoch"], "test_accuracy": res.meta["accuracy"], "test_loss": res.meta["loss"]}))
    else:
        echo(f"test accuracy {res.meta['accuracy']:.1%} (chance {res.task.chance:.1%}); wrote "
             f"{', '.join(files)} to {out}", quiet)


def register(app: typer.Typer) -> None:
    """Add ``train`` to the gradflow app."""
    add_command(app, "train", train_command, FLAGS)
