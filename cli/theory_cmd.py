"""``gradflow theory``: the closed-form theory of temporal gradient decay, for a lecture (no checkpoint).

A thin command over :func:`gradflow.theory_report.write_theory_report`; the options' help text is
the manual. Bad values become one ``gradflow: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import echo, user_errors

DEFAULT_OUT = "gradflow-theory"


def _parse_taus(text: Optional[str]) -> Optional[List[float]]:
    """``"1.1,1.5,2"`` -> ``[1.1, 1.5, 2.0]`` (None stays None: the library's default taus)."""
    from gradflow.errors import UsageError

    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UsageError(f"--taus needs comma-separated numbers such as 1.1,1.5,2,4, got {text!r}.")
    try:
        return [float(s) for s in items]
    except ValueError:
        raise UsageError(f"--taus needs comma-separated numbers such as 1.1,1.5,2,4, got {text!r}.") from None


def _steps(x: float, max_lag: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return f"> {max_lag}"
    return f"{x:.2f}"


def _terminal_table(half_lives, *, surrogate: str, tau: float, max_lag: int) -> str:
    """Half-life and horizon per tau (rows) and neuron (column pairs) for the chosen surrogate."""
    d = half_lives[half_lives["surrogate"] == surrogate]
    neurons = list(dict.fromkeys(d["neuron"]))
    cols = ["tau"] + [f"{n.upper()} {what}" for n in neurons for what in ("half-life", "horizon")]
    rows = []
    for t in sorted(set(d["tau"])):
        row = [f"{t:g}" + (" *" if t == tau else "")]
        for n in neurons:
            r = d[(d["tau"] == t) & (d["neuron"] == n)].iloc[0]
            row += [_steps(float(r["half_life"]), max_lag), _steps(float(r["horizon"]), max_lag)]
        rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows])


def theory_command(
    tau: Annotated[float, typer.Option(help="Membrane time constant tau (> 1; gamma = 1 - 1/tau) of the "
                                            "chosen setting: summary.json and the eps(u) figure.")] = 2.0,
    taus: Annotated[Optional[str], typer.Option(help="Comma-separated tau values for the lag curves and the "
                                                     "half-life map, e.g. 1.1,1.5,2,4 (--tau is always added). "
                                                     "Default: 1.1,1.5,2,3,4.")] = None,
    v_threshold: Annotated[float, typer.Option("--v-threshold", help="Firing threshold theta.")] = 1.0,
    surrogate: Annotated[str, typer.Option(help="Surrogate gradient: rectangle, sigmoid, atan or "
                                                "triangle.")] = "rectangle",
    alpha: Annotated[Optional[float], typer.Option(help="Surrogate width/sharpness alpha (default: the "
                                                        "surrogate's own, 1, 4, 2, 1).")] = None,
    neuron: Annotated[str, typer.Option(help="lif, clif or both (side by side). The eps(u) figure always "
                                             "shows both.")] = "both",
    reset: Annotated[str, typer.Option(help="soft (subtract theta) or hard (set to --v-reset; LIF only).")] = "soft",
    v_reset: Annotated[Optional[float], typer.Option("--v-reset", help="Reset potential of the hard reset "
                                                                       "(default 0).")] = None,
    detach_reset: Annotated[bool, typer.Option("--detach-reset", help="Stop the gradient through the spike in "
                                                                      "the reset.")] = False,
    max_lag: Annotated[Optional[int], typer.Option("--max-lag", help="Longest lag predicted (default T - 1).")] = None,
    T: Annotated[int, typer.Option("--T", help="Time steps of the simulated layer.")] = 8,
    mean: Annotated[float, typer.Option(help="Mean of the i.i.d. Gaussian input current.")] = 0.5,
    std: Annotated[float, typer.Option(help="Standard deviation of the input current.")] = 0.5,
    n: Annotated[int, typer.Option("--n", help="Simulated neurons per tau (Monte Carlo size).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated currents.")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory (written atomically).")] = \
        Path(DEFAULT_OUT),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report directory.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout (for scripts).")] = False,
) -> None:
    """Draw the closed-form theory: eps(u) for LIF vs CLIF, relative_k over the lag, half-life map.

    Writes CSVs, Markdown/LaTeX tables, PNG/SVG figures, summary.json and a self-contained index.html.

    Runs in seconds, no checkpoint needed; one layer fed i.i.d. N(--mean, --std^2) currents (docs/theory.md).
    """
    from gradflow.theory_report import write_theory_report

    t0 = time.perf_counter()
    out = Path(out)
    tables = write_theory_report(
        out, tau=tau, taus=_parse_taus(taus), v_threshold=v_threshold, surrogate=surrogate, alpha=alpha,
        neuron=neuron, reset=reset, v_reset=v_reset, detach_reset=detach_reset, max_lag=max_lag, T=T,
        mean=mean, std=std, n=n, seed=seed, force=force,
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    p = summary["parameters"]
    reset_text = p["reset"] + " reset" + ("" if p["v_reset"] is None else f" to {p['v_reset']:g}") \
        + (", detached" if p["detach_reset"] else "")
    echo(f"{p['surrogate']} surrogate (alpha = {p['alpha']:g}), theta = {p['v_threshold']:g}, {reset_text}; "
         f"input current N({mean:g}, {std:g}^2); half-life and 1% horizon in steps (* = --tau):")
    echo(_terminal_table(tables["half_lives"], surrogate=p["surrogate"], tau=p["tau"], max_lag=p["max_lag"]))
    echo(f"Report written to {out} ({len(summary['files'])} files, {time.perf_counter() - t0:.1f} s); "
         f"open {out / 'index.html'}")


def register(app: typer.Typer) -> None:
    """Add ``theory`` to the gradflow app."""
    app.command("theory")(user_errors(theory_command))
