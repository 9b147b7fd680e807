"""The user's own network (``--model SPEC``): import, build, strict weights from any container, adapters,
logits from the model's own output, and one clear sentence for every mistake."""

from __future__ import annotations


import pytest
import torch

from gradflow.errors import DataError, UsageError
from gradflow.io.usermodel import (
    extract_logits,
    import_model_object,
    load_user_model,
    model_logits,
    parse_model_args,
)
from gradflow.neurons import SpikingNeuron

pytest.importorskip("spikingjelly")

NET_PY = '''
import torch
from torch import nn
from spikingjelly.activation_based import layer, neuron, surrogate
from helpers import WIDTH          # a sibling module: the file's folder is on sys.path


class Net(nn.Module):
    """A SpikingJelly user's net: [T, N, 4] -> per-step logits [T, N, classes]."""

    def __init__(self, classes=3, width=WIDTH, tau=2.0):
        super().__init__()
        self.fc1 = layer.Linear(4, width)
        self.sn1 = neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")
        self.fc2 = layer.Linear(width, classes)

    def forward(self, x):
        return self.fc2(self.sn1(self.fc1(x)))


class Pair(Net):
    def forward(self, x):
        out = super().forward(x)
        return out.detach() > 0, out          # (spikes-like, logits) as snnTorch nets return


def make(classes=3, **kw):
    return Net(classes=classes, **kw)


def broken(classes=3):
    return helper_that_fails(classes)


def helper_that_fails(classes):
    raise ValueError("classes must be even")


def not_a_model():
    return {"weights": 1}


instance = Net()
NUMBER = 3
'''


@pytest.fixture()
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(NET_PY)
    (tmp_path / "helpers.py").write_text("WIDTH = 6\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # for the package.module:NAME form
    return tmp_path


def test_parse_model_args():
    assert parse_model_args(["a=1", "b=2.5", "c=[1, 2]", "d=atan", "e=True", "f=none", "g='x y'", "h=1e-3"]) == {
        "a": 1, "b": 2.5, "c": [1, 2], "d": "atan", "e": True, "f": None, "g": "x y", "h": 1e-3}
    for bad, msg in (["x"], "key=value"), (["1a=2"], "not a Python identifier"), (["a=1", "a=2"], "given twice"):
        with pytest.raises(UsageError, match=msg):
            parse_model_args(bad)


def _forward(model, x):
    for m in model.modules():
        if hasattr(m, "reset") and type(m).__module__.startswith("spikingjelly"):
            m.reset()
    return model(x)


@pytest.mark.parametrize("container", ["gradflow", "net", "model", "state_dict", "model_state_dict", "bare", "ddp"])
def test_weights_from_every_container(user_dir, container):
    import importlib

    torch.manual_seed(1)
    net = importlib.import_module("net").Net(classes=5)
    sd = net.state_dict()
    obj = {"gradflow": {"arch": "custom"}, "state_dict": sd} if container == "gradflow" else \
        sd if container == "bare" else {f"module.{k}": v for k, v in sd.items()} if container == "ddp" else \
        {container: sd, "epoch": 2}
    torch.save(obj, user_dir / "ckpt.pt")
    um = load_user_model(f"{user_dir / 'net.py'}:Net", user_dir / "ckpt.pt", model_args=["classes=5"])
    assert um.description == "net.py:Net(classes=5)" and um.converted == 1
    assert isinstance(um.model.sn1, SpikingNeuron) and not um.model.training
    x = torch.rand(4, 2, 4) * 2
    with torch.no_grad():
        assert torch.allclose(um.model(x), _forward(net, x), atol=1e-6)
    assert any("ckpt" not in n and "weights from" in n for n in um.notes)


def test_module_form_factory_and_instance(user_dir):
    um = load_user_model("net:make", model_args={"classes": 4, "width": 3})
    assert um.description == "net:make(classes=4, width=3)" and um.model.fc1.out_features == 3
    assert "initial weights" in " ".join(um.notes)
    um = load_user_model("net:instance")
    assert um.description.startswith("net:instance (a Net instance)")


def test_strict_mismatch_is_summarised(user_dir):
    import importlib

    sd = importlib.import_module("net").Net(classes=5).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["fc1.bias"]
    torch.save({"net": sd}, user_dir / "bad.pt")
    with pytest.raises(DataError, match=r"do not fit Net: 1 missing \(e.g. fc1.bias\), 1 unexpected \(e.g. extra.weight\), "
                                        r"2 with other shapes \(e.g. fc2.weight \(5, 6\) vs \(3, 6\)\)"):
        load_user_model(f"{user_dir / 'net.py'}:Net", user_dir / "bad.pt")
    torch.save([1, 2], user_dir / "list.pt")
    with pytest.raises(DataError, match="holds no state_dict"):
        load_user_model(f"{user_dir / 'net.py'}:Net", user_dir / "list.pt")
    (user_dir / "text.pt").write_text("hello")
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        load_user_model(f"{user_dir / 'net.py'}:Net", user_dir / "text.pt")


@pytest.mark.parametrize("spec,args,match", [
    ("{d}/nope.py:Net", (), r"No such file: .*nope.py"),
    ("{d}/net.py", (), "model_spec must be path/to/file.py:NAME"),
    ("{d}/net.py:Nett", (), r"has no attribute 'Nett' \(it defines Net, Pair, broken, helper_that_fails, instance, make"),
    ("no_such_pkg.mod:Net", (), "Cannot import the module 'no_such_pkg.mod'"),
    ("{d}/net.py:broken", (), r"Building the model with net.py:broken\(\) raised ValueError: classes must be even "
                              r"\(net.py, line \d+\)\."),
    ("{d}/net.py:not_a_model", (), r"returned \{'weights': 1\}, not a torch.nn.Module"),
    ("{d}/net.py:NUMBER", (), "is a int, not a class or a function"),
    ("{d}/net.py:Net", ("depth=3",), r"cannot take the model arguments \['depth'\] .*its parameters are classes, width, tau"),
    ("{d}/net.py:instance", ("classes=3",), "already built Net; it takes no model arguments"),
])
def test_user_mistakes_are_one_sentence(user_dir, spec, args, match):
    with pytest.raises(UsageError, match=match) as err:
        load_user_model(spec.format(d=user_dir), model_args=list(args))
    assert "\n" not in str(err.value)


def test_code_that_fails_on_import_names_its_line(tmp_path):
    (tmp_path / "bad.py").write_text("import torch\n\nx = 1 / 0\n")
    with pytest.raises(UsageError, match=r"Importing .*bad.py raised ZeroDivisionError: division by zero \(bad.py, line 3\)\."):
        import_model_object(f"{tmp_path / 'bad.py'}:Net")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(2)\n")
    with pytest.raises(UsageError, match="raised SystemExit: 2"):
        import_model_object(f"{tmp_path / 'exits.py'}:Net")


def test_a_model_without_spiking_neurons_is_refused(tmp_path):
    (tmp_path / "mlp.py").write_text("from torch import nn\ndef make():\n    return nn.Linear(2, 2)\n")
    with pytest.raises(UsageError, match="No spiking neuron"):
        load_user_model(f"{tmp_path / 'mlp.py'}:make")


def test_extract_logits_readings():
    per, agg = torch.randn(5, 8, 10), torch.randn(8, 10)
    lg = extract_logits(per, 8)
    assert lg.kind == "per-step" and lg.value is per and lg.description == "per-step logits [T=5, N=8, C=10]"
    lg = extract_logits(agg, 8)
    assert lg.kind == "aggregated" and lg.per_step().shape == (1, 8, 10)
    lg = extract_logits(per.transpose(0, 1), 8)
    assert torch.equal(lg.value, per) and "batch-first" in lg.description
    with pytest.raises(UsageError, match=r"tuple of 2 \(\[5, 8, 10\], \[5, 8, 10\]\); choose .* output_index 0..1"):
        extract_logits((per, per), 8)
    assert extract_logits((per.bool(), per), 8, output_index=1).value is per
    assert extract_logits((per.bool(), per), 8, output_index="-1").value is per
    assert "only tensor" in extract_logits((per, None), 8).description
    with pytest.raises(UsageError, match="output_index 2 is out of range"):
        extract_logits((per, per), 8, output_index=2)
    with pytest.raises(UsageError, match="not floating-point logits"):
        extract_logits((per.bool(), per), 8, output_index=0)
    assert extract_logits({"logits": per, "aux": per}, 8, output_index="logits").value is per
    with pytest.raises(UsageError, match=r"has shape \[5, 7, 10\]; gradflow reads \[T, N, C\] or \[N, C\] logits with N=8"):
        extract_logits(torch.randn(5, 7, 10), 8)
    with pytest.raises(UsageError, match="leave output_index unset"):
        extract_logits(per, 8, output_index=0)


def test_model_logits_runs_the_users_forward(user_dir):
    um = load_user_model(f"{user_dir / 'net.py'}:Pair")
    x = torch.rand(4, 3, 4, dtype=torch.float64) * 2
    with pytest.raises(UsageError, match="choose the element"):
        model_logits(um.model, x, time_major=True)
    lg = model_logits(um.model, x, output_index=1, time_major=True)
    assert lg.kind == "per-step" and lg.value.dtype == torch.float32 and lg.value.shape == (4, 3, 3)
    with pytest.raises(UsageError, match=r"The model's forward on an input of shape \[4, 3, 5\] raised RuntimeError"):
        model_logits(um.model, torch.rand(4, 3, 5), output_index=1, time_major=True)


def test_inputs_for_a_user_model(user_dir):
    from gradflow.io.inputs import resolve_input

    um = load_user_model(f"{user_dir / 'net.py'}:Net")
    torch.save({"x": torch.rand(4, 6, 4), "y": torch.tensor([0, 1, 2, 0, 1, 2])}, user_dir / "tm.pt")
    src = resolve_input(um.model, input_file=str(user_dir / "tm.pt"))
    assert src.time_major is True and "6 samples as [T, N, ...]" in src.describe
    (xb, yb), = list(src.batches(3, 1, 0))
    assert xb.shape == (4, 3, 4) and yb.shape == (3,)
    assert model_logits(um.model, xb, time_major=True).value.shape == (4, 3, 3)
    with pytest.raises(DataError, match=r"there are 6 labels but x has shape \(4, 6, 4\) \(samples along dimension 0\)"):
        resolve_input(um.model, input_file=str(user_dir / "tm.pt"), time_major=False)
    torch.save({"x": torch.rand(5, 4)}, user_dir / "static.pt")
    src = resolve_input(um.model, input_file=str(user_dir / "static.pt"))
    assert src.time_major is False and "no labels" in src.describe
    with pytest.raises(UsageError, match="needs an input"):
        resolve_input(um.model)


SNN_PY = '''
import torch
from torch import nn
import snntorch as snn


class Net(nn.Module):
    """The snnTorch tutorial network: explicit membrane potentials, a loop over steps inside forward."""

    def __init__(self, beta=0.9, steps=5):
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(6, 10), snn.Leaky(beta=beta)
        self.fc2, self.lif2 = nn.Linear(10, 3), snn.Leaky(beta=beta)

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec, mem_rec = [], []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk_rec.append(spk2)
            mem_rec.append(mem2)
        return torch.stack(spk_rec), torch.stack(mem_rec)
'''


def test_an_snntorch_users_network(tmp_path):
    pytest.importorskip("snntorch")
    import importlib.util

    (tmp_path / "snn_net.py").write_text(SNN_PY)
    spec = importlib.util.spec_from_file_location("snn_net_ref", tmp_path / "snn_net.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    ref = mod.Net(beta=0.8)
    torch.save({"model_state_dict": ref.state_dict()}, tmp_path / "snn.pt")
    um = load_user_model(f"{tmp_path / 'snn_net.py'}:Net", tmp_path / "snn.pt", model_args=["beta=0.8"])
    assert type(um.model.lif1).__name__ == "GradflowLeaky"
    x = torch.rand(4, 6) * 2
    with pytest.raises(UsageError, match=r"tuple of 2 \(\[5, 4, 3\], \[5, 4, 3\]\)"):
        model_logits(um.model, x)
    lg = model_logits(um.model, x, output_index=1)
    assert lg.kind == "per-step" and "element 1 of a tuple of 2" in lg.description
    torch.testing.assert_close(lg.value, ref(x)[1])
