"""``gradflow``: the Typer application.

Each command lives in its own module (``cli/<name>_cmd.py``) exposing ``register(app)``; this file only
assembles them, so commands can be added without touching one another. Command modules import the
library lazily inside their command functions, so ``gradflow --help`` does not load torch.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

import gradflow

from . import (analyze_cmd, bench_cmd, clif_to_lif_cmd, demo_cmd, experiment_cmd, report_cmd, theory_cmd,
               train_cmd)
from .common import GradflowGroup

app = typer.Typer(
    name="gradflow",
    cls=GradflowGroup,
    help="Gradient-flow analysis for spiking neural networks (LIF, CLIF, PLIF): spatial vs temporal "
    "gradients, measured with autograd hooks and compared with closed-form theory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: The command modules, in the order ``gradflow --help`` lists their commands.
COMMAND_MODULES = (analyze_cmd, report_cmd, theory_cmd, demo_cmd, train_cmd, clif_to_lif_cmd, experiment_cmd,
                   bench_cmd)


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


for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
