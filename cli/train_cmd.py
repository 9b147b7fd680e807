"""``gradflow train`` and ``gradflow clif-to-lif``: thin commands over :mod:`gradflow.train`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from gradflow.errors import UsageError

from .common import echo, progress, user_errors

DEFAULT_RESETS = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5)


def _widths(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise UsageError(f"--widths takes comma-separated integers such as 64,64, got {text!r}.") from None


def _prepare_out(out: Path, force: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory.")
    if (out / "model.pt").exists() and not force:
        raise UsageError(f"{str(out / 'model.pt')!r} exists; pass --force to overwrite it.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"Cannot create the output directory {str(out)!r}: {err.strerror}.") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"The output directory {str(out)!r} is not writable.")
    return out


def train_command(
    task: Annotated[str, typer.Option(
        "--task", help="Built-in task, NAME or NAME:key=value,... e.g. 'delay:delay=8' (cue, D steps of "
        "distractor noise, answer scored at the last step) or 'shapes:num_classes=8' (static images).")] = "delay",
    data: Annotated[Optional[str], typer.Option(
        help="Train on a dataset instead of --task: cifar10:DIR or cifar100:DIR (the python-version "
        "folder; no download, no augmentation; --n-train/--n-test images are drawn from its splits).")] = None,
    arch: Annotated[str, typer.Option(help="Architecture (gradflow.models): mlp, snn5_noAP, spiking_resnet18, ...")] = "mlp",
    widths: Annotated[Optional[str], typer.Option(help="Hidden widths of the mlp, comma-separated (default 64,64).")] = None,
    neuron: Annotated[str, typer.Option(help="Neuron: lif, clif or plif.")] = "lif",
    tau: Annotated[float, typer.Option(help="Membrane time constant (gamma = 1 - 1/tau); PLIF's initial tau.")] = 2.0,
    T: Annotated[Optional[int], typer.Option("--T", help="Time steps for a static task (the delay task fixes its own).")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    optimizer: Annotated[str, typer.Option(help="sgd (momentum 0.9) or adam.")] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 5e-3,
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = 64,
    n_train: Annotated[int, typer.Option(help="Training samples drawn from the task.")] = 2048,
    n_test: Annotated[int, typer.Option(help="Test samples drawn from the task.")] = 1024,
    seed: Annotated[int, typer.Option(help="Seed of the data, the initial weights and the batch order.")] = 0,
    resample: Annotated[bool, typer.Option(help="Draw a fresh training set every epoch (no over-fitting).")] = False,
    truncate: Annotated[Optional[int], typer.Option(
        help="Truncated BPTT with blocks of k steps: the neuron state (v, and m for CLIF) entering every "
        "step t>0 with t % k == 0 is detached, so gradients cross no block boundary through a neuron's "
        "own state; spatial paths are kept. 1 = spatial gradients only; unset or >= T = full BPTT.")] = None,
    switch_to: Annotated[Optional[str], typer.Option(
        help="After --at-epoch E, replace every neuron by this kind (lif, clif, plif), keeping the weights.")] = None,
    at_epoch: Annotated[Optional[int], typer.Option(help="The epoch after which --switch-to happens.")] = None,
    loss: Annotated[str, typer.Option(help="ce (cross-entropy over the scored steps) or tet.")] = "ce",
    record_every: Annotated[Optional[int], typer.Option(
        help="Every N epochs (and before training), record the gradient flow on a fixed probe batch and "
        "write per_step.csv, lags.csv, weights.csv with an epoch column.")] = None,
    record_batch: Annotated[int, typer.Option(help="Probe batch size for --record-every.")] = 128,
    record_pairs: Annotated[bool, typer.Option(help="Also write pairs.csv with --record-every.")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory: model.pt (gradflow checkpoint), "
                                      "history.csv and the recorder tables.")] = Path("gradflow-train"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing model.pt in --out.")] = False,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or epoch lines.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON.")] = False,
) -> None:
    """Train a spiking network on a built-in task and save a gradflow checkpoint.

    Loss and accuracy are scored on the task's readout steps (all steps for static tasks).
    """
    from gradflow.tasks import parse_data
    from gradflow.train import train

    out = _prepare_out(out, force)
    wid = _widths(widths)
    show = not quiet and not as_json

    last = {}

    def bar(it, n, label):
        if last:
            label += f" (last epoch: loss {last['train_loss']:.3f}, acc {last['train_accuracy']:.1%})"
        return progress(it, total=n, label=label, enabled=show)

    def on_epoch(row) -> None:
        if row["epoch"] > 0:
            last.update(row)
        if row["epoch"] == 0:
            echo(f"epoch 0 (untrained): test loss {row['test_loss']:.4f}  test acc {row['test_accuracy']:.1%}",
                 not show)
        else:
            echo(f"epoch {row['epoch']} [{row['neuron']}]: loss {row['train_loss']:.4f}  acc "
                 f"{row['train_accuracy']:.1%}  test loss {row['test_loss']:.4f}  test acc "
                 f"{row['test_accuracy']:.1%}  ({row['seconds']:.1f} s)", not show)

    if data is not None:
        task = parse_data(data, T)
    res = train(
        task, arch=arch, neuron=neuron, tau=tau, T=T, epochs=epochs, optimizer=optimizer, lr=lr,
        batch_size=batch_size, n_train=n_train, n_test=n_test, seed=seed, truncate=truncate,
        switch_to=switch_to, at_epoch=at_epoch, loss=loss, record_every=record_every, resample=resample,
        record_batch=record_batch, record_pairs=record_pairs,
        model_kwargs={"widths": wid} if wid else None, checkpoint=out / "model.pt", device=device,
        progress=bar,
        on_epoch=on_epoch,
    )
    if show:
        echo(f"task: {res.task.describe()}")
    res.history.to_csv(out / "history.csv", index=False)
    for name, df in res.records.items():
        df.to_csv(out / f"{name}.csv", index=False)
    files = ["model.pt", "history.csv"] + [f"{n}.csv" for n in res.records]
    summary = {"out": str(out), "files": files, "task": res.task.config, "chance": res.task.chance,
               "epoch": res.meta["epoch"], "test_accuracy": res.meta["accuracy"], "test_loss": res.meta["loss"]}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        echo(f"test accuracy {res.meta['accuracy']:.1%} (chance {res.task.chance:.1%}); wrote "
             f"{', '.join(files)} to {out}", quiet)


def clif_to_lif_command(
    checkpoint: Annotated[Path, typer.Argument(help="A CLIF-trained gradflow checkpoint (gradflow train --neuron clif).")],
    reset_value: Annotated[Optional[List[float]], typer.Option(
        "--reset-value", "-r", help="Hard-reset value v_reset for the LIF neurons; repeat to sweep "
        "(default -1 to 0.5 in steps of 0.25).")] = None,
    n_test: Annotated[int, typer.Option(help="Test samples of the checkpoint's task.")] = 1024,
    seed: Annotated[Optional[int], typer.Option(help="Test-data seed (default: the checkpoint's).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the table as CSV here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON records.")] = False,
) -> None:
    """Run a CLIF-trained checkpoint with LIF neurons and a hard reset to v_reset (paper Table 8).

    The weights are kept; each LIF neuron takes the CLIF neuron's tau, threshold and surrogate.

    Reference rows: CLIF as trained, and LIF with the soft reset.
    """
    from gradflow.train import clif_to_lif

    values = tuple(reset_value) if reset_value else DEFAULT_RESETS
    df = clif_to_lif(checkpoint, values, n_test=n_test, seed=seed)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
    if as_json:
        typer.echo(df.to_json(orient="records"))
    else:
        typer.echo(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def experiment_command(
    name: Annotated[str, typer.Argument(help="One of gradflow.lab.experiments.EXPERIMENTS: lif-vs-clif-delay, "
                                        "lif-vs-clif-delay-lr, tau-truncation, tau-truncation-snn5, lif-vs-clif-T, "
                                        "lif-vs-clif-T-snn5, clif-to-lif, resnet18-gradflow.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (e.g. reports/NAME).")],
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    quick: Annotated[bool, typer.Option(help="Tiny grids and budgets, seconds (for testing the pipeline).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per run.")] = False,
) -> None:
    """Regenerate the tables and figures of a committed report (gradflow.lab.experiments).

    Writes runs.csv, summary.csv, summary.md, further tables and figures/ to --out; report.md is left alone.
    """
    from gradflow.lab.experiments import run_experiment

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds takes comma-separated integers such as 0,1,2, got {seeds!r}.") from None
    run_experiment(name, str(out), seeds=seed_list, quick=quick, log=None if quiet else typer.echo)
    echo(f"wrote {out}/summary.md")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``clif-to-lif`` and ``experiment`` to the gradflow app."""
    app.command("train")(user_errors(train_command))
    app.command("clif-to-lif")(user_errors(clif_to_lif_command))
    app.command("experiment")(user_errors(experiment_command))
