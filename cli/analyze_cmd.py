"""``gradflow analyze``: checkpoints in, a vanishing-gradient report out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import echo, progress, user_errors

DEFAULT_OUT = "gradflow-report"


def _run_names(loaded) -> List[str]:
    """Run labels: the neuron kinds (LIF, CLIF) when they differ, else the file stems."""
    kinds = [lm.config["neuron"].upper() for lm in loaded]
    if len(set(kinds)) == len(kinds):
        return kinds
    stems = [Path(lm.path).stem for lm in loaded]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i}:{s}" for i, s in enumerate(stems)]


def _terminal_table(summary_df) -> str:
    from gradflow.report import display_summary

    df = display_summary(summary_df)
    cols = list(df.columns)
    rows = [[str(v) for v in r] for r in df.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in rows])


def analyze_command(
    checkpoints: Annotated[
        Optional[List[Path]],
        typer.Argument(help="Checkpoint file(s). Two or more give one side-by-side report. "
                       "None: the built-in LIF and CLIF demo checkpoints."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory (written atomically).")] = Path(DEFAULT_OUT),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing report directory.")] = False,
    arch: Annotated[Optional[str], typer.Option(help="Architecture for checkpoints that do not name one.")] = None,
    neuron: Annotated[Optional[str], typer.Option(help="Neuron kind: lif, clif or plif.")] = None,
    tau: Annotated[Optional[float], typer.Option(help="Membrane time constant (> 1).")] = None,
    v_threshold: Annotated[Optional[float], typer.Option("--v-threshold", help="Firing threshold theta.")] = None,
    surrogate: Annotated[Optional[str], typer.Option(help="rectangle, sigmoid, atan or triangle.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="Surrogate width/sharpness alpha.")] = None,
    T: Annotated[Optional[int], typer.Option("--T", help="Time steps a static input is repeated over.")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help=".pt or .npz with x ([N,...] or [T,N,...]) and optional y.")] = None,
    data: Annotated[Optional[str], typer.Option(help="cifar10:DIR, cifar100:DIR, task:NAME[:k=v,...] or random.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 32,
    batches: Annotated[int, typer.Option(help="Batches to record (each one backward pass).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed for sampling inputs.")] = 0,
    mode: Annotated[str, typer.Option(help="eval (BN running stats) or train (batch stats).")] = "eval",
    loss: Annotated[str, typer.Option(help="ce (mean over t of CE) or tet.")] = "ce",
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    max_lag: Annotated[Optional[int], typer.Option("--max-lag", help="Largest lag of the pair matrix (bounds cost).")] = None,
    no_pairs: Annotated[bool, typer.Option("--no-pairs", help="Skip the pair matrix, lags and theory.")] = False,
    memory_limit: Annotated[float, typer.Option("--memory-limit", help="Stop if the estimated memory exceeds this many GiB.")] = 8.0,
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Fully unpickle the checkpoint: it may run code. Only for files you trust.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout (for scripts).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or terminal table.")] = False,
) -> None:
    """Record spatial vs temporal gradients of a checkpoint and write tables, figures and an HTML report."""
    from gradflow import report
    from gradflow.analysis import analyze, combine
    from gradflow.io.checkpoints import load_checkpoint
    from gradflow.io.inputs import resolve_input
    from gradflow.io.checkpoints import demo_checkpoint_paths
    from gradflow.errors import UsageError

    if T is not None and T <= 0:
        raise UsageError(f"--T must be a positive integer, got {T}.")
    out = Path(out)
    if out.exists() and not force:
        raise UsageError(f"The output directory {out} already exists; pass --force to replace it.")
    paths = list(checkpoints) if checkpoints else demo_checkpoint_paths()
    if trust_checkpoint and not quiet:
        echo("gradflow: --trust-checkpoint: checkpoints are fully unpickled, which can run code stored in them.", quiet)
    loaded = [
        load_checkpoint(p, arch=arch, neuron=neuron, tau=tau, v_threshold=v_threshold, surrogate=surrogate,
                        alpha=alpha, T=T, trust=trust_checkpoint)
        for p in paths
    ]
    names = _run_names(loaded)
    results = {}
    chatty = not quiet and not as_json
    for name, lm in zip(names, loaded):
        if chatty:
            echo(f"{name}: {lm.path} ({lm.format} format, {lm.config['name']}, {lm.config['neuron']}, T={lm.config['T']})")
            for note in lm.notes:
                echo(f"  - {note}")
        source = resolve_input(lm.model, input_file=str(input) if input else None, data=data,
                               task_config=lm.meta.get("task"), trust=trust_checkpoint)
        res = analyze(
            lm.model, source, batch_size=batch_size, batches=batches, seed=seed, loss=loss, mode=mode,
            device=device, pairs=not no_pairs, max_lag=max_lag, memory_limit_gb=memory_limit,
            progress=(lambda it, n=name: progress(it, batches, f"{n}: recording", enabled=chatty)),
        )
        res.summary.update(checkpoint=lm.path, checkpoint_format=lm.format, inferred=lm.notes,
                           checkpoint_meta={k: v for k, v in lm.meta.items() if isinstance(v, (int, float, str, dict, list))})
        results[name] = res
    result = combine(results)
    title = "gradflow: " + " vs ".join(f"{n} ({r.summary['model']})" for n, r in results.items())
    path = report.write_report(out, summary_json=result.summary, tables=result.tables, title=title, force=force)
    for w in result.warnings:
        typer.echo(f"gradflow: warning: {w}", err=True)
    if as_json:
        typer.echo(json.dumps(json.loads((path / "summary.json").read_text()), indent=2))
        return
    if chatty:
        summary_df = report.summarize(result.tables["per_step"], result.tables.get("lags"),
                                      result.tables.get("weights"), result.tables.get("theory"))
        echo("")
        echo(_terminal_table(summary_df))
        echo("")
        for line in report.findings(summary_df)[:8]:
            echo(f"- {line}")
        echo(f"\nReport written to {path}/index.html")


def register(app: typer.Typer) -> None:
    app.command("analyze")(user_errors(analyze_command))
