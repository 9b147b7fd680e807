"""``gradflow clif-to-lif``: run a CLIF-trained checkpoint with LIF neurons (a thin command over
:func:`gradflow.transfer.clif_to_lif`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import add_command, table

SWEEP, OUTPUT = "Sweep", "Output"


def clif_to_lif_command(
    checkpoint: Annotated[Path, typer.Argument(
        help="A CLIF-trained gradflow checkpoint (gradflow train --neuron clif).", show_default=False)],
    reset_value: Annotated[Optional[List[float]], typer.Option(
        "--reset-value", "-r", metavar="V", help="Hard-reset value v_reset for the LIF neurons; repeat to sweep "
        "(-r -0.5 -r 0). Default: -1 to 0.5 in steps of 0.25.", show_default=False, rich_help_panel=SWEEP)] = None,
    n_test: Annotated[int, typer.Option(help="Test samples of the checkpoint's task.", rich_help_panel=SWEEP)] = 1024,
    seed: Annotated[Optional[int], typer.Option(
        help="Test-data seed. Default: the checkpoint's.", show_default=False, rich_help_panel=SWEEP)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the table as CSV here.", rich_help_panel=OUTPUT)] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the table as JSON records.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Run a CLIF-trained checkpoint with LIF neurons and a hard reset to v_reset (paper Table 8).

    The weights are kept; each LIF neuron takes the CLIF neuron's tau, threshold and surrogate.
    Reference rows: CLIF as trained, and LIF with the soft reset.
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    from gradflow.transfer import DEFAULT_RESETS, clif_to_lif

    df = clif_to_lif(checkpoint, tuple(reset_value) if reset_value else DEFAULT_RESETS, n_test=n_test, seed=seed)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
    if as_json:
        typer.echo(df.to_json(orient="records"))
    else:
        typer.echo(table(df, formats={c: ".4f" for c in ("v_reset", "accuracy", "loss", "firing_rate")}))


def register(app: typer.Typer) -> None:
    """Add ``clif-to-lif`` to the gradflow app."""
    add_command(app, "clif-to-lif", clif_to_lif_command)
