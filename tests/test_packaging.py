"""Packaging: every package is listed in pyproject.toml, the CLI installs under a non-generic name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_listed():
    cfg = _pyproject()["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gradflow").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"
    assert cfg["package-dir"]["gradflow_cli"] == "cli"
    assert "cli" not in listed  # never a generic top-level `cli` package


def test_console_script_and_extras():
    project = _pyproject()["project"]
    assert project["name"] == "snn-gradflow"
    assert project["scripts"]["gradflow"] == "gradflow_cli.main:main"
    deps = " ".join(project["dependencies"])
    for dep in ("torch>=2.2", "numpy", "scipy", "pandas", "matplotlib", "typer"):
        assert dep in deps
    dev = " ".join(project["optional-dependencies"]["dev"])
    assert "pytest" in dev and "spikingjelly>=2.0" in dev and "hypothesis" in dev


def test_demo_checkpoints_ship_as_package_data():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["gradflow"]
    assert "assets/*.pt" in data
    for name in ("demo_lif.pt", "demo_clif.pt"):
        path = ROOT / "gradflow" / "assets" / name
        assert path.is_file() and path.stat().st_size < 1_000_000
