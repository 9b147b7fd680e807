"""``gradflow demo``: the lecture demo page (a thin command over :func:`gradflow.demo.run_demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import add_command, echo

NEURONS, NETWORKS, OUTPUT = "Neurons", "Recorded networks", "Output"


def demo_command(
    tau: Annotated[float, typer.Option(
        help="Membrane time constant of both neurons (gamma = 1 - 1/tau).", rich_help_panel=NEURONS)] = 2.0,
    v_threshold: Annotated[float, typer.Option(
        help="Threshold theta (the surrogate window has width theta).", rich_help_panel=NEURONS)] = 1.0,
    T_trace: Annotated[int, typer.Option(
        "--trace-steps", help="Time steps of the single-neuron traces.", rich_help_panel=NEURONS)] = 30,
    T: Annotated[int, typer.Option("--T", help="Time steps of the recorded networks.", rich_help_panel=NETWORKS)] = 8,
    batch: Annotated[int, typer.Option(help="Images in the recorded batch.", rich_help_panel=NETWORKS)] = 256,
    width: Annotated[int, typer.Option(
        help="Hidden width of the recorded two-layer MLPs.", rich_help_panel=NETWORKS)] = 128,
    seed: Annotated[int, typer.Option(
        help="Seed of the input current, the images and the weights.", rich_help_panel=NETWORKS)] = 0,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Directory for index.html (written atomically).", rich_help_panel=OUTPUT)] = \
        Path("gradflow-demo"),
    dpi: Annotated[int, typer.Option(help="Figure resolution in dots per inch.", rich_help_panel=OUTPUT)] = 110,
    force: Annotated[bool, typer.Option(help="Replace an existing demo directory.", rich_help_panel=OUTPUT)] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the page's numbers as JSON.", rich_help_panel=OUTPUT)] = False,
) -> None:
    """Write a one-page lecture demo (LIF vs CLIF: traces, temporal factor, gradient pairs, lag decay).

    Runs in seconds on a laptop CPU; DIR/index.html embeds its figures and opens offline.
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    from gradflow.demo import run_demo

    res = run_demo(out, tau=tau, v_threshold=v_threshold, T=T, T_trace=T_trace, batch=batch, width=width,
                   seed=seed, dpi=dpi, force=force)
    if as_json:
        typer.echo(json.dumps(res.summary))
        return
    s = res.summary
    echo(f"wrote {res.path} in {s['seconds']:.1f} s")
    echo(f"first layer, one step back: LIF keeps {s['relative_lag1_sn1']['lif']:.2f}, CLIF "
         f"{s['relative_lag1_sn1']['clif']:.2f} of the spatial gradient")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the gradflow app."""
    add_command(app, "demo", demo_command)
