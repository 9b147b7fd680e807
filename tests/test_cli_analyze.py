"""`gradflow analyze` end to end: report files, columns, embedded figures, loss, rendering, formats."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gradflow
from gradflow.io.checkpoints import load_checkpoint
from gradflow.io.checkpoints import demo_checkpoint_paths
from gradflow.recorder import LAGS_COLUMNS, PAIRS_COLUMNS, PER_STEP_COLUMNS, WEIGHTS_COLUMNS
from gradflow.tasks import make_task
from gradflow_cli.main import app

runner = CliRunner()
SPEC_FILES = ["summary.json", "per_step.csv", "pairs.csv", "lags.csv", "weights.csv", "theory.csv",
              "report.md", "index.html"]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    res = runner.invoke(app, ["analyze", "--out", str(out), "--batch-size", "16"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"gradflow {gradflow.__version__}"
    res = runner.invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0 and "--trust-checkpoint" in res.output


def test_demo_report_has_every_spec_file(demo_report):
    out, output = demo_report
    for name in SPEC_FILES:
        assert (out / name).is_file(), name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    svgs = sorted(p.name for p in (out / "figures").glob("*.svg"))
    assert len(pngs) >= 5 and [p[:-4] for p in pngs] == [s[:-4] for s in svgs]
    assert list((out / "tables").glob("*.tex")) and list((out / "tables").glob("*.md"))
    assert "Report written to" in output and "LIF" in output and "CLIF" in output
    assert not list(out.parent.glob(".report.tmp-*"))


def test_demo_report_columns(demo_report):
    out, _ = demo_report
    for name, cols in [("per_step", PER_STEP_COLUMNS), ("pairs", PAIRS_COLUMNS), ("lags", LAGS_COLUMNS),
                       ("weights", WEIGHTS_COLUMNS)]:
        df = pd.read_csv(out / f"{name}.csv")
        assert list(df.columns[: len(cols)]) == cols, name  # SPEC columns first, then extras
        assert df.columns[-1] == "run"
        assert set(df["run"]) == {"LIF", "CLIF"}
    theory = pd.read_csv(out / "theory.csv")
    for col in ["layer", "lag", "measured_relative", "predicted_relative", "relative_error"]:
        assert col in theory.columns


def test_index_html_embeds_its_figures(demo_report):
    out, _ = demo_report
    html = (out / "index.html").read_text()
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(imgs) >= 5 and all(src.startswith("data:image/png;base64,") for src in imgs)
    assert "http://" not in html and "https://" not in html.replace("https://www.w3.org", "")


def test_summary_loss_equals_direct_loss(demo_report):
    out, _ = demo_report
    summary = json.loads((out / "summary.json").read_text())
    for run, path in zip(["LIF", "CLIF"], demo_checkpoint_paths()):
        lm = load_checkpoint(path)
        cfg = dict(lm.meta["task"])
        task = make_task(cfg.pop("name"), **cfg)
        x, y = task.sample(16, seed=0, split="test")
        with torch.no_grad():
            direct = task.loss(lm.model(x), y).item()
        assert summary["runs"][run]["loss"] == pytest.approx(direct, rel=1e-6)
        assert summary["runs"][run]["accuracy"] is not None
        assert summary["runs"][run]["neuron"] == run.lower()
    assert summary["versions"]["gradflow"] == gradflow.__version__


def test_single_checkpoint_json_output(tmp_path):
    res = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r"),
                              "--json", "--batch-size", "8", "--max-lag", "2"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["neuron"] == "clif" and summary["max_lag"] == 2
    assert pd.read_csv(tmp_path / "r" / "lags.csv").lag.max() == 2
    # an existing report is refused without --force, replaced with it
    again = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r")])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r"),
                                 "--force", "--batch-size", "8", "--no-pairs", "-q"])
    assert forced.exit_code == 0, forced.output
    assert not (tmp_path / "r" / "pairs.csv").exists() or pd.read_csv(tmp_path / "r" / "pairs.csv").empty


def test_official_clif_checkpoint_is_analysed(tmp_path):
    torch.manual_seed(0)
    net = gradflow.models.build("spiking_resnet18", neuron="clif", num_classes=10, T=2)
    ckpt = tmp_path / "checkpoint_max.pth"
    torch.save({"net": net.state_dict(), "epoch": 199, "max_test_acc": 0.9541}, ckpt)
    res = runner.invoke(app, ["analyze", str(ckpt), "--arch", "spiking_resnet18", "--neuron", "clif", "--T", "2",
                              "--batch-size", "2", "--mode", "train", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["checkpoint_format"] == "clif" and summary["model"] == "spiking_resnet18"
    assert summary["neuron"] == "clif" and summary["T"] == 2 and summary["input_kind"] == "random"
    per = pd.read_csv(tmp_path / "r" / "per_step.csv")
    assert per.layer.nunique() == 17 and per.layer.iloc[0] == "layer1.0.relu1"
    assert "RANDOM" in (tmp_path / "r" / "report.md").read_text()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    try:  # the test set-up installs it when missing (as root, from Debian's packages)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, capture_output=True, timeout=600)
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"headless Chromium is not installed and could not be installed: {err}")
    return shutil.which("chromium") or pytest.skip("chromium not found after installing it")


def test_index_html_renders_in_headless_chromium(demo_report, tmp_path):
    chromium = _chromium()
    out, _ = demo_report
    shot = tmp_path / "shot.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400", "--virtual-time-budget=5000",
           f"--screenshot={shot}", (out / "index.html").as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000
    dom = subprocess.run(cmd[:-2] + ["--dump-dom", (out / "index.html").as_uri()], check=True, capture_output=True,
                         timeout=120, text=True).stdout
    # every figure decoded: the DOM keeps the embedded images
    assert dom.count("data:image/png;base64,") >= 5
    from matplotlib.image import imread

    img = imread(str(shot))
    assert img.shape[0] > 1000 and img[..., :3].std() > 0.05  # not a blank page
