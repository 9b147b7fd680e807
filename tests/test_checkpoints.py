"""Checkpoint formats, inference from shapes, safe loading, CIFAR and input files."""

from __future__ import annotations

import argparse
import pickle

import numpy as np
import pytest
import torch

import gradflow
from gradflow.io.checkpoints import load_checkpoint, save_checkpoint
from gradflow.io.cifar import CIFAR_STATS, load_cifar
from gradflow.io.inputs import load_input_file, resolve_input
from gradflow.errors import DataError, UsageError


@pytest.fixture(scope="module")
def snn5():
    torch.manual_seed(0)
    return gradflow.models.build("snn5_noAP", neuron="clif", num_classes=7, in_channels=2, T=3).eval()


def _same(a, b, x):
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_gradflow_format_round_trip(tmp_path, snn5):
    path = save_checkpoint(snn5, tmp_path / "m.pt", epoch=4, accuracy=0.5)
    lm = load_checkpoint(path)
    assert lm.format == "gradflow" and lm.notes == []
    assert lm.config == snn5.config and lm.meta["epoch"] == 4
    assert _same(lm.model, snn5, torch.randn(2, 2, 32, 32))
    # overrides are applied and noted
    lm2 = load_checkpoint(path, tau=3.0)
    assert lm2.model.config["tau"] == 3.0 and any("tau=3.0" in n for n in lm2.notes)


@pytest.mark.parametrize("fmt", ["clif", "spikingjelly", "state_dict", "dataparallel"])
def test_foreign_formats_infer_arch_classes_channels(tmp_path, snn5, fmt):
    sd = snn5.state_dict()
    obj = {
        "clif": {"net": sd, "epoch": 10, "max_test_acc": 0.9, "optimizer": {"state": {}, "param_groups": []}},
        "spikingjelly": {"model": sd, "args": argparse.Namespace(T=3, tau=2.0, model="snn5_noAP", lr=0.1), "epoch": 1},
        "state_dict": sd,
        "dataparallel": {f"module.{k}": v for k, v in sd.items()},
    }[fmt]
    torch.save(obj, tmp_path / "c.pt")
    lm = load_checkpoint(tmp_path / "c.pt", neuron="clif", T=3)
    assert lm.config["name"] == "snn5_noAP"
    assert lm.config["num_classes"] == 7 and lm.config["in_channels"] == 2
    assert any("inferred from tensor shapes" in n for n in lm.notes)
    assert _same(lm.model, snn5, torch.randn(2, 2, 32, 32))
    if fmt == "spikingjelly":
        assert lm.format == "spikingjelly"


def test_neuron_defaults_to_lif_with_a_note_and_plif_is_detected(tmp_path):
    torch.manual_seed(0)
    mlp = gradflow.models.build("mlp", neuron="plif", in_features=5, widths=(6, 4), num_classes=3, T=2, tau=3.0)
    torch.save(mlp.state_dict(), tmp_path / "p.pt")
    lm = load_checkpoint(tmp_path / "p.pt", T=2)
    assert lm.config["neuron"] == "plif" and lm.config["widths"] == [6, 4]
    assert _same(lm.model, mlp.eval(), torch.randn(3, 5))
    m2 = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2)
    torch.save({"net": m2.state_dict()}, tmp_path / "l.pt")
    lm2 = load_checkpoint(tmp_path / "l.pt")
    assert lm2.config["neuron"] == "lif" and any("--neuron clif" in n for n in lm2.notes)


def test_mismatched_state_dict_is_summarised(tmp_path, snn5):
    torch.save(snn5.state_dict(), tmp_path / "s.pt")
    with pytest.raises(DataError, match=r"does not fit spiking_resnet18: .*missing.*unexpected.*snn5_noAP"):
        load_checkpoint(tmp_path / "s.pt", arch="spiking_resnet18")
    with pytest.raises(UsageError, match="Unknown architecture 'resnet9'.*spiking_resnet18"):
        load_checkpoint(tmp_path / "s.pt", arch="resnet9")


def test_unsafe_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"net": {"w": torch.zeros(1)}, "extra": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="--trust-checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def _write_cifar(root, n=6, which="cifar10"):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = list(rng.integers(0, 10, size=n))
    if which == "cifar10":
        d = root / "cifar-10-batches-py"
        d.mkdir(parents=True)
        with open(d / "test_batch", "wb") as f:
            pickle.dump({b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, f, protocol=2)
    else:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        with open(d / "test", "wb") as f:
            pickle.dump({b"fine_labels": labels, b"coarse_labels": labels, b"data": data}, f, protocol=2)
    return data, labels


@pytest.mark.parametrize("which", ["cifar10", "cifar100"])
def test_tiny_cifar_directory(tmp_path, which):
    data, labels = _write_cifar(tmp_path, which=which)
    x, y = load_cifar(str(tmp_path), which)
    assert x.shape == (6, 3, 32, 32) and y.tolist() == labels
    mean, std = CIFAR_STATS[which]
    pixel = data[2].reshape(3, 32, 32)[1, 4, 5] / 255.0
    assert x[2, 1, 4, 5].item() == pytest.approx((pixel - mean[1]) / std[1], rel=1e-6)
    # also when pointed at the inner folder
    inner = tmp_path / ("cifar-10-batches-py" if which == "cifar10" else "cifar-100-python")
    assert torch.equal(load_cifar(str(inner), which)[0], x)


def test_cifar_with_foreign_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0], b"data": np.zeros((1, 3072), np.uint8), b"x": Evil()}, f)
    with pytest.raises(DataError, match="--trust-checkpoint"):
        load_cifar(str(tmp_path), "cifar10")
    assert not marker.exists()


def test_input_files_pt_and_npz(tmp_path):
    mlp = gradflow.models.build("mlp", neuron="lif", in_features=4, widths=(5,), num_classes=3, T=2)
    x = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.save({"x": x, "y": y}, tmp_path / "in.pt")
    np.savez(tmp_path / "in.npz", x=x.numpy(), y=y.numpy())
    for name in ("in.pt", "in.npz"):
        xx, yy = load_input_file(str(tmp_path / name))
        assert torch.equal(xx, x) and torch.equal(yy, y)
    src = resolve_input(mlp, input_file=str(tmp_path / "in.npz"))
    (xb, yb), = list(src.batches(6, 1, 0))
    assert xb.shape == (6, 4) and sorted(yb.tolist()) == sorted(y.tolist())
    np.savez(tmp_path / "bad.npz", x=x.numpy(), y=np.array([0, 1, 2, 3, 4, 5]))
    with pytest.raises(DataError, match="Labels must lie in 0..2"):
        resolve_input(mlp, input_file=str(tmp_path / "bad.npz"))
    src = resolve_input(mlp)
    assert src.kind == "random" and "RANDOM" in src.describe


@pytest.mark.parametrize("wrap", ["state_dict", "model_state_dict", "_orig_mod."])
def test_more_containers_and_prefixes(tmp_path, wrap):
    torch.manual_seed(0)
    mlp = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2).eval()
    sd = mlp.state_dict()
    obj = {f"_orig_mod.{k}": v for k, v in sd.items()} if wrap == "_orig_mod." else {wrap: sd, "epoch": 7}
    torch.save(obj, tmp_path / "c.pt")
    lm = load_checkpoint(tmp_path / "c.pt", T=2)
    assert lm.format == "state_dict" and _same(lm.model, mlp, torch.randn(4, 5))
    if wrap == "_orig_mod.":
        assert any("'_orig_mod.' prefix" in n for n in lm.notes)
    else:
        assert lm.meta == {"epoch": 7}


def test_wrong_dtypes_and_shapes_are_named(tmp_path):
    mlp = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2)
    sd = dict(mlp.state_dict())
    sd["fc1.bias"] = sd["fc1.bias"].to(torch.int32)
    torch.save({"net": sd}, tmp_path / "d.pt")
    with pytest.raises(DataError, match=r"does not fit mlp: 1 with other dtypes \(e.g. fc1.bias int32 vs float32\)"):
        load_checkpoint(tmp_path / "d.pt", arch="mlp")
    sd["fc1.bias"] = torch.zeros(6, dtype=torch.float16)  # another float precision loads
    torch.save({"net": sd}, tmp_path / "h.pt")
    assert load_checkpoint(tmp_path / "h.pt", arch="mlp").model.fc1.bias.dtype == torch.float32


def test_a_huge_saved_config_is_never_built(tmp_path):
    """A corrupted width is caught on the meta device, before any memory is allocated for it."""
    mlp = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2)
    cfg = dict(mlp.config, widths=[2 ** 40])
    torch.save({"gradflow": cfg, "state_dict": mlp.state_dict()}, tmp_path / "huge.pt")
    with pytest.raises(DataError, match=r"does not fit mlp: .*other shapes \(e.g. fc1.weight \(6, 5\) vs \(1099511627776, 5\)"):
        load_checkpoint(tmp_path / "huge.pt")


def test_loading_from_a_dict_and_plain_metadata(tmp_path):
    from gradflow.io.files import plain

    mlp = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2)
    ckpt = {"gradflow": dict(mlp.config, epoch=np.int64(3), acc=torch.tensor(0.5), opt=object()),
            "state_dict": mlp.state_dict(), "history": [1, 2.5, torch.zeros(3)]}
    lm = load_checkpoint(ckpt)
    assert lm.path == "<dict>" and lm.meta == {"epoch": 3, "acc": 0.5, "history": [1, 2.5]}
    assert plain(argparse.Namespace(T=4, f=np.float32(0.25))) == {"T": 4, "f": 0.25}


def test_bad_inputs_are_data_errors(tmp_path):
    torch.save({"x": torch.randn(3, 5), "y": torch.tensor([0.5, 1.0, 2.0])}, tmp_path / "frac.pt")
    with pytest.raises(DataError, match="labels y must be whole numbers"):
        load_input_file(str(tmp_path / "frac.pt"))
    torch.save({"x": torch.randn(3, 5), "y": torch.tensor([1 + 1j, 0, 0])}, tmp_path / "cplx.pt")
    with pytest.raises(DataError, match="labels y must be whole numbers"):
        load_input_file(str(tmp_path / "cplx.pt"))
    torch.save({"x": torch.randn(0, 5)}, tmp_path / "empty.pt")
    with pytest.raises(DataError, match="holds no samples"):
        load_input_file(str(tmp_path / "empty.pt"))
    torch.save({"x": torch.randn(3, 5).to_sparse()}, tmp_path / "sparse.pt")
    with pytest.raises(DataError, match="sparse_coo tensor"):
        load_input_file(str(tmp_path / "sparse.pt"))
    mlp = gradflow.models.build("mlp", neuron="lif", in_features=5, widths=(6,), num_classes=3, T=2)
    torch.save({"x": torch.randn(3, 4, 5)}, tmp_path / "steps.pt")
    with pytest.raises(DataError, match="3 time steps but the model was built with T=2"):
        resolve_input(mlp, input_file=str(tmp_path / "steps.pt"))
    with pytest.raises(DataError, match="saved task 'nope' cannot be rebuilt"):
        resolve_input(mlp, task_config={"name": "nope"})


def test_save_checkpoint_stores_plain_metadata_and_the_task(tmp_path):
    from gradflow.tasks import make_task

    mlp = gradflow.models.build("mlp", neuron="plif", in_features=17, widths=(6,), num_classes=4, T=5)
    task = make_task("delay", delay=2)
    path = save_checkpoint(mlp, tmp_path / "sub" / "m.pt", task=task, epoch=np.int64(2), history=(0.5, 0.25), tau=2.5)
    raw = torch.load(path, weights_only=True)  # readable by safe loading as it stands
    entry = raw["gradflow"]
    assert entry["model"] == mlp.config and entry["arch"] == "mlp" and entry["format_version"] == 2
    assert entry["task"] == task.config and entry["epoch"] == 2 and entry["history"] == [0.5, 0.25]
    assert entry["tau"] == 2.5  # a restated top-level key (e.g. a learned tau) is kept as given
    lm = load_checkpoint(path)
    assert lm.config == mlp.config and lm.meta["task"] == task.config and lm.notes == []
    assert list(path.parent.iterdir()) == [path]
    with pytest.raises(UsageError, match="metadata entry 'opt' is a object"):
        save_checkpoint(mlp, tmp_path / "x.pt", opt=object())
    with pytest.raises(UsageError, match="'model' differs from model.config"):
        save_checkpoint(mlp, tmp_path / "x.pt", model={"name": "mlp"})
    with pytest.raises(UsageError, match="needs a gradflow model"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="Cannot write the checkpoint"):
        save_checkpoint(mlp, tmp_path / "file" / "m.pt")
    assert not (tmp_path / "x.pt").exists()


def test_overrides_and_options_on_a_gradflow_checkpoint(tmp_path):
    mlp = gradflow.models.build("mlp", neuron="clif", in_features=5, widths=(6,), num_classes=3, T=2)
    path = save_checkpoint(mlp, tmp_path / "c.pt")
    lm = load_checkpoint(path, neuron="lif", options={"v_reset": -0.5, "detach_reset": True})
    assert lm.config["neuron"] == "lif" and lm.config["v_reset"] == -0.5 and lm.config["detach_reset"] is True
    assert any("neuron=lif given, checkpoint says 'clif'" in n for n in lm.notes)
    with pytest.raises(UsageError, match="Unknown neuron option 'v_rest'"):
        load_checkpoint(path, options={"v_rest": 0.0})
    with pytest.raises(UsageError, match="soft reset only"):
        load_checkpoint(path, options={"v_reset": 0.0})
    with pytest.raises(UsageError, match="T must be a positive integer"):
        load_checkpoint(path, T=0)
