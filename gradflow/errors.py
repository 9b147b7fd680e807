"""The one error type gradflow raises for mistakes a user can make.

A :class:`GradflowError` carries a single sentence meant for a person and an exit code for the
command line: ``1`` for data errors (a file that is not a checkpoint, labels out of range) and ``2``
for usage errors (an unknown option value, T <= 0). The CLI turns it into that sentence on stderr
and that exit code, never a traceback.
"""

from __future__ import annotations

__all__ = ["GradflowError", "UsageError", "DataError"]


class GradflowError(Exception):
    """A user-facing error: ``str(err)`` is one clear sentence, ``err.exit_code`` the CLI exit status.

    >>> err = GradflowError("T must be a positive integer, got 0.", exit_code=2)
    >>> (str(err), err.exit_code)
    ('T must be a positive integer, got 0.', 2)
    >>> UsageError("max_lag must be >= 0.", arguments=("max_lag",)).arguments
    ('max_lag',)
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None, arguments: tuple = ()):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        #: Names of the library arguments the sentence speaks of (``("max_lag",)``), so that a command
        #: line front end can name its own flags instead; the library never names CLI flags.
        self.arguments = tuple(arguments)


class UsageError(GradflowError, ValueError):
    """A bad option or argument value (exit code 2)."""

    exit_code = 2


class DataError(GradflowError):
    """A file, checkpoint, input or label that cannot be used (exit code 1)."""

    exit_code = 1
