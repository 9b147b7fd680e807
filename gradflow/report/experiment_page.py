"""Helpers of the committed experiment reports (``gradflow experiment``): tables over seeds, figures.

The experiments (:mod:`gradflow.lab.experiments`) train grids of small networks over several seeds and
write ``summary.md``, CSVs and ``figures/*.png``; the words of each ``report.md`` are written by a
person. These helpers give them the report toolkit's look: neuron colours from :mod:`gradflow.schema`,
Markdown through :func:`gradflow.report.tables.to_markdown`, reproducible PNGs.

* :func:`mean_std_table`: ``<value>_mean`` / ``<value>_std`` columns as one ``mean ± std`` text column.
* :func:`write_summary_md`: that table under a title, as ``summary.md``.
* :func:`plot_mean_std`: mean ± std over seeds against a setting, one line per neuron kind.
* :func:`save_figure`: a Figure as ``figures/<name>.png`` without a software stamp.

>>> import pandas as pd
>>> s = pd.DataFrame({"T": [1, 2], "neuron": "lif", "test_accuracy_mean": [0.5, 0.75],
...                   "test_accuracy_std": [0.01, 0.02], "seeds": 3})
>>> mean_std_table(s)["test_accuracy"].tolist()
['0.500 ± 0.010', '0.750 ± 0.020']
>>> ax = plot_mean_std(s, "T", chance=0.125)
>>> [t.get_text() for t in ax.get_legend().get_texts()]
['chance', 'LIF']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .style import PNG_DPI, axes, neuron_color
from .tables import to_markdown

__all__ = ["mean_std_table", "write_summary_md", "plot_mean_std", "save_figure"]


def mean_std_table(summary: pd.DataFrame, value: Optional[str] = None, digits: int = 3) -> pd.DataFrame:
    """``summary`` with ``<value>_mean`` and ``<value>_std`` replaced by one ``<value>`` column of text
    ``'mean ± std'`` (``digits`` decimals), in the place of the mean column.

    ``value`` defaults to the first ``<name>_mean`` column that has a ``<name>_std`` partner.
    """
    if value is None:
        value = next((c[:-5] for c in summary.columns if c.endswith("_mean") and f"{c[:-5]}_std" in summary.columns),
                     None)
        if value is None:
            return summary.copy()
    mean, std = summary[f"{value}_mean"].to_numpy(float), summary[f"{value}_std"].to_numpy(float)
    text = [f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}" for m, s in zip(mean, std)]
    out = summary.copy()
    out.insert(list(out.columns).index(f"{value}_mean"), value, text)
    return out.drop(columns=[f"{value}_mean", f"{value}_std"])


def write_summary_md(summary: pd.DataFrame, path: Union[str, os.PathLike], title: str,
                     value: Optional[str] = None) -> Path:
    """Write ``# title`` and :func:`mean_std_table` of ``summary`` as Markdown to ``path``; returns it."""
    path = Path(path)
    text = f"# {title}\n\n{to_markdown(mean_std_table(summary, value), floatfmt='.3f')}\n"
    path.write_text(text, encoding="utf-8")
    return path


def plot_mean_std(
    summary: pd.DataFrame,
    x: str,
    ax: Optional[Axes] = None,
    *,
    value: str = "test_accuracy",
    by: str = "neuron",
    chance: Optional[float] = None,
    logx: bool = False,
    xlabel: Optional[str] = None,
    ylabel: Optional[str] = None,
    title: Optional[str] = None,
) -> Axes:
    """Mean ± std over seeds of ``value`` against the column ``x``, one line per ``by`` (neuron kind).

    ``summary`` has ``<value>_mean`` and ``<value>_std`` columns (e.g. from the experiments'
    ``summarize_runs``). Lines take their neuron kind's colour; ``chance`` adds a dotted chance level.
    Rows with a non-finite mean are left out.
    """
    ax = axes(ax)
    groups = summary.groupby(by, sort=False) if by in summary.columns else [(None, summary)]
    for key, d in groups:
        d = d.sort_values(x)
        m, s = d[f"{value}_mean"].to_numpy(float), d[f"{value}_std"].to_numpy(float)
        ok = np.isfinite(m)
        ax.errorbar(d[x].to_numpy()[ok], m[ok], yerr=np.where(np.isfinite(s), s, 0.0)[ok], marker="o", capsize=3,
                    color=neuron_color(key), label=str(key).upper() if key is not None else value)
    if chance is not None:
        ax.axhline(chance, color="0.4", ls=":", label="chance")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel if xlabel is not None else x)
    ax.set_ylabel(ylabel if ylabel is not None else f"{value.replace('_', ' ')} (mean ± std over seeds)")
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def save_figure(fig: Figure, out_dir: Union[str, os.PathLike], name: str, dpi: int = PNG_DPI) -> Path:
    """Save ``fig`` as ``out_dir/figures/<name>.png`` (tight bounding box, no software stamp); returns the path."""
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path
