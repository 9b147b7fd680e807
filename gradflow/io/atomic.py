"""Atomic output directories: a report appears complete or not at all.

:func:`atomic_directory` yields a temporary directory ``.<name>.tmp-XXXX`` beside the target; when
the ``with`` block finishes it is renamed into place (an existing report is swapped out only then,
and only with ``force``). On any exception — also Ctrl-C, and SIGTERM when the main thread writes
and nobody else handles it — the temporary directory is removed and the error re-raised, so no
half-written report and no temporary litter are left behind.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_directory(root / "rep") as tmp:
...     _ = (tmp / "summary.json").write_text("{}")
>>> sorted(p.name for p in root.iterdir())
['rep']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator, Union

from ..errors import UsageError

__all__ = ["atomic_directory", "check_target"]

#: Files that mark a directory as a previous gradflow output (safe to replace with ``force``).
REPORT_MARKERS = {"summary.json", "index.html"}


def check_target(out: Path, force: bool) -> None:
    """Refuse an existing ``out`` unless ``force``; even then only an empty dir or a previous report."""
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise UsageError(f"The output directory {out} already exists; pass --force to replace it.")
    if out.is_symlink() or not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose another --out.")
    names = {q.name for q in out.iterdir()}
    if names and not (REPORT_MARKERS & names):
        raise UsageError(
            f"{out} exists and does not look like a gradflow report (no summary.json or index.html); "
            "refusing to replace it even with --force."
        )


@contextlib.contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM into SystemExit(143) while writing (main thread, default handler only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        previous = None
    if previous is not signal.SIG_DFL:
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dir_mode_like(path: Path) -> int:
    # mkdtemp makes a private (0o700) directory; give the output what the user's umask gives a new
    # directory: the file's permissions with the search bit wherever it is readable (0o644 -> 0o755)
    probe = next((p for p in path.iterdir() if p.is_file()), None)
    if probe is None:
        mask = os.umask(0)
        os.umask(mask)
        return 0o777 & ~mask
    mode = probe.stat().st_mode & 0o777
    return mode | ((mode & 0o444) >> 2)


@contextlib.contextmanager
def atomic_directory(out_dir: Union[str, os.PathLike], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out_dir`` when the block completes.

    Raises :class:`UsageError` if ``out_dir`` exists (without ``force``, or when it is not a previous
    report) or its parent cannot be written.
    """
    out = Path(out_dir).expanduser().absolute()
    check_target(out, force)
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as err:
        raise UsageError(f"Cannot write the report under {parent}: {err.strerror or err}.") from None
    try:
        with _sigterm_as_exit():
            yield tmp
            os.chmod(tmp, _dir_mode_like(tmp))
            if out.exists() or out.is_symlink():
                check_target(out, force)  # still replaceable now that the new output is complete
                old = parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(out, old)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(old, out)
                    raise
                if old.is_symlink():
                    old.unlink()
                else:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
