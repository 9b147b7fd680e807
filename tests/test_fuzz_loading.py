"""Fuzzed loading: whatever bytes a file holds, the checkpoint and input loaders either load it or stop
with one DataError sentence (exit code 1), never a traceback.

Generated files (hypothesis): random bytes and text; byte-level mutations (flips, truncations,
deletions, insertions) of valid gradflow, CLIF-style, SpikingJelly-style, legacy (non-zip) torch and
input files; zip-level corruptions (members dropped, replaced, renamed, compressed); and valid torch
pickles of the wrong thing (arbitrary nested values, containers with wrong entries, state dicts with
wrong keys, shapes and dtypes, configurations with wrong values, inputs of wrong dtype or shape).
Every file goes through both loaders: :func:`load_checkpoint` and :func:`resolve_input` (which calls
:func:`load_input_file`). A few go through ``gradflow analyze`` with typer's CliRunner.

The example counts (``N_*`` below) add up to well over 500 files per run.
"""

from __future__ import annotations

import argparse
import io
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import gradflow
from gradflow.errors import DataError, GradflowError
from gradflow.io.checkpoints import LoadedModel, load_checkpoint
from gradflow.io.inputs import load_input_file, resolve_input

N_BYTES, N_MUTATED, N_ZIP, N_OBJECTS, N_STATE_DICTS, N_CONFIGS, N_INPUTS, N_CLI = 80, 150, 60, 100, 60, 60, 50, 8


def fuzz(n: int) -> settings:
    """Hypothesis settings for ``n`` generated files: no deadline, no example database in the tree."""
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


COUNT = {"files": 0, "loaded": 0, "refused": 0}


def _model():
    torch.manual_seed(0)
    return gradflow.models.build("mlp", neuron="lif", in_features=17, widths=(6,), num_classes=4, T=5)


MODEL = _model()
SD = MODEL.state_dict()


def _saved(obj, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


SEEDS = {
    "gradflow.pt": _saved({"gradflow": {**MODEL.config, "arch": "mlp", "model": MODEL.config,
                                        "task": {"name": "delay", "delay": 2}, "epoch": 3}, "state_dict": SD}),
    "clif.pt": _saved({"net": SD, "epoch": 3, "max_test_acc": 0.5}),
    "sj.pt": _saved({"model": SD, "args": argparse.Namespace(T=5, tau=2.0, model="mlp")}),
    "legacy.pt": _saved(SD, _use_new_zipfile_serialization=False),
    "input.pt": _saved({"x": torch.randn(4, 17), "y": torch.tensor([0, 1, 3, 0])}),
    "input.npz": _npz(x=np.random.default_rng(0).normal(size=(4, 17)).astype(np.float32), y=np.array([0, 1, 3, 0])),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    yield d
    print(f"\nfuzz: {COUNT['files']} files, {COUNT['loaded']} loaded, {COUNT['refused']} refused in one sentence")


def _one_sentence(err: GradflowError) -> None:
    text = str(err)
    assert text and "\n" not in text and text.rstrip().endswith("."), repr(text)
    assert isinstance(err, DataError) and err.exit_code == 1, (type(err).__name__, text)


def _check_file(path: Path) -> None:
    """Both loaders on ``path``: a result that makes sense, or one DataError sentence."""
    COUNT["files"] += 1
    try:
        lm = load_checkpoint(path)
    except GradflowError as err:
        _one_sentence(err)
        COUNT["refused"] += 1
    else:
        assert isinstance(lm, LoadedModel) and not lm.model.training
        assert isinstance(lm.meta, dict) and all(isinstance(n, str) for n in lm.notes)
        COUNT["loaded"] += 1
    try:
        src = resolve_input(MODEL, input_file=str(path))
    except GradflowError as err:
        _one_sentence(err)
    else:
        (x, y), = list(src.batches(64, 1, 0))
        assert x.is_floating_point() and bool(torch.isfinite(x).all()) and x.shape[-1] == 17
        assert y is None or (y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < 4)


def _write(workdir: Path, name: str, data: bytes) -> Path:
    path = workdir / name
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------- raw bytes and text

@fuzz(N_BYTES)
@given(data=st.one_of(st.binary(min_size=1, max_size=3000), st.text(min_size=1).map(str.encode),
                      st.sampled_from([b"PK\x03\x04", b"\x80\x02}q\x00.", b"\x93NUMPY\x01\x00", b"hello\n"])),
       suffix=st.sampled_from([".pt", ".npz", ".pth", ""]))
def test_random_bytes_and_text(workdir, data, suffix):
    _check_file(_write(workdir, "bytes" + suffix, data))


def test_the_issue_example_text_file_named_pt(workdir):
    path = _write(workdir, "x.pt", b"this is not a checkpoint\n" * 5)
    with pytest.raises(DataError, match=r"x\.pt is not a readable PyTorch checkpoint") as err:
        load_checkpoint(path)
    _one_sentence(err.value)


# ----------------------------------------------------------------------------- byte-level mutations

@st.composite
def mutations(draw):
    name = draw(st.sampled_from(sorted(SEEDS)))
    raw = bytearray(SEEDS[name])
    n_ops = draw(st.integers(1, 4))
    for _ in range(n_ops):
        n = len(raw)
        if n == 0:
            break
        # half of the positions in the first 2 KiB or the last 1 KiB (headers, pickle, zip directory)
        pos = draw(st.one_of(st.integers(0, min(n, 2048) - 1), st.integers(max(0, n - 1024), n - 1),
                             st.integers(0, n - 1)))
        op = draw(st.sampled_from(["flip", "set", "truncate", "delete", "insert", "duplicate"]))
        if op == "flip":
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            raw[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[max(pos, 1):]
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 64))]
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            raw[pos:pos] = raw[pos:pos + draw(st.integers(1, 256))]
    return name, bytes(raw) or b"\x00"


@fuzz(N_MUTATED)
@given(case=mutations())
def test_mutated_valid_files(workdir, case):
    name, data = case
    _check_file(_write(workdir, "mutated-" + name, data))


# ----------------------------------------------------------------------------- zip-level corruption

@st.composite
def zip_corruptions(draw, names=("gradflow.pt", "clif.pt", "input.pt", "input.npz"),
                    ops=("drop", "replace", "truncate", "rename", "compress", "duplicate")):
    name = draw(st.sampled_from(names))
    src = zipfile.ZipFile(io.BytesIO(SEEDS[name]))
    members = [(i, src.read(i)) for i in src.infolist()]
    victim = draw(st.sampled_from([k for k, (i, _) in enumerate(members) if i.filename.endswith(".pkl")]
                                  if "pickle" in ops else range(len(members))))
    op = draw(st.sampled_from([o for o in ops if o != "pickle"]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for k, (info, content) in enumerate(members):
            arcname = info.filename
            kind = zipfile.ZIP_STORED
            if k == victim:
                if op == "drop":
                    continue
                if op == "replace":
                    content = draw(st.binary(max_size=200))
                elif op == "truncate":
                    content = content[: draw(st.integers(0, max(len(content) - 1, 0)))]
                elif op == "rename":
                    arcname = arcname + draw(st.sampled_from(["x", "/y", ".bak"]))
                elif op == "compress":
                    kind = zipfile.ZIP_DEFLATED
                else:
                    z.writestr(arcname + "2", content)
            z.writestr(zipfile.ZipInfo(arcname), content, compress_type=kind)
    return name, out.getvalue()


@fuzz(N_ZIP)
@given(case=zip_corruptions())
def test_corrupted_zip_archives(workdir, case):
    name, data = case
    _check_file(_write(workdir, "zip-" + name, data))


# ----------------------------------------------------------------------------- valid pickles, wrong contents

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
          torch.bool, torch.complex64]


@st.composite
def tensors(draw, max_dims=4):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 6), max_size=max_dims))
    fill = draw(st.sampled_from(["normal", "nan", "inf", "huge", "zero"]))
    t = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(draw(st.integers(0, 99))))
    if fill != "normal" and t.numel():
        t.view(-1)[0] = {"nan": math.nan, "inf": math.inf, "huge": 1e30, "zero": 0.0}[fill]
    if dtype == torch.complex64:
        return torch.complex(t, t)
    if not dtype.is_floating_point:
        t = torch.nan_to_num(t, nan=0.0, posinf=7.0, neginf=-7.0).clamp(-100, 100)
    return t.to(dtype)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20))
leaves = st.one_of(scalars, tensors(), st.builds(lambda v: np.asarray(v, dtype=np.float64),
                                                 st.lists(st.floats(allow_nan=False), max_size=4)))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4)),
    max_leaves=12,
)
KEYS = ["gradflow", "state_dict", "net", "model", "args", "x", "y", "epoch", "model_state_dict", "name"]


@fuzz(N_OBJECTS)
@given(obj=st.one_of(
    values,
    st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=4),
    st.builds(lambda v: {"model": SD, "args": v}, st.one_of(values, st.builds(
        argparse.Namespace, T=values, tau=values, model=values, arch=values, neuron=values))),
    st.builds(lambda v: {"gradflow": v, "state_dict": SD}, values),
))
def test_pickles_of_the_wrong_type(workdir, obj):
    _check_file(_write(workdir, "object.pt", _saved(obj)))


@st.composite
def bad_state_dicts(draw):
    sd = dict(SD)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(sd))) if sd else None
        op = draw(st.sampled_from(["drop", "rename", "dtype", "shape", "extra", "replace"]))
        if key is None:
            break
        if op == "drop":
            sd.pop(key)
        elif op == "rename":
            sd[key + draw(st.sampled_from(["_", ".x", "s"]))] = sd.pop(key)
        elif op == "dtype" and isinstance(sd[key], torch.Tensor):
            with warnings.catch_warnings():  # complex -> real casts warn
                warnings.simplefilter("ignore")
                sd[key] = sd[key].to(draw(st.sampled_from(DTYPES)))
        elif op in ("shape", "dtype"):
            sd[key] = draw(tensors())
        elif op == "extra":
            sd[draw(st.text(min_size=1, max_size=10))] = draw(tensors())
        else:
            sd[key] = draw(values)
    wrap = draw(st.sampled_from(["bare", "net", "model", "state_dict", "gradflow", "module."]))
    if wrap == "bare":
        return sd
    if wrap == "module.":
        return {"module." + k: v for k, v in sd.items()}
    if wrap == "gradflow":
        return {"gradflow": {"model": MODEL.config}, "state_dict": sd}
    return {wrap: sd}


@fuzz(N_STATE_DICTS)
@given(obj=bad_state_dicts())
def test_state_dicts_with_wrong_keys_shapes_and_dtypes(workdir, obj):
    _check_file(_write(workdir, "statedict.pt", _saved(obj)))


CONFIG_VALUES = st.one_of(values, st.integers(-3, 10), st.sampled_from([2**31, 10**12, 0, -1, 1.5, "lif", "clif",
                                                                         "plif", "rectangle", "mlp", "snn5_noAP"]))


@fuzz(N_CONFIGS)
@given(changes=st.dictionaries(st.sampled_from(sorted(MODEL.config) + ["arch", "model", "task", "init_tau", "v_reset",
                                                                          "surrogate", "alpha", "decay_input"]),
                               CONFIG_VALUES, min_size=1, max_size=3),
       nested=st.booleans())
def test_gradflow_configs_with_wrong_values(workdir, changes, nested):
    entry = dict(MODEL.config, arch="mlp")
    if nested:
        entry["model"] = dict(MODEL.config)
        entry["model"].update({k: v for k, v in changes.items() if k != "model"})
    entry.update(changes)
    _check_file(_write(workdir, "config.pt", _saved({"gradflow": entry, "state_dict": SD})))


@fuzz(N_INPUTS)
@given(x=st.one_of(tensors(max_dims=5), values), y=st.one_of(st.none(), tensors(max_dims=2), values),
       as_npz=st.booleans())
def test_inputs_of_wrong_dtype_or_shape(workdir, x, y, as_npz):
    if as_npz and isinstance(x, torch.Tensor) and x.dtype != torch.bfloat16:
        arrays = {"x": x.numpy()}
        if isinstance(y, torch.Tensor) and y.dtype != torch.bfloat16:
            arrays["y"] = y.numpy()
        path = _write(workdir, "input.npz", _npz(**arrays))
    else:
        path = _write(workdir, "input.pt", _saved({"x": x} if y is None else {"x": x, "y": y}))
    _check_file(path)


def test_good_seeds_load(workdir):
    """The seeds themselves are usable (so the mutations above start from real files)."""
    for name in ("gradflow.pt", "clif.pt", "sj.pt", "legacy.pt"):
        lm = load_checkpoint(_write(workdir, name, SEEDS[name]), T=5)
        assert torch.equal(lm.model.state_dict()["classifier.weight"], SD["classifier.weight"]), name
    for name in ("input.pt", "input.npz"):
        x, y = load_input_file(str(_write(workdir, name, SEEDS[name])))
        assert x.shape == (4, 17) and y.tolist() == [0, 1, 3, 0]


# ----------------------------------------------------------------------------- through the CLI

runner = CliRunner()


def _cli_one_sentence(res) -> None:
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    text = res.stderr.strip()
    assert len(text.splitlines()) == 1 and text.startswith("gradflow: error: "), text


@pytest.fixture(scope="module")
def app():
    from gradflow_cli.main import app as typer_app

    return typer_app


@pytest.fixture(scope="module")
def demo_ckpt(workdir):
    return _write(workdir, "demo.pt", SEEDS["gradflow.pt"])


CLI_FILES = {
    "text named x.pt": b"not a checkpoint\n" * 10,
    "truncated zip": SEEDS["gradflow.pt"][:3000],
    "list pickle": _saved([1, 2, 3]),
    "tensor of the wrong dtype": _saved(torch.zeros(3, 17, dtype=torch.complex64)),
}


@pytest.mark.parametrize("case", sorted(CLI_FILES))
def test_cli_checkpoint_and_input(workdir, app, demo_ckpt, tmp_path, case):
    bad = _write(workdir, "cli.pt", CLI_FILES[case])
    _cli_one_sentence(runner.invoke(app, ["analyze", str(bad), "--out", str(tmp_path / "a")]))
    _cli_one_sentence(runner.invoke(app, ["analyze", str(demo_ckpt), "--input", str(bad), "--out", str(tmp_path / "b")]))
    assert not list(tmp_path.iterdir())


@fuzz(N_CLI)
@given(case=st.one_of(st.binary(min_size=1, max_size=500).map(lambda b: ("random.pt", b)),
                      zip_corruptions(names=("gradflow.pt", "clif.pt"), ops=("pickle", "drop", "replace", "truncate"))))
def test_cli_mutated_checkpoints(workdir, app, case):
    """Corrupted pickles inside valid archives, and random bytes, through ``gradflow analyze``."""
    name, data = case
    bad = _write(workdir, "cli-" + name, data)
    COUNT["files"] += 1
    res = runner.invoke(app, ["analyze", str(bad), "--out", str(workdir / "cli-out"), "--force", "-q",
                              "--batch-size", "2", "--samples", "2"])
    assert "Traceback" not in res.output and res.exit_code in (0, 1), res.output
    if res.exit_code == 1:
        _cli_one_sentence(res)
