"""What every command shares: the error boundary, help text, output, progress bars and terminal tables.

Error boundary. Whatever a user gets wrong ends as ONE line on stderr, ``gradflow: error: <sentence>``,
and an exit code: 2 for usage errors (Typer's own checks of options and choices, and
:class:`gradflow.UsageError`), 1 for data errors (:class:`gradflow.DataError`), 130 for Ctrl-C.
Library errors speak of the library's argument names (``max_lag``); :func:`add_command` replaces those
with the command's flags (``--max-lag``), using the command's own parameters and a per-command map
for arguments whose flag has another name.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import re
import sys
import typing
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import typer
from typer.core import TyperGroup

from gradflow.errors import GradflowError

try:  # recent Typer ships its own copy of click, whose usage errors these are
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.globals import get_current_context
except ImportError:  # older Typer runs on click itself
    from click import ClickException, get_current_context
    from click.exceptions import NoArgsIsHelpError

__all__ = ["GradflowGroup", "add_command", "reflow", "echo", "fail", "SampleProgress", "progress", "table",
           "to_flags", "choice_values"]

PROG = "gradflow"

#: What a choice parameter is called in error sentences, where its name is an abbreviation.
NOUNS = {"arch": "architecture", "switch_to": "neuron"}


# ----------------------------------------------------------------------------- errors


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``gradflow: error: <message>`` on stderr and return the :class:`typer.Exit` to raise."""
    typer.echo(f"{PROG}: error: {message}", err=True)
    return typer.Exit(code)


def _flag(param) -> str:
    """A parameter's long flag (``--max-lag``), or its metavar name for an argument (``CHECKPOINTS``)."""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return opts[0] if opts else str(param.name).upper()


def to_flags(message: str, flags: Mapping[str, str], arguments: Sequence[str] = ()) -> str:
    """Put the command's flags in place of the library argument names a message mentions.

    ``arguments`` (an error's ``.arguments``) are replaced wherever they stand as a word; without
    them, only an argument name that opens the sentence is (``"T must be ..."`` -> ``"--T must be ..."``).

    >>> to_flags("use max_lag or a smaller batch_size.", {"max_lag": "--max-lag", "batch_size": "--batch-size"},
    ...          ["max_lag", "batch_size"])
    'use --max-lag or a smaller --batch-size.'
    >>> to_flags("T must be a positive integer, got 0.", {"T": "--T"})
    '--T must be a positive integer, got 0.'
    """
    for name in arguments:
        if name in flags:
            message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flags[name], message)
    head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", message)
    if head and head.group(0) in flags and not arguments:
        message = flags[head.group(0)] + message[head.end():]
    return message


def choice_values(annotation: Any) -> Optional[list]:
    """The allowed values of an Enum-typed (or list-of-Enum) parameter annotation, else None."""
    for arg in (annotation, *typing.get_args(annotation)):
        for inner in (arg, *typing.get_args(arg)):
            if inspect.isclass(inner) and issubclass(inner, Enum):
                return [m.value for m in inner]
    return None


def _choice_message(err, command: Optional[Callable]) -> Optional[str]:
    """``Unknown surrogate 'relu'; choose one of ... (--surrogate).`` for a bad Enum choice, else None."""
    param = getattr(err, "param", None)
    if param is None or command is None:
        return None
    hints = typing.get_type_hints(command, include_extras=True)
    values = choice_values(hints.get(param.name))
    found = re.search(r"'((?:[^'\\]|\\.)*)' is not (?:one of|a valid)", getattr(err, "message", ""))
    if values is None or found is None:
        return None
    noun = NOUNS.get(param.name, param.name.replace("_", " "))
    return f"Unknown {noun} {found.group(1)!r}; choose one of {', '.join(map(str, values))} ({_flag(param)})."


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _usage_line(err) -> str:
    """One sentence for a Typer/Click usage error (bad value, unknown option, missing argument)."""
    ctx = getattr(err, "ctx", None)
    command = getattr(getattr(ctx, "command", None), "callback", None)
    command = inspect.unwrap(command) if command is not None else None
    text = _choice_message(err, command) or " ".join(err.format_message().split())
    text = _sentence(text.replace("Value error, ", ""))
    param = getattr(err, "param", None)
    if param is not None and getattr(param, "multiple", False) and "," in str(getattr(err, "message", "")):
        text += f" Repeat the option for several values ({_flag(param)} A {_flag(param)} B)."
    if ctx is not None:
        text += f" See '{ctx.command_path} --help'."
    return text


class GradflowGroup(TyperGroup):
    """The app's click group: Typer's usage errors become one line (no boxes), like library errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError:  # the help is already on the screen
            sys.exit(2)
        except ClickException as err:
            typer.echo(f"{PROG}: error: {_usage_line(err)}", err=True)
            sys.exit(err.exit_code)
        except (typer.Abort, KeyboardInterrupt, EOFError):
            typer.echo(f"{PROG}: error: interrupted.", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


# ----------------------------------------------------------------------------- commands


def reflow(doc: Optional[str]) -> str:
    """A docstring as help text: each paragraph on one line, so the terminal wraps it, not the source.

    >>> reflow('''First line
    ...     continues here.
    ...
    ...     Second paragraph.''')
    'First line continues here.\\n\\nSecond paragraph.'
    """
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def add_command(app: typer.Typer, name: str, fn: Callable, flags: Optional[Mapping[str, str]] = None) -> None:
    """Add ``fn`` as command ``name``: help text from its docstring, library errors as one line.

    ``flags`` maps library argument names to the command's flags where Typer's own names differ
    (``{"memory_limit_gb": "--memory-limit"}``); every parameter of ``fn`` maps to its own flag.
    """
    extra = dict(flags or {})

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GradflowError as err:
            ctx = get_current_context(silent=True)
            own = {p.name: _flag(p) for p in getattr(getattr(ctx, "command", None), "params", [])}
            message = to_flags(str(err), {**own, **extra}, getattr(err, "arguments", ()))
            raise fail(message, err.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted.", 130) from None

    app.command(name, help=reflow(fn.__doc__))(wrapper)


# ----------------------------------------------------------------------------- output


def echo(msg: str = "", quiet: bool = False) -> None:
    """Print to stdout unless ``quiet``."""
    if not quiet:
        typer.echo(msg)


def _shown(enabled: bool) -> bool:
    return enabled and sys.stderr.isatty()


def progress(iterable: Iterable, total: Optional[int] = None, label: str = "", enabled: bool = True):
    """A progress bar over ``iterable`` on stderr (hidden when not enabled or stderr is not a terminal)."""
    if not _shown(enabled):
        yield from iterable
        return
    with typer.progressbar(iterable, length=total, label=label, file=sys.stderr) as bar:
        yield from bar


class SampleProgress:
    """A progress bar per run that counts recorded samples: ``bar(run, done, total)``; close at the end.

    Matches the ``progress`` callback of :func:`gradflow.analyze`; shows nothing when not enabled or
    when stderr is not a terminal.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = _shown(enabled)
        self._bar = None
        self._run: Optional[str] = None
        self._done = 0

    def __call__(self, run: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if run != self._run:
            self.close()
            label = f"{run}: recording samples" if run else "recording samples"
            self._bar = typer.progressbar(length=total, label=label, file=sys.stderr)
            self._bar.__enter__()
            self._run, self._done = run, 0
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._bar, self._run = None, None

    def __enter__(self) -> "SampleProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _cell(value: Any, spec: Optional[str], missing: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if spec is not None and _is_number(value):
        return format(value, spec)
    return str(value)


def table(rows, columns: Optional[Sequence[str]] = None, *, formats: Optional[Mapping[str, str]] = None,
          headers: Optional[Mapping[str, str]] = None, right: Sequence[str] = (), missing: str = "-") -> str:
    """A plain-text table for the terminal: a header, a rule, one line per row.

    ``rows``: a DataFrame or a list of dicts; ``columns``: which columns, in order (default all);
    ``formats``: format specs per column (``{"ms": ".2f"}``); ``headers``: shown names per column;
    ``missing``: the text for None and NaN. Numbers, and the columns named in ``right``, are
    right-aligned; other text is left-aligned.

    >>> print(table([{"neuron": "lif", "ms": 1.5}, {"neuron": "clif", "ms": None}], formats={"ms": ".2f"}))
    neuron    ms
    ------  ----
    lif     1.50
    clif       -
    """
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    if columns is None:
        columns = list(rows.columns) if hasattr(rows, "columns") else list(dict.fromkeys(k for r in records for k in r))
    formats, headers = dict(formats or {}), dict(headers or {})
    cells = [[_cell(r.get(c), formats.get(c), missing) for c in columns] for r in records]
    numeric = [c in right or (bool(records) and all(_is_number(r.get(c)) or r.get(c) is None for r in records))
               for c in columns]
    names = [headers.get(c, c) for c in columns]
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths])] + [line(r) for r in cells])
