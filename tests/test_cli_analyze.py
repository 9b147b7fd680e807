"""The analysis pipeline, `gradflow.analyze` -> `Analysis.write`, and `gradflow analyze` end to end: report
files, columns, embedded figures, loss, sample counts, batches, rendering, formats."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gradflow
from gradflow.analysis import AnalysisConfig, analyze, estimate_memory, retained_memory
from gradflow.errors import UsageError
from gradflow.io.checkpoints import demo_checkpoint_paths, load_checkpoint
from gradflow.recorder import sample_bytes
from gradflow.schema import LAGS_COLUMNS, PAIRS_COLUMNS, PER_STEP_COLUMNS, WEIGHTS_COLUMNS
from gradflow.tasks import make_task
from gradflow_cli.main import app

runner = CliRunner()
REPORT_FILES = ["summary.json", "per_step.csv", "pairs.csv", "lags.csv", "weights.csv", "theory.csv",
              "report.md", "index.html"]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    """The quick start, `gradflow analyze` with every default (1024 samples per demo checkpoint)."""
    out = tmp_path_factory.mktemp("rep") / "report"
    res = runner.invoke(app, ["analyze", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"gradflow {gradflow.__version__}"
    res = runner.invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0 and "--trust-checkpoint" in res.output


def test_demo_report_has_every_spec_file(demo_report):
    out, output = demo_report
    for name in REPORT_FILES:
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
        assert list(df.columns[: len(cols)]) == list(cols), name  # documented columns first, then extras
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


def _direct_loss(lm, sizes):
    """The checkpoint task's loss over test batches of ``sizes`` samples, drawn as the task source draws
    them (batch b from seed 1000 b, the last one cut to its size), weighted by batch size."""
    cfg = dict(lm.meta["task"])
    task = make_task(cfg.pop("name"), **cfg)
    losses = []
    for b, n in enumerate(sizes):
        x, y = task.sample(sizes[0], seed=1000 * b, split="test")
        with torch.no_grad():
            losses.append(task.loss(lm.model(x[:, :n]), y[:n]).item())
    return float(np.average(losses, weights=sizes))


def test_summary_loss_equals_direct_loss(demo_report):
    out, _ = demo_report
    summary = json.loads((out / "summary.json").read_text())
    for run, path in zip(["LIF", "CLIF"], demo_checkpoint_paths()):
        meta = summary["runs"][run]
        # the default: at least 1024 samples, in several backward passes
        assert meta["samples"] == 1024 and meta["batches"] == 4 and meta["batch_size"] == 256
        assert len(meta["loss_per_batch"]) == 4
        assert meta["loss"] == pytest.approx(_direct_loss(load_checkpoint(path), [256] * 4), rel=1e-6)
        assert meta["accuracy"] is not None and meta["neuron"] == run.lower()
        # no absolute path of the machine that wrote the report
        assert meta["checkpoint"] == f"gradflow/assets/demo_{run.lower()}.pt"
    assert summary["versions"]["gradflow"] == gradflow.__version__
    assert str(demo_checkpoint_paths()[0].parent) not in (out / "summary.json").read_text()


def test_last_batch_takes_the_remainder_and_progress_counts_samples():
    lm = load_checkpoint(demo_checkpoint_paths()[1])
    seen = []
    res = gradflow.analyze(lm, samples=40, batch_size=16, progress=lambda run, done, total: seen.append((done, total)))
    assert seen == [(16, 40), (32, 40), (40, 40)]
    assert res.meta["samples"] == 40 and res.meta["batches"] == 3 and res.meta["batch_size"] == 16
    assert res.meta["loss"] == pytest.approx(_direct_loss(lm, [16, 16, 8]), rel=1e-6)
    assert res.tables["per_step"]["step"].nunique() == 3  # one recorded backward pass per batch


def test_automatic_batch_size_fits_the_memory_limit():
    net = gradflow.models.build("mlp", neuron="lif", in_features=6, widths=(16,), num_classes=3, T=4)
    one = estimate_memory(net, torch.randn(1, 6), pairs=True, max_lag=None)
    assert estimate_memory(net, torch.randn(8, 6), pairs=True, max_lag=None) == pytest.approx(8 * one)
    kept = retained_memory(net, torch.randn(1, 6), 10, pairs=True, max_lag=None)
    assert kept == 10 * 1 * sample_bytes(4, None, True, transport=True)  # per sample and layer, all passes
    limit = (kept + 5.5 * one) / 2**30  # room for 5 samples per pass: the largest power of two is 4
    res = analyze(net, samples=10, memory_limit_gb=limit)
    assert res.meta["batch_size"] == 4 and res.meta["batches"] == 3 and res.meta["samples"] == 10
    assert analyze(net, samples=10).meta["batch_size"] == 10  # no limit in reach: one pass
    with pytest.raises(UsageError, match="memory_limit_gb") as err:
        analyze(net, samples=10, batch_size=8, memory_limit_gb=limit)
    assert err.value.arguments == ("max_lag", "batch_size", "samples", "memory_limit_gb")


def test_accuracy_only_where_labels_are_known(tmp_path):
    net = gradflow.models.build("mlp", neuron="lif", in_features=6, widths=(8, 8), num_classes=3, T=3)
    torch.save({"x": torch.rand(8, 6) * 3}, tmp_path / "x.pt")  # no labels: the model's own predictions
    res = analyze(net, input_file=tmp_path / "x.pt", samples=8)
    assert res.meta["accuracy"] is None and res.meta["n_layers"] == 2 and res.meta["samples"] == 8
    torch.save({"x": torch.rand(8, 6) * 3, "y": torch.zeros(8, dtype=torch.long)}, tmp_path / "xy.pt")
    labelled = analyze(net, input_file=tmp_path / "xy.pt", samples=8).meta["accuracy"]
    assert labelled is not None and 0 <= labelled <= 1
    assert analyze(net, samples=8).meta["accuracy"] is None  # random input, random labels


def test_analysis_leaves_the_model_as_it_found_it():
    net = gradflow.models.build("mlp", neuron="clif", in_features=6, widths=(8,), num_classes=3, T=3)
    net.train()
    grads = [torch.full_like(p, 0.5) for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        p.grad = g
    analyze(net, samples=8, mode="eval")
    assert net.training and all(p.grad is g for p, g in zip(net.parameters(), grads))


def test_library_pipeline_writes_what_the_command_writes(tmp_path):
    loaded = [load_checkpoint(p) for p in demo_checkpoint_paths()]
    res = gradflow.analyze(loaded, samples=32, resamples=50)
    assert set(res.tables["per_step"]["run"]) == {"LIF", "CLIF"} and res.meta["samples"] == 32
    assert list(res.summary.columns[:2]) == ["run", "layer"] and len(res.summary) == 4
    assert res.findings() and res.title == "gradflow: LIF (mlp) vs CLIF (mlp)"
    path = res.write(tmp_path / "r")
    for name in REPORT_FILES:
        assert (path / name).is_file(), name
    written = pd.read_csv(path / "summary.csv")
    assert written["layer"].tolist() == res.summary["layer"].tolist()


@pytest.mark.parametrize("options, argument", [
    (dict(samples=0), "samples"), (dict(batch_size=-2), "batch_size"), (dict(mode="test"), "mode"),
    (dict(max_lag=-1), "max_lag"), (dict(device="gpu9"), "device"), (dict(memory_limit_gb=0), "memory_limit_gb"),
])
def test_settings_errors_name_the_argument(options, argument):
    with pytest.raises(UsageError) as err:
        AnalysisConfig(**options)
    assert err.value.arguments == (argument,) and str(err.value).startswith(argument)
    with pytest.raises(UsageError, match="Unknown analysis option 'sample'"):
        analyze(torch.nn.Linear(2, 2), sample=3)


def test_single_checkpoint_json_output(tmp_path):
    res = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r"),
                              "--json", "--samples", "16", "--batch-size", "8", "--max-lag", "2"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # warnings, if any, go to stderr
    assert summary["neuron"] == "clif" and summary["max_lag"] == 2 and summary["samples"] == 16
    assert pd.read_csv(tmp_path / "r" / "lags.csv").lag.max() == 2
    # an existing report is refused without --force, replaced with it
    again = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r")])
    assert again.exit_code == 2 and "--force" in again.output
    forced = runner.invoke(app, ["analyze", str(demo_checkpoint_paths()[1]), "--out", str(tmp_path / "r"),
                                 "--force", "--samples", "8", "--no-pairs", "-q"])
    assert forced.exit_code == 0, forced.output
    assert not (tmp_path / "r" / "pairs.csv").exists() or pd.read_csv(tmp_path / "r" / "pairs.csv").empty


def test_official_clif_checkpoint_is_analysed(tmp_path):
    torch.manual_seed(0)
    net = gradflow.models.build("spiking_resnet18", neuron="clif", num_classes=10, T=2)
    ckpt = tmp_path / "checkpoint_max.pth"
    torch.save({"net": net.state_dict(), "epoch": 199, "max_test_acc": 0.9541}, ckpt)
    res = runner.invoke(app, ["analyze", str(ckpt), "--arch", "spiking_resnet18", "--neuron", "clif", "--T", "2",
                              "--samples", "2", "--mode", "train", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["checkpoint_format"] == "clif" and summary["model"] == "spiking_resnet18"
    assert summary["neuron"] == "clif" and summary["T"] == 2 and summary["input_kind"] == "random"
    per = pd.read_csv(tmp_path / "r" / "per_step.csv")
    assert per.layer.nunique() == 17 and per.layer.iloc[0] == "layer1.0.relu1"
    assert "RANDOM" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.browser
def test_index_html_renders_in_headless_chromium(demo_report, tmp_path, chromium):
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


USER_NET = '''
import torch
import gradflow


class Net(torch.nn.Module):
    """A user's network: gradflow neurons in their own module, returning (spikes, logits)."""

    def __init__(self, hidden=8, T=4):
        super().__init__()
        self.T = T
        self.fc1 = torch.nn.Linear(6, hidden)
        self.sn = gradflow.LIF()
        self.fc2 = torch.nn.Linear(hidden, 3)

    def forward(self, x):
        s = self.sn(self.fc1(x).unsqueeze(0).repeat(self.T, 1, 1))
        return s, self.fc2(s)
'''


def test_own_network_with_model_spec(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(USER_NET)
    monkeypatch.chdir(tmp_path)
    # load this file under a name of its own: another test may have imported a different `net` module
    spec = importlib.util.spec_from_file_location("_user_net_for_model_spec", tmp_path / "net.py")
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    Net = user.Net
    from gradflow.losses import ce_over_time

    torch.manual_seed(0)
    net = Net(hidden=5, T=3)
    torch.save(net.state_dict(), "ckpt.pt")
    x, y = torch.rand(20, 6) * 3, torch.randint(0, 3, (20,))
    torch.save({"x": x, "y": y}, "in.pt")
    argv = ["analyze", "ckpt.pt", "--model", "net.py:Net", "--model-arg", "hidden=5", "--model-arg", "T=3",
            "--input", "in.pt", "--samples", "20", "--batch-size", "20", "--out", "r", "-q"]
    # the logits are the second element of the output: gradflow asks which element to use
    res = runner.invoke(app, argv)
    assert res.exit_code == 2 and "--output-index" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, argv + ["--output-index", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["model_code"] == "net.py:Net(hidden=5, T=3)" and summary["samples"] == 20
    assert "element 1 of a tuple of 2" in summary["logits"] and summary["neuron"] == "lif"
    with torch.no_grad():
        direct = ce_over_time(net(x)[1], y).item()  # the user's own weights, fed as their code expects
    assert summary["loss"] == pytest.approx(direct, rel=1e-6)
    assert pd.read_csv(tmp_path / "r" / "per_step.csv").layer.unique().tolist() == ["sn"]


def test_window_model_inputs_are_summed_over_samples():
    from gradflow.analysis.recording import _summed

    per_sample = {"sn1": {"count": np.ones((5, 3)), "pair": np.arange(5 * 3 * 2 * 2).reshape(5, 3, 2, 2),
                          "zone_edges": np.array([0.5, 1.5])}}  # Recorder.transport_inputs(): a sample axis
    got = _summed(per_sample)["sn1"]
    assert got["count"].tolist() == [5.0, 5.0, 5.0] and got["zone_edges"].tolist() == [0.5, 1.5]
    assert got["pair"].shape == (3, 2, 2) and got["pair"].sum() == np.arange(60).sum()
    assert _summed({}) is None and _summed(None) is None  # nothing recorded: the theory falls back and says so
