"""``gradflow``: the Typer application.

Each command lives in its own module (``cli/<name>_cmd.py``) exposing ``register(app)``; this file
only assembles them, so commands can be added without touching one another.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Optional

import typer

import gradflow

app = typer.Typer(
    name="gradflow",
    help="Gradient-flow analysis for spiking neural networks (LIF, CLIF, PLIF): spatial vs temporal "
    "gradients, measured with autograd hooks and compared with closed-form theory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Command modules, each with a ``register(app)`` function.
COMMAND_MODULES = ["analyze_cmd", "theory_cmd", "train_cmd", "demo_cmd", "bench_cmd"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradflow {gradflow.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Gradient-flow analysis for spiking neural networks."""


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as _err:  # a command not written yet
        if _err.name != f"{__package__}.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
