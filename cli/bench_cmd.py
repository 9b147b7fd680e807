"""``gradflow bench``: neuron and recording speed and memory (a thin command over
:func:`gradflow.lab.bench.run_bench`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gradflow.errors import UsageError

from .choices import BENCH_PARTS, BenchPart, value
from .common import add_command, echo, table

RUN, OUTPUT = "What to run", "Output"

#: The neuron benchmark's columns and their headings.
NEURON_HEADERS = {"neuron": "neuron", "T": "T", "size": "size", "variant": "variant", "time_ms": "ms",
                  "speedup": "speedup", "saved_mb": "saved MB", "saved_ratio": "saved/base", "peak_mb": "peak MB",
                  "peak_ratio": "peak/base"}
NEURON_FORMATS = {"time_ms": ".2f", "speedup": ".2f", "saved_mb": ".1f", "saved_ratio": ".2f", "peak_mb": ".1f",
                  "peak_ratio": ".2f"}

#: The training-step benchmark's columns and their headings.
TRAINING_HEADERS = {"model": "model", "neuron": "neuron", "T": "T", "batch": "batch", "variant": "variant",
                    "time_ms": "ms", "time_ratio": "x plain", "peak_mb": "peak MB", "extra_peak_mb": "extra MB",
                    "peak_ratio": "peak x"}
TRAINING_FORMATS = {"time_ms": ".1f", "time_ratio": ".2f", "peak_mb": ".1f", "extra_peak_mb": ".1f",
                    "peak_ratio": ".2f"}


# The command's parameters, one alias each (Typer reads the help text and panel from them).
QuickOption = Annotated[bool, typer.Option(
    "--quick", help="A small run (seconds): small sizes, T in {4, 8}, a tiny MLP and a batch-1, T=2 "
    "ResNet-18.", rich_help_panel=RUN)]
PartOption = Annotated[BenchPart, typer.Option(
    help="all (neurons and training), neurons (one neuron layer), training (a training step, plain vs "
    "recorded) or watch (the overhead of gradflow.watch in a training loop).",
    rich_help_panel=RUN)]
DeviceOption = Annotated[str, typer.Option(
    help="torch device: cpu, or cuda when a GPU is present (timed with CUDA events).", rich_help_panel=RUN)]
ThreadsOption = Annotated[int, typer.Option(
    help="torch CPU threads for the run and its memory subprocesses.", rich_help_panel=RUN)]
PeakOption = Annotated[bool, typer.Option(
    help="Measure peak memory (CPU: peak RSS of one call, read from /proc); --no-peak reports "
    "saved-for-backward bytes only.", rich_help_panel=RUN)]
IsolatedOption = Annotated[bool, typer.Option(
    "--isolated-peak", help="Measure each variant's peak memory in a fresh subprocess (slower, cleaner).",
    rich_help_panel=RUN)]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Write all rows, the settings and the targets as JSON to this file.",
    rich_help_panel=OUTPUT)]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress lines; tables only.", rich_help_panel=OUTPUT)]


def bench_command(
    quick: QuickOption = False,
    part: PartOption = BenchPart("all"),
    device: DeviceOption = "cpu",
    threads: ThreadsOption = 1,
    peak: PeakOption = True,
    isolated: IsolatedOption = False,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """Benchmark gradflow's neurons and recorder; ratios against a baseline run in the same process.

    Neurons: forward + backward of one LIF/CLIF layer, a step-by-step baseline (a stateful module called
    once per step, as the official CLIF code and SpikingJelly's torch backend run neurons) vs gradflow's
    torch and fused backends and SpikingJelly's multi-step LIFNode. Training: one SGD step of
    spiking_resnet18 (T=6, batch 8, 32x32) and of an MLP, plain vs gradflow.record(...) with per_step
    only, with the weight split, and with pairs, on the torch and the fused neuron backend (all against
    plain on the torch backend). Never use these numbers as test assertions.
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    from gradflow.lab.bench import run_bench

    if out is not None and out.exists() and out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a directory; give a file name such as bench.json.")
    log = None if quiet else (lambda msg: typer.echo(msg, err=True))
    res = run_bench(quick=quick, device=device, threads=threads, parts=BENCH_PARTS[value(part)], peak=peak,
                    isolated=isolated, log=log)
    meta = res["meta"]
    echo(f"gradflow bench on {meta['device']} ({meta['device_name']}), {meta['threads']} thread(s), "
         f"torch {meta['torch']}")
    echo(f"time: {meta['timing']}")
    echo(f"memory: {meta['memory_saved']}; {meta['memory_peak']}")
    for rows, headers, formats in ((res["neurons"], NEURON_HEADERS, NEURON_FORMATS),
                                   (res["training"], TRAINING_HEADERS, TRAINING_FORMATS)):
        if rows:
            echo("")
            echo(table(rows, list(headers), formats=formats, headers=headers))
    if res["watch"]:  # imported here, like run_bench, to keep `gradflow --help` quick
        from gradflow.lab.watch_bench import watch_table

        echo("")
        echo(watch_table(res["watch"]))
    echo("")
    for name, tgt in res["targets"].items():
        if tgt["value"] is not None:
            echo(f"target {name}: {tgt['value']:.3f} ({tgt['target']}) {'met' if tgt['met'] else 'MISSED'}")
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(res, indent=1))
        except OSError as err:
            raise UsageError(f"Cannot write {str(out)!r}: {err.strerror}.") from None
        echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the gradflow app."""
    add_command(app, "bench", bench_command)
