"""Hardening: every user mistake is one sentence and an exit code; reports are atomic; NaNs never crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import gradflow
from gradflow.io.checkpoints import demo_checkpoint_paths
from gradflow_cli.main import app

runner = CliRunner()
USAGE, DATA = 2, 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    demo = demo_checkpoint_paths()[0]
    (d / "empty.pt").write_bytes(b"")
    raw = demo.read_bytes()
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    (d / "image.pt").write_bytes(png)
    torch.manual_seed(0)
    snn5 = gradflow.models.build("snn5_noAP", neuron="lif", num_classes=10, T=2)
    torch.save(snn5.state_dict(), d / "snn5.pt")
    torch.save({"x": torch.randn(4, 3, 32, 32)}, d / "wrong_shape.pt")
    torch.save({"x": torch.randn(4, 29) + 1j * torch.randn(4, 29)}, d / "complex.pt")
    torch.save({"x": torch.rand(7, 4, 17), "y": torch.tensor([0, 1, 2, 9])}, d / "bad_labels.pt")
    (d / "x.pt").write_text("just some text\n" * 4)
    torch.save({"x": torch.rand(4, 29)}, d / "wrong_features.pt")
    torch.save({"x": torch.full((4, 17), float("nan"))}, d / "nan.pt")
    bad_cfg = torch.load(demo, weights_only=True)
    bad_cfg["gradflow"]["model"]["name"] = "hlp"
    torch.save(bad_cfg, d / "bad_config.pt")
    (d / "dir").mkdir()
    ro = d / "readonly"
    ro.mkdir()
    ro.chmod(0o500)
    return d, str(demo)


# (case, argv builder, expected exit code, expected message fragment)
CASES = [
    ("missing path", lambda d, demo: ["analyze", str(d / "nope.pt")], USAGE, "No such file"),
    ("a directory", lambda d, demo: ["analyze", str(d / "dir")], USAGE, "is a directory"),
    ("empty file", lambda d, demo: ["analyze", str(d / "empty.pt")], DATA, "is empty"),
    ("truncated file", lambda d, demo: ["analyze", str(d / "truncated.pt")], DATA, "not a readable PyTorch checkpoint"),
    ("PNG renamed", lambda d, demo: ["analyze", str(d / "image.pt")], DATA, "not a readable PyTorch checkpoint"),
    ("text file named x.pt", lambda d, demo: ["analyze", str(d / "x.pt")], DATA, "x.pt is not a readable PyTorch checkpoint"),
    ("saved config names no known arch", lambda d, demo: ["analyze", str(d / "bad_config.pt")], DATA,
     "architecture 'hlp' gradflow does not know"),
    ("input features do not fit", lambda d, demo: ["analyze", demo, "--input", str(d / "wrong_features.pt")], DATA,
     "built for 17 input features but the input has 29"),
    ("input holds NaN", lambda d, demo: ["analyze", demo, "--input", str(d / "nan.pt")], DATA, "NaN or infinite"),
    ("unknown architecture", lambda d, demo: ["analyze", str(d / "snn5.pt"), "--arch", "resnet9"], USAGE,
     "Unknown architecture 'resnet9'; choose one of mlp, snn5_noAP"),
    ("state_dict does not fit", lambda d, demo: ["analyze", str(d / "snn5.pt"), "--arch", "spiking_resnet18"], DATA,
     "does not fit spiking_resnet18"),
    ("wrong input shape", lambda d, demo: ["analyze", demo, "--input", str(d / "wrong_shape.pt")], DATA, "x has shape"),
    ("wrong input dtype", lambda d, demo: ["analyze", demo, "--input", str(d / "complex.pt")], DATA, "dtype"),
    ("labels out of range", lambda d, demo: ["analyze", demo, "--input", str(d / "bad_labels.pt")], DATA,
     "Labels must lie in 0..3"),
    ("T <= 0", lambda d, demo: ["analyze", demo, "--T", "0"], USAGE, "--T must be a positive integer"),
    ("tau <= 1 for LIF", lambda d, demo: ["analyze", demo, "--tau", "0.9"], USAGE, "tau must be a finite number above 1"),
    ("unknown surrogate", lambda d, demo: ["analyze", demo, "--surrogate", "relu"], USAGE, "Unknown surrogate 'relu'"),
    ("unknown neuron", lambda d, demo: ["analyze", str(d / "snn5.pt"), "--neuron", "izh"], USAGE, "Unknown neuron 'izh'"),
    ("output not writable", lambda d, demo: ["analyze", demo, "--out", str(d / "readonly" / "r" / "x")], USAGE,
     "Cannot write the report"),
    ("unknown --data", lambda d, demo: ["analyze", demo, "--data", "mnist:/tmp"], USAGE, "Unknown --data"),
    ("memory limit", lambda d, demo: ["analyze", demo, "--memory-limit", "0.000001"], USAGE, "--max-lag"),
]


@pytest.mark.parametrize("case,argv,code,fragment", CASES, ids=[c[0] for c in CASES])
def test_user_errors_are_one_sentence(files, tmp_path, case, argv, code, fragment):
    if case == "output not writable" and os.geteuid() == 0:
        # root ignores permission bits; use a path under a regular file instead
        (tmp_path / "file").write_text("x")
        args = ["analyze", files[1], "--out", str(tmp_path / "file" / "r")]
    else:
        args = argv(*files)
        if "--out" not in args:
            args += ["--out", str(tmp_path / "out")]
    res = runner.invoke(app, args + ["--batch-size", "4", "--samples", "8"])
    assert res.exit_code == code, (case, res.output)
    text = res.stderr.strip()
    assert fragment in text, (case, res.output)
    assert "Traceback" not in res.output
    assert len(text.splitlines()) == 1 and text.startswith("gradflow: error: "), text  # one sentence
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "created-by-pickle"
    payload = tmp_path / "evil.pt"
    script = textwrap.dedent(f"""
        import os, torch
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        torch.save({{"net": {{"w": torch.zeros(1)}}, "x": Evil()}}, "{payload}")
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    res = runner.invoke(app, ["analyze", str(payload), "--out", str(tmp_path / "r")])
    assert res.exit_code == DATA and "--trust-checkpoint" in res.output
    assert not marker.exists()
    assert not (tmp_path / "r").exists()


_SLOW_WRITER = """
import signal, sys, time
# a shell that starts a job in the background (&) hands it SIGINT ignored, and Python keeps that:
# restore Python's own handler, as an interactive terminal has it
signal.signal(signal.SIGINT, signal.default_int_handler)
import gradflow.report.page as page
orig = page.render_figure
def slow(*a, **k):
    out = orig(*a, **k)
    print("RENDERING", flush=True)
    time.sleep(60)
    return out
page.render_figure = slow
from gradflow_cli.main import main
sys.argv = ["gradflow", "analyze", "--out", sys.argv[1], "--batch-size", "4", "--samples", "8", "-q"]
main()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path, sig):
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        line = ""
        while time.time() < deadline and "RENDERING" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "RENDERING" in line, proc.stderr.read()
        assert list(tmp_path.glob(".report.tmp-*")), "the temporary directory should exist mid-write"
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert not out.exists()
    assert not list(tmp_path.glob(".report.tmp-*"))
    assert "Traceback" not in proc.stderr.read()


def test_nonfinite_gradients_are_counted_and_flagged(tmp_path):
    torch.manual_seed(0)
    net = gradflow.models.build("mlp", neuron="lif", in_features=6, widths=(8, 8), num_classes=3, T=4)
    with torch.no_grad():
        net.fc2.weight[0, 0] = float("inf")
    from gradflow.io.checkpoints import save_checkpoint

    ckpt = save_checkpoint(net, tmp_path / "nan.pt")
    torch.save({"x": torch.rand(8, 6) * 3, "y": torch.randint(0, 3, (8,))}, tmp_path / "in.pt")
    res = runner.invoke(app, ["analyze", str(ckpt), "--input", str(tmp_path / "in.pt"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "warning" in res.output and "non-finite" in res.output
    per = pd.read_csv(tmp_path / "r" / "per_step.csv")
    assert per.nonfinite.sum() > 0
    assert "non-finite" in (tmp_path / "r" / "report.md").read_text().lower()
    assert (tmp_path / "r" / "index.html").is_file()


def _spec_u_grads(neuron, x, e):
    """dL/du[t] captured independently with retain_grad."""
    store = {}

    def obs(mod, trace):
        for u in trace.u:
            u.retain_grad()
        store["u"] = trace.u

    h = neuron.register_step_observer(obs)
    try:
        (neuron(x) * e).sum().backward()
    finally:
        h.remove()
    return torch.stack([u.grad for u in store["u"]])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["lif", "clif", "plif"]),
    surrogate=st.sampled_from(["rectangle", "sigmoid", "atan", "triangle"]),
    T=st.integers(1, 7),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    tau=st.floats(1.05, 8.0),
    theta=st.floats(0.2, 2.0),
    hard=st.booleans(),
    detach=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_closure_and_never_raises(kind, surrogate, T, shape, tau, theta, hard, detach, seed):
    g = torch.Generator().manual_seed(seed)
    kw = dict(tau=tau, v_threshold=theta, surrogate=surrogate, detach_reset=detach)
    if hard and kind != "clif":
        kw["v_reset"] = 0.0
    neuron = gradflow.build_neuron(kind, **kw).double()
    x = (torch.randn(T, *shape, generator=g, dtype=torch.float64) * theta + 0.7 * theta).requires_grad_()
    e = torch.randn(T, *shape, generator=g, dtype=torch.float64)
    truth = _spec_u_grads(neuron, x, e)
    x.grad = None
    with gradflow.record(neuron, keep_tensors=True) as rec:
        (neuron(x) * e).sum().backward()
    kept = rec.tensors(kind)
    scale = max(truth.abs().max().item(), 1e-30)
    assert ((kept["spatial"] + kept["temporal"] - truth).abs().max().item()) / scale < 1e-9
    per, lags, pairs = rec.per_step(), rec.lags(), rec.pairs()
    assert len(per) == T and len(lags) == T and len(pairs) == T * (T + 1) // 2
    assert np.isfinite(per.grad_total_norm).all()
