"""The summary in words: findings, why each layer decays, and what the brackets mean.

Numbers come with their 95% interval in brackets (``12% [9%, 15%]``, :mod:`gradflow.report.display`).
A sentence that compares two layers or two runs states a difference only when the two intervals do
not overlap (:func:`~gradflow.report.display.separation`); otherwise it says that the data cannot
tell them apart at the number of samples recorded. Findings lead with the weight temporal projection
(signed: the share of the weight update the temporal gradient carries); the temporal share follows,
marked sign-blind.

>>> import pandas as pd
>>> s = pd.DataFrame({"layer": ["sn1"], "layer_index": [0], "neuron": ["lif"], "T": [4], "samples": [512],
...                   "steps": [2], "resampled": ["samples"]})
>>> findings(s)[0]
'1 LIF layer at T=4, 512 samples recorded.'
"""

from __future__ import annotations

import math
from typing import Hashable, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from ..schema import RUN
from ._common import as_float, ordered_runs, select_run
from .display import format_interval, format_percent, interval_of, number, separation, units_text

__all__ = ["findings", "decay_sentence", "statistics_note"]


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
    sep = separation(interval_of(a_row, metric), interval_of(b_row, metric))
    if sep:
        return f"{word} in {a_name if sep > 0 else b_name} (the intervals do not overlap)"
    why = "" if sep == 0 else " (no interval)"
    return f"the data cannot tell them apart at {units_text(rows, metric)}{why}"


def _compare(a_row, b_row, metric: str, kind: str, word: str, a_name: str, b_name: str,
             rows: pd.DataFrame) -> str:
    """``'a [..] vs b [..]: <verdict>'``."""
    return (f"{format_interval(*interval_of(a_row, metric), kind, a_row.get('max_lag', math.nan))} vs "
            f"{format_interval(*interval_of(b_row, metric), kind, b_row.get('max_lag', math.nan))}: "
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
            out.append(f"{head}{name} is {format_interval(*interval_of(a, metric), kind)} in every layer.")
            continue
        out.append(f"{head}{name} ranges from {format_interval(*interval_of(b, metric), kind)} ({b['layer']}) to "
                   f"{format_interval(*interval_of(a, metric), kind)} ({a['layer']}); "
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
        seps = {l: separation(interval_of(o.loc[l], metric), interval_of(b.loc[l], metric)) for l in common}
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
    T, m = number(row.get("T")), row.get("max_lag", math.nan)
    if np.isfinite(T) and int(T) == 1:
        text = f"{name}: T=1, so no gradient flows through time"
    else:
        text = (f"{name}: weight temporal projection "
                f"{format_interval(*interval_of(row, 'weight_temporal_projection'), 'pct')}, temporal share "
                f"{format_interval(*interval_of(row, 'temporal_share'), 'pct')} (sign-blind), relative_1 "
                f"{format_interval(*interval_of(row, 'relative_1'))}, half-life "
                f"{format_interval(*interval_of(row, 'half_life'), 'steps', m)} steps")
        if np.isfinite(number(row.get("theory_error"))):
            text += f", theory error {format_interval(*interval_of(row, 'theory_error'), 'pct')}"
        proj = interval_of(row, "weight_temporal_projection")
        if np.isfinite(proj[2]) and proj[2] < 0:
            text += "; the temporal part shrinks the weight update"
        zero = number(row.get("temporal_zero_fraction"))
        if np.isfinite(zero):
            text += f"; {format_percent(zero)} of temporal entries exactly zero"
    nf = number(row.get("nonfinite", 0))
    if np.isfinite(nf) and nf > 0:
        text += f"; {int(nf)} non-finite gradient value{'s' if nf != 1 else ''} (NaN/Inf)"
    return text


def _layer_info(layers: Optional[pd.DataFrame], run, layer: str) -> Mapping:
    """The ``layers`` table row of one (run,) layer as a dict (empty when unknown)."""
    if layers is None or layers.empty or "layer" not in layers.columns:
        return {}
    d = layers[layers["layer"] == layer]
    if run is not None and RUN in d.columns:
        d = d[d[RUN] == run]
    return d.iloc[0].to_dict() if len(d) else {}


def _in_window_factor(neuron: str, info: Mapping) -> Optional[str]:
    """What the neuron passes back from inside the window, when it is exact: LIF/PLIF nothing (rectangle
    surrogate with alpha = theta, reset not detached), CLIF a negative factor; else None."""
    surrogate, alpha, theta = info.get("surrogate"), number(info.get("alpha")), number(info.get("v_threshold"))
    if surrogate != "rectangle" or not (np.isfinite(alpha) and np.isfinite(theta)) or not math.isclose(alpha, theta) \
            or bool(info.get("detach_reset", False)) is True:
        return None
    if neuron in ("lif", "plif") and str(info.get("reset", "soft")) == "soft":
        return f"where {neuron.upper()} passes nothing back"
    if neuron == "clif":
        return "where CLIF's factor is negative (-sigmoid(m)/theta), not 0"
    return None


def decay_sentence(row, info: Optional[Mapping] = None, run: Optional[Hashable] = None) -> Optional[str]:
    """Why a layer's gradient decays, in words, from the window model's numbers (docs/theory.md §6).

    ``row``: a summary row with ``one_step_survival``, ``in_window_before``, ``window_occupancy`` (with
    intervals) and ``tau``; ``info``: its ``layers`` row (surrogate, alpha, v_threshold, reset,
    detach_reset), which decides what the neuron passes back from inside the window. Uses
    ``relative_1 = gamma * sqrt(one_step_survival)`` (exact, docs/theory.md Eq. 33). None when the
    numbers are missing.

    >>> row = {"layer": "sn1", "neuron": "lif", "tau": 2.0, "relative_1": 0.095, "one_step_survival": 0.036,
    ...        "in_window_before": 0.96, "window_occupancy": 0.26}
    >>> print(decay_sentence(row, {"surrogate": "rectangle", "alpha": 1.0, "v_threshold": 1.0}))
    sn1: 96% of the spatial gradient sits on neurons that were inside the surrogate window one step earlier, where LIF passes nothing back, while 26% of the population is in the window; the mean squared one-step factor on that gradient is 0.036, hence relative_1 = gamma * sqrt(0.036) = 0.50 * 0.19 = 0.095 (measured 0.095), not the 0.50 * sqrt(1 - 0.26) = 0.43 that the window fraction suggests.
    """
    S, W, O, tau = (number(row.get(c)) for c in ("one_step_survival", "in_window_before", "window_occupancy", "tau"))
    if not (np.isfinite(S) and np.isfinite(W) and np.isfinite(tau) and tau > 0):
        return None
    info = info or {}
    neuron = str(row.get("neuron") or info.get("neuron") or "").lower()
    gamma = 1.0 - 1.0 / tau
    where = _in_window_factor(neuron, info)
    text = (f"{_label(run, row['layer'])}: {format_interval(*interval_of(row, 'in_window_before'), 'pct')} of the spatial "
            "gradient sits on neurons that were inside the surrogate window one step earlier"
            + (f", {where}" if where else ""))
    if np.isfinite(O):
        text += f", while {format_percent(O)} of the population is in the window"
    text += (f"; the mean squared one-step factor on that gradient is "
             f"{format_interval(*interval_of(row, 'one_step_survival'), 'ratio3')}, hence relative_1 = gamma * "
             f"sqrt({S:.3g}) = {gamma:.2f} * {math.sqrt(S):.2g} = {gamma * math.sqrt(S):.2g} (measured "
             f"{format_interval(*interval_of(row, 'relative_1'), 'ratio3')})")
    if where and neuron in ("lif", "plif") and np.isfinite(O):
        text += (f", not the {gamma:.2f} * sqrt(1 - {O:.2g}) = {gamma * math.sqrt(1 - O):.2g} that the window "
                 "fraction suggests")
    return text + "."


def findings(summary: pd.DataFrame, layers: Optional[pd.DataFrame] = None) -> List[str]:
    """The findings in plain sentences, from a :func:`~gradflow.report.summarize` table.

    In order: per run an overview (layers, T, samples) and its layers compared on the weight temporal
    projection and the temporal share; for comparisons, each run against the first, metric by
    metric; a warning when gradients contained NaN/Inf; then one sentence per layer, e.g.
    ``"sn1: weight temporal projection 12% [9%, 15%], temporal share 33% [31%, 35%] (sign-blind),
    relative_1 0.46 [0.44, 0.49], half-life 0.93 [0.88, 0.99] steps"`` (prefixed with the run name
    in comparisons); then, where the window model's numbers are there, why each layer decays
    (:func:`decay_sentence`; ``layers``: the recorder's ``layers`` table, for the surrogate and reset).
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
    for run in runs:
        for _, row in select_run(s, run).iterrows():
            label = run if RUN in s.columns and len(runs) > 1 else None
            sentence = decay_sentence(row, _layer_info(layers, run if RUN in s.columns else None, row["layer"]), label)
            if sentence:
                out.append(sentence)
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
