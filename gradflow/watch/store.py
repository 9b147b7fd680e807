"""The directory of a watched run: append-only CSV tables, committed step by step, readable after a crash.

Layout of ``DIR`` (written by :class:`gradflow.watch.Watch`, read by :func:`read_run` and
``gradflow report DIR``)::

    DIR/watch.json      state: format, settings, next train_step, passes recorded, committed bytes per table
    DIR/per_step.csv  DIR/lags.csv  DIR/weights.csv  DIR/pairs.csv  DIR/layers.csv  DIR/summary.csv
    DIR/transport.csv   the theory's window-model inputs per (step, layer), as JSON (when the recorder has them)

**Commit protocol.** A recorded step appends one block of rows to each table, each block in one
``write`` to a file opened for appending, then replaces ``watch.json`` atomically (write a temporary
file, ``os.replace``) with the new byte size of every table. The bytes up to those sizes are the
committed rows: :func:`read_run` reads only them, and re-opening the directory cuts each table back
to them, so a crash, ``kill -9`` or Ctrl-C at any point loses at most the step being written and never
leaves a torn row behind. (Data reach the operating system at once; they survive the process, not a
power cut: there is no ``fsync``.)

**One writer.** An open run holds an exclusive lock (``fcntl.flock`` on ``DIR/.watch.lock``) where the
platform has one; a second writer is refused with a :class:`~gradflow.errors.UsageError`.

Numpy and pandas only (no torch).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import DataError, UsageError
from .summary import SUMMARY_COLUMNS, as_frame

try:  # POSIX advisory locks; elsewhere a run is not protected against a second writer
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["FORMAT", "TABLE_NAMES", "RunStore", "WatchedRun", "read_run"]

#: Version of the ``watch.json`` layout.
FORMAT = 1

#: Tables a watched run may hold, in the order they are written for each recorded step.
TABLE_NAMES = ("per_step", "lags", "weights", "pairs", "layers", "transport", "summary")

STATE_FILE = "watch.json"

# Columns that hold names: read as text, so that a layer named "1" (nn.Sequential) stays "1", not 1.
_TEXT_COLUMNS = {c: str for c in ("layer", "param", "neuron", "surrogate", "reset", "resampled")}
LOCK_FILE = ".watch.lock"


class WatchedRun(NamedTuple):
    """A watched run read back: ``tables`` (name -> DataFrame, committed rows only), ``summary``
    (``summary.csv``), ``meta`` (the ``watch.json`` state)."""

    tables: Dict[str, pd.DataFrame]
    summary: pd.DataFrame
    meta: dict


def _load_state(out: Path) -> dict:
    path = out / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{str(out)!r} is not a watched run: it has no {STATE_FILE}.") from None
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read {str(path)!r}: {err}.") from None
    if not isinstance(state, dict) or state.get("gradflow_watch") != FORMAT or not isinstance(state.get("files"), dict):
        raise DataError(f"{str(path)!r} is not a gradflow watch state (format {FORMAT}).")
    return state


def _read_table(out: Path, name: str, size: int) -> pd.DataFrame:
    """The committed ``size`` bytes of ``DIR/<name>.csv`` as a DataFrame."""
    path = out / f"{name}.csv"
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError as err:
        raise DataError(f"Cannot read {str(path)!r}: {err.strerror}.") from None
    if len(data) < size:
        raise DataError(f"{str(path)!r} is shorter than its committed size ({len(data)} < {size} bytes).")
    return pd.read_csv(io.BytesIO(data), dtype=_TEXT_COLUMNS) if data else pd.DataFrame()


def read_run(out) -> WatchedRun:
    """Read a watched run's committed tables (a run being written may be read at any time).

    Raises :class:`~gradflow.errors.DataError` when ``out`` is not a watched run.
    """
    out = Path(out).expanduser()
    state = _load_state(out)
    tables = {name: _read_table(out, name, int(size)) for name, size in state["files"].items() if size}
    summary = tables.get("summary", pd.DataFrame(columns=list(SUMMARY_COLUMNS)))
    return WatchedRun(tables, summary, state)


class RunStore:
    """Where a :class:`~gradflow.watch.Watch` puts its tables: ``out`` on disk, or memory (``out=None``).

    ``writer=False`` (ranks other than 0) keeps nothing and writes nothing. ``settings`` are stored in
    ``watch.json``; ``start`` overrides the resumed step counter.
    """

    def __init__(self, out: Optional[Path], settings: Mapping, *, writer: bool = True, start: Optional[int] = None):
        self.out, self.writer = out, writer
        self._memory: Optional[Dict[str, List[pd.DataFrame]]] = {} if out is None and writer else None
        self._lock = None
        self.state = {"gradflow_watch": FORMAT, "version": __version__, "settings": dict(settings),
                      "train_step": 0, "passes": 0, "recorded_steps": 0, "files": {}, "columns": {},
                      "created": _now(), "updated": _now()}
        if out is not None and writer:
            self._open(out)
        if start is not None:
            self.state["train_step"] = int(start)

    # ------------------------------------------------------------------ opening
    def _open(self, out: Path) -> None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"Cannot create the watch directory {str(out)!r}: {err.strerror}.",
                             arguments=("out",)) from None
        if not out.is_dir():
            raise UsageError(f"{str(out)!r} is not a directory.", arguments=("out",))
        self._take_lock(out)
        if (out / STATE_FILE).exists():
            old = _load_state(out)
            for name, size in old["files"].items():
                self._truncate(out / f"{name}.csv", int(size))
            for key in ("train_step", "passes", "recorded_steps", "files", "columns", "created"):
                self.state[key] = old.get(key, self.state[key])
            history = list(old.get("history", []))
            if old.get("settings") != self.state["settings"]:   # resumed with other settings: keep the old ones
                history.append({"until_train_step": old.get("train_step"), "settings": old.get("settings")})
            self.state["history"] = history
        else:
            clash = [n for n in TABLE_NAMES if (out / f"{n}.csv").exists()]
            if clash:
                self._release()
                raise UsageError(f"{str(out)!r} holds {clash[0]}.csv but no {STATE_FILE}: it is not a watched run; "
                                 "choose another directory.", arguments=("out",))
        self._save_state()

    def _take_lock(self, out: Path) -> None:
        if fcntl is None:
            return
        self._lock = open(out / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._release()
            raise UsageError(f"{str(out)!r} is being written by another watch (close it first).",
                             arguments=("out",)) from None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()   # closing the file drops the flock
            self._lock = None

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        """Cut ``path`` back to its committed ``size`` (drops a torn step); a short file is an error."""
        have = path.stat().st_size if path.exists() else 0
        if have < size:
            raise DataError(f"{str(path)!r} is shorter than its committed size ({have} < {size} bytes).")
        if have > size:
            with open(path, "r+b") as f:
                f.truncate(size)

    def state_counters(self) -> dict:
        """``{"train_step", "passes"}`` to resume from."""
        return {"train_step": int(self.state["train_step"]), "passes": int(self.state["passes"])}

    # ------------------------------------------------------------------ writing
    def append(self, tables: Mapping[str, object], *, passes: int, next_step: int) -> None:
        """Append one recorded step's tables (DataFrames, or dicts of equal-length columns in column
        order) and commit them (see the module documentation)."""
        if not self.writer:
            return
        if self._memory is not None:
            for name, table in tables.items():
                self._memory.setdefault(name, []).append(as_frame(table))
            self._count(passes, next_step)
            return
        for name in TABLE_NAMES:
            if name in tables:
                self.state["files"][name] = self._append_csv(name, tables[name])
        self._count(passes, next_step)
        self._save_state()

    def _count(self, passes: int, next_step: int) -> None:
        self.state["passes"] = int(passes)
        self.state["train_step"] = int(next_step)
        self.state["recorded_steps"] = int(self.state["recorded_steps"]) + 1

    def _append_csv(self, name: str, df) -> int:
        """Append the rows of ``df`` (a DataFrame or a dict of columns) in one write, with a header if the
        table is new; returns the new size."""
        path = self.out / f"{name}.csv"
        size = int(self.state["files"].get(name, 0))
        columns = self.state["columns"].get(name)
        df = _columns_of(df)
        names = list(df)
        if size == 0 or columns is None:
            columns = [str(c) for c in names]
            self.state["columns"][name] = columns
            header = True
        else:
            header = False
            extra = [c for c in names if c not in columns]
            if extra:
                warnings.warn(f"gradflow.watch: {name}.csv was started without columns {extra}; they are not "
                              "written to this resumed run.", RuntimeWarning, stacklevel=3)
        data = _csv_text(df, columns, header).encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.fstat(fd).st_size != size:   # someone else touched it since the last commit
                os.ftruncate(fd, size)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return size + len(data)

    def _save_state(self) -> None:
        self.state["updated"] = _now()
        path = self.out / STATE_FILE
        tmp = self.out / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def close(self, next_step: Optional[int] = None) -> None:
        """Store the step counter to resume from and release the directory."""
        if self.out is not None and self.writer and self._lock is not None:
            if next_step is not None:
                self.state["train_step"] = int(next_step)
            self._save_state()
        self._release()

    # ------------------------------------------------------------------ reading
    def tables(self) -> Dict[str, pd.DataFrame]:
        """Every table written so far (empty on ranks other than 0)."""
        if not self.writer:
            return {}
        if self._memory is not None:
            return {k: pd.concat(v, ignore_index=True) for k, v in self._memory.items()}
        return read_run(self.out).tables


def _cell(v) -> object:
    """One CSV cell as pandas writes it: missing values (None, NaN) empty, everything else as ``str``."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return v


def _columns_of(table) -> Mapping[str, object]:
    """``table`` as a dict of columns (a DataFrame's columns as numpy arrays; a dict as it is)."""
    if isinstance(table, pd.DataFrame):
        return {str(c): table[c].to_numpy() for c in table.columns}
    return table


def _python_values(v) -> list:
    """One column as a list of CSV cells (:func:`_cell`): Python scalars (numpy arrays via ``tolist``),
    missing values as ``""``. A float array is checked once for NaN instead of cell by cell."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "iub":
        return v.tolist()
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        cells = v.tolist()
        nan = np.flatnonzero(np.isnan(v))
        for i in nan.tolist():
            cells[i] = ""
        return cells
    return [_cell(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]


def _csv_text(df, columns: List[str], header: bool) -> str:
    """The ``columns`` of ``df`` (a DataFrame or a dict of columns; absent ones empty) as CSV text, floats
    in full precision (``repr``).

    The same text as ``df.reindex(columns=columns).to_csv(index=False)`` for the recorder's tables,
    without pandas' per-call cost (a watched step writes six small tables).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(columns)
    have = {str(c): v for c, v in _columns_of(df).items()}
    n = len(next(iter(have.values()), ()))
    w.writerows(zip(*[_python_values(have[c]) if c in have else [""] * n for c in columns]))
    return buf.getvalue()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
