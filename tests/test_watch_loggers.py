"""Loggers of gradflow.watch, run for real: TensorBoard event files and a Lightning Trainer."""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

import gradflow.watch as gw
from gradflow import losses, models
from gradflow.loggers import LOGGED_METRICS, TensorBoardLogger, scalars


def _net():
    torch.manual_seed(0)
    return models.build("mlp", neuron="clif", in_features=4, num_classes=3, widths=(8, 8), T=4)


def test_scalars_are_the_finite_summary_values():
    summary = pd.DataFrame({"layer": ["sn1", "sn2"], "temporal_share": [0.25, 0.5], "half_life": [1.5, math.inf],
                            "relative_1": [math.nan, 0.3]})
    assert scalars(summary) == {"gradflow/temporal_share/sn1": 0.25, "gradflow/temporal_share/sn2": 0.5,
                                "gradflow/half_life/sn1": 1.5, "gradflow/relative_1/sn2": 0.3}


def test_tensorboard_logger_writes_every_metric_of_every_recorded_step(tmp_path):
    pytest.importorskip("tensorboard")
    ea = importlib.import_module("tensorboard.backend.event_processing.event_accumulator")
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    with gw.watch(net, every=2, out=tmp_path / "run", loggers=[TensorBoardLogger(tmp_path / "tb")],
                  n_resamples=20) as w:
        for _ in range(5):
            x, y = torch.rand(8, 4, generator=g) * 2, torch.randint(0, 3, (8,), generator=g)
            losses.ce_over_time(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    summary = w.summary()
    acc = ea.EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    want = {f"gradflow/{m}/{layer}" for m in LOGGED_METRICS for layer in ("sn1", "sn2")
            if m != "half_life" or math.isfinite(summary[summary.layer == layer].half_life.iloc[0])}
    assert want <= tags
    for m in ("temporal_share", "relative_1", "window_fraction"):
        events = acc.Scalars(f"gradflow/{m}/sn1")
        assert [e.step for e in events] == [0, 2, 4]
        expected = summary[summary.layer == "sn1"].sort_values("train_step")[m].to_numpy()
        assert [e.value for e in events] == pytest.approx(expected, rel=1e-6)   # stored as float32


def _lightning_importable() -> bool:
    try:
        importlib.import_module("lightning_utilities")
    except ImportError:
        return False
    return importlib.util.find_spec("lightning") is not None or importlib.util.find_spec("pytorch_lightning") is not None


# Run in a fresh interpreter. Lightning imports torchmetrics, which imports torchvision when it is
# installed; a torchvision built for another torch fails at import ("operator torchvision::nms does not
# exist"), so where `import torchvision` fails the script hides it first (Lightning does not need it).
_LIGHTNING = textwrap.dedent("""
    import importlib.metadata, sys
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None          # find_spec -> None, import -> ImportError
        _version = importlib.metadata.version
        def version(name):
            if name == "torchvision":
                raise importlib.metadata.PackageNotFoundError(name)
            return _version(name)
        importlib.metadata.version = version
    import torch
    from gradflow import losses, models
    from gradflow.loggers import GradflowCallback, lightning_module
    pl = lightning_module()
    out = sys.argv[1]

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = models.build("mlp", neuron="lif", in_features=4, num_classes=3, widths=(8,), T=3)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = losses.ce_over_time(self.net(x), y)   # calls self.net, not self: counting is the callback's
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(48, 4, generator=g), torch.randint(0, 3, (48,), generator=g))
    loader = torch.utils.data.DataLoader(data, batch_size=6)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, accumulate_grad_batches=2,
                         logger=pl.loggers.CSVLogger(out, name="csv"), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[GradflowCallback(every=3, out=out + "/gradflow", n_resamples=20)])
    trainer.fit(Lit(), loader)
    print("global_step", trainer.global_step)
""")


@pytest.mark.skipif(not _lightning_importable(), reason="PyTorch Lightning is not installed")
def test_lightning_callback_watches_training_batches(tmp_path):
    r = subprocess.run([sys.executable, "-c", _LIGHTNING, str(tmp_path)], capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "global_step 4" in r.stdout                       # 8 batches, 2 accumulated per optimiser step
    run = gw.read_run(tmp_path / "gradflow")
    assert sorted(run.summary.train_step.unique()) == [0, 3, 6]   # every 3rd batch (backward pass)
    assert run.summary.layer.unique().tolist() == ["net.sn1"]
    metrics = pd.read_csv(next((tmp_path / "csv").rglob("metrics.csv")))
    assert "gradflow/temporal_share/net.sn1" in metrics.columns
    logged = metrics["gradflow/temporal_share/net.sn1"].dropna().to_numpy()
    assert logged == pytest.approx(run.summary.sort_values("train_step").temporal_share.to_numpy(), rel=1e-6)
