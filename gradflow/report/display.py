"""Numbers as text: percentages, half-lives, intervals in brackets, and the display tables of a report.

Every number a report prints goes through here: :func:`format_interval` writes an estimate with its
95% interval (``12% [9%, 15%]``), :func:`separation` says whether two intervals overlap (a
difference is stated only when they do not), and :func:`display_summary`, :func:`compare_table` and
:func:`decay_table` turn the summary into the tables of ``report.md``, ``index.html`` and the
terminal (readable headings; shares in percent; missing values ``n/a``).

>>> format_percent(0.6149), format_interval(0.12, 0.09, 0.15, "pct")
('61%', '12% [9%, 15%]')
>>> separation((0.5, 0.4, 0.6), (0.3, 0.2, 0.35)), separation((0.5, 0.4, 0.6), (0.45, 0.3, 0.5))
(1, 0)
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from ..schema import RUN
from ._common import as_float, ordered_runs, select_run

__all__ = [
    "number",
    "interval_of",
    "format_percent",
    "format_half_life",
    "format_interval",
    "separation",
    "units_text",
    "display_summary",
    "compare_table",
    "decay_table",
]


# ------------------------------------------------------------------------------------------ numbers

def number(x) -> float:
    """``x`` as a float; NaN for anything that is not a number (None, text, pd.NA)."""
    return as_float([x])[0]


def format_percent(x: float) -> str:
    """A share as a percentage for prose: ``0.04 -> '4%'``, ``0.003 -> '0.3%'``, NaN -> ``'n/a'``.

    >>> [format_percent(v) for v in (0.04, 0.6149, 0.003, 0.0, -0.052, float('nan'))]
    ['4%', '61%', '0.3%', '0%', '-5%', 'n/a']
    """
    x = number(x)
    if not np.isfinite(x):
        return "n/a"
    p = 100.0 * x
    if p == 0:
        return "0%"
    if abs(p) < 0.05:
        return "<0.1%" if p > 0 else ">-0.1%"
    if abs(p) < 1:
        return f"{p:.1f}%"
    return f"{p:.0f}%"


def format_half_life(h: float, max_lag: float = math.nan) -> str:
    """A half-life for prose: ``'0.7 steps'``, ``'beyond 5 steps'`` (inf), ``'not measurable'`` (NaN).

    >>> format_half_life(0.714), format_half_life(float('inf'), 5), format_half_life(float('nan'))
    ('0.7 steps', 'beyond 5 steps', 'not measurable')
    """
    h = number(h)
    if math.isnan(h):
        return "not measurable"
    if math.isinf(h):
        m = number(max_lag)
        if np.isfinite(m):
            return f"beyond {int(m)} step{'s' if int(m) != 1 else ''}"
        return "beyond the longest lag measured"
    return f"{h:.1f} steps"


def _num(x: float, kind: str, max_lag: float = math.nan, digits: int = 2) -> str:
    """One number for tables and prose: ``pct`` (percent), ``pct1`` (percent, one decimal),
    ``steps`` (inf is ``> max_lag``), ``ratio`` (``digits`` decimals)."""
    x = number(x)
    if math.isnan(x):
        return "n/a"
    if kind == "pct":
        return format_percent(x)
    if kind == "pct1":
        return f"{100 * x:.1f}" if math.isfinite(x) else "n/a"
    if math.isinf(x):
        m = number(max_lag)
        return f"> {int(m)}" if kind == "steps" and np.isfinite(m) else ("inf" if x > 0 else "-inf")
    if kind == "ratio3":
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def format_interval(est: float, low: float, high: float, kind: str = "ratio", max_lag: float = math.nan) -> str:
    """``'est [low, high]'``, or ``'est'`` alone when the interval is missing (fewer than two units).

    >>> format_interval(1.2, 1.1, float('inf'), "steps", max_lag=5)
    '1.20 [1.10, > 5]'
    >>> format_interval(0.5, float('nan'), float('nan'))
    '0.50'
    """
    text = _num(est, kind, max_lag)
    if math.isnan(number(low)) or math.isnan(number(high)) or text == "n/a":
        return text
    return f"{text} [{_num(low, kind, max_lag)}, {_num(high, kind, max_lag)}]"


def separation(a: Tuple[float, float, float], b: Tuple[float, float, float]) -> Optional[int]:
    """Compare two ``(estimate, low, high)`` triples: 1 if a's interval lies above b's, -1 below, 0 if
    they overlap, None if either interval is missing."""
    a_lo, a_hi, b_lo, b_hi = (number(v) for v in (a[1], a[2], b[1], b[2]))
    if any(math.isnan(v) for v in (a_lo, a_hi, b_lo, b_hi)):
        return None
    if a_lo > b_hi:
        return 1
    if a_hi < b_lo:
        return -1
    return 0


def interval_of(row, metric: str) -> Tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``metric`` in a summary row (NaN where a column is missing)."""
    return (number(row.get(metric)), number(row.get(f"{metric}_ci_low")), number(row.get(f"{metric}_ci_high")))


def units_text(rows: pd.DataFrame, metric: str = "temporal_share") -> str:
    """How many units the intervals of ``metric`` rest on: ``'1024 samples'``, ``'32 backward passes'``,
    or ``'1024 and 512 samples'`` for rows that differ."""
    if metric.startswith("weight_") or "resampled" not in rows.columns or \
            not (rows["resampled"] == "samples").all():
        values, unit = as_float(rows.get("steps", pd.Series(dtype=float))), "backward pass"
    else:
        values, unit = as_float(rows["samples"]), "sample"
    counts = [int(v) for v in dict.fromkeys(values) if np.isfinite(v)]
    if not counts:
        return f"an unknown number of {unit}s"
    text = " and ".join(str(c) for c in counts)
    plural = {"sample": "samples", "backward pass": "backward passes"}[unit]
    return f"{text} {unit if counts[-1] == 1 else plural}"



# ------------------------------------------------------------------------------------ display tables

_DISPLAY = (
    # (summary column, heading, kind, with interval)
    (RUN, "Run", "text", False),
    ("layer", "Layer", "text", False),
    ("neuron", "Neuron", "neuron", False),
    ("T", "T", "int", False),
    ("samples", "Samples", "int", False),
    ("weight_temporal_projection", "Weight temporal projection (%)", "pct1", True),
    ("temporal_share", "Temporal share (%, sign-blind)", "pct1", True),
    ("relative_1", "relative_1", "ratio", True),
    ("half_life", "Half-life (steps)", "steps", True),
    ("decay_rate", "Decay rate per step", "ratio", True),
    ("predicted_half_life", "Predicted half-life (steps)", "steps", False),
    ("theory_error", "Theory error (median, %)", "pct1", True),
    ("firing_rate", "Firing rate (%)", "pct1", False),
    ("window_fraction", "Window fraction (%)", "pct1", False),
    ("temporal_zero_fraction", "Zero temporal entries (%)", "pct1", False),
    ("nonfinite", "Non-finite", "int", False),
)


def _display(row, col: str, kind: str, ci: bool) -> str:
    """One cell of :func:`display_summary`: text as is, neuron kinds in capitals, integers, or a number
    of ``kind`` (with its interval when ``ci``)."""
    v = row.get(col)
    if kind in ("text", "neuron"):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return str(v).upper() if kind == "neuron" else str(v)
    if kind == "int":
        x = number(v)
        return "n/a" if math.isnan(x) else (str(int(x)) if math.isfinite(x) else "inf")
    m = row.get("max_lag", math.nan)
    if ci:
        return format_interval(*interval_of(row, col), kind, m)
    return _num(v, kind, m)


def display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as text with readable headings, intervals in brackets (``'12.0 [9.1, 15.2]'``).

    Shares in percent with one decimal, half-lives and ratios with two decimals (``'> 5'`` for a
    half-life beyond the 5 lags measured), missing values ``'n/a'``; the run column only when there are
    two or more runs. Used for the Markdown, LaTeX and HTML tables and the terminal.
    """
    cols = [c for c in _DISPLAY if c[0] in summary.columns
            and not (c[0] == RUN and summary[RUN].nunique(dropna=False) < 2)]
    rows = [[_display(row, col, kind, ci) for col, _, kind, ci in cols] for _, row in summary.iterrows()]
    return pd.DataFrame(rows, columns=[h for _, h, _, _ in cols])


def compare_table(summary: pd.DataFrame) -> Optional[pd.DataFrame]:
    """Runs side by side, one row per layer: weight temporal projection, temporal share and half-life
    of each run with their intervals. None with fewer than two runs; layers matched by name."""
    runs = ordered_runs(summary)
    if len(runs) < 2 or runs == [None]:
        return None
    layers: List[str] = []
    for run in runs:
        layers += [l for l in select_run(summary, run).sort_values("layer_index")["layer"] if l not in layers]
    table = {"Layer": layers}
    for col, heading, kind in (("weight_temporal_projection", "Weight temporal projection", "pct1"),
                               ("temporal_share", "Temporal share", "pct1"), ("half_life", "Half-life", "steps")):
        unit = "%" if kind == "pct1" else "steps"
        for run in runs:
            d = select_run(summary, run).drop_duplicates("layer").set_index("layer")
            table[f"{heading} {run} ({unit})"] = [
                _display(d.loc[l], col, kind, True) if l in d.index and col in d.columns else "n/a"
                for l in layers]
    return pd.DataFrame(table)


def decay_table(summary: pd.DataFrame) -> Optional[pd.DataFrame]:
    """The window model's per-layer numbers as text (None when no layer has them): where the spatial
    gradient sits, the population's window occupancy, the one-step survival and the exact
    ``relative_1 = gamma * sqrt(one_step_survival)`` beside the measured value."""
    if summary is None or summary.empty or "one_step_survival" not in summary.columns:
        return None
    d = summary[np.isfinite(as_float(summary["one_step_survival"]))]
    if d.empty:
        return None
    rows = []
    for _, row in d.iterrows():
        gamma = 1.0 - 1.0 / number(row.get("tau"))
        S = number(row["one_step_survival"])
        rows.append({**({"Run": str(row[RUN])} if RUN in d.columns and d[RUN].nunique() > 1 else {}),
                     "Layer": str(row["layer"]),
                     "Gradient in window one step before (%)": format_interval(*interval_of(row, "in_window_before"), "pct1"),
                     "Window occupancy (%)": _num(row.get("window_occupancy"), "pct1"),
                     "One-step survival": format_interval(*interval_of(row, "one_step_survival"), "ratio3"),
                     "gamma * sqrt(survival)": _num(gamma * math.sqrt(S) if S >= 0 else math.nan, "ratio3"),
                     "relative_1 (measured)": format_interval(*interval_of(row, "relative_1"), "ratio3")})
    return pd.DataFrame(rows)
