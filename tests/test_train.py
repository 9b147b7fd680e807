"""Training: truncated BPTT against a hand-truncated computation, a short run, checkpoints, switching
neurons, recording over training, CLIF -> LIF inference, and the commands."""

import json

import pytest
import torch
from typer.testing import CliRunner

from gradflow import models
from gradflow.errors import DataError, UsageError
from gradflow.io.checkpoints import load_checkpoint, save_checkpoint
from gradflow.losses import ce_over_time
from gradflow.neurons import CLIFState, LIFState, NeuronParams, clif_step, lif_step
from gradflow.train import TrainConfig, set_truncation, swap_neurons, train
from gradflow.transfer import clif_to_lif
from gradflow_cli.main import app

TINY = "delay:delay=0,num_classes=2,group=2"
runner = CliRunner()


# ----------------------------------------------------------------------------- truncated BPTT


def _hand_truncated_grads(net, x, y, k, kind):
    """The tiny MLP's loss gradients written out step by step, detaching the state by hand."""
    W1, b1 = net.fc1.weight, net.fc1.bias
    W2, b2 = net.classifier.weight, net.classifier.bias
    p = NeuronParams(tau=2.0)
    zero = torch.zeros(x.shape[1], W1.shape[0], dtype=x.dtype)
    state = LIFState(zero) if kind == "lif" else CLIFState(zero, zero)
    logits = []
    for t in range(x.shape[0]):
        if k is not None and t > 0 and t % k == 0:
            # truncation: the state entering this step carries no gradient
            state = LIFState(state.v.detach()) if kind == "lif" else CLIFState(state.v.detach(), state.m.detach())
        current = x[t] @ W1.T + b1
        if kind == "lif":
            s, state, _ = lif_step(current, state, p)
        else:
            s, state, _ = clif_step(current, state, p)
        logits.append(s @ W2.T + b2)
    loss = ce_over_time(torch.stack(logits), y)
    return torch.autograd.grad(loss, [W1, b1, W2, b2])


@pytest.mark.parametrize("kind", ["lif", "clif"])
@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_truncate_detaches_exactly_the_block_boundaries(kind, k):
    torch.manual_seed(0)
    T = 6
    net = models.build("mlp", neuron=kind, in_features=3, widths=(5,), num_classes=2, T=T, tau=2.0).double()
    x = 1.5 * torch.randn(T, 7, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (7,))
    assert set_truncation(net, k) == 1
    loss = ce_over_time(net(x), y)
    got = torch.autograd.grad(loss, [net.fc1.weight, net.fc1.bias, net.classifier.weight, net.classifier.bias])
    want = _hand_truncated_grads(net, x, y, k, kind)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-14)
    # the test has teeth: the hand computation without detaching differs for k < T
    full = _hand_truncated_grads(net, x, y, None, kind)
    assert (not torch.allclose(full[0], want[0])) == (k < T)


def test_train_sets_truncation_on_every_neuron():
    res = train(TINY, epochs=0, n_train=8, n_test=8, truncate=2, model_kwargs={"widths": [4, 4]})
    assert [m.truncate for _, m in res.model.neuron_layers()] == [2, 2]
    assert res.meta["truncate"] == 2
    with pytest.raises(UsageError, match="truncate"):
        set_truncation(res.model, 0)


# ----------------------------------------------------------------------------- a short run


def test_two_epochs_lower_the_loss_and_write_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--task", TINY, "--epochs", "2", "--n-train", "512", "--n-test", "256",
                            "--lr", "0.01", "--widths", "16", "--out", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "test acc" in r.output and "chance 50.0%" in r.output
    import pandas as pd

    hist = pd.read_csv(out / "history.csv")
    assert hist.epoch.tolist() == [0, 1, 2]
    assert hist.test_loss.iloc[-1] < hist.test_loss.iloc[0]
    assert hist.train_loss.iloc[2] < hist.train_loss.iloc[1]
    # the checkpoint describes itself and loads safely
    ckpt = torch.load(out / "model.pt", weights_only=True)
    meta = ckpt["gradflow"]
    for key in ("arch", "neuron", "tau", "T", "task", "epoch", "accuracy", "model", "seed", "num_classes"):
        assert key in meta
    assert meta["arch"] == "mlp" and meta["neuron"] == "lif" and meta["T"] == 3 and meta["epoch"] == 2
    assert meta["task"]["name"] == "delay" and meta["accuracy"] == pytest.approx(hist.test_accuracy.iloc[-1])
    net = models.build(**meta["model"])
    net.load_state_dict(ckpt["state_dict"], strict=True)
    loaded = load_checkpoint(out / "model.pt")
    from gradflow.tasks import make_task
    from gradflow.train import evaluate

    task = make_task(**loaded.meta["task"])
    x, y = task.sample(256, loaded.meta["seed"], "test")
    assert evaluate(loaded.model, task, x, y)["accuracy"] == pytest.approx(meta["accuracy"])
    # no silent overwrite
    again = runner.invoke(app, ["train", "--task", TINY, "--epochs", "0", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


def test_same_seed_same_history():
    a = train(TINY, epochs=1, n_train=128, n_test=64, model_kwargs={"widths": [8]}, seed=1).history
    b = train(TINY, epochs=1, n_train=128, n_test=64, model_kwargs={"widths": [8]}, seed=1).history
    cols = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]
    assert a[cols].equals(b[cols])


def test_a_config_object_and_keywords_train_the_same_network(tmp_path):
    kw = dict(epochs=1, n_train=64, n_test=32, model_kwargs={"widths": [8]}, seed=2)
    cfg = TrainConfig(task=TINY, **kw)
    a = train(cfg)
    b = train(TINY, **kw)
    cols = ["train_loss", "test_loss", "test_accuracy"]
    assert a.history[cols].equals(b.history[cols])
    # keyword options override the config's fields
    assert not train(cfg, seed=3).history[cols].equals(a.history[cols])
    # the fused neuron backend trains the same network up to float rounding
    fused = train(cfg, backend="fused").history
    assert fused.test_loss.tolist() == pytest.approx(a.history.test_loss.tolist(), rel=1e-4)
    with pytest.raises(UsageError, match="Unknown training option 'epoch'"):
        train(TINY, epoch=1)
    # errors name the setting, so the command line can show its flag
    for bad, argument in ((dict(lr=0.0), "lr"), (dict(epochs=-1), "epochs"), (dict(optimizer="rmsprop"), "optimizer"),
                          (dict(truncate=0), "truncate"), (dict(switch_to="izh", at_epoch=0), "switch_to")):
        with pytest.raises(UsageError) as err:
            TrainConfig(**bad)
        assert err.value.arguments == (argument,) and argument in str(err.value)
    # the result writes the command's files: a loadable checkpoint and the history
    files = a.write(tmp_path)
    assert files == ["model.pt", "history.csv"]
    assert load_checkpoint(tmp_path / "model.pt").meta["epoch"] == 1


def test_static_task_takes_T_and_time_major_task_refuses_it():
    res = train("shapes:size=8,num_classes=2", T=2, epochs=1, n_train=32, n_test=16, batch_size=16,
                optimizer="sgd", lr=0.05, model_kwargs={"widths": [8]})
    assert res.task.T == 2 and res.meta["T"] == 2 and res.meta["task"]["T"] == 2
    with pytest.raises(UsageError, match="fixes its own number of steps"):
        train(TINY, T=9, epochs=0)


def test_switch_neurons_keeps_weights_and_updates_config():
    torch.manual_seed(0)
    net = models.build("mlp", neuron="lif", in_features=4, widths=(6, 6), num_classes=3, T=2, tau=1.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    swap_neurons(net, "clif")
    assert [m.kind for _, m in net.neuron_layers()] == ["clif", "clif"]
    assert all(m.tau == 1.5 for _, m in net.neuron_layers())
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    rebuilt = models.build(**net.config)
    assert rebuilt.neuron_kind == "clif"
    rebuilt.load_state_dict(after, strict=True)


def test_switch_to_during_training_and_record_every(tmp_path):
    res = train(TINY, epochs=3, n_train=64, n_test=32, switch_to="clif", at_epoch=1, record_every=2,
                record_batch=16, record_pairs=True, model_kwargs={"widths": [8]})
    assert res.history.neuron.tolist() == ["lif", "lif", "clif", "clif"]
    assert res.meta["neuron"] == "clif" and res.meta["switched_at"] == 1
    assert {"lags", "pairs", "per_step", "weights"} <= set(res.records)
    ps = res.records["per_step"]
    assert sorted(ps.epoch.unique().tolist()) == [0, 2, 3]  # before training, every 2nd epoch, the last
    assert list(ps.columns[:12]) == [
        "step", "layer", "layer_index", "neuron", "t", "firing_rate", "window_fraction",
        "grad_total_norm", "grad_spatial_norm", "grad_temporal_norm", "temporal_zero_fraction", "nonfinite"]
    assert ps[ps.epoch == 0].neuron.unique().tolist() == ["lif"]
    assert ps[ps.epoch == 3].neuron.unique().tolist() == ["clif"]
    assert {"temporal_share", "epoch"} <= set(res.records["weights"].columns)
    with pytest.raises(UsageError, match="together"):
        train(TINY, epochs=1, switch_to="clif")


def test_switch_to_plif_trains_the_new_time_constants_and_tet_loss_runs():
    res = train(TINY, epochs=2, n_train=64, n_test=32, switch_to="plif", at_epoch=1, loss="tet",
                model_kwargs={"widths": [8]})
    taus = [m.current_tau() for _, m in res.model.neuron_layers()]
    assert res.meta["neuron"] == "plif" and res.meta["loss_kind"] == "tet"
    assert all(abs(t - 2.0) > 1e-6 for t in taus)  # the optimizer was rebuilt to include PLIF's w


def test_record_every_leaves_training_unchanged():
    kw = dict(epochs=2, n_train=64, n_test=32, model_kwargs={"widths": [8]}, seed=4)
    a = train(TINY, **kw).history
    b = train(TINY, record_every=1, record_batch=16, **kw).history
    cols = ["train_loss", "test_loss", "test_accuracy"]
    assert a[cols].equals(b[cols])


def test_record_probe_stays_fixed_when_training_data_are_redrawn(monkeypatch):
    """record_every's probe batch is drawn once (epoch 1's first samples), also with resample=True."""
    import gradflow.train as gt
    seen = []
    original = gt._Run.record

    def spy(self, epoch):
        original(self, epoch)
        seen.append(self.probe[0].clone())
    monkeypatch.setattr(gt._Run, "record", spy)
    train(TINY, epochs=3, n_train=64, n_test=32, model_kwargs={"widths": [8]}, record_every=1, record_batch=16,
          resample=True)
    assert len(seen) == 4   # before training and after each epoch
    assert all(torch.equal(s, seen[0]) for s in seen[1:])


# ----------------------------------------------------------------------------- CLIF -> LIF


def test_clif_to_lif_sweeps_the_hard_reset(tmp_path):
    res = train(TINY, neuron="clif", epochs=1, n_train=64, n_test=64, model_kwargs={"widths": [8]},
                checkpoint=tmp_path / "clif.pt")
    df = clif_to_lif(tmp_path / "clif.pt", [-0.5, 0.0], n_test=64)
    assert df.columns.tolist() == ["neuron", "reset", "v_reset", "accuracy", "loss", "firing_rate"]
    assert df.reset.tolist() == ["clif", "soft", "hard", "hard"]
    assert df.v_reset.tolist()[2:] == [-0.5, 0.0]
    assert df.accuracy.iloc[0] == pytest.approx(res.meta["accuracy"])
    # the hard reset really is used: a deeper reset never raises the firing rate
    assert df.firing_rate.iloc[2] <= df.firing_rate.iloc[3]

    r = runner.invoke(app, ["clif-to-lif", str(tmp_path / "clif.pt"), "--reset-value", "-0.5", "-r", "0",
                            "--n-test", "64", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["v_reset"] for row in rows][2:] == [-0.5, 0.0]

    lif_ckpt = tmp_path / "lif.pt"
    save_checkpoint(models.build("mlp", in_features=9, widths=(4,), num_classes=2, T=3), lif_ckpt,
                    task=res.task.config, seed=0)
    with pytest.raises(UsageError, match="CLIF-trained"):
        clif_to_lif(lif_ckpt)


def test_bad_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError):
        load_checkpoint(bad)
    r = runner.invoke(app, ["clif-to-lif", str(bad)])
    assert r.exit_code == 1 and "gradflow: error:" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["train", "--task", TINY, "--optimizer", "rmsprop", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "optimizer" in r.output


# ----------------------------------------------------------------------------- report experiments


def test_experiment_pipeline_quick(tmp_path):
    import pandas as pd

    out = tmp_path / "T"
    r = runner.invoke(app, ["experiment", "lif-vs-clif-T", "--out", str(out), "--seeds", "0", "--seeds", "1",
                            "--quick", "-q"])
    assert r.exit_code == 0, r.output
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 2 * 2 and set(runs.neuron) == {"lif", "clif"} and set(runs.seed) == {0, 1}
    summary = (out / "summary.md").read_text()
    assert "±" in summary and (out / "figures" / "accuracy_vs_T.png").exists()
    assert not (out / "report.md").exists()
    # scale options reach only experiments that take them
    bad = runner.invoke(app, ["experiment", "lif-vs-clif-T", "--out", str(tmp_path / "n"), "--epochs", "2"])
    assert bad.exit_code == 2 and "Experiment lif-vs-clif-T does not take --epochs." in bad.output
    bad = runner.invoke(app, ["experiment", "nope", "--out", str(tmp_path / "n")])
    assert bad.exit_code == 2 and "Unknown experiment 'nope'; choose one of lif-vs-clif-delay" in bad.output


def _fake_cifar(root, n_train=24, n_test=12):
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(10)) * (n // 10)
                 + list(range(n % 10))}
        (base / name).write_bytes(pickle.dumps(batch))
    return root


def test_train_on_a_cifar_directory(tmp_path):
    from gradflow.tasks import parse_data

    root = _fake_cifar(tmp_path / "cifar")
    task = parse_data(f"cifar10:{root}", T=2)
    assert task.num_classes == 10 and task.chance == 0.1 and task.input_shape == (3, 32, 32)
    x, y = task.sample(12, seed=1, split="test")
    assert x.shape == (12, 3, 32, 32) and sorted(y.tolist()) == sorted(list(range(10)) + [0, 1])
    assert torch.equal(task.sample(5, 2)[0], task.sample(5, 2)[0])
    with pytest.raises(UsageError, match="has 24 images"):
        task.sample(25)
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", f"cifar10:{root}", "--T", "2", "--epochs", "1", "--n-train", "16",
                            "--n-test", "8", "--batch-size", "8", "--widths", "8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = torch.load(out / "model.pt", weights_only=True)["gradflow"]
    assert meta["task"] == {"name": "cifar10", "root": str(root), "T": 2} and meta["in_features"] == 3072
    r = runner.invoke(app, ["train", "--data", "imagenet:/x", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "cifar10:DIR" in r.output


def test_recorded_training_run_is_a_watched_run(tmp_path):
    from gradflow.watch.store import read_run

    out = tmp_path / "run"
    argv = ["train", "--task", TINY, "--epochs", "2", "--n-train", "32", "--n-test", "16", "--widths", "4",
            "--record-every", "1", "--record-batch", "8", "--out", str(out), "-q"]
    r = runner.invoke(app, argv)
    assert r.exit_code == 0, r.output
    # the tables were committed during training as a watched run (what `gradflow report DIR` reads)
    per = read_run(out).tables["per_step"]
    assert sorted(per.train_step.unique()) == [0, 1, 2] and per.step.nunique() == 3
    assert (out / "model.pt").is_file() and (out / "history.csv").is_file()
    again = runner.invoke(app, argv)
    assert again.exit_code == 2 and "--force" in again.output
    # --force starts a new run instead of appending to the old one
    r = runner.invoke(app, argv + ["--force"])
    assert r.exit_code == 0, r.output
    assert sorted(read_run(out).tables["per_step"].train_step.unique()) == [0, 1, 2]
    assert read_run(out).tables["per_step"].step.nunique() == 3
