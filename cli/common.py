"""Helpers shared by the CLI commands: error boundary and output."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer

from gradflow.errors import GradflowError


def fail(message: str, code: int = 1) -> "typer.Exit":
    """Print ``message`` as ``gradflow: error: ...`` on stderr and return the Exit to raise."""
    typer.echo(f"gradflow: error: {message}", err=True)
    return typer.Exit(code)


def user_errors(fn: Callable) -> Callable:
    """Decorator for commands: turn GradflowError (and Ctrl-C) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GradflowError as err:
            raise fail(str(err), err.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted.", 130) from None

    return wrapper


def echo(msg: str = "", quiet: bool = False) -> None:
    """Print to stdout unless ``quiet``."""
    if not quiet:
        typer.echo(msg)


def progress(iterable, total: int | None = None, label: str = "", enabled: bool = True):
    """A plain progress bar on stderr (hidden when not enabled or stderr is not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield from iterable
        return
    with typer.progressbar(iterable, length=total, label=label, file=sys.stderr) as bar:
        yield from bar
