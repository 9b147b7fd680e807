"""Under torch.distributed the recorder's tables are global: squared norms summed over ranks."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gradflow

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), gradflow.CLIF(), torch.nn.Linear(8, 8), gradflow.LIF()).double()


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 10, 4, generator=g, dtype=torch.float64) + 0.5, torch.randn(6, 10, 8, generator=g, dtype=torch.float64)


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model()
        x, e = _data()
        shard = slice(rank * 5, (rank + 1) * 5)  # each rank sees half of the batch
        with gradflow.record(model) as rec:
            (model(x[:, shard]) * e[:, shard]).sum().backward()
        tables = {"per_step": rec.per_step(), "lags": rec.lags(), "pairs": rec.pairs(), "weights": rec.weights()}
        samples = rec.samples()  # gathers every rank's samples
        if rank == 0:
            for k, v in tables.items():
                v.to_csv(os.path.join(out_dir, f"{k}.csv"), index=False)
            for layer, s in samples.items():
                np.savez(os.path.join(out_dir, f"samples_{layer}.npz"), **{f: np.asarray(getattr(s, f))
                                                                         for f in s._fields if f != "pair_sq"},
                         pair_sq=s.pair_sq)
        dist.barrier()   # neither rank tears gloo down while the other still talks
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_tables_equal_single_process(tmp_path, free_port):
    mp.start_processes(_worker, args=(2, free_port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    model = _model()
    x, e = _data()
    with gradflow.record(model) as rec:
        (model(x) * e).sum().backward()
    single = {"per_step": rec.per_step(), "lags": rec.lags(), "pairs": rec.pairs(), "weights": rec.weights()}
    for name in ["per_step", "lags", "pairs"]:
        got = pd.read_csv(tmp_path / f"{name}.csv")
        want = single[name]
        for col in want.columns:
            if pd.api.types.is_float_dtype(want[col]):
                assert got[col].to_numpy() == pytest.approx(want[col].to_numpy(), rel=1e-9, abs=1e-12), (name, col)
            else:
                assert got[col].astype(str).tolist() == want[col].astype(str).tolist(), (name, col)
    # per-sample statistics: rank 0 holds samples 0-4, rank 1 samples 5-9, gathered in rank order
    for layer, s in rec.samples().items():
        got = np.load(tmp_path / f"samples_{layer}.npz")
        for f in s._fields:
            np.testing.assert_allclose(got[f], np.asarray(getattr(s, f)), rtol=1e-9, atol=1e-12, err_msg=f)
    # weights: per-rank gradient norms combined by root-sum-square (documented), so only check shape
    w = pd.read_csv(tmp_path / "weights.csv")
    assert list(w.columns) == list(single["weights"].columns) and len(w) == len(single["weights"])
