"""One page toolkit: figures rendered and embedded, tables, one stylesheet, JSON, atomic directories.

Every gradflow page (the analysis report, the theory page, the lecture demo) is built from these
pieces, so that they look alike and are written alike:

* :class:`FigureSpec` + :func:`render_figure`: draw a figure on a headless Agg canvas, save it as
  ``figures/<name>.png`` and ``.svg``, return the PNG bytes; :func:`figure_html` embeds them in the
  page as a base64 ``data:`` URI, so the page opens offline.
* :func:`html_table`: a DataFrame as an HTML table through pandas ``to_html``, cells formatted
  like the Markdown and LaTeX tables of :mod:`gradflow.report.tables` (numbers right-aligned).
* :data:`CSS` and :func:`html_page`: one stylesheet and the page skeleton around a body.
* :func:`jsonable` / :func:`write_json`: strict JSON (numpy numbers as Python ones, NaN/Inf as
  ``null``, paths as text).
* :func:`report_directory`: :func:`gradflow.io.atomic.atomic_directory`, the all-or-nothing
  output directory every page is written into.

>>> import pandas as pd
>>> print(html_table(pd.DataFrame({"layer": ["sn1"], "share": [0.25]})).replace("\\n", ""))
<div class="scroll"><table class="data">  <thead>    <tr>      <th>layer</th>      <th>share</th>    </tr>  </thead>  <tbody>    <tr>      <td>sn1</td>      <td><span class="num">0.25</span></td>    </tr>  </tbody></table></div>
>>> jsonable({"loss": float("nan"), "n": np.int64(3)})
{'loss': None, 'n': 3}
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence, Tuple, Union

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_directory, check_target
from .style import PNG_DPI, RC
from .tables import format_cell, right_aligned

__all__ = [
    "FigureSpec",
    "render_figure",
    "data_uri",
    "figure_html",
    "html_table",
    "CSS",
    "html_page",
    "jsonable",
    "write_json",
    "report_directory",
    "check_output",
]


@dataclass
class FigureSpec:
    """One figure of a page.

    ``name``: file stem under ``figures/``; ``caption``: the text under it; ``size``: inches
    (width, height); ``draw(fig)``: fills the :class:`~matplotlib.figure.Figure` (its return value
    is ignored); ``grid``: the figure lays out many small axes itself with fixed margins (constrained
    layout costs seconds per save with dozens of axes), else constrained layout is used.
    """

    name: str
    caption: str
    size: Tuple[float, float]
    draw: Callable[[Figure], object]
    grid: bool = False


def render_figure(spec: FigureSpec, fig_dir: Optional[Path] = None, *, dpi: int = PNG_DPI,
                  rc: Optional[Mapping[str, object]] = None) -> bytes:
    """Draw ``spec`` headless (Agg) and return its PNG bytes; with ``fig_dir``, also save PNG and SVG.

    The figure is drawn under ``matplotlib.rc_context(rc)`` (default :data:`gradflow.report.style.RC`),
    saved as ``fig_dir/<name>.png`` (``dpi``) and ``fig_dir/<name>.svg`` without dates or software
    stamps, so a figure of the same data gives the same files. Constrained layout is computed once for
    the PNG and then frozen for the SVG. No pyplot: the figure is freed when the function returns.
    """
    with matplotlib.rc_context(dict(RC if rc is None else rc)), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onstrained.?[Ll]ayout.*")
        fig = Figure(figsize=spec.size, layout=None if spec.grid else "constrained")
        FigureCanvasAgg(fig)
        spec.draw(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        png = buf.getvalue()
        if fig_dir is not None:
            (fig_dir / f"{spec.name}.png").write_bytes(png)
            if not spec.grid:
                fig.set_layout_engine("none")
            fig.savefig(fig_dir / f"{spec.name}.svg", format="svg", metadata={"Date": None})
    return png


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for ``png``: an image the page carries inside itself."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_html(spec: FigureSpec, png: bytes, number: Optional[int] = None) -> str:
    """A ``<figure>`` with the embedded PNG and its numbered caption (``id="fig-<name>"``)."""
    e = html.escape
    label = f"<b>Figure {number}.</b> " if number is not None else ""
    return (f'<figure id="fig-{e(spec.name)}"><img src="{data_uri(png)}" alt="{e(spec.caption)}">'
            f"<figcaption>{label}{e(spec.caption)}</figcaption></figure>")


def html_table(df: pd.DataFrame, cls: str = "data", *, floatfmt: str = ".4g") -> str:
    """``df`` (without its index) as an HTML table through pandas ``to_html``, in a scrolling box.

    Cells are formatted as in the Markdown tables (:func:`gradflow.report.tables.format_cell`:
    ``floatfmt`` numbers, ``n/a`` for missing values, ``∞`` for infinities) and HTML-escaped; cells of
    numeric columns are wrapped in ``<span class="num">``, which the stylesheet right-aligns.
    ``cls`` is the table's CSS class (``data``, or ``info`` for wrapped text).
    """
    shown = pd.DataFrame({
        str(c): [_html_cell(v, right_aligned(df[c]), floatfmt) for v in df[c]] for c in df.columns
    }, columns=[str(c) for c in df.columns])
    table = shown.to_html(index=False, escape=False, border=0, classes=cls, justify="left")
    table = table.replace(f'<table class="dataframe {cls}">', f'<table class="{cls}">')
    table = table.replace('<tr style="text-align: left;">', "<tr>")
    return f'<div class="scroll">{table}</div>'


def _html_cell(v: object, numeric: bool, floatfmt: str) -> str:
    """One escaped HTML cell; numbers in a right-aligned ``<span class="num">``."""
    text = html.escape(format_cell(v, "html", floatfmt))
    return f'<span class="num">{text}</span>' if numeric else text


#: The one stylesheet of every gradflow page.
CSS = """
:root { --fg: #1d1d1f; --muted: #5f6368; --line: #d9d9de; --stripe: #f6f6f8; --warn: #fff4e5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 16px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.9rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 36px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .sub { color: var(--muted); margin: 0 0 12px; }
.note { color: var(--muted); font-size: 0.92rem; }
ul.findings li { margin: 3px 0; }
li.warn, p.warn { background: var(--warn); border-left: 4px solid #e8710a; padding: 4px 10px;
                  list-style: none; margin-left: -14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 6px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; text-align: left; }
th { background: #fafafa; border-bottom: 2px solid #bbb; white-space: normal;
     vertical-align: bottom; min-width: 4em; max-width: 9em; }
span.num { display: block; text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: var(--stripe); }
table.info td { white-space: normal; max-width: 46em; overflow-wrap: anywhere; }
table.info td:first-child { color: var(--muted); white-space: nowrap; }
figure { margin: 22px 0 30px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.92rem; margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); }
dl.defs dt { font-weight: 600; margin-top: 6px; }
dl.defs dd { margin: 0 0 0 18px; color: #333; }
code { font-size: 0.9em; background: #f3f3f5; padding: 0 .2em; border-radius: 3px; }
.key { display: flex; gap: 2rem; flex-wrap: wrap; margin: 12px 0; }
.key div { background: #f5f5f7; border-radius: 6px; padding: .6rem 1rem; }
.key b { font-size: 1.3rem; }
"""


def html_page(title: str, body: Sequence[str]) -> str:
    """A complete, self-contained HTML5 page: ``title`` (escaped), :data:`CSS`, then ``body`` as is.

    ``body`` holds HTML fragments; nothing is fetched from elsewhere (no scripts, links or external
    images), so the page opens offline.
    """
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
        *body, "</main>", "</body>", "</html>",
    ]) + "\n"


def jsonable(obj):
    """``obj`` ready for strict JSON: numpy scalars and arrays as Python numbers and lists, non-finite
    floats as ``None``, tuples and sets as lists, mapping keys and anything else (paths) as text."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def write_json(path: Path, obj) -> object:
    """Write :func:`jsonable` ``(obj)`` to ``path`` (indented, UTF-8, trailing newline); return it."""
    doc = jsonable(obj)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return doc


@contextlib.contextmanager
def report_directory(out_dir: Union[str, os.PathLike], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out_dir`` only when the block completes.

    :func:`gradflow.io.atomic.atomic_directory` on the absolute, user-expanded path: an existing
    ``out_dir`` is refused unless ``force`` (and even then replaced only if it is a previous report),
    and any error, Ctrl-C or SIGTERM removes the temporary directory, leaving nothing behind.
    """
    with atomic_directory(Path(out_dir).expanduser().absolute(), force=force) as tmp:
        yield tmp


def check_output(out_dir: Union[str, os.PathLike], force: bool = False) -> None:
    """Raise :class:`~gradflow.errors.UsageError` now if :func:`report_directory` would refuse ``out_dir``
    (so a page can refuse before computing anything)."""
    check_target(Path(out_dir).expanduser().absolute(), force)
