"""Packaging, checked by behaviour: what a wheel built from this tree installs, whether the installed
console script runs, and the import promises of the public package (each in a fresh interpreter, with
the real package, because a test process has long since imported torch).

The wheel is built from a copy of the sources (``pyproject.toml``, ``README.md``, ``gradflow/``,
``cli/``) with pip and the installed setuptools, offline, so that the shared working tree gets no
``build/`` or ``*.egg-info`` directories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gradflow

ROOT = Path(__file__).resolve().parents[1]
_CACHE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")


def _env(**extra):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def _run(args, cwd, env, timeout=600):
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr}"
    return res


def _python(code: str, cwd: Path):
    """Run ``code`` in a fresh interpreter that imports gradflow from this checkout."""
    return _run([sys.executable, "-c", code], cwd, _env(PYTHONPATH=str(ROOT)), timeout=300)


def _source_files(src: Path, folder: str):
    """Relative paths of the files under ``src/folder`` (no caches)."""
    base = src / folder
    return sorted(
        p.relative_to(base).as_posix() for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """``(wheel, src)``: a wheel built (offline, no build isolation) from ``src``, a copy of this tree
    (other work may change the tree meanwhile; the copy is what was built)."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("gradflow", "cli"):
        shutil.copytree(ROOT / name, src / name, ignore=_CACHE)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], tmp, _env())
    (built,) = dist.glob("*.whl")
    return built, src


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed with pip into a folder of its own (``--target``, no dependencies)."""
    target = tmp_path_factory.mktemp("site")
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target),
          str(wheel[0])], target, _env())
    return target


def test_wheel_ships_every_file_of_the_library_and_the_cli(wheel):
    built, src = wheel
    names = set(zipfile.ZipFile(built).namelist())
    lib, cli = _source_files(src, "gradflow"), _source_files(src, "cli")
    assert "__init__.py" in lib and "main.py" in cli
    missing = [f"gradflow/{f}" for f in lib if f"gradflow/{f}" not in names]
    missing += [f"cli/{f}" for f in cli if f"gradflow_cli/{f}" not in names]
    assert not missing, ("files the wheel does not install (a package missing from pyproject.toml "
                         f"[tool.setuptools] packages, or package data): {missing}")
    assert "gradflow/assets/demo_lif.pt" in names and "gradflow/assets/demo_clif.pt" in names
    # the CLI installs as gradflow_cli, never as a generic top-level `cli` package
    assert not any(n.startswith("cli/") for n in names)


def test_installed_wheel_runs_its_console_script(installed):
    script = installed / "bin" / ("gradflow.exe" if os.name == "nt" else "gradflow")
    assert script.is_file()
    env = _env(PYTHONPATH=str(installed))
    res = _run([str(script), "--version"], installed.parent, env, timeout=300)
    assert res.stdout.strip() == f"gradflow {gradflow.__version__}"
    # ... and that was the installed copy, not this checkout
    where = _run([sys.executable, "-c", "import gradflow, gradflow_cli; print(gradflow.__file__); "
                  "print(gradflow_cli.__file__)"], installed.parent, env).stdout.split()
    assert all(Path(p).resolve().is_relative_to(installed.resolve()) for p in where), where


def test_installed_demo_checkpoints_are_found(installed):
    code = ("from gradflow.io.checkpoints import demo_checkpoint_paths; "
            "print('\\n'.join(str(p) for p in demo_checkpoint_paths()))")
    out = _run([sys.executable, "-c", code], installed.parent, _env(PYTHONPATH=str(installed))).stdout.split()
    assert [Path(p).name for p in out] == ["demo_lif.pt", "demo_clif.pt"]
    assert all(Path(p).resolve().is_relative_to(installed.resolve()) for p in out)


def test_console_script_of_this_environment_resolves(tmp_path):
    from importlib import metadata

    try:
        metadata.distribution("snn-gradflow")
    except metadata.PackageNotFoundError:
        pytest.skip("snn-gradflow is not installed in this environment (pip install -e .)")
    (ep,) = metadata.entry_points(group="console_scripts", name="gradflow")
    assert callable(ep.load())
    code = ("import sys; from importlib.metadata import entry_points; "
            "(ep,) = entry_points(group='console_scripts', name='gradflow'); "
            "sys.argv = ['gradflow', '--version']; ep.load()()")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"gradflow {gradflow.__version__}"


@pytest.mark.parametrize("statement", [
    "import gradflow",
    "import gradflow.theory",
    "import gradflow.schema, gradflow.stats",
    "import gradflow; dir(gradflow); gradflow.theory.gamma_of; gradflow.stats.half_life; gradflow.schema.SURROGATES",
])
def test_torch_free_imports(statement, tmp_path):
    code = (f"import sys\n{statement}\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "assert not loaded, f'torch was imported: {loaded[:5]}'\n")
    _python(code, tmp_path)


@pytest.mark.parametrize("statement", [
    "import gradflow, gradflow.convert",
    "from gradflow import convert; import gradflow.adapters, gradflow.convert; import gradflow",
])
def test_convert_stays_callable_whatever_is_imported(statement, tmp_path):
    code = (f"{statement}\n"
            "import torch\n"
            "assert callable(gradflow.convert)\n"
            "net = torch.nn.Sequential(torch.nn.Linear(3, 4), gradflow.LIF())\n"
            "assert gradflow.convert(net) is net\n")
    _python(code, tmp_path)


def test_dir_lists_the_public_api_before_anything_is_imported(tmp_path):
    code = ("import gradflow\n"
            "names = set(dir(gradflow))\n"
            "want = {'record', 'models', 'convert', 'analyze', 'load_checkpoint'}\n"
            "assert want <= names, sorted(want - names)\n"
            "assert want <= set(gradflow.__all__), sorted(want - set(gradflow.__all__))\n")
    _python(code, tmp_path)


def test_every_public_name_resolves():
    names = [n for n in gradflow.__all__ if not n.startswith("_")]
    assert len(names) >= 5
    unresolved = []
    for name in names:
        try:
            getattr(gradflow, name)
        except Exception as err:  # noqa: BLE001 - report all of them at once
            unresolved.append(f"{name}: {type(err).__name__}: {err}")
    assert not unresolved, unresolved
    assert set(names) <= set(dir(gradflow))
