"""The ``gradflow theory`` page: closed-form theory drawn for a lecture, no checkpoint needed.

Three tables from :mod:`gradflow.theory` (docs/theory.md), the figures of
:mod:`gradflow.report.theory_plots`, and :func:`write_theory_report`, which writes all of it into one
directory through the page toolkit (:mod:`gradflow.report.page`, atomic)::

    out_dir/summary.json            parameters; decay rate, half-life, horizon for the chosen settings
    out_dir/eps_curves.csv          neuron, m_prev, u, eps                (eps_curves)
    out_dir/lag_curves.csv          neuron, tau, model, lag, predicted_relative   (lag_curves)
    out_dir/half_lives.csv          neuron, tau, surrogate, alpha, decay_rate, half_life, horizon
    out_dir/tables/half_lives.md    the half-life table for a slide (Markdown) ...
    out_dir/tables/half_lives.tex   ... and for a paper (booktabs LaTeX)
    out_dir/figures/eps_curves.png|svg       eps(u): LIF vs CLIF at a few m[t-1]
    out_dir/figures/lag_curves.png|svg       predicted relative_k over the lag, several tau, log y
    out_dir/figures/half_life_map.png|svg    tau x surrogate map of half-lives, annotated cells
    out_dir/index.html              one self-contained page (figures as base64 PNG), opens offline

The predictions model one layer fed i.i.d. Gaussian currents ``x[t] ~ N(mean, std^2)``; half-life and
horizon of each predicted profile come from :mod:`gradflow.theory` under the ``simulation`` model (all
temporal correlations kept).

>>> tables = theory_tables(taus=[1.5], neuron="lif", T=4, n=500)
>>> sorted(k for k in tables if k != "summary"), tables["summary"]["parameters"]["taus"]
(['eps_curves', 'half_lives', 'lag_curves'], [1.5, 2.0])
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from .. import __version__, stats
from ..schema import THEORY_NEURONS
from ..theory import (
    SURROGATES,
    TheoryError,
    clif_jacobian,
    decay_rate,
    eps_curves,
    gamma_of,
    half_life_table,
    lag_curves,
    lif_eps,
    rate_horizon,
    resolve_alpha,
    sg,
)
from . import page
from .page import FigureSpec, figure_html, html_page, html_table, report_directory, write_json
from .style import LECTURE_DPI, LECTURE_RC
from .tables import format_cell, write_tables
from .theory_plots import fmt_num, plot_eps_curves, plot_half_life_map, plot_lag_curves

__all__ = [
    "TheorySettings",
    "DEFAULT_TAUS",
    "FIGURE_NAMES",
    "NEURON_CHOICES",
    "theory_tables",
    "write_theory_report",
]

#: tau values of the curves and the map when the caller gives none (the chosen tau is always added).
DEFAULT_TAUS: Tuple[float, ...] = (1.1, 1.5, 2.0, 3.0, 4.0)

#: Values of the ``neuron`` argument: one type, or LIF and CLIF side by side.
NEURON_CHOICES: Tuple[str, ...] = THEORY_NEURONS

#: Figures written under ``figures/`` (``.png`` and ``.svg`` each), in page order.
FIGURE_NAMES: Tuple[str, ...] = ("eps_curves", "lag_curves", "half_life_map")

#: The prediction model behind half-lives and horizons; the curves add ``independent``.
MAIN_MODEL = "simulation"

_M_VALUES = (0.0, 1.0, 3.0)          # CLIF memory values m[t-1] drawn in the eps figure


# -------------------------------------------------------------------------------------------- tables

def _check_tau(tau: float, name: str = "tau", arg: str = "tau") -> float:
    """``tau`` as a float greater than 1 (so that ``gamma = 1 - 1/tau > 0``), else :class:`TheoryError`
    (``name``: how the sentence calls it; ``arg``: the argument it names)."""
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise TheoryError(f"{name} must be a number greater than 1, got {tau!r}.", arguments=(arg,)) from None
    if not (math.isfinite(t) and t > 1):
        raise TheoryError(f"{name} must be greater than 1 (gamma = 1 - 1/tau must be positive), got {fmt_num(t, 6)}.",
                          arguments=(arg,))
    return t


@dataclass(frozen=True)
class TheorySettings:
    """The options of the theory page, validated by :func:`theory_tables` / :func:`write_theory_report`.

    ``tau``: the chosen membrane time constant (> 1), the one ``summary.json`` reports; ``taus``: the
    tau values of the curves and the half-life map (default :data:`DEFAULT_TAUS`; ``tau`` is always
    added). ``v_threshold``: theta. ``surrogate``, ``alpha``: the surrogate of the curves (alpha None:
    its default); the map shows every surrogate, at its default alpha except the chosen one.
    ``neuron``: ``lif``, ``clif`` or ``both``. ``reset``: ``soft`` or ``hard`` (LIF only; ``v_reset``
    default 0); ``detach_reset``: stop the gradient through the spike in the reset. ``max_lag``: the
    longest lag predicted (default ``T - 1``). ``T``, ``mean``, ``std``, ``n``, ``seed``: the simulated
    layer, ``n`` neurons fed i.i.d. ``N(mean, std^2)`` currents for ``T`` steps.
    """

    tau: float = 2.0
    taus: Optional[Sequence[float]] = None
    v_threshold: float = 1.0
    surrogate: str = "rectangle"
    alpha: Optional[float] = None
    neuron: str = "both"
    reset: str = "soft"
    v_reset: Optional[float] = None
    detach_reset: bool = False
    max_lag: Optional[int] = None
    T: int = 8
    mean: float = 0.5
    std: float = 0.5
    n: int = 20_000
    seed: int = 0


def _settings(settings: Optional[TheorySettings], options: Mapping) -> dict:
    """``settings`` (default :class:`TheorySettings`) with ``options`` replacing its fields, validated."""
    return _params(**dataclasses.asdict(dataclasses.replace(settings or TheorySettings(), **options)))


def _params(
    *, tau, taus, v_threshold, surrogate, alpha, neuron, reset, v_reset, detach_reset, max_lag, T, mean, std,
    n, seed,
) -> dict:
    """Validate every option once; returns the resolved parameters (alpha filled in, taus sorted)."""
    tau = _check_tau(tau)
    given = DEFAULT_TAUS if taus is None else taus
    tau_list = sorted({_check_tau(t, "every tau in taus", "taus") for t in given} | {tau})
    try:
        theta = float(v_threshold)
    except (TypeError, ValueError):
        raise TheoryError(f"v_threshold must be a positive number, got {v_threshold!r}.",
                          arguments=("v_threshold",)) from None
    if not (math.isfinite(theta) and theta > 0):
        raise TheoryError(f"v_threshold must be a positive number, got {v_threshold!r}.", arguments=("v_threshold",))
    a = resolve_alpha(surrogate, alpha)
    neuron = str(neuron).lower()
    if neuron not in NEURON_CHOICES:
        raise TheoryError(f"Unknown neuron {neuron!r}; choose one of {', '.join(NEURON_CHOICES)}.")
    reset = str(reset).lower()
    if reset not in ("soft", "hard"):
        raise TheoryError(f"Unknown reset {reset!r}; choose one of soft, hard.")
    if reset == "soft" and v_reset is not None:
        raise TheoryError("v_reset is the value of the hard reset; give it together with reset='hard'.",
                          arguments=("v_reset",))
    if reset == "hard":
        if neuron == "clif":
            raise TheoryError("CLIF has its own reset rule (docs/reference.md, Neurons); the hard reset applies to "
                              "LIF only (neuron 'lif' or 'both').")
        v_reset = 0.0 if v_reset is None else float(v_reset)
        if not math.isfinite(v_reset):
            raise TheoryError(f"v_reset must be a finite number, got {v_reset!r}.", arguments=("v_reset",))
    if int(T) != T or T < 2:
        raise TheoryError(f"T must be an integer of at least 2, got {T!r}.", arguments=("T",))
    T = int(T)
    if max_lag is not None:
        if int(max_lag) != max_lag or max_lag < 1:
            raise TheoryError(f"max_lag must be a positive integer, got {max_lag!r}.", arguments=("max_lag",))
        max_lag = int(max_lag)
        if max_lag > T - 1:
            raise TheoryError(f"max_lag must be at most T - 1 = {T - 1}, got {max_lag}; raise T.",
                              arguments=("max_lag",))
    if not (math.isfinite(float(mean)) and math.isfinite(float(std)) and float(std) > 0):
        raise TheoryError(f"the input current needs a finite mean and a positive std, got ({mean!r}, {std!r}).",
                          arguments=("mean", "std"))
    if int(n) != n or n < 100:
        raise TheoryError(f"n (simulated neurons) must be an integer of at least 100, got {n!r}.", arguments=("n",))
    return dict(tau=tau, taus=tau_list, v_threshold=theta, surrogate=surrogate, alpha=a, neuron=neuron,
                neurons=["lif", "clif"] if neuron == "both" else [neuron], reset=reset,
                v_reset=v_reset if reset == "hard" else None, detach_reset=bool(detach_reset),
                max_lag=max_lag if max_lag is not None else T - 1, T=T, mean=float(mean), std=float(std),
                n=int(n), seed=int(seed), model=MAIN_MODEL)


def _neuron_v_reset(p: dict, neuron: str) -> Optional[float]:
    """The hard reset value for ``neuron``: LIF's ``v_reset``; CLIF keeps its own reset rule (None)."""
    # CLIF has its own reset rule; the hard reset (v_reset) is LIF's only
    return p["v_reset"] if neuron == "lif" else None


def theory_tables(settings: Optional[TheorySettings] = None, **options) -> Dict[str, object]:
    """Compute the three tables of the report and the numbers of ``summary.json``; writes nothing.

    ``settings`` and ``options`` (fields of :class:`TheorySettings`) as :func:`write_theory_report`.
    Returns ``{"eps_curves", "lag_curves", "half_lives"}`` DataFrames (columns in the module
    documentation) and ``"summary"``, a JSON-ready dict. Raises :class:`gradflow.theory.TheoryError`
    (a :class:`~gradflow.errors.UsageError`) naming the first bad option.
    """
    return _compute(_settings(settings, options))


def _compute(p: dict) -> Dict[str, object]:
    """The tables and summary of :func:`theory_tables` for validated parameters."""
    t0 = time.perf_counter()
    sim = dict(mean=p["mean"], std=p["std"], T=p["T"], max_lag=p["max_lag"], v_threshold=p["v_threshold"],
               detach_reset=p["detach_reset"], n=p["n"], seed=p["seed"])
    # eps(u): always LIF against CLIF, the lecture's point (v_reset reaches LIF only)
    eps = eps_curves(tau=p["tau"], v_threshold=p["v_threshold"], surrogate=p["surrogate"], alpha=p["alpha"],
                     v_reset=p["v_reset"], detach_reset=p["detach_reset"], m_values=_M_VALUES)
    lags, maps = [], []
    for nrn in p["neurons"]:
        vr = _neuron_v_reset(p, nrn)
        lc = lag_curves(p["taus"], neuron=nrn, surrogate=p["surrogate"], alpha=p["alpha"], v_reset=vr,
                        models=(MAIN_MODEL, "independent"), **sim)
        lags.append(lc.assign(neuron=nrn))
        for sur in SURROGATES:   # the chosen alpha for the chosen surrogate, defaults for the others
            a = p["alpha"] if sur == p["surrogate"] else None
            maps.append(half_life_table(p["taus"], (sur,), neuron=nrn, model=MAIN_MODEL, alpha=a, v_reset=vr,
                                        **sim).assign(neuron=nrn))
    lag_df = pd.concat(lags, ignore_index=True)[["neuron", "tau", "model", "lag", "predicted_relative"]]
    map_df = pd.concat(maps, ignore_index=True)[["neuron", "tau", "surrogate", "alpha", "decay_rate", "half_life",
                                                 "horizon"]]
    summary = _summary(p, lag_df, eps)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return {"eps_curves": eps, "lag_curves": lag_df, "half_lives": map_df, "summary": summary}


def _profile_numbers(d: pd.DataFrame) -> dict:
    """Decay rate, half-life and 1% horizon of one predicted profile (``lag``, ``predicted_relative``).

    As :func:`gradflow.theory.half_life_table` computes them: the half-life is the profile's log-linear
    crossing of 1/2 (:func:`gradflow.stats.half_life`), the decay rate the fitted per-step factor ``r``
    and the horizon that rate's 1% level (:func:`gradflow.theory.rate_horizon`).
    """
    d = d.sort_values("lag")
    r = decay_rate(d["lag"], d["predicted_relative"])
    hl = stats.half_life(d["predicted_relative"].to_numpy(float), d["lag"].to_numpy(float))
    return {"decay_rate": r, "half_life": hl, "horizon": rate_horizon(r)}


def _summary(p: dict, lag_df: pd.DataFrame, eps: pd.DataFrame) -> dict:
    """summary.json: parameters, and per neuron the chosen tau's profile and its half-life/horizon."""
    results = {}
    per_tau = []
    for nrn in p["neurons"]:
        d = lag_df[lag_df["neuron"] == nrn]
        for tau in p["taus"]:
            dt = d[(d["tau"] == tau) & (d["model"] == MAIN_MODEL)].sort_values("lag")
            nums = _profile_numbers(dt)
            per_tau.append(dict(neuron=nrn, tau=tau, **nums))
            if tau == p["tau"]:
                ind = _profile_numbers(d[(d["tau"] == tau) & (d["model"] == "independent")].sort_values("lag"))
                results[nrn] = dict(nums, model=MAIN_MODEL, lags=dt["lag"].astype(int).tolist(),
                                    relative=dt["predicted_relative"].tolist(), independent=ind)
    params = {k: p[k] for k in ("tau", "taus", "v_threshold", "surrogate", "alpha", "neuron", "reset", "v_reset",
                                "detach_reset", "max_lag", "T", "n", "seed", "model")}
    params["current"] = {"mean": p["mean"], "std": p["std"]}
    return {
        "command": "gradflow theory",
        "gradflow_version": __version__,
        "parameters": params,
        "gamma": gamma_of(p["tau"]),
        "results": results,
        "per_tau": per_tau,
        "factors": _probe_factors(p),
        "notes": _notes(p),
    }


def _probe_factors(p: dict) -> dict:
    """The one-step factors the page quotes: LIF and CLIF a quarter threshold below theta, and far away."""
    theta, kw = p["v_threshold"], dict(tau=p["tau"], v_threshold=p["v_threshold"], surrogate=p["surrogate"],
                                        alpha=p["alpha"], detach_reset=p["detach_reset"])
    u = 0.75 * theta
    lif = float(lif_eps(u, v_reset=p["v_reset"], **kw))
    clif = {fmt_num(m): float(clif_jacobian(u, m, **kw).uu) for m in _M_VALUES}
    return {"u": u, "sg": float(sg(u - theta, p["surrogate"], p["alpha"])), "lif": lif, "clif": clif,
            "lif_far_below": float(lif_eps(theta - 3.0 * max(theta, 1.0), v_reset=p["v_reset"], **kw))}


def _notes(p: dict) -> List[str]:
    """Sentences under the parameter table: the simulated input, and what the options change."""
    notes = [f"Predictions for one layer fed i.i.d. N({fmt_num(p['mean'])}, {fmt_num(p['std'])}^2) currents, "
             f"T = {p['T']}, simulated on {p['n']} neurons (docs/theory.md Eq. 20-21)."]
    if p["reset"] == "hard":
        notes.append("The hard reset applies to LIF only; CLIF keeps its own reset rule (docs/reference.md, Neurons).")
    if p["surrogate"] in ("sigmoid", "atan"):
        notes.append(f"The {p['surrogate']} surrogate has no compact window: every neuron gets some surrogate "
                     "gradient; the shaded band marks where sg is at least half its peak.")
    return notes


# ---------------------------------------------------------------------------------------- rendering

def _figure_specs(tables: Mapping[str, object], p: dict) -> List[FigureSpec]:
    """The page's figures (:data:`FIGURE_NAMES`)."""
    eps, lag_df, map_df = tables["eps_curves"], tables["lag_curves"], tables["half_lives"]
    neurons = p["neurons"]
    theta, sur, a = p["v_threshold"], p["surrogate"], p["alpha"]
    finite = pd.to_numeric(map_df["half_life"], errors="coerce")
    finite = finite[np.isfinite(finite)]
    vmax = float(finite.max()) if len(finite) else None

    def draw_eps(fig):
        """Figure 1: eps(u), LIF against CLIF."""
        plot_eps_curves(eps, ax=fig.subplots(), v_threshold=theta, surrogate=sur, alpha=a, tau=p["tau"],
                        lif_soft=p["reset"] == "soft" and not p["detach_reset"])

    def draw_lags(fig):
        """Figure 2: predicted lag curves, one panel per neuron kind, shared y axis."""
        axes = fig.subplots(1, len(neurons), sharey=True, squeeze=False)[0]
        for ax, nrn in zip(axes, neurons):
            plot_lag_curves(lag_df, ax=ax, neuron=nrn, title=f"{nrn.upper()}: predicted gradient over the lag")
        for ax in axes[1:]:
            ax.set_ylabel("")

    def draw_map(fig):
        """Figure 3: the tau x surrogate half-life map per neuron kind, one colour scale."""
        axes = fig.subplots(1, len(neurons), squeeze=False)[0]
        for i, (ax, nrn) in enumerate(zip(axes, neurons)):
            plot_half_life_map(map_df, ax=ax, neuron=nrn, vmax=vmax, highlight=(p["tau"], sur))
            if i:
                ax.set_ylabel("")

    wide = len(neurons) > 1
    return [
        FigureSpec("eps_curves",
         f"One-step factor ε = ∂u[t+1]/∂u[t] against the potential u[t] (τ = {fmt_num(p['tau'])}, "
         f"θ = {fmt_num(theta)}, {sur} surrogate, α = {fmt_num(a)}): LIF (blue) and CLIF at three memory "
         "values m[t-1] (orange, darker = larger m).", (9.0, 5.6), draw_eps),
        FigureSpec("lag_curves",
         "Predicted relative gradient relative_k over the lag k, one line per τ (darker = longer τ), log scale: "
         "solid = simulation with all temporal correlations, dashed = independent steps. Dotted lines: the 50% "
         "(half-life) and 1% (horizon) levels.", (13.0 if wide else 8.0, 5.4), draw_lags),
        FigureSpec("half_life_map",
         f"Half-life of the temporal gradient in steps for every τ and surrogate (default α each, "
         f"α = {fmt_num(a)} for {sur}); the outlined cell is the chosen setting. Same colour scale in both "
         "panels." if wide else
         f"Half-life of the temporal gradient in steps for every τ and surrogate (default α each, "
         f"α = {fmt_num(a)} for {sur}); the outlined cell is the chosen setting.", (13.0 if wide else 7.5, 5.6),
                   draw_map),
    ]


def _display_half_lives(map_df: pd.DataFrame) -> pd.DataFrame:
    """The half-life table with readable headings (LIF/CLIF in capitals, units in the headings)."""
    return pd.DataFrame({
        "Neuron": map_df["neuron"].str.upper(),
        "tau": map_df["tau"],
        "Surrogate": map_df["surrogate"],
        "alpha": map_df["alpha"],
        "Decay rate per step": map_df["decay_rate"],
        "Half-life (steps)": map_df["half_life"],
        "1% horizon (steps)": map_df["horizon"],
    })


def _half_life_grid(map_df: pd.DataFrame) -> pd.DataFrame:
    """One row per (neuron, tau), one column per surrogate: ``"half-life (horizon)"`` as text."""
    def cell(r) -> str:
        """``"half-life (horizon)"`` of one row."""
        return f"{_short(r['half_life'])} ({_short(r['horizon'])})"

    surs = list(dict.fromkeys(map_df["surrogate"]))
    alphas = map_df.drop_duplicates("surrogate").set_index("surrogate")["alpha"]
    rows = []
    for (nrn, tau), d in map_df.groupby(["neuron", "tau"], sort=False):
        by = d.set_index("surrogate")
        rows.append([nrn.upper(), float(tau)] + [cell(by.loc[s]) if s in by.index else "n/a" for s in surs])
    return pd.DataFrame(rows, columns=["Neuron", "τ"] + [f"{s} (α = {fmt_num(alphas[s])})" for s in surs])


def _explanation(p: dict, summary: dict) -> str:
    """The page's short text: what eps is, why LIF cuts, why CLIF flips; numbers for these settings."""
    f = summary["factors"]
    g = summary["gamma"]
    theta, a = p["v_threshold"], p["alpha"]
    e = html.escape
    rect_cut = p["surrogate"] == "rectangle" and math.isclose(a, theta)
    m1 = f["clif"].get("1", next(iter(f["clif"].values())))
    lines = [
        "<h2>What the figures show</h2>",
        "<p><b>The one-step factor ε.</b> Back-propagation through time carries the gradient from step t+1 "
        "to step t through the neuron's own state, multiplied by <code>ε[t] = ∂u[t+1]/∂u[t]</code> at fixed "
        "input. A gradient that started k steps later arrives multiplied by the product of k such factors, "
        "so |ε| &lt; 1 makes it fade geometrically with the lag. For LIF with soft reset "
        "<code>ε = γ (1 − θ·sg(u − θ))</code>, with the leak <code>γ = 1 − 1/τ</code> "
        f"(= {fmt_num(g)} here): the leak path, minus the reset's surrogate gradient.</p>",
        "<p><b>Why LIF's factor is 0 inside the window.</b> The rectangle surrogate with "
        "<code>α = θ</code> is <code>sg = 1/α = 1/θ</code> inside the window <code>|u − θ| ≤ α/2</code>, "
        "so <code>θ·sg = 1</code> and <code>ε = γ (1 − 1) = 0</code>: the reset's surrogate gradient cancels "
        "the leak exactly. Every neuron inside the window cuts its temporal path; outside it ε = γ. "
        "The window fraction therefore sets how fast the temporal gradient vanishes.</p>",
        "<p><b>CLIF's sign flip.</b> CLIF resets by <code>θ + sigmoid(m)</code> instead of θ, so inside the "
        "window, below threshold, its factor is <code>γ (1 − (θ + sigmoid(m))/α) = −γ·sigmoid(m)/θ</code> "
        "for α = θ: negative, not zero. The gradient is passed on with a flipped sign and a magnitude "
        "between γ/(2θ) and γ/θ, so CLIF keeps temporal gradient exactly where LIF cuts it "
        "(docs/theory.md Eq. 7).</p>",
        f"<p><b>With these settings</b> ({e(p['surrogate'])}, α = {fmt_num(a)}, θ = {fmt_num(theta)}, "
        f"{'detached ' if p['detach_reset'] else ''}{e(p['reset'])} reset), at "
        f"<code>u = {fmt_num(f['u'])}</code> (a quarter threshold below θ, sg = {fmt_num(f['sg'])}): "
        f"LIF ε = {fmt_num(f['lif'])}, CLIF ε = {fmt_num(m1)} for m[t-1] = 1; far below threshold "
        f"LIF ε = {fmt_num(f['lif_far_below'])} (= γ)."
        + ("" if rect_cut else " These are not the rectangle, α = θ values of the text above, so the factor "
           "inside the window is reduced rather than cut.") + "</p>",
        "<p><b>Decay with the lag.</b> The second figure predicts <code>relative_k</code>, the share of a "
        "step's spatial gradient that survives the trip k steps back, for a layer driven by i.i.d. Gaussian currents; "
        "the half-life is the lag where it falls to 50% (interpolated in log scale between lags), the horizon "
        "where a geometric decay at the profile's fitted per-step rate falls under 1% (docs/theory.md).</p>",
    ]
    return "\n".join(lines)


def _short(v) -> str:
    """A number for the page: three significant digits, ``∞``, ``n/a``."""
    return format_cell(float(v), "html", ".3g")


def _page(p: dict, summary: dict, specs: List[FigureSpec], pngs: Mapping[str, bytes], map_df: pd.DataFrame) -> str:
    """index.html: key numbers, the explanation, figures, the half-life grid and the parameters."""
    e = html.escape
    key = [f"<div>{e(nrn.upper())} at τ = {fmt_num(p['tau'])}<br>half-life <b>{e(_short(res['half_life']))}</b> "
           f"steps · horizon <b>{e(_short(res['horizon']))}</b> steps</div>" for nrn, res in summary["results"].items()]
    params = pd.DataFrame([
        ("τ (chosen)", fmt_num(p["tau"])), ("τ (curves)", ", ".join(fmt_num(t) for t in p["taus"])),
        ("threshold θ", fmt_num(p["v_threshold"])), ("surrogate", p["surrogate"]), ("α", fmt_num(p["alpha"])),
        ("neuron", p["neuron"]),
        ("reset", p["reset"] + (f" (v_reset = {fmt_num(p['v_reset'])})" if p["v_reset"] is not None else "")),
        ("detach_reset", str(p["detach_reset"])), ("T / max lag", f"{p['T']} / {p['max_lag']}"),
        ("input current", f"i.i.d. N({fmt_num(p['mean'])}, {fmt_num(p['std'])}²) per step"),
        ("simulation", f"{p['n']} neurons, seed {p['seed']}, model {p['model']}")], columns=["Parameter", "Value"])
    notes = "".join(f"<li>{e(n)}</li>" for n in summary["notes"])
    return html_page("gradflow theory: temporal gradient decay in LIF and CLIF", [
        "<h1>Temporal gradient decay: closed-form theory</h1>",
        f'<p class="sub">gradflow {e(summary["gradflow_version"])} · <code>gradflow theory</code> · no checkpoint '
        "needed</p>",
        f'<div class="key">{"".join(key)}</div>',
        _explanation(p, summary),
        "<h2>Figures</h2>", *(figure_html(f, pngs[f.name], i) for i, f in enumerate(specs, 1)),
        "<h2>Half-lives</h2>",
        "<p>Half-life in steps, and in brackets the 1% horizon, for every τ and surrogate "
        "(full precision: <code>half_lives.csv</code>, <code>tables/half_lives.md</code>, <code>.tex</code>).</p>",
        html_table(_half_life_grid(map_df), floatfmt=".3g"),
        "<h2>Parameters</h2>", html_table(params, "info"),
        f"<ul>{notes}</ul>",
    ])


# ------------------------------------------------------------------------------------------ writing

def _write_into(tmp: Path, tables: Mapping[str, object], p: dict) -> None:
    """Every file of the page into the temporary directory ``tmp``."""
    write_tables({name: tables[name] for name in ("eps_curves", "lag_curves", "half_lives")}, tmp,
                 formatted={"half_lives": _display_half_lives(tables["half_lives"])},
                 captions={"half_lives": "Predicted half-life and 1% horizon of the temporal gradient "
                                         "(gradflow theory)."})
    fig_dir = tmp / "figures"
    fig_dir.mkdir()
    specs = _figure_specs(tables, p)
    pngs = {f.name: page.render_figure(f, fig_dir, dpi=LECTURE_DPI, rc=LECTURE_RC) for f in specs}
    written = [q.relative_to(tmp).as_posix() for q in tmp.rglob("*") if q.is_file()]
    summary = dict(tables["summary"], files=sorted(written + ["index.html", "summary.json"]))
    (tmp / "index.html").write_text(_page(p, summary, specs, pngs, tables["half_lives"]), encoding="utf-8")
    write_json(tmp / "summary.json", summary)


def write_theory_report(out_dir: Union[str, os.PathLike], settings: Optional[TheorySettings] = None, *,
                        force: bool = False, **options) -> Dict[str, pd.DataFrame]:
    """Write the theory report directory (layout in the module documentation); returns its tables.

    ``settings``: a :class:`TheorySettings` (default: its defaults); ``options``: any of its fields,
    replacing the value in ``settings`` (``write_theory_report(out, tau=3.0, neuron="lif")``).

    Everything is written into a temporary ``.<name>.tmp-XXXX`` beside ``out_dir`` and renamed
    into place when complete; on any error (also Ctrl-C, and SIGTERM from the main thread) the
    temporary directory is removed and nothing is left behind. An existing ``out_dir`` raises
    :class:`~gradflow.errors.UsageError` unless ``force``; even then it is replaced only if it is
    empty or a previous report (has ``summary.json`` or ``index.html``). Bad options raise
    :class:`gradflow.theory.TheoryError` (a UsageError) before anything is written.

    Returns ``{"eps_curves", "lag_curves", "half_lives"}``, the DataFrames of the CSVs. The path
    written is ``Path(out_dir)``; ``summary.json`` there holds the summary.
    """
    p = _settings(settings, options)
    page.check_output(out_dir, force)   # refuse early, before computing anything
    tables = _compute(p)
    with report_directory(out_dir, force=force) as tmp:
        _write_into(tmp, tables, p)
    return {k: tables[k] for k in ("eps_curves", "lag_curves", "half_lives")}
