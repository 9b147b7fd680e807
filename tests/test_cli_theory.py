"""`gradflow theory` end to end: files, embedded figures, numbers equal the library's, errors, plots."""

from __future__ import annotations

import base64
import doctest
import json
import math
import re
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from gradflow.report import page, theory_page, theory_plots
from gradflow.errors import UsageError
from gradflow import stats
from gradflow.theory import (
    clif_near_threshold_factor,
    decay_rate,
    eps_curves,
    gamma_of,
    half_life_table,
    lag_curves,
    lif_eps,
    rate_horizon,
)
from gradflow.report.theory_page import FIGURE_NAMES, write_theory_report
from gradflow.report.theory_plots import plot_eps_curves, plot_half_life_map, plot_lag_curves
from gradflow_cli.main import app

runner = CliRunner()
N_SIM = 4000           # simulated neurons: small, so the whole module runs in seconds
TAUS = [1.5, 2.0, 4.0]
FILES = ["summary.json", "index.html", "eps_curves.csv", "lag_curves.csv", "half_lives.csv",
         "tables/half_lives.md", "tables/half_lives.tex"] + \
    [f"figures/{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "svg")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory") / "rep"
    res = runner.invoke(app, ["theory", "--out", str(out), "--taus", "1.5", "--taus", "4", "--n", str(N_SIM)])
    assert res.exit_code == 0, res.output
    return out, res


def _litter(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------- the files

def test_writes_every_file(report):
    out, res = report
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"]) == sorted(FILES)
    assert not _litter(out.parent)
    # the terminal table: one row per tau, the chosen one starred, both neurons
    assert "LIF half-life" in res.stdout and "CLIF horizon" in res.stdout
    assert re.search(r"^\s*2 \*", res.stdout, re.M) and re.search(r"^\s*1\.5 ", res.stdout, re.M)
    assert "Report written to" in res.stdout


def test_csv_columns(report):
    out, _ = report
    assert list(pd.read_csv(out / "eps_curves.csv").columns) == ["neuron", "m_prev", "u", "eps"]
    assert list(pd.read_csv(out / "lag_curves.csv").columns) == ["neuron", "tau", "model", "lag",
                                                                "predicted_relative"]
    hl = pd.read_csv(out / "half_lives.csv")
    assert list(hl.columns) == ["neuron", "tau", "surrogate", "alpha", "decay_rate", "half_life", "horizon"]
    assert len(hl) == 2 * len(TAUS) * 4          # both neurons x taus x surrogates
    assert "\\begin{tabular}" in (out / "tables/half_lives.tex").read_text()
    assert (out / "tables/half_lives.md").read_text().startswith("| Neuron | tau |")


def test_figures_embedded(report):
    out, _ = report
    page = (out / "index.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(FIGURE_NAMES)
    for b64, name in zip(embedded, FIGURE_NAMES):
        assert base64.b64decode(b64) == (out / "figures" / f"{name}.png").read_bytes()
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    for words in ("one-step factor", "cancels", "sign"):
        assert words in page.lower()
    for name in FIGURE_NAMES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (out / "figures" / f"{name}.svg").read_text()[:2000]


def test_summary_equals_library(report):
    out, _ = report
    s = json.loads((out / "summary.json").read_text())
    p = s["parameters"]
    assert p["tau"] == 2.0 and p["taus"] == TAUS and p["surrogate"] == "rectangle" and p["alpha"] == 1.0
    assert s["gamma"] == gamma_of(2.0)
    kw = dict(mean=0.5, std=0.5, T=8, n=N_SIM, seed=0)
    for nrn in ("lif", "clif"):
        table = half_life_table([2.0], ["rectangle"], neuron=nrn, **kw)
        row = table.iloc[0]
        res = s["results"][nrn]
        assert res["half_life"] == pytest.approx(row["half_life"], rel=1e-12)
        assert res["horizon"] == pytest.approx(row["horizon"], rel=1e-12)
        assert res["decay_rate"] == pytest.approx(row["decay_rate"], rel=1e-12)
        curve = lag_curves([2.0], neuron=nrn, models=("simulation",), **kw)
        np.testing.assert_allclose(res["relative"], curve["predicted_relative"], rtol=1e-12)
        # one half-life: the profile's log-linear crossing of 1/2; the horizon belongs to the fitted rate
        r = decay_rate(curve["lag"], curve["predicted_relative"])
        assert res["half_life"] == pytest.approx(stats.half_life(curve["predicted_relative"].to_numpy()))
        assert res["horizon"] == pytest.approx(rate_horizon(r)) and res["decay_rate"] == pytest.approx(r)
    # the CSVs hold the library's tables
    hl = pd.read_csv(out / "half_lives.csv")
    lib = half_life_table(TAUS, ["sigmoid"], neuron="clif", **kw)
    mine = hl[(hl["neuron"] == "clif") & (hl["surrogate"] == "sigmoid")].reset_index(drop=True)
    np.testing.assert_allclose(mine["half_life"], lib["half_life"], rtol=1e-9)
    eps = pd.read_csv(out / "eps_curves.csv")
    ref = eps_curves(tau=2.0)
    np.testing.assert_allclose(eps["eps"], ref["eps"], rtol=1e-12, atol=1e-15)
    # the factors quoted on the page
    f = s["factors"]
    assert f["lif"] == lif_eps(0.75, tau=2.0) == 0.0
    m_now = 1.0 / (1.0 + math.exp(-0.75 / 2.0))          # m[t] = m[t-1] sigmoid(u/tau) + s, m[t-1] = 1, s = 0
    assert f["clif"]["1"] == pytest.approx(float(clif_near_threshold_factor(m_now, tau=2.0)), rel=1e-12)


def test_json_and_other_settings(tmp_path):
    out = tmp_path / "hard"
    res = runner.invoke(app, ["theory", "--out", str(out), "--json", "--neuron", "lif", "--reset", "hard",
                              "--v-reset", "-0.5", "--surrogate", "sigmoid", "--alpha", "3", "--tau", "3",
                              "--taus", "1.5", "--T", "5", "--max-lag", "3", "--n", "1000",
                              "--detach-reset"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s == json.loads((out / "summary.json").read_text())
    p = s["parameters"]
    assert (p["neuron"], p["reset"], p["v_reset"], p["alpha"], p["max_lag"], p["taus"]) == \
        ("lif", "hard", -0.5, 3.0, 3, [1.5, 3.0])
    assert set(s["results"]) == {"lif"} and len(s["results"]["lif"]["relative"]) == 4
    row = half_life_table([3.0], ["sigmoid"], neuron="lif", alpha=3.0, v_reset=-0.5, detach_reset=True,
                          T=5, max_lag=3, n=1000, seed=0).iloc[0]
    assert s["results"]["lif"]["half_life"] == pytest.approx(row["half_life"], rel=1e-12)
    hl = pd.read_csv(out / "half_lives.csv")
    assert set(hl["neuron"]) == {"lif"}
    assert hl.loc[hl["surrogate"] == "sigmoid", "alpha"].eq(3.0).all()
    assert hl.loc[hl["surrogate"] == "atan", "alpha"].eq(2.0).all()      # others keep their default


# -------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args, words", [
    (["--tau", "1"], "greater than 1"),
    (["--tau", "0.5"], "greater than 1"),
    (["--taus", "1.5", "--taus", "0.9"], "greater than 1"),
    (["--taus", "1.5", "--taus", "x"], "--taus"),
    (["--taus", "1.5,4"], "--taus"),
    (["--surrogate", "foo"], "unknown surrogate"),
    (["--alpha", "-1"], "alpha"),
    (["--neuron", "plif"], "unknown neuron"),
    (["--reset", "sideways"], "unknown reset"),
    (["--neuron", "clif", "--reset", "hard"], "CLIF"),
    (["--v-reset", "0.1"], "hard"),
    (["--max-lag", "20"], "(max_lag|--max-lag)"),
])
def test_bad_options_one_line_exit_2(tmp_path, args, words):
    out = tmp_path / "rep"
    res = runner.invoke(app, ["theory", "--out", str(out)] + args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradflow: error: ") and re.search(words, lines[0], re.I)
    assert "Traceback" not in res.output
    assert not out.exists() and not _litter(tmp_path)


def test_existing_out_dir(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = runner.invoke(app, ["theory", "--out", str(out)])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "--force" in res.stderr
    # --force does not replace a directory that is not a report
    res = runner.invoke(app, ["theory", "--out", str(out), "--force"])
    assert res.exit_code == 2 and "refusing" in res.stderr
    assert (out / "notes.txt").read_text() == "mine" and not _litter(tmp_path)


def test_force_replaces_a_previous_report(tmp_path, monkeypatch):
    # headless: with pyplot unimportable, writing a report (figures included) must still work
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out = tmp_path / "rep"
    write_theory_report(out, taus=[1.5], neuron="lif", T=4, n=500)
    (out / "stale.txt").write_text("old")
    write_theory_report(out, taus=[1.5], neuron="clif", T=4, n=500, force=True)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "summary.json").read_text())["parameters"]["neuron"] == "clif"
    assert not _litter(tmp_path)


def test_no_litter_on_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(page, "render_figure", broken)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_theory_report(out, taus=[1.5], neuron="lif", T=4, n=500)
    assert list(tmp_path.iterdir()) == []
    # an existing report survives a failed --force rewrite untouched
    monkeypatch.undo()
    write_theory_report(out, taus=[1.5], neuron="lif", T=4, n=500)
    before = (out / "summary.json").read_bytes()
    monkeypatch.setattr(page, "render_figure", broken)
    with pytest.raises(RuntimeError):
        write_theory_report(out, taus=[1.5], neuron="clif", T=4, n=500, force=True)
    assert (out / "summary.json").read_bytes() == before and _litter(tmp_path) == []


def test_settings_object_and_options_combine():
    settings = theory_page.TheorySettings(neuron="lif", T=4, n=500, taus=[1.5])
    a = theory_page.theory_tables(settings, tau=3.0)
    b = theory_page.theory_tables(neuron="lif", T=4, n=500, taus=[1.5], tau=3.0)
    pd.testing.assert_frame_equal(a["half_lives"], b["half_lives"])
    assert a["summary"]["parameters"]["taus"] == [1.5, 3.0] and settings.tau == 2.0     # settings unchanged
    with pytest.raises(TypeError):
        theory_page.theory_tables(settings, colour="red")


def test_library_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="greater than 1"):
        write_theory_report(tmp_path / "x", tau=1.0)
    # library errors speak of arguments (the CLI maps them to flags), never of flags
    for kw, names in ((dict(v_reset=0.1), ("v_reset",)), (dict(max_lag=9), ("max_lag",)),
                      (dict(taus=[1.5, 0.5]), ("taus",)), (dict(neuron="clif", reset="hard"), ())):
        with pytest.raises(UsageError) as info:
            write_theory_report(tmp_path / "x", **kw)
        assert info.value.arguments == names and "--" not in str(info.value)
    with pytest.raises(UsageError, match="--force"):
        write_theory_report(tmp_path, n=500)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- plots

def _tables():
    eps = eps_curves(tau=2.0)
    lags = pd.concat([lag_curves([1.5, 3.0], neuron=nrn, T=5, n=500).assign(neuron=nrn)
                      for nrn in ("lif", "clif")], ignore_index=True)
    hl = half_life_table([1.5, 3.0], ("rectangle", "atan"), T=5, n=500).assign(neuron="lif")
    return eps, lags, hl


@pytest.mark.parametrize("which", ["eps", "lags", "map"])
def test_plot_functions_draw_only_on_their_ax(which):
    eps, lags, hl = _tables()
    fig = Figure()
    ax, other = fig.subplots(1, 2)
    fn, df, kw = {"eps": (plot_eps_curves, eps, dict(tau=2.0)),
                  "lags": (plot_lag_curves, lags, {}),
                  "map": (plot_half_life_map, hl, dict(highlight=(1.5, "atan")))}[which]
    assert fn(df, ax=ax, **kw) is ax
    assert fig.axes == [ax, other]                      # a colour bar is an inset of ax, not new axes
    assert not (other.lines or other.images or other.texts or other.patches or other.collections)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    if which == "eps":
        labels = [line.get_label() for line in ax.lines]
        assert "LIF" in labels and sum(lab.startswith("CLIF") for lab in labels) == 3
    if which == "lags":
        assert ax.get_yscale() == "log"
    if which == "map":
        texts = {t.get_text() for t in ax.texts}
        assert {f"{v:.2f}" for v in hl["half_life"]} <= texts
        assert len(ax.child_axes) == 1                   # the colour bar


def test_plots_leave_out_non_finite_values():
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    lags = pd.DataFrame({"tau": 2.0, "model": "simulation", "lag": [0, 1, 2, 3],
                         "predicted_relative": [1.0, 0.5, 0.0, np.nan]})
    plot_lag_curves(lags, ax=ax1)
    assert "1 non-finite value" in " ".join(t.get_text() for t in ax1.texts)
    hl = pd.DataFrame({"tau": [1.5, 2.0], "surrogate": "rectangle", "alpha": 1.0, "decay_rate": [1.0, np.nan],
                       "half_life": [math.inf, np.nan], "horizon": [math.inf, np.nan]})
    plot_half_life_map(hl, ax=ax2)
    texts = {t.get_text() for t in ax2.texts}
    assert "∞" in texts and "n/a" in texts


@pytest.mark.parametrize("module", [theory_page, theory_plots], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
