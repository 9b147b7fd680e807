"""``gradflow theory``: the closed-form theory of temporal gradient decay, for a lecture (no checkpoint).

A thin command over :func:`gradflow.report.theory_page.write_theory_report`; the options' help text is the
manual. Bad values become one ``gradflow: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .choices import Reset, Surrogate, TheoryNeuron, value
from .common import add_command, echo, table

DEFAULT_OUT = "gradflow-theory"

NEURON, INPUT, OUTPUT = "Neuron", "Simulated input", "Output"


def _steps(x: float, max_lag: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return f"> {max_lag}"
    return f"{x:.2f}"


def _half_life_table(half_lives, *, surrogate: str, tau: float, max_lag: int) -> str:
    """Half-life and horizon per tau (rows) and neuron (column pairs) for the chosen surrogate."""
    d = half_lives[half_lives["surrogate"] == surrogate]
    neurons = list(dict.fromkeys(d["neuron"]))
    columns = ["tau"] + [f"{n.upper()} {what}" for n in neurons for what in ("half-life", "horizon")]
    rows = []
    for t in sorted(set(d["tau"])):
        row = {"tau": f"{t:g}" + (" *" if t == tau else "")}
        for n in neurons:
            r = d[(d["tau"] == t) & (d["neuron"] == n)].iloc[0]
            row[f"{n.upper()} half-life"] = _steps(float(r["half_life"]), max_lag)
            row[f"{n.upper()} horizon"] = _steps(float(r["horizon"]), max_lag)
        rows.append(row)
    return table(rows, columns, right=columns)


# The command's parameters, one alias each (Typer reads the help text and panel from them).
TauOption = Annotated[float, typer.Option(
    help="Membrane time constant tau (> 1; gamma = 1 - 1/tau) of the chosen setting: summary.json and the "
    "eps(u) figure.", rich_help_panel=NEURON)]
TausOption = Annotated[Optional[List[float]], typer.Option(
    "--taus", metavar="TAU", help="A tau of the lag curves and the half-life map; repeat for several "
    "(--taus 1.5 --taus 4; --tau is always added). Default: 1.1, 1.5, 2, 3 and 4.", show_default=False,
    rich_help_panel=NEURON)]
VThresholdOption = Annotated[float, typer.Option(
    "--v-threshold", help="Firing threshold theta.", rich_help_panel=NEURON)]
SurrogateOption = Annotated[Surrogate, typer.Option(
    help="Surrogate gradient of the spike.", rich_help_panel=NEURON)]
AlphaOption = Annotated[Optional[float], typer.Option(
    help="Surrogate width or sharpness alpha. Default: the surrogate's own (rectangle 1, sigmoid 4, atan 2, "
    "triangle 1).", show_default=False, rich_help_panel=NEURON)]
NeuronOption = Annotated[TheoryNeuron, typer.Option(
    help="lif, clif or both (side by side). The eps(u) figure always shows both.",
    rich_help_panel=NEURON)]
ResetOption = Annotated[Reset, typer.Option(
    help="soft (subtract theta) or hard (set to --v-reset; LIF only).", rich_help_panel=NEURON)]
VResetOption = Annotated[Optional[float], typer.Option(
    "--v-reset", help="Reset potential of the hard reset. Default: 0.", show_default=False,
    rich_help_panel=NEURON)]
DetachResetOption = Annotated[bool, typer.Option(
    "--detach-reset", help="Stop the gradient through the spike in the reset.", rich_help_panel=NEURON)]
MaxLagOption = Annotated[Optional[int], typer.Option(
    "--max-lag", help="Longest lag predicted. Default: T - 1.", show_default=False, rich_help_panel=INPUT)]
StepsOption = Annotated[int, typer.Option("--T", help="Time steps of the simulated layer.", rich_help_panel=INPUT)]
MeanOption = Annotated[float, typer.Option(help="Mean of the i.i.d. Gaussian input current.", rich_help_panel=INPUT)]
StdOption = Annotated[float, typer.Option(help="Standard deviation of the input current.", rich_help_panel=INPUT)]
NOption = Annotated[int, typer.Option(
    "--n", help="Simulated neurons per tau (Monte Carlo size).", rich_help_panel=INPUT)]
SeedOption = Annotated[int, typer.Option(help="Seed of the simulated currents.", rich_help_panel=INPUT)]
OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="Report directory (written atomically).", rich_help_panel=OUTPUT)]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Replace an existing report directory.", rich_help_panel=OUTPUT)]
AsJsonOption = Annotated[bool, typer.Option(
    "--json", help="Print summary.json to stdout (for scripts).", rich_help_panel=OUTPUT)]


def theory_command(
    tau: TauOption = 2.0,
    taus: TausOption = None,
    v_threshold: VThresholdOption = 1.0,
    surrogate: SurrogateOption = Surrogate("rectangle"),
    alpha: AlphaOption = None,
    neuron: NeuronOption = TheoryNeuron("both"),
    reset: ResetOption = Reset("soft"),
    v_reset: VResetOption = None,
    detach_reset: DetachResetOption = False,
    max_lag: MaxLagOption = None,
    T: StepsOption = 8,
    mean: MeanOption = 0.5,
    std: StdOption = 0.5,
    n: NOption = 20_000,
    seed: SeedOption = 0,
    out: OutOption = Path(DEFAULT_OUT),
    force: ForceOption = False,
    as_json: AsJsonOption = False,
) -> None:
    """Draw the closed-form theory: eps(u) for LIF vs CLIF, relative_k over the lag, a half-life map.

    Writes CSVs, Markdown/LaTeX tables, PNG/SVG figures, summary.json and a self-contained index.html.
    Runs in seconds with no checkpoint: one layer fed i.i.d. N(--mean, --std^2) currents (docs/theory.md).
    """
    # imported here to keep `gradflow --help` quick (matplotlib and scipy load only when a command runs)
    from gradflow.report.theory_page import write_theory_report

    t0 = time.perf_counter()
    tables = write_theory_report(
        out, tau=tau, taus=list(taus) if taus else None, v_threshold=v_threshold, surrogate=value(surrogate),
        alpha=alpha, neuron=value(neuron), reset=value(reset), v_reset=v_reset, detach_reset=detach_reset,
        max_lag=max_lag, T=T, mean=mean, std=std, n=n, seed=seed, force=force,
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
    echo(_half_life_table(tables["half_lives"], surrogate=p["surrogate"], tau=p["tau"], max_lag=p["max_lag"]))
    echo(f"Report written to {out} ({len(summary['files'])} files, {time.perf_counter() - t0:.1f} s); "
         f"open {out / 'index.html'}")


def register(app: typer.Typer) -> None:
    """Add ``theory`` to the gradflow app."""
    add_command(app, "theory", theory_command)
