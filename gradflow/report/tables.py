"""Tables as CSV, Markdown and LaTeX, without optional packages: the one table formatter of gradflow.

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
from typing import List, Mapping, Optional, Union

import numpy as np
import pandas as pd

__all__ = [
    "escape_markdown",
    "escape_latex",
    "format_cell",
    "right_aligned",
    "to_markdown",
    "to_latex",
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
_INTERVAL = re.compile(r"\s*\[[^\]]*\]$")          # "12.0 [9.1, 15.2]": a number with its interval
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
    """Whether a cell is missing: None, pandas NA/NaT or a float NaN."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


_MISSING = {"md": "n/a", "tex": "--", "html": "n/a"}
_INF = {"md": ("inf", "-inf"), "tex": (r"$\infty$", r"$-\infty$"), "html": ("∞", "-∞")}


def format_cell(v: object, target: str = "md", floatfmt: str = ".4g") -> str:
    """One table cell as text for ``target`` ``"md"`` (Markdown), ``"tex"`` (LaTeX) or ``"html"``.

    Numbers are formatted (``floatfmt`` for floats; never escaped), missing values become ``n/a``
    (LaTeX ``--``), infinities ``inf`` / ``$\\infty$`` / ``∞``; other values are escaped for
    Markdown or LaTeX (HTML cells are escaped by the caller, :func:`gradflow.report.page.html_table`).

    >>> print(" ".join(format_cell(v, "tex") for v in (float("inf"), None, 0.123456, "a_b")))
    $\\infty$ -- 0.1235 a\\_b
    """
    if _is_missing(v):
        return _MISSING[target]
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return _INF[target][0 if v > 0 else 1]
        return format(float(v), floatfmt)
    if target == "md":
        return escape_markdown(v)
    return escape_latex(v) if target == "tex" else " ".join(str(v).splitlines())


def right_aligned(col: pd.Series) -> bool:
    """Whether a column holds numbers (or only numbers as text, ``'4.0'``, ``'> 5'``, ``'n/a'``)."""
    if pd.api.types.is_bool_dtype(col):
        return False
    if pd.api.types.is_numeric_dtype(col):
        return True
    values = [_INTERVAL.sub("", str(v).strip()) for v in col if not _is_missing(v)]
    return bool(values) and all(_NUMERIC_TEXT.match(v) for v in values)


def to_markdown(df: pd.DataFrame, *, floatfmt: str = ".4g") -> str:
    """``df`` (without its index) as a GitHub-flavoured Markdown table; numbers right-aligned.

    Columns of numbers, and text columns that only hold numbers (``'4.0'``, ``'> 5'``, ``'n/a'``), are
    right-aligned; others left-aligned.
    """
    header = "| " + " | ".join(escape_markdown(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---:" if right_aligned(df[c]) else ":---" for c in df.columns) + " |"
    lines = [header, rule]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(format_cell(v, "md", floatfmt) for v in row) + " |")
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
    spec = "".join("r" if right_aligned(df[c]) else "l" for c in df.columns) or "l"
    body = [r"\begin{tabular}{" + spec + "}", r"\toprule",
            " & ".join(escape_latex(c) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False, name=None):
        body.append(" & ".join(format_cell(v, "tex", floatfmt) for v in row) + r" \\")
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


# ------------------------------------------------------------------------------------------- files

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def write_tables(
    tables: Mapping[str, pd.DataFrame],
    out_dir: Union[str, os.PathLike],
    *,
    formatted: Optional[Mapping[str, pd.DataFrame]] = None,
    captions: Optional[Mapping[str, str]] = None,
) -> List[Path]:
    """Write ``<out_dir>/<name>.csv`` for every table, and ``tables/<name>.md`` / ``.tex`` for ``formatted``.

    CSVs keep every column and row as given (no index; NaN as an empty field, Inf as ``inf``).
    ``formatted`` maps names to display versions (readable headings, numbers as text), written with
    :func:`to_markdown` and :func:`to_latex` (caption ``captions[name]``, label ``tab:gradflow-<name>``).
    Files are written in place (pages call this inside their temporary directory). Returns the paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for name, df in tables.items():
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"table name {name!r} is not a safe file name")
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    if formatted:
        (out / "tables").mkdir(exist_ok=True)
    for name, df in (formatted or {}).items():
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(f"table name {name!r} is not a safe file name")
        md = out / "tables" / f"{name}.md"
        md.write_text(to_markdown(df) + "\n", encoding="utf-8")
        tex = out / "tables" / f"{name}.tex"
        caption = (captions or {}).get(name, name)
        tex.write_text(to_latex(df, caption=caption, label=f"tab:gradflow-{name}") + "\n", encoding="utf-8")
        written += [md, tex]
    return written
