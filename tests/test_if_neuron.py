"""IF neurons (no leak, tau = inf, gamma = 1) through the whole pipeline: record, theory, report."""

from __future__ import annotations

import math

import numpy as np
import torch

import gradflow
from gradflow import schema


def test_if_is_a_built_in_kind_and_the_theory_handles_no_leak(tmp_path):
    assert "if" in schema.NEURON_KINDS
    torch.manual_seed(0)
    net = gradflow.models.build("mlp", neuron="if", in_features=6, num_classes=3, widths=(8,), T=4)
    assert net.sn1.kind == "if" and math.isinf(net.sn1.params.tau)
    torch.save({"x": torch.rand(64, 6), "y": torch.randint(0, 3, (64,))}, tmp_path / "x.pt")
    res = gradflow.analyze(net, input_file=tmp_path / "x.pt", samples=64)
    assert res.warnings == []  # the theory compared it (no "theory comparison skipped")
    theory = res.tables["theory"]
    assert set(theory["model"]) == {"window"}
    # no leak: relative_1 is the P^2-weighted survival of the reset alone, gamma = 1 in the prediction
    row = res.summary.iloc[0]
    assert row["neuron"] == "if"
    np.testing.assert_allclose(row["relative_1"], math.sqrt(row["one_step_survival"]), rtol=1e-6)  # float32 model
    out = res.write(tmp_path / "report")
    assert (out / "index.html").is_file()


def test_the_cli_trains_and_analyses_an_if_network(tmp_path):
    """--tau keeps its default 2.0 on the command line; an IF network ignores it (no leak)."""
    from typer.testing import CliRunner

    from gradflow_cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["train", "--neuron", "if", "--epochs", "1", "--n-train", "64", "--n-test", "32",
                              "--widths", "8", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["analyze", str(tmp_path / "run" / "model.pt"), "--samples", "32",
                              "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "summary.csv").is_file()
