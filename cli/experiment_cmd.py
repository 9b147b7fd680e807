"""``gradflow experiment``: regenerate the tables and figures of a committed report (a thin command over
:func:`gradflow.lab.experiments.run_experiment`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from gradflow.lab.experiments import EXPERIMENTS

from .choices import Arch, ExperimentName, value
from .common import add_command, echo

RUNS, SCALE = "Runs", "Scale (experiments that take it)"


def experiment_command(
    experiment: Annotated[ExperimentName, typer.Argument(
        help="The experiment: " + "; ".join(f"{name} ({e.about})" for name, e in EXPERIMENTS.items()) + ".",
        show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output directory, e.g. reports/NAME.", show_default=False)],
    seeds: Annotated[Optional[List[int]], typer.Option(
        "--seeds", metavar="SEED", help="Seed of one run per configuration; repeat for several "
        "(--seeds 0 --seeds 1). Default: 0, 1 and 2.", show_default=False, rich_help_panel=RUNS)] = None,
    quick: Annotated[bool, typer.Option(
        help="Tiny grids and budgets, seconds (for testing the pipeline; the numbers mean nothing).",
        rich_help_panel=RUNS)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No line per run.", rich_help_panel=RUNS)] = False,
    data: Annotated[Optional[str], typer.Option(
        help="Another dataset, e.g. cifar10:DIR.", show_default=False, rich_help_panel=SCALE)] = None,
    arch: Annotated[Optional[Arch], typer.Option(help="Another architecture.", rich_help_panel=SCALE)] = None,
    device: Annotated[Optional[str], typer.Option(
        help="torch device, e.g. cuda.", show_default=False, rich_help_panel=SCALE)] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help="Training epochs of every run.", show_default=False, rich_help_panel=SCALE)] = None,
) -> None:
    """Regenerate the tables and figures of a committed report under reports/.

    Writes runs.csv, summary.csv, summary.md, further tables and figures/ to --out; report.md, written
    by a person from these numbers, is left alone.
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    from gradflow.lab.experiments import run_experiment

    options = {k: v for k, v in dict(data=data, arch=value(arch), device=device, epochs=epochs).items()
               if v is not None}
    run_experiment(value(experiment), str(out), seeds=list(seeds) if seeds else [0, 1, 2], quick=quick,
                   log=None if quiet else typer.echo, options=options)
    echo(f"wrote {out}/summary.md")


def register(app: typer.Typer) -> None:
    """Add ``experiment`` to the gradflow app."""
    add_command(app, "experiment", experiment_command)
