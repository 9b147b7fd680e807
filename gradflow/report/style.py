"""The look every gradflow figure shares: colours, matplotlib settings and the grey notes.

* **Colour is the neuron kind** everywhere (:data:`NEURON_COLORS`, Okabe-Ito, from
  :mod:`gradflow.schema`); several layers or several tau of one kind are shades of its colour
  (:func:`shade`: light for the first, dark for the last); several runs of one kind differ by marker
  and hatch (:func:`run_styles`).
* **Settings**: :data:`RC` for report figures, :data:`LECTURE_RC` (larger type) for the theory page;
  figures are rendered at :data:`PNG_DPI` / :data:`LECTURE_DPI` by :mod:`gradflow.report.page`.
* **Notes**: a plot never draws a non-finite value and never raises on one; it says in a grey note
  (:func:`add_note`) how many it left out, and an axes with nothing to draw says so in its middle
  (:func:`nothing`).
* **Axes**: plot functions are ``f(df, ax=None, ...) -> ax``; with ``ax=None`` they draw on a new
  headless :class:`matplotlib.figure.Figure` (:func:`axes`), so nothing here imports pyplot.

>>> neuron_color("CLIF") == NEURON_COLORS["clif"], neuron_color("unknown") == OTHER_COLOR
(True, True)
>>> ax = axes(None)
>>> nothing(ax); [t.get_text() for t in ax.texts]
['no finite data to draw']
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..schema import NEURON_COLORS, OTHER_COLOR, neuron_color
from ._common import as_float, neuron_of, ordered_runs

__all__ = [
    "NEURON_COLORS",
    "OTHER_COLOR",
    "neuron_color",
    "RC",
    "LECTURE_RC",
    "PNG_DPI",
    "LECTURE_DPI",
    "NOTE_COLOR",
    "axes",
    "shade",
    "add_note",
    "add_figure_note",
    "nothing",
    "left_out",
    "count_nonfinite",
    "run_styles",
]

#: matplotlib settings of report figures (``matplotlib.rc_context(RC)`` while drawing and saving).
RC: Dict[str, object] = {
    "font.size": 11,
    "axes.titlesize": "large",
    "axes.labelsize": "medium",
    "xtick.labelsize": "small",
    "ytick.labelsize": "small",
    "legend.fontsize": "small",
    "figure.titlesize": "x-large",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "svg.hashsalt": "gradflow",    # reproducible SVG ids, so committed reports diff cleanly
    "hatch.linewidth": 0.6,
}

#: :data:`RC` with larger type, for figures shown on a projector (the theory page).
LECTURE_RC: Dict[str, object] = dict(RC, **{"font.size": 13, "xtick.labelsize": "medium",
                                             "ytick.labelsize": "medium"})

#: Resolution (dots per inch) of the PNGs of report figures and of lecture figures.
PNG_DPI = 110
LECTURE_DPI = 130

#: Grey of notes and empty-plot messages.
NOTE_COLOR = "0.35"

_RUN_MARKERS = ("o", "s", "^", "D", "v", "P")
_RUN_HATCHES = ("", "//", "..", "xx", "\\\\", "++")


def axes(ax: Optional[Axes]) -> Axes:
    """``ax``, or the one axes of a new headless :class:`~matplotlib.figure.Figure` when ``ax`` is None."""
    return ax if ax is not None else Figure().subplots()


def shade(color: str, depth: float) -> Tuple[float, float, float]:
    """``color`` as an RGB triple, lightened (``depth`` 0: a pale tint) or darkened (``depth`` 1).

    ``depth`` in [0, 1] orders a series (layers from first to last, tau from short to long):
    up to 0.5 the colour is mixed with white (35% .. 100% colour), beyond it is darkened
    (down to 55% brightness).

    >>> shade("#0072B2", 0.5) == mcolors.to_rgb("#0072B2")
    True
    """
    rgb = np.array(mcolors.to_rgb(color))
    depth = float(np.clip(depth, 0.0, 1.0))
    if depth <= 0.5:
        a = 0.35 + 1.3 * depth
        out = (1 - a) * np.ones(3) + a * rgb
    else:
        out = rgb * (1 - 0.9 * (depth - 0.5))
    return tuple(float(c) for c in np.clip(out, 0, 1))


def add_note(ax: Axes, text: str) -> None:
    """A small grey note in the lower right corner of ``ax`` (what was left out, and why)."""
    ax.text(0.99, 0.01, text, transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small",
            color=NOTE_COLOR, zorder=5,
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))


def add_figure_note(fig: Figure, text: str) -> None:
    """:func:`add_note` for a whole figure (its lower right corner)."""
    fig.text(0.995, 0.005, text, ha="right", va="bottom", fontsize="small", color=NOTE_COLOR)


def nothing(ax: Axes, text: str = "no finite data to draw") -> None:
    """Say in the middle of ``ax`` that there is nothing to draw."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="small",
            color=NOTE_COLOR)


def left_out(n_nonfinite: int, n_other: int = 0, other: str = "") -> Optional[str]:
    """The text of a note on values not drawn, or None when nothing was left out.

    >>> left_out(1, 2, "zeros (log axis)")
    'not drawn: 1 non-finite value, 2 zeros (log axis)'
    """
    parts = []
    if n_nonfinite:
        parts.append(f"{n_nonfinite} non-finite value{'s' if n_nonfinite != 1 else ''}")
    if n_other:
        parts.append(f"{n_other} {other}")
    return ("not drawn: " + ", ".join(parts)) if parts else None


def count_nonfinite(df: pd.DataFrame, columns: Sequence[str]) -> int:
    """How many entries of ``columns`` (those ``df`` has) are NaN, +-Inf or not numbers."""
    return int(sum((~np.isfinite(as_float(df[c]))).sum() for c in columns if c in df.columns))


def run_styles(df: pd.DataFrame) -> List[dict]:
    """One style per run of ``df``: ``run, neuron, color, marker, hatch, label``.

    The colour is the run's neuron kind; marker and hatch tell runs of one kind apart (no hatch
    when every run has its own colour). A table without a ``run`` column is one run, ``None``,
    labelled by its neuron kind.
    """
    styles = []
    for i, run in enumerate(ordered_runs(df)):
        neuron = neuron_of(df, run)
        styles.append({
            "run": run,
            "neuron": neuron,
            "color": neuron_color(neuron),
            "marker": _RUN_MARKERS[i % len(_RUN_MARKERS)],
            "hatch": _RUN_HATCHES[i % len(_RUN_HATCHES)],
            "label": str(run) if run is not None else (neuron.upper() if neuron else "run"),
        })
    colours = [s["color"] for s in styles]
    if len(set(colours)) == len(colours):   # distinct colours: no hatching needed
        for s in styles:
            s["hatch"] = ""
    return styles
