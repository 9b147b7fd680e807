"""``gradflow report DIR``: the report over training of a watched run (a thin command over
:func:`gradflow.report.training_page.write_training_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import add_command, echo, table

OUTPUT, THEORY = "Output", "Theory"


def report_command(
    run_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="A watched run: the directory of gradflow.watch(..., out=DIR) or of "
                            "gradflow train --record-every N --out DIR.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Report directory (written atomically; default DIR/report).", rich_help_panel=OUTPUT)] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing report directory.", rich_help_panel=OUTPUT)] = False,
    title: Annotated[Optional[str], typer.Option(help="Page title (default: the run's name).",
                                                 rich_help_panel=OUTPUT)] = None,
    theory_steps: Annotated[int, typer.Option(
        "--theory-steps", min=0, help="Recorded steps that get the theory's prediction, evenly spaced (first and "
                                      "last always); 0 = all.", rich_help_panel=THEORY)] = 8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.",
                                        rich_help_panel=OUTPUT)] = False,
) -> None:
    """Write a report over training: relative_k per layer against the training step, half-life, weight temporal
    projection, firing rate and window occupancy over steps with 95% intervals, and the theory beside them.

    DIR/report/index.html opens offline; summary.csv and theory.csv hold the numbers.
    """
    # imported here to keep `gradflow --help` quick
    import pandas as pd

    from gradflow.report.training_page import write_training_report

    path = write_training_report(run_dir, out, title=title, force=force,
                                 max_theory_steps=None if theory_steps == 0 else theory_steps)
    if quiet:
        return
    summary = pd.read_csv(path / "summary.csv")
    last = summary[summary["train_step"] == summary["train_step"].max()].sort_values("layer_index")
    echo(f"wrote {path}")
    echo(f"latest recorded step {int(last['train_step'].iloc[0])}:")
    echo(table(last, ["layer", "neuron", "half_life", "relative_1", "weight_temporal_projection", "firing_rate",
                      "window_fraction"],
               formats={c: ".3g" for c in ("half_life", "relative_1", "weight_temporal_projection", "firing_rate",
                                           "window_fraction")},
               headers={"weight_temporal_projection": "w_temporal_proj", "window_fraction": "window"}))


def register(app: typer.Typer) -> None:
    """Add ``report`` to the gradflow app."""
    add_command(app, "report", report_command, flags={"max_theory_steps": "--theory-steps"})
