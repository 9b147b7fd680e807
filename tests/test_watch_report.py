"""`gradflow report DIR`: the report over training of a watched run (pages, figures, theory, CLI)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

import gradflow.watch as gw
from gradflow import losses, models, stats
from gradflow.errors import DataError, UsageError
from gradflow.report import training_plots
from gradflow.report.training_page import FIGURE_NAMES, training_findings, write_training_report
from gradflow_cli import report_cmd


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A short watched training run: 12 steps, every 3rd recorded, two LIF layers."""
    out = tmp_path_factory.mktemp("watched") / "run"
    torch.manual_seed(0)
    net = models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(12, 12), T=5)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(0)
    with gw.watch(net, every=3, out=out, n_resamples=100):
        for _ in range(12):
            x, y = torch.rand(24, 4, generator=g) * 2, torch.randint(0, 3, (24,), generator=g)
            losses.ce_over_time(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    return out


def test_report_directory_holds_every_table_figure_and_page(run_dir, tmp_path):
    out = write_training_report(run_dir, tmp_path / "rep", max_theory_steps=2)
    names = {p.name for p in out.iterdir()}
    assert {"summary.json", "summary.csv", "theory.csv", "report.md", "index.html", "figures"} <= names
    figs = {p.name for p in (out / "figures").iterdir()}
    assert figs == {f"{n}.{ext}" for n in FIGURE_NAMES for ext in ("png", "svg")}
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(FIGURE_NAMES)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    md = (out / "report.md").read_text()
    assert "## Findings" in md and "Layer sn1 (steps 0 -> 9)" in md
    assert str(run_dir.parent) not in md + page + (out / "summary.json").read_text()   # no absolute paths
    s = pd.read_csv(out / "summary.csv")
    watched = gw.read_run(run_dir).summary
    assert sorted(s.train_step.unique()) == [0, 3, 6, 9]
    np.testing.assert_allclose(s.half_life, watched.half_life)           # measurements copied, not recomputed
    # theory only at the first and last recorded step (max_theory_steps=2)
    has = s.groupby("train_step").predicted_half_life.apply(lambda v: np.isfinite(v).all())
    assert has.to_dict() == {0: True, 3: False, 6: False, 9: True}


def test_theory_columns_follow_from_theory_csv(run_dir, tmp_path):
    out = write_training_report(run_dir, tmp_path / "rep", max_theory_steps=None)
    s, th = pd.read_csv(out / "summary.csv"), pd.read_csv(out / "theory.csv")
    assert sorted(th.train_step.unique()) == [0, 3, 6, 9]
    for (step, layer), d in th.groupby(["train_step", "layer"]):
        d = d.sort_values("lag")
        pred, meas = d.predicted_relative.to_numpy(), d.measured_relative.to_numpy()
        row = s[(s.train_step == step) & (s.layer == layer)].iloc[0]
        assert row.predicted_relative_1 == pytest.approx(pred[1])
        assert row.predicted_half_life == pytest.approx(stats.half_life(pred))
        assert row.theory_error == pytest.approx(stats.theory_error(pred, meas))
        # the theory's measured profile is the watched lags table of that step
        lg = gw.read_run(run_dir).tables["lags"]
        lg = lg[(lg.train_step == step) & (lg.layer == layer)].sort_values("lag")
        np.testing.assert_allclose(meas, lg.relative.to_numpy(), rtol=1e-9)


def test_report_is_atomic_and_refuses_to_overwrite(run_dir, tmp_path):
    out = tmp_path / "rep"
    write_training_report(run_dir, out, max_theory_steps=1)
    with pytest.raises(UsageError):
        write_training_report(run_dir, out, max_theory_steps=1)
    write_training_report(run_dir, out, force=True, max_theory_steps=1, title="again")
    assert "again" in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]          # no temporary litter


def test_not_a_run_and_a_run_without_steps(tmp_path):
    with pytest.raises(DataError, match="not a watched run"):
        write_training_report(tmp_path)
    net = models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(4,), T=2)
    gw.watch(net, every=5, out=tmp_path / "empty").close()
    with pytest.raises(DataError, match="no recorded step"):
        write_training_report(tmp_path / "empty")


def test_findings_state_changes_only_when_intervals_separate():
    rows = []
    for step, (h, lo, hi), (f, flo, fhi) in ((0, (0.5, 0.45, 0.55), (0.2, 0.18, 0.22)),
                                              (10, (0.9, 0.8, 1.0), (0.21, 0.19, 0.23))):
        rows.append({"train_step": step, "layer": "sn1", "layer_index": 0, "neuron": "lif", "max_lag": 4,
                     "half_life": h, "half_life_ci_low": lo, "half_life_ci_high": hi,
                     "firing_rate": f, "firing_rate_ci_low": flo, "firing_rate_ci_high": fhi,
                     "weight_temporal_projection": 0.1 * (1 + step), "weight_temporal_projection_ci_low": math.nan,
                     "weight_temporal_projection_ci_high": math.nan})
    (text,) = training_findings(pd.DataFrame(rows))
    assert "half-life rose: 0.50 [0.45, 0.55] -> 0.90 [0.80, 1.00]" in text
    assert "firing rate stayed within sampling noise: 20% [18%, 22%] -> 21% [19%, 23%]" in text
    assert "weight temporal projection 10% -> 110% (no interval)" in text


def test_relative_heatmap_cells_are_the_lags_table():
    lags = pd.DataFrame({"train_step": [0, 0, 0, 5, 5, 5, 5], "step": [0, 0, 0, 1, 1, 2, 2], "layer": "sn1",
                         "layer_index": 0, "lag": [0, 1, 2, 0, 1, 0, 1],
                         "relative": [1.0, 0.4, 0.1, 1.0, 0.3, 1.0, 0.5]})
    steps, ks, R = training_plots.relative_matrix(lags, "sn1")
    assert steps.tolist() == [0, 5] and ks.tolist() == [1, 2]
    np.testing.assert_allclose(R, [[0.4, 0.4], [0.1, np.nan]])        # step 5: mean of its two passes
    ax = training_plots.plot_relative_heatmap(lags)
    assert ax.collections and ax.get_title() == "sn1"


def test_plot_over_steps_draws_measurement_band_and_theory():
    s = pd.DataFrame({"train_step": [0, 5, 0, 5], "layer": ["a", "a", "b", "b"], "layer_index": [0, 0, 1, 1],
                      "neuron": ["lif", "lif", "clif", "clif"], "relative_1": [0.3, 0.2, 0.5, np.nan],
                      "relative_1_ci_low": [0.25, 0.15, 0.4, np.nan], "relative_1_ci_high": [0.35, 0.25, 0.6, np.nan],
                      "predicted_relative_1": [0.31, np.nan, 0.45, 0.44]})
    ax = training_plots.plot_over_steps(s, "relative_1", predicted="predicted_relative_1")
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert [len(ln.get_xdata()) for ln in solid] == [2, 1]
    assert [len(ln.get_xdata()) for ln in dashed] == [1, 2]
    assert len(ax.collections) == 2                                      # one band per layer
    assert "not drawn: 1 non-finite value" in [t.get_text() for t in ax.texts]


def test_cli_report_command(run_dir, tmp_path):
    app = typer.Typer()
    report_cmd.register(app)
    app.command("noop")(lambda: None)   # two commands: Typer keeps the command name
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r"), "--theory-steps", "1"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "sn2" in res.output and "half_life" in res.output
    assert (tmp_path / "r" / "index.html").exists()
    bad = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "not a watched run" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
