"""One prepared GPU run: the CUDA tests, ``gradflow bench --device cuda`` and the fused neurons' bandwidth.

Run from the repository root on a machine with a CUDA device::

    python -m gradflow.lab.gpu_check --out gpu_check          # about 5 minutes on one GPU

It writes ``gpu_check/summary.json`` (and prints it):

* ``tests``: the exit code and the tail of ``pytest -m cuda tests/test_cuda.py tests/test_fused.py``
  (no host synchronisation inside a recorded backward, fused backward against CPU autograd, GPU tables
  against CPU tables);
* ``neurons``: forward + backward of one fused LIF/CLIF layer (float32, ``T`` steps of ``size`` neurons)
  against the step-by-step baseline, from :func:`gradflow.lab.bench.neuron_bench` (CUDA-event times,
  ``torch.cuda.max_memory_allocated`` peaks), with the *achieved bandwidth*: the bytes a fused kernel
  would have to move at least (LIF: read ``x``, write ``u`` and the spikes; backward: read ``u`` and the
  upstream gradient, write ``dL/dx``: ``24`` bytes per neuron and step; CLIF also writes and reads ``m``
  and ``q``: ``40``) divided by the measured time, and its fraction of the device's peak memory
  bandwidth (``--peak-gbs``, else a table of known devices);
* ``training``: one SGD step of spiking_resnet18 plain and recorded on both backends
  (:func:`gradflow.lab.bench.training_bench`), ratios against the plain step on the same backend.

Nothing here is a test assertion on time; the numbers are for the issue's report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Optional

import torch

from .bench import neuron_bench, training_bench

__all__ = ["MIN_BYTES_PER_NEURON_STEP", "peak_bandwidth", "run"]

#: Bytes per neuron and step a fused forward + backward must move at least (float32).
MIN_BYTES_PER_NEURON_STEP = {"lif": 24, "clif": 40}

#: Peak memory bandwidth (GB/s) of devices by name fragment (vendor data sheets).
_PEAKS = {"H200": 4800.0, "H100 SXM": 3350.0, "H100": 2000.0, "A100-SXM4-80GB": 2039.0, "A100": 1555.0,
          "L40S": 864.0, "V100": 900.0}


def peak_bandwidth(name: str) -> Optional[float]:
    """The peak memory bandwidth in GB/s of a device called ``name`` (None when unknown).

    >>> peak_bandwidth("NVIDIA H200")
    4800.0
    """
    for key, value in _PEAKS.items():
        if key in name:
            return value
    return None


def _tests(timeout: int) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "cuda",
           "tests/test_cuda.py", "tests/test_fused.py"]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        code, tail = 124, "timed out"
    return {"command": " ".join(cmd), "exit_code": code, "seconds": round(time.time() - t0, 1), "tail": tail}


def run(out: str, peak_gbs: Optional[float] = None, quick: bool = False, tests_timeout: int = 240) -> dict:
    """Run everything on ``cuda:0`` and write ``out/summary.json``; returns the summary."""
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA device; torch sees none.")
    os.makedirs(out, exist_ok=True)
    name = torch.cuda.get_device_name(0)
    peak = peak_gbs or peak_bandwidth(name)
    summary = {"device": name, "torch": torch.__version__, "peak_gbs": peak, "tests": _tests(tests_timeout)}
    Ts, sizes = ((8,), (1_000_000,)) if quick else ((8, 32), (1_000_000, 10_000_000))
    nb = neuron_bench(("lif", "clif"), Ts, sizes, variants=("baseline", "torch", "fused"), device="cuda",
                      repeats=5 if quick else 20, warmup=2, peak=True)
    rows = []
    for row in nb.to_dict(orient="records"):
        if row["variant"] == "fused":
            moved = MIN_BYTES_PER_NEURON_STEP[row["neuron"]] * row["T"] * row["size"]
            row["achieved_gbs"] = moved / (row["time_ms"] * 1e-3) / 1e9
            row["fraction_of_peak"] = None if not peak else row["achieved_gbs"] / peak
        rows.append(row)
    summary["neurons"] = rows
    models = (("spiking_resnet18", dict(T=6, batch=8 if quick else 64)),)
    tb = training_bench(models, ("lif", "clif"), device="cuda", repeats=3 if quick else 10, warmup=2, peak=True)
    summary["training"] = tb.to_dict(orient="records")
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1, default=str)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check", help="directory for summary.json")
    parser.add_argument("--peak-gbs", type=float, default=None, help="device peak memory bandwidth, GB/s")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (about 2 minutes)")
    args = parser.parse_args(argv)
    summary = run(args.out, args.peak_gbs, args.quick)
    print(json.dumps({k: v for k, v in summary.items() if k != "training"}, indent=1, default=str))
    for row in summary["training"]:
        print(f"{row['neuron']:5s} {row['variant']:15s} {row['time_ms']:9.1f} ms  x{row['time_ratio']:.2f}")
    return 0 if summary["tests"]["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
