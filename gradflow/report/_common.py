"""Small helpers shared by the summary, the plots and the report writer.

The recorded tables are long-format DataFrames (columns in :mod:`gradflow.schema`, defined in
docs/reference.md). A comparison concatenates several runs and
puts a ``run`` column first; everything here treats a table without ``run`` as a single run, written
``None``. Values may be NaN or +-Inf anywhere: helpers here turn columns into float arrays
and finite masks instead of trusting the dtype (an empty recorder table has ``object`` columns).
"""

from __future__ import annotations

from typing import Hashable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..schema import RUN, TABLES

#: The minimum columns each table must carry for the report (docs/reference.md; extra columns may follow).
REQUIRED_COLUMNS = TABLES


def require_columns(df: pd.DataFrame, name: str, columns: Optional[Sequence[str]] = None) -> None:
    """Raise ``ValueError`` naming the missing columns when ``df`` lacks any of ``columns``.

    ``columns`` defaults to :data:`REQUIRED_COLUMNS` ``[name]``. This guards the contract between the
    recorder and the report, so a mismatch is a programming error, not a user one.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"table {name!r} must be a pandas DataFrame, got {type(df).__name__}")
    need = REQUIRED_COLUMNS[name] if columns is None else columns
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"table {name!r} lacks the column(s) {', '.join(missing)} (docs/reference.md)")


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the columns of ``name`` (used when a table was not recorded)."""
    return pd.DataFrame({c: pd.Series(dtype=float) for c in REQUIRED_COLUMNS[name]})


def run_keys(df: pd.DataFrame) -> List[str]:
    """``["run"]`` when the table has a run column, else ``[]``: the leading group keys."""
    return [RUN] if RUN in df.columns else []


def ordered_runs(df: pd.DataFrame) -> List[Optional[Hashable]]:
    """The runs in order of first appearance, or ``[None]`` for a table without a run column."""
    if RUN not in df.columns:
        return [None]
    runs = list(pd.unique(df[RUN]))
    return runs if runs else [None]


def select_run(df: pd.DataFrame, run: Optional[Hashable]) -> pd.DataFrame:
    """The rows of one run (all rows when ``run`` is None or the table has no run column)."""
    if run is None or RUN not in df.columns:
        return df
    return df[df[RUN] == run]


def pick_layer(df: pd.DataFrame, layer: Optional[str]) -> Tuple[pd.DataFrame, Optional[str]]:
    """The rows of ``layer`` (default: the first layer by ``layer_index``) and the layer's name."""
    if layer is None:
        order = layer_order(df)
        layer = order[0] if order else None
    return (df[df["layer"] == layer] if layer is not None else df.iloc[0:0]), layer


def layer_order(df: pd.DataFrame) -> List[str]:
    """Layer names sorted by ``layer_index`` (ties: first appearance); the union over runs."""
    if df.empty:
        return []
    if "layer_index" in df.columns:
        idx = as_float(df["layer_index"])
        first = pd.DataFrame({"layer": df["layer"].to_numpy(), "i": idx})
        first["pos"] = np.arange(len(first))
        g = first.groupby("layer", sort=False).agg(i=("i", "min"), pos=("pos", "min"))
        g["i"] = g["i"].fillna(np.inf)
        return list(g.sort_values(["i", "pos"]).index)
    return list(pd.unique(df["layer"]))


def as_float(values: Iterable) -> np.ndarray:
    """A new (writable) float64 array of ``values``; anything that is not a number becomes NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return np.array(values, dtype=float, copy=True)
    if not isinstance(values, pd.Series):
        values = pd.Series(list(values), dtype=object)
    num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.array(num, dtype=float, copy=True)


def finite_or_nan(values: Iterable) -> np.ndarray:
    """``values`` as floats with +-Inf replaced by NaN, so that pandas' NaN-skipping means ignore them."""
    a = as_float(values)
    a[~np.isfinite(a)] = np.nan
    return a


def neuron_of(df: pd.DataFrame, run: Optional[Hashable] = None) -> Optional[str]:
    """The neuron type (``lif``, ``clif``, ``plif``) of a run, or None when the table does not say."""
    d = select_run(df, run)
    if "neuron" not in d.columns or d.empty:
        return None
    values = [v for v in pd.unique(d["neuron"]) if isinstance(v, str)]
    return values[0].lower() if values else None


def attach_neuron(df: pd.DataFrame, per_step: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``neuron`` column taken from ``per_step`` by (run, layer), when it has none."""
    if "neuron" in df.columns or "neuron" not in per_step.columns or "layer" not in df.columns:
        return df
    keys = [k for k in run_keys(per_step) if k in df.columns] + ["layer"]
    lookup = per_step[keys + ["neuron"]].drop_duplicates(subset=keys)
    return df.merge(lookup, on=keys, how="left")
