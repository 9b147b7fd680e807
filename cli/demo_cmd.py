"""``gradflow demo``: the lecture demo page (a thin command over :func:`gradflow.demo.run_demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gradflow.errors import UsageError

from .common import echo, user_errors


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for index.html.")] = Path("gradflow-demo"),
    tau: Annotated[float, typer.Option(help="Membrane time constant of both neurons (gamma = 1 - 1/tau).")] = 2.0,
    v_threshold: Annotated[float, typer.Option(help="Threshold theta (the surrogate window has width theta).")] = 1.0,
    T: Annotated[int, typer.Option("--T", help="Time steps of the recorded networks.")] = 8,
    T_trace: Annotated[int, typer.Option("--trace-steps", help="Time steps of the single-neuron traces.")] = 30,
    batch: Annotated[int, typer.Option(help="Images in the recorded batch.")] = 256,
    width: Annotated[int, typer.Option(help="Hidden width of the recorded two-layer MLPs.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of the input current, the images and the weights.")] = 0,
    dpi: Annotated[int, typer.Option(help="Figure resolution in dots per inch.")] = 110,
    force: Annotated[bool, typer.Option(help="Overwrite an existing index.html in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the page's numbers as JSON.")] = False,
) -> None:
    """Write a one-page lecture demo (LIF vs CLIF: traces, temporal factor, gradient pairs, lag decay).

    Runs in seconds on a laptop CPU; DIR/index.html embeds its figures and opens offline.
    """
    from gradflow.demo import run_demo

    if (out / "index.html").exists() and not force:
        raise UsageError(f"{str(out / 'index.html')!r} exists; pass --force to overwrite it.")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory.")
    res = run_demo(out, tau=tau, v_threshold=v_threshold, T=T, T_trace=T_trace, batch=batch, width=width,
                   seed=seed, dpi=dpi)
    if as_json:
        typer.echo(json.dumps(res.summary))
        return
    s = res.summary
    echo(f"wrote {res.path} in {s['seconds']:.1f} s")
    echo(f"first layer, one step back: LIF keeps {s['relative_lag1_sn1']['lif']:.2f}, CLIF "
         f"{s['relative_lag1_sn1']['clif']:.2f} of the spatial gradient")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the gradflow app."""
    app.command("demo")(user_errors(demo_command))
