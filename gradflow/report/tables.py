"""Tables as CSV, Markdown and LaTeX, without optional packages.

pandas' ``to_markdown`` needs ``tabulate`` and its ``to_latex`` needs ``jinja2``; neither is a gradflow
dependency, so the two small formatters here do the job. Both escape every cell and header:

* Markdown (GitHub tables): ``\\ ` * _ [ ] < > |`` get a backslash, line breaks become spaces.
* LaTeX (booktabs: ``\\toprule``, ``\\midrule``, ``\\bottomrule``; needs ``\\usepackage{booktabs}``):
  ``& % $ # _ { }`` get a backslash, ``\\ ~ ^ < > |`` become text commands.

Missing values print as ``n/a`` (Markdown) or ``--`` (LaTeX), infinities as ``inf`` / ``$\\infty$``,
floats with four significant digits.

>>> import pandas as pd
>>> print(to_markdown(pd.DataFrame({"layer": ["conv_1"], "share": [0.25]})))
| layer | share |
| :--- | ---: |
| conv\\_1 | 0.25 |
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from ._common import RUN, as_float, ordered_runs, select_run

__all__ = [
    "escape_markdown",
    "escape_latex",
    "to_markdown",
    "to_latex",
    "display_summary",
    "compare_table",
    "write_tables",
]

_MD_SPECIAL = set("\\`*_[]<>|")
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_NUMERIC_TEXT = re.compile(r"^(n/a|--|[<>]?\s?[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?|[-+]?inf)$")


def escape_markdown(text: object) -> str:
    """``text`` safe inside a Markdown table cell.

    >>> escape_markdown("a|b_c *d* <e>")
    'a\\\\|b\\\\_c \\\\*d\\\\* \\\\<e\\\\>'
    """
    s = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in s)


def escape_latex(text: object) -> str:
    """``text`` safe in LaTeX text mode.

    >>> print(escape_latex("layer_1 & 50% #2 {x} ~ ^ \\\\"))
    layer\\_1 \\& 50\\% \\#2 \\{x\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}
    """
    s = " ".join(str(text).splitlines())
    return "".join(_TEX_SPECIAL.get(c, c) for c in s)


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def _cell(v: object, target: str, floatfmt: str) -> str:
    # Numbers are formatted here (never escaped); everything else is escaped for the target.
    if _is_missing(v):
        return "n/a" if target == "md" else "--"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            if target == "tex":
                return r"$\infty$" if v > 0 else r"$-\infty$"
            return "inf" if v > 0 else "-inf"
        return format(float(v), floatfmt)
    return escape_markdown(v) if target == "md" else escape_latex(v)


def _right_aligned(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    values = [str(v).strip() for v in col if not _is_missing(v)]
    return bool(values) and all(_NUMERIC_TEXT.match(v) for v in values)


def to_markdown(df: pd.DataFrame, *, floatfmt: str = ".4g") -> str:
    """``df`` (without its index) as a GitHub-flavoured Markdown table; numbers right-aligned.

    Columns of numbers, and text columns that only hold numbers (``'4.0'``, ``'> 5'``, ``'n/a'``), are
    right-aligned; others left-aligned.
    """
    header = "| " + " | ".join(escape_markdown(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---:" if _right_aligned(df[c]) else ":---" for c in df.columns) + " |"
    lines = [header, rule]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v, "md", floatfmt) for v in row) + " |")
    return "\n".join(lines)


def to_latex(
    df: pd.DataFrame,
    *,
    caption: Optional[str] = None,
    label: Optional[str] = None,
    floatfmt: str = ".4g",
) -> str:
    """``df`` (without its index) as a booktabs ``tabular``; inside a ``table`` float when captioned.

    Numeric columns are ``r``, others ``l``. ``caption`` is escaped; ``label`` keeps only the characters
    LaTeX labels allow (letters, digits, ``:-_.``).

    >>> import pandas as pd
    >>> print(to_latex(pd.DataFrame({"a_b": [1.5]})))
    % Requires \\usepackage{booktabs}.
    \\begin{tabular}{r}
    \\toprule
    a\\_b \\\\
    \\midrule
    1.5 \\\\
    \\bottomrule
    \\end{tabular}
    """
    spec = "".join("r" if _right_aligned(df[c]) else "l" for c in df.columns) or "l"
    body = [r"\begin{tabular}{" + spec + "}", r"\toprule",
            " & ".join(escape_latex(c) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False, name=None):
        body.append(" & ".join(_cell(v, "tex", floatfmt) for v in row) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}"]
    lines = [r"% Requires \usepackage{booktabs}."]
    if caption is None and label is None:
        return "\n".join(lines + body)
    lines += [r"\begin{table}[htbp]", r"\centering"]
    if caption is not None:
        lines.append(r"\caption{" + escape_latex(caption) + "}")
    if label is not None:
        lines.append(r"\label{" + re.sub(r"[^A-Za-z0-9:._-]", "-", label) + "}")
    return "\n".join(lines + body + [r"\end{table}"])


# ---------------------------------------------------------------------------------- display versions

_DISPLAY = (
    # (summary column, heading, kind)
    (RUN, "Run", "text"),
    ("layer", "Layer", "text"),
    ("neuron", "Neuron", "neuron"),
    ("T", "T", "int"),
    ("firing_rate", "Firing rate (%)", "pct"),
    ("window_fraction", "Window fraction (%)", "pct"),
    ("temporal_share", "Temporal share (%)", "pct"),
    ("weight_temporal_share", "Weight temporal share (%)", "pct"),
    ("half_life", "Half-life (steps)", "steps"),
    ("predicted_half_life", "Predicted half-life (steps)", "steps"),
    ("theory_error", "Theory error (median, %)", "pct"),
    ("temporal_zero_fraction", "Zero temporal entries (%)", "pct"),
    ("nonfinite", "Non-finite", "int"),
)


def _fmt_display(v: object, kind: str, max_lag: object = None) -> str:
    if kind in ("text", "neuron"):
        if _is_missing(v):
            return "n/a"
        return str(v).upper() if kind == "neuron" else str(v)
    x = as_float([v])[0]
    if math.isnan(x):
        return "n/a"
    if kind == "int":
        return str(int(x)) if math.isfinite(x) else ("inf" if x > 0 else "-inf")
    if kind == "pct":
        return f"{100 * x:.1f}" if math.isfinite(x) else "n/a"
    # steps: an infinite half-life means "beyond the longest lag measured"
    if math.isinf(x):
        m = as_float([max_lag])[0]
        return f"> {int(m)}" if math.isfinite(m) else "inf"
    return f"{x:.2f}"


def display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The :func:`~gradflow.report.summarize` table as strings with readable headings.

    Shares become percentages with one decimal, half-lives two decimals (``'> 5'`` when the profile
    never fell to 0.5 within the 5 lags measured), missing values ``'n/a'``. Used for the Markdown,
    LaTeX and HTML tables and the terminal.
    """
    out = {}
    max_lag = summary["max_lag"] if "max_lag" in summary.columns else pd.Series([None] * len(summary))
    for col, heading, kind in _DISPLAY:
        if col not in summary.columns:
            continue
        if col == RUN and summary[RUN].nunique(dropna=False) < 2:
            continue
        if kind == "steps":
            out[heading] = [_fmt_display(v, kind, m) for v, m in zip(summary[col], max_lag)]
        else:
            out[heading] = [_fmt_display(v, kind) for v in summary[col]]
    return pd.DataFrame(out)


def compare_table(summary: pd.DataFrame) -> Optional[pd.DataFrame]:
    """Runs side by side, one row per layer: temporal share and half-life of each run.

    Returns None when the summary holds fewer than two runs. Layers are matched by name, in the order
    of ``layer_index`` of the first run that has them.
    """
    runs = ordered_runs(summary)
    if len(runs) < 2 or runs == [None]:
        return None
    layers: List[str] = []
    for run in runs:
        for layer in select_run(summary, run).sort_values("layer_index")["layer"]:
            if layer not in layers:
                layers.append(layer)
    table = {"Layer": layers}
    for col, heading, kind in (("temporal_share", "Temporal share", "pct"),
                               ("half_life", "Half-life", "steps")):
        unit = "%" if kind == "pct" else "steps"
        for run in runs:
            d = select_run(summary, run).drop_duplicates("layer").set_index("layer")
            values = []
            for layer in layers:
                if layer in d.index and col in d.columns:
                    values.append(_fmt_display(d.at[layer, col], kind,
                                               d.at[layer, "max_lag"] if "max_lag" in d.columns else None))
                else:
                    values.append("n/a")
            table[f"{heading} {run} ({unit})"] = values
    return pd.DataFrame(table)


_CAPTIONS = {
    "summary": "Gradient flow per layer (gradflow).",
    "theory": "Measured vs predicted relative gradient per lag (gradflow).",
    "comparison": "Temporal share and half-life per layer, runs side by side (gradflow).",
}


def write_tables(
    tables: Dict[str, pd.DataFrame],
    out_dir: Union[str, os.PathLike],
    *,
    formatted: Sequence[str] = ("summary", "theory"),
) -> List[Path]:
    """Write ``<out_dir>/<name>.csv`` for every table, plus ``tables/<name>.md`` and ``.tex`` for ``formatted``.

    CSVs keep every column and row as recorded (no index; NaN as an empty field, Inf as ``inf``).
    The ``summary`` table is formatted with :func:`display_summary` for Markdown and LaTeX; when it holds
    two or more runs, ``tables/comparison.md`` / ``.tex`` (:func:`compare_table`) are written too.
    Files are written in place (the report writer calls this inside its temporary directory).
    Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for name, df in tables.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise ValueError(f"table name {name!r} is not a safe file name")
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    pretty: Dict[str, pd.DataFrame] = {}
    for name in formatted:
        if name not in tables:
            continue
        if name == "summary":
            pretty["summary"] = display_summary(tables[name])
            cmp = compare_table(tables[name])
            if cmp is not None:
                pretty["comparison"] = cmp
        else:
            pretty[name] = tables[name]
    if pretty:
        (out / "tables").mkdir(exist_ok=True)
    for name, df in pretty.items():
        md = out / "tables" / f"{name}.md"
        md.write_text(to_markdown(df) + "\n", encoding="utf-8")
        tex = out / "tables" / f"{name}.tex"
        tex.write_text(to_latex(df, caption=_CAPTIONS.get(name, name), label=f"tab:gradflow-{name}") + "\n",
                       encoding="utf-8")
        written += [md, tex]
    return written
