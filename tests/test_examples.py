"""The scripts in examples/ run as a user runs them (fresh interpreter, small settings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gradflow.watch as gw

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    r = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_the_examples_run_here_exist():
    # examples/own_network_*.py are run by tests/test_adapters_examples.py
    assert {p.name for p in EXAMPLES.glob("*.py")} >= {"lif_vs_clif.py", "watch_spikingjelly.py"}


def test_lif_vs_clif_walkthrough(tmp_path):
    out = _run("lif_vs_clif.py", "--T", "8", "--neurons", "1000", "--out", str(tmp_path / "fig"), cwd=tmp_path)
    rows = dict(re.findall(r"^\s*(\d)\s+(\d\.\d+\s+\d\.\d+)", out, flags=re.M))
    lif1, clif1 = (float(v) for v in rows["1"].split())
    assert 0 < lif1 < clif1 < 0.5                  # LIF loses more in one step; neither beats gamma = 0.5
    assert "LIF   half-life" in out and "CLIF  half-life" in out
    assert (tmp_path / "fig" / "lif_lags.png").stat().st_size > 1000


def test_watch_spikingjelly_example(tmp_path):
    pytest.importorskip("spikingjelly")
    out = _run("watch_spikingjelly.py", "--steps", "30", "--every", "10", "--out", "run", "--report", cwd=tmp_path)
    assert "3 steps recorded in run" in out
    run = gw.read_run(tmp_path / "run")
    assert sorted(run.summary.train_step.unique()) == [0, 10, 20]
    assert run.summary.layer.unique().tolist() == ["1", "3"]       # nn.Sequential names stay text
    assert (tmp_path / "run" / "report" / "index.html").exists()
