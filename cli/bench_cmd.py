"""``gradflow bench``: neuron and recording speed/memory (a thin command over :func:`gradflow.lab.bench.run_bench`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from gradflow.errors import UsageError

from .common import echo, user_errors

PARTS = {"all": ("neurons", "training"), "neurons": ("neurons",), "training": ("training",)}


def _fmt(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def neuron_table(rows: list) -> str:
    """The neuron benchmark as text: one line per (neuron, T, size, variant)."""
    head = f"{'neuron':6} {'T':>3} {'size':>9} {'variant':13} {'ms':>9} {'speedup':>8} {'saved MB':>9} " \
           f"{'saved/base':>10} {'peak MB':>8} {'peak/base':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['neuron']:6} {r['T']:>3} {r['size']:>9} {r['variant']:13} {_fmt(r['time_ms'], '9.2f')} "
            f"{_fmt(r['speedup'], '8.2f')} {_fmt(r['saved_mb'], '9.1f')} {_fmt(r['saved_ratio'], '10.2f')} "
            f"{_fmt(r['peak_mb'], '8.1f')} {_fmt(r['peak_ratio'], '9.2f')}"
        )
    return "\n".join(lines)


def training_table(rows: list) -> str:
    """The training-step benchmark as text: one line per (model, neuron, variant)."""
    head = f"{'model':17} {'neuron':6} {'T':>2} {'batch':>5} {'variant':14} {'ms':>9} {'x plain':>8} " \
           f"{'peak MB':>8} {'extra MB':>8} {'peak x':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:17} {r['neuron']:6} {r['T']:>2} {r['batch']:>5} {r['variant']:14} "
            f"{_fmt(r['time_ms'], '9.1f')} {_fmt(r['time_ratio'], '8.2f')} {_fmt(r['peak_mb'], '8.1f')} "
            f"{_fmt(r['extra_peak_mb'], '8.1f')} {_fmt(r['peak_ratio'], '7.2f')}"
        )
    return "\n".join(lines)


def bench_command(
    quick: Annotated[bool, typer.Option("--quick", help="A small run (seconds): small sizes, T in {4, 8}, "
                                        "a tiny MLP and a batch-1, T=2 ResNet-18.")] = False,
    device: Annotated[str, typer.Option(help="torch device: cpu, or cuda when a GPU is present (timed "
                                        "with CUDA events).")] = "cpu",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write all rows, the settings and the "
                                                "targets as JSON to this file.")] = None,
    threads: Annotated[int, typer.Option(help="torch CPU threads for the run and its memory subprocesses.")] = 1,
    part: Annotated[str, typer.Option(help="What to run: all, neurons (one neuron layer) or training "
                                      "(a training step, plain vs recorded).")] = "all",
    peak: Annotated[bool, typer.Option(help="Measure peak memory (CPU: peak RSS of one call, read from "
                                       "/proc); --no-peak reports saved-for-backward bytes only.")] = True,
    isolated: Annotated[bool, typer.Option("--isolated-peak", help="Measure each variant's peak memory in a "
                                           "fresh subprocess (slower, cleaner).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines; tables only.")] = False,
) -> None:
    """Benchmark gradflow's neurons and recorder; ratios against a baseline run in the same process.

    Neurons: forward + backward of one LIF/CLIF layer, a step-by-step baseline (stateful module called
    once per step, as the official CLIF code and SpikingJelly's torch backend run neurons) vs gradflow's
    torch and fused backends and SpikingJelly's multi-step LIFNode. Training: one SGD step of
    spiking_resnet18 (T=6, batch 8, 32x32) and of an MLP, plain vs gradflow.record(...) with
    per_step only, with the weight split, and with pairs, on the torch and the fused neuron backend
    (all against plain on the torch backend). Never use these numbers as test assertions.
    """
    from gradflow.lab.bench import run_bench

    if part not in PARTS:
        raise UsageError(f"--part must be one of {', '.join(PARTS)}, got {part!r}.")
    if out is not None and out.exists() and out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; give a file name such as bench.json.")
    log = None if quiet else (lambda msg: typer.echo(msg, err=True))
    res = run_bench(quick=quick, device=device, threads=threads, parts=PARTS[part], peak=peak, isolated=isolated,
                    log=log)
    meta = res["meta"]
    echo(f"gradflow bench on {meta['device']} ({meta['device_name']}), {meta['threads']} thread(s), "
         f"torch {meta['torch']}")
    echo(f"time: {meta['timing']}")
    echo(f"memory: {meta['memory_saved']}; {meta['memory_peak']}")
    if res["neurons"]:
        echo("")
        echo(neuron_table(res["neurons"]))
    if res["training"]:
        echo("")
        echo(training_table(res["training"]))
    echo("")
    for name, tgt in res["targets"].items():
        if tgt["value"] is not None:
            verdict = "met" if tgt["met"] else "MISSED"
            echo(f"target {name}: {tgt['value']:.3f} ({tgt['target']}) {verdict}")
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res, indent=1))
        except OSError as err:
            raise UsageError(f"Cannot write {str(out)!r}: {err.strerror}.") from None
        echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the gradflow app."""
    app.command("bench")(user_errors(bench_command))
