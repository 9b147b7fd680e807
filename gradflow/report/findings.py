"""The summary in words and as display tables: findings, the interval note, per-layer and side-by-side tables.

Numbers come with their 95% interval in brackets (``12% [9%, 15%]``). A sentence that compares two
layers or two runs states a difference only when the two intervals do not overlap
(:func:`separation`); otherwise it says that the data cannot tell them apart at the number of
samples recorded. Findings lead with the weight temporal projection (signed: the share of the
weight update the temporal gradient carries); the temporal share follows, marked sign-blind.

>>> format_percent(0.6149), format_interval(0.12, 0.09, 0.15, "pct")
('61%', '12% [9%, 15%]')
>>> separation((0.5, 0.4, 0.6), (0.3, 0.2, 0.35)), separation((0.5, 0.4, 0.6), (0.45, 0.3, 0.5))
(1, 0)
"""

from __future__ import annotations

import math
from typing import Hashable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..schema import RUN
from ._common import as_float, ordered_runs, select_run

__all__ = [
    "format_percent",
    "format_half_life",
    "format_interval",
    "separation",
    "units_text",
    "statistics_note",
    "findings",
    "display_summary",
    "compare_table",
]


# ------------------------------------------------------------------------------------------ numbers

def _f(x) -> float:
    """``x`` as a float; NaN for anything that is not a number (None, text, pd.NA)."""
    return as_float([x])[0]


def format_percent(x: float) -> str:
    """A share as a percentage for prose: ``0.04 -> '4%'``, ``0.003 -> '0.3%'``, NaN -> ``'n/a'``.

    >>> [format_percent(v) for v in (0.04, 0.6149, 0.003, 0.0, -0.052, float('nan'))]
    ['4%', '61%', '0.3%', '0%', '-5%', 'n/a']
    """
    x = _f(x)
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
    h = _f(h)
    if math.isnan(h):
        return "not measurable"
    if math.isinf(h):
        m = _f(max_lag)
        if np.isfinite(m):
            return f"beyond {int(m)} step{'s' if int(m) != 1 else ''}"
        return "beyond the longest lag measured"
    return f"{h:.1f} steps"


def _num(x: float, kind: str, max_lag: float = math.nan, digits: int = 2) -> str:
    """One number for tables and prose: ``pct`` (percent), ``pct1`` (percent, one decimal),
    ``steps`` (inf is ``> max_lag``), ``ratio`` (``digits`` decimals)."""
    x = _f(x)
    if math.isnan(x):
        return "n/a"
    if kind == "pct":
        return format_percent(x)
    if kind == "pct1":
        return f"{100 * x:.1f}" if math.isfinite(x) else "n/a"
    if math.isinf(x):
        m = _f(max_lag)
        return f"> {int(m)}" if kind == "steps" and np.isfinite(m) else ("inf" if x > 0 else "-inf")
    return f"{x:.{digits}f}"


def format_interval(est: float, low: float, high: float, kind: str = "ratio", max_lag: float = math.nan) -> str:
    """``'est [low, high]'``, or ``'est'`` alone when the interval is missing (fewer than two units).

    >>> format_interval(1.2, 1.1, float('inf'), "steps", max_lag=5)
    '1.20 [1.10, > 5]'
    >>> format_interval(0.5, float('nan'), float('nan'))
    '0.50'
    """
    text = _num(est, kind, max_lag)
    if math.isnan(_f(low)) or math.isnan(_f(high)) or text == "n/a":
        return text
    return f"{text} [{_num(low, kind, max_lag)}, {_num(high, kind, max_lag)}]"


def separation(a: Tuple[float, float, float], b: Tuple[float, float, float]) -> Optional[int]:
    """Compare two ``(estimate, low, high)`` triples: 1 if a's interval lies above b's, -1 below, 0 if
    they overlap, None if either interval is missing."""
    a_lo, a_hi, b_lo, b_hi = (_f(v) for v in (a[1], a[2], b[1], b[2]))
    if any(math.isnan(v) for v in (a_lo, a_hi, b_lo, b_hi)):
        return None
    if a_lo > b_hi:
        return 1
    if a_hi < b_lo:
        return -1
    return 0


def _triple(row, metric: str) -> Tuple[float, float, float]:
    """``(estimate, ci_low, ci_high)`` of ``metric`` in a summary row (NaN where a column is missing)."""
    return (_f(row.get(metric)), _f(row.get(f"{metric}_ci_low")), _f(row.get(f"{metric}_ci_high")))


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


# ----------------------------------------------------------------------------------------- findings

_METRICS = (
    # (column, prose name, kind, higher means)
    ("weight_temporal_projection", "weight temporal projection", "pct", "higher"),
    ("temporal_share", "temporal share (sign-blind)", "pct", "higher"),
    ("half_life", "half-life", "steps", "longer"),
)


def _label(run: Optional[Hashable], layer: str) -> str:
    """``"<run> <layer>"`` in comparisons, the layer name alone otherwise."""
    return f"{run} {layer}" if run is not None else str(layer)


def _verdict(a_row, b_row, metric: str, word: str, a_name: str, b_name: str, rows: pd.DataFrame) -> str:
    """A difference only when the intervals separate; else that the data cannot tell them apart."""
    sep = separation(_triple(a_row, metric), _triple(b_row, metric))
    if sep:
        return f"{word} in {a_name if sep > 0 else b_name} (the intervals do not overlap)"
    why = "" if sep == 0 else " (no interval)"
    return f"the data cannot tell them apart at {units_text(rows, metric)}{why}"


def _compare(a_row, b_row, metric: str, kind: str, word: str, a_name: str, b_name: str,
             rows: pd.DataFrame) -> str:
    """``'a [..] vs b [..]: <verdict>'``."""
    return (f"{format_interval(*_triple(a_row, metric), kind, a_row.get('max_lag', math.nan))} vs "
            f"{format_interval(*_triple(b_row, metric), kind, b_row.get('max_lag', math.nan))}: "
            + _verdict(a_row, b_row, metric, word, a_name, b_name, rows))


def _overview(d: pd.DataFrame, run: Optional[Hashable]) -> List[str]:
    """The run's overview and, per metric, its smallest and largest layer compared."""
    neurons = sorted({str(v).upper() for v in d["neuron"] if isinstance(v, str)})
    Ts = sorted({int(v) for v in as_float(d["T"]) if np.isfinite(v)})
    n = len(d)
    head = f"{run}: " if run is not None else ""
    text = f"{head}{n} {'/'.join(neurons) + ' ' if neurons else ''}layer{'s' if n != 1 else ''}"
    text += f" at T={'/'.join(map(str, Ts))}" if Ts else ""
    out = [f"{text}, {units_text(d)} recorded."]
    for metric, name, kind, word in _METRICS[:2] if n > 1 else ():
        v = as_float(d[metric])
        if np.isfinite(v).sum() < 2:
            continue
        lo, hi = int(np.nanargmin(v)), int(np.nanargmax(v))
        a, b = d.iloc[hi], d.iloc[lo]
        if v[lo] == v[hi]:
            out.append(f"{head}{name} is {format_interval(*_triple(a, metric), kind)} in every layer.")
            continue
        out.append(f"{head}{name} ranges from {format_interval(*_triple(b, metric), kind)} ({b['layer']}) to "
                   f"{format_interval(*_triple(a, metric), kind)} ({a['layer']}); "
                   + _verdict(a, b, metric, word, str(a["layer"]), str(b["layer"]), d) + ".")
    return out


def _run_comparison(base: pd.DataFrame, other: pd.DataFrame, base_run, run) -> List[str]:
    """Per metric, the layers of ``run`` against the same layers of ``base_run``."""
    common = [l for l in other["layer"] if l in set(base["layer"])]
    if not common:
        return [f"{run} vs {base_run}: no layer names in common, so no layer-by-layer comparison."]
    b, o = base.drop_duplicates("layer").set_index("layer"), other.drop_duplicates("layer").set_index("layer")
    both = pd.concat([base, other])
    out = []
    for metric, name, kind, word in _METRICS:
        if len(common) == 1:
            layer = common[0]
            out.append(f"{run} vs {base_run}, {layer}: {name} "
                       + _compare(o.loc[layer], b.loc[layer], metric, kind, word, str(run), str(base_run),
                                  both) + ".")
            continue
        seps = {l: separation(_triple(o.loc[l], metric), _triple(b.loc[l], metric)) for l in common}
        up = [l for l, s in seps.items() if s == 1]
        down = [l for l, s in seps.items() if s == -1]
        parts = []
        if up:
            parts.append(f"{word} in {run} in {len(up)} layer{'s' if len(up) != 1 else ''} ({_names(up)})")
        if down:
            parts.append(f"{word} in {base_run} in {len(down)} layer{'s' if len(down) != 1 else ''} "
                         f"({_names(down)})")
        rest = [l for l, s in seps.items() if not s]
        if rest:
            n = len(rest)
            which = ("the other " if up or down else "both " if n == 2 else "all ") + \
                (f"{n} layers" if n != 2 or up or down else "layers")
            which = "the other layer" if n == 1 else which
            why = " (no interval)" if all(seps[l] is None for l in rest) else ""
            parts.append(f"in {which} the data cannot tell them apart at {units_text(both, metric)}{why}")
        out.append(f"{run} vs {base_run}, {name}: " + "; ".join(parts) + ".")
    return out


def _names(layers: Sequence[str], n: int = 4) -> str:
    """The first ``n`` names joined by commas, then ``"and <m> more"``."""
    more = f" and {len(layers) - n} more" if len(layers) > n else ""
    return ", ".join(map(str, layers[:n])) + more


def _layer_sentence(row: pd.Series, run: Optional[Hashable]) -> str:
    """One layer's numbers with their intervals in a sentence (signed projection first, then the
    sign-blind share, relative_1, half-life, theory error, zero entries, non-finite values)."""
    name = _label(run, row["layer"])
    T, m = _f(row.get("T")), row.get("max_lag", math.nan)
    if np.isfinite(T) and int(T) == 1:
        text = f"{name}: T=1, so no gradient flows through time"
    else:
        text = (f"{name}: weight temporal projection "
                f"{format_interval(*_triple(row, 'weight_temporal_projection'), 'pct')}, temporal share "
                f"{format_interval(*_triple(row, 'temporal_share'), 'pct')} (sign-blind), relative_1 "
                f"{format_interval(*_triple(row, 'relative_1'))}, half-life "
                f"{format_interval(*_triple(row, 'half_life'), 'steps', m)} steps")
        if np.isfinite(_f(row.get("theory_error"))):
            text += f", theory error {format_interval(*_triple(row, 'theory_error'), 'pct')}"
        proj = _triple(row, "weight_temporal_projection")
        if np.isfinite(proj[2]) and proj[2] < 0:
            text += "; the temporal part shrinks the weight update"
        zero = _f(row.get("temporal_zero_fraction"))
        if np.isfinite(zero):
            text += f"; {format_percent(zero)} of temporal entries exactly zero"
    nf = _f(row.get("nonfinite", 0))
    if np.isfinite(nf) and nf > 0:
        text += f"; {int(nf)} non-finite gradient value{'s' if nf != 1 else ''} (NaN/Inf)"
    return text


def findings(summary: pd.DataFrame) -> List[str]:
    """The findings in plain sentences, from a :func:`~gradflow.report.summarize` table.

    In order: per run an overview (layers, T, samples) and its layers compared on the weight temporal
    projection and the temporal share; for comparisons, each run against the first, metric by
    metric; a warning when gradients contained NaN/Inf; then one sentence per layer, e.g.
    ``"sn1: weight temporal projection 12% [9%, 15%], temporal share 33% [31%, 35%] (sign-blind),
    relative_1 0.46 [0.44, 0.49], half-life 0.93 [0.88, 0.99] steps"`` (prefixed with the run name
    in comparisons).
    """
    if summary is None or summary.empty:
        return ["No layer was recorded, so there is nothing to report."]
    s = summary.copy()
    for c in ("neuron", "T", "layer_index", "max_lag", "nonfinite", "steps", "samples", "resampled") + \
            tuple(m for m, *_ in _METRICS):
        if c not in s.columns:
            s[c] = math.nan
    runs = ordered_runs(s)
    out: List[str] = []
    for run in runs:
        out += _overview(select_run(s, run), run)
    for run in runs[1:]:
        out += _run_comparison(select_run(s, runs[0]), select_run(s, run), runs[0], run)
    nf = as_float(s["nonfinite"])
    bad = np.isfinite(nf) & (nf > 0)
    if bad.any():
        names = [_label(r, l) for r, l in zip(s[RUN] if RUN in s.columns else [None] * len(s), s["layer"])]
        listed = [n for n, b in zip(names, bad) if b]
        out.append(f"Warning: {int(nf[bad].sum())} non-finite gradient values (NaN/Inf) in "
                   f"{len(listed)} layer{'s' if len(listed) != 1 else ''} ({_names(listed, 5)}); "
                   "they are left out of the norms, shares and figures.")
    for run in runs:
        for _, row in select_run(s, run).iterrows():
            out.append(_layer_sentence(row, run if RUN in s.columns and len(runs) > 1 else None))
    return out


def statistics_note(summary: pd.DataFrame, settings: Optional[Mapping] = None) -> str:
    """What the brackets mean: how many samples, which interval, and how differences are stated.

    >>> s = pd.DataFrame({"layer": ["sn1"], "samples": [1024], "steps": [4], "resampled": ["samples"]})
    >>> statistics_note(s).split(". ")[0]
    'Every per-layer number is computed from all recorded samples together (1024 samples in 4 backward passes)'
    """
    st = dict(settings or {})
    level, n_res, seed = st.get("level", 0.95), st.get("n_resamples", 1000), st.get("seed", 0)
    if summary is None or summary.empty:
        return "No layer was recorded."
    by_samples = "resampled" in summary.columns and (summary["resampled"] == "samples").all()
    counts = []
    for run in ordered_runs(summary):
        d = select_run(summary, run)
        text = f"{units_text(d)} in {units_text(d, 'weight_')}" if by_samples else units_text(d, "weight_")
        counts.append(f"{run}: {text}" if run is not None else text)
    over = "samples" if by_samples else "backward passes (per-sample sums were not recorded)"
    return (f"Every per-layer number is computed from all recorded samples together ({'; '.join(counts)}). "
            f"Brackets are {100 * level:.0f}% percentile bootstrap intervals over {over}, {n_res} resamples, "
            f"seed {seed}. The weight temporal projection's interval resamples backward passes, because "
            "per-sample parameter gradients are not kept; with a single pass it has no interval, and neither "
            "has any number resting on a single unit. A difference between two layers or runs is stated only "
            "where their intervals do not overlap. The temporal share is sign-blind (a ratio of norms): the "
            "weight temporal projection says whether the temporal part adds to the update or shrinks it.")


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
        x = _f(v)
        return "n/a" if math.isnan(x) else (str(int(x)) if math.isfinite(x) else "inf")
    m = row.get("max_lag", math.nan)
    if ci:
        return format_interval(*_triple(row, col), kind, m)
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
