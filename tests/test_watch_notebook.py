"""Notebook views of a recorder: the HTML summary and rec.plot(...) figures from the report's pieces."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import gradflow
from gradflow import losses, models, report
from gradflow.errors import UsageError
from gradflow.report.notebook import PLOT_KINDS, plot_recorder, recorder_html


def _recorded(pairs=True, weights=True):
    torch.manual_seed(0)
    net = models.build("mlp", neuron="clif", in_features=4, num_classes=3, widths=(8, 8), T=4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(32, 4, generator=g) * 2, torch.randint(0, 3, (32,), generator=g)
    with gradflow.record(net, pairs=pairs, weights=weights) as rec:
        losses.ce_over_time(net(x), y).backward()
    return rec


def test_html_summary_shows_the_report_numbers():
    rec = _recorded()
    page = recorder_html(rec, n_resamples=200)
    assert page.startswith("<p><b>gradflow Recorder</b>: 1 backward pass, 2 layers, T = 4, 32 samples")
    tables = {"per_step": rec.per_step(), "pairs": rec.pairs(), "lags": rec.lags(), "weights": rec.weights()}
    shown = report.display_summary(report.summarize(tables, rec.samples(), n_resamples=200))
    for cell in shown.iloc[0].tolist() + shown.iloc[1].tolist():   # every cell of the report's table
        assert str(cell) in page


def test_html_of_an_empty_recorder_does_not_raise():
    net = models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=2)
    with gradflow.record(net) as rec:
        net(torch.rand(2, 4))              # forward only
    assert "nothing recorded yet" in recorder_html(rec)


@pytest.mark.parametrize("kind", sorted(PLOT_KINDS))
def test_every_plot_kind_returns_a_figure_with_data(kind):
    fig = plot_recorder(_recorded(), kind)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert visible and any(ax.lines or ax.collections or ax.patches or ax.images for ax in visible)


def test_plot_errors_name_the_missing_recording():
    with pytest.raises(UsageError, match="Unknown plot kind"):
        plot_recorder(_recorded(), "spikes")
    with pytest.raises(UsageError, match="pairs=True"):
        plot_recorder(_recorded(pairs=False), "pairs")


@pytest.mark.skipif(not hasattr(gradflow.Recorder, "plot"), reason="the recorder does not carry the notebook methods yet")
def test_recorder_methods():
    rec = _recorded()
    assert rec._repr_html_().startswith("<p><b>gradflow Recorder</b>")
    assert isinstance(rec.plot("lags"), Figure)
