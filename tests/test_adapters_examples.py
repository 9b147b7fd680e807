"""The "Your own network" examples run as written (they assert their own exactness)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("own_network_*.py"))


def test_examples_exist():
    assert {p.stem for p in EXAMPLES} >= {"own_network_spikingjelly", "own_network_snntorch"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys):
    pytest.importorskip("snntorch" if "snntorch" in path.stem else "spikingjelly")
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()
