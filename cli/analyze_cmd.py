"""``gradflow analyze``: checkpoints in, a vanishing-gradient report out.

A thin command over the library pipeline :func:`gradflow.load_checkpoint` -> :func:`gradflow.analyze`
-> :meth:`gradflow.analysis.Analysis.write`; it parses options and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from gradflow.errors import UsageError

from .choices import Arch, Loss, Mode, Neuron, Surrogate, value
from .common import SampleProgress, add_command, echo, table

DEFAULT_OUT = "gradflow-report"

CHECKPOINT, OWN, INPUTS, RECORDING, OUTPUT = ("Reading the checkpoint", "Your own network", "Inputs", "Recording",
                                              "Output")

#: Library arguments whose flag has another name.
FLAGS = {"memory_limit_gb": "--memory-limit", "pairs": "--no-pairs", "input_file": "--input",
         "trust": "--trust-checkpoint", "path": "CHECKPOINTS", "checkpoint": "CHECKPOINTS", "model_spec": "--model",
         "model_args": "--model-arg"}


# The command's parameters, one alias each (Typer reads the help text and panel from them).
CheckpointsArgument = Annotated[Optional[List[Path]], typer.Argument(
    help="Checkpoint file(s): gradflow's own, the official CLIF code's, SpikingJelly's or a bare "
    "state_dict. Two or more give one side-by-side report. None: the built-in LIF and CLIF demo "
    "checkpoints.", show_default=False)]
ArchOption = Annotated[Optional[Arch], typer.Option(
    help="Architecture, for checkpoints that do not name one.", rich_help_panel=CHECKPOINT)]
NeuronOption = Annotated[Optional[Neuron], typer.Option(
    help="Neuron kind, for checkpoints that do not say (or to override it).", rich_help_panel=CHECKPOINT)]
TauOption = Annotated[Optional[float], typer.Option(
    help="Membrane time constant tau (> 1; gamma = 1 - 1/tau).", rich_help_panel=CHECKPOINT)]
VThresholdOption = Annotated[Optional[float], typer.Option(
    "--v-threshold", help="Firing threshold theta.", rich_help_panel=CHECKPOINT)]
SurrogateOption = Annotated[Optional[Surrogate], typer.Option(
    help="Surrogate gradient of the spike.", rich_help_panel=CHECKPOINT)]
AlphaOption = Annotated[Optional[float], typer.Option(
    help="Surrogate width or sharpness alpha.", rich_help_panel=CHECKPOINT)]
StepsOption = Annotated[Optional[int], typer.Option(
    "--T", help="Time steps a static input is repeated over.", rich_help_panel=CHECKPOINT)]
TrustCheckpointOption = Annotated[bool, typer.Option(
    "--trust-checkpoint", help="Fully unpickle checkpoints and input files: they may run code. Only for "
    "files you trust.", rich_help_panel=CHECKPOINT)]
InputOption = Annotated[Optional[Path], typer.Option(
    "--input", help=".pt or .npz file with x ([N, ...] or [T, N, ...]) and optional labels y.",
    rich_help_panel=INPUTS)]
DataOption = Annotated[Optional[str], typer.Option(
    help="cifar10:DIR, cifar100:DIR, task:NAME[:key=value,...] or random. Default: the task stored in a "
    "gradflow checkpoint, else random input.", rich_help_panel=INPUTS)]
SamplesOption = Annotated[int, typer.Option(
    help="Input samples to record in all, over several backward passes.", rich_help_panel=INPUTS)]
BatchSizeOption = Annotated[Optional[int], typer.Option(
    "--batch-size", help="Samples per backward pass. Default: as many as fit --memory-limit, at most 256.",
    show_default=False, rich_help_panel=INPUTS)]
SeedOption = Annotated[int, typer.Option(help="Seed of the input samples.", rich_help_panel=INPUTS)]
ModeOption = Annotated[Mode, typer.Option(
    help="eval: batch norm uses its running statistics; train: batch statistics (running statistics "
    "are restored afterwards).", rich_help_panel=RECORDING)]
LossOption = Annotated[Loss, typer.Option(
    help="ce: mean over t of the cross-entropy of the step logits; tet adds the TET regulariser. A "
    "built-in task scores its own readout steps.", rich_help_panel=RECORDING)]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.", rich_help_panel=RECORDING)]
MaxLagOption = Annotated[Optional[int], typer.Option(
    "--max-lag", help="Largest lag of the pair matrix (bounds time and memory). Default: T - 1.",
    show_default=False, rich_help_panel=RECORDING)]
NoPairsOption = Annotated[bool, typer.Option(
    "--no-pairs", help="Skip the pair matrix, the lags and the theory comparison.",
    rich_help_panel=RECORDING)]
MemoryLimitOption = Annotated[float, typer.Option(
    "--memory-limit", help="Stop if the estimated memory of one backward pass exceeds this many GiB.",
    rich_help_panel=RECORDING)]
ModelOption = Annotated[Optional[str], typer.Option(
    "--model", metavar="SPEC", help="Build the network from your own code: path/to/file.py:NAME or "
    "package.module:NAME (a class or factory returning an nn.Module); the checkpoints, if any, give its "
    "weights. This IMPORTS AND RUNS that code; checkpoints alone are read without running code.",
    show_default=False, rich_help_panel=OWN)]
ModelArgOption = Annotated[Optional[List[str]], typer.Option(
    "--model-arg", metavar="KEY=VALUE", help="An argument for --model's class or factory (a Python literal, "
    "else a string); repeat for several.", show_default=False, rich_help_panel=OWN)]
OutputIndexOption = Annotated[Optional[str], typer.Option(
    "--output-index", metavar="INDEX", help="Which element of your model's output holds the logits (a "
    "position or a key). Default: found by shape.", show_default=False, rich_help_panel=OWN)]
TimeMajorOption = Annotated[Optional[bool], typer.Option(
    "--time-major/--batch-first", help="Whether --input's x is [T, N, ...] or [N, ...] for your own network. "
    "Default: read from its shape and labels.", show_default=False, rich_help_panel=OWN)]
OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="Report directory (written atomically).", rich_help_panel=OUTPUT)]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Replace an existing report directory.", rich_help_panel=OUTPUT)]
AsJsonOption = Annotated[bool, typer.Option(
    "--json", help="Print summary.json to stdout (for scripts).", rich_help_panel=OUTPUT)]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress, notes or terminal table.", rich_help_panel=OUTPUT)]


def analyze_command(
    checkpoints: CheckpointsArgument = None,
    arch: ArchOption = None,
    neuron: NeuronOption = None,
    tau: TauOption = None,
    v_threshold: VThresholdOption = None,
    surrogate: SurrogateOption = None,
    alpha: AlphaOption = None,
    T: StepsOption = None,
    trust_checkpoint: TrustCheckpointOption = False,
    model: ModelOption = None,
    model_arg: ModelArgOption = None,
    output_index: OutputIndexOption = None,
    time_major: TimeMajorOption = None,
    input: InputOption = None,
    data: DataOption = None,
    samples: SamplesOption = 1024,
    batch_size: BatchSizeOption = None,
    seed: SeedOption = 0,
    mode: ModeOption = Mode("eval"),
    loss: LossOption = Loss("ce"),
    device: DeviceOption = "cpu",
    max_lag: MaxLagOption = None,
    no_pairs: NoPairsOption = False,
    memory_limit: MemoryLimitOption = 8.0,
    out: OutOption = Path(DEFAULT_OUT),
    force: ForceOption = False,
    as_json: AsJsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Record spatial vs temporal gradients of checkpoints and write tables, figures and an HTML report.

    Records --samples input samples through every spiking layer, compares the measured decay of the
    temporal gradient with the closed-form theory, and writes the report directory (summary.json,
    CSV tables, figures, report.md, index.html; docs/reference.md defines every number).
    """
    # imported here to keep `gradflow --help` quick (torch loads only when a command runs)
    import gradflow
    from gradflow.analysis import AnalysisConfig

    if out.exists() and not force:
        raise UsageError(f"The output directory {out} already exists; pass --force to replace it.")
    config = AnalysisConfig(samples=samples, batch_size=batch_size, seed=seed, loss=value(loss),
                            mode=value(mode), device=device, pairs=not no_pairs, max_lag=max_lag,
                            memory_limit_gb=memory_limit, output_index=_index(output_index))
    chatty = not quiet and not as_json
    if trust_checkpoint:
        echo("gradflow: --trust-checkpoint: files are fully unpickled, which can run code stored in them.",
             not chatty)
    overrides = dict(arch=value(arch), neuron=value(neuron), tau=tau, v_threshold=v_threshold,
                     surrogate=value(surrogate), alpha=alpha, T=T)
    runs = _load_runs(checkpoints, model, model_arg or [], trust_checkpoint, overrides, chatty)
    with SampleProgress(enabled=chatty) as bar:
        result = gradflow.analyze(runs, config=config, data=data, input_file=input, time_major=time_major,
                                  trust=trust_checkpoint, progress=bar)
    path = result.write(out, force=force)
    for w in result.warnings:
        typer.echo(f"gradflow: warning: {w}", err=True)
    if as_json:
        typer.echo(json.dumps(json.loads((path / "summary.json").read_text()), indent=2))
    elif chatty:
        _print_result(result, path)


def _index(text: Optional[str]):
    """``--output-index``: an integer position, or a key of a dict output."""
    return int(text) if text is not None and text.lstrip("-").isdigit() else text


def _load_runs(checkpoints, model_spec, model_args, trust: bool, overrides: dict, chatty: bool) -> dict:
    """``{run name: loaded model}``: the checkpoints (the demo pair by default), or the user's network
    built by --model (once per checkpoint, or once with its own initial weights)."""
    from gradflow.analysis import run_names
    from gradflow.io.checkpoints import demo_checkpoint_paths, load_checkpoint
    from gradflow.io.usermodel import load_user_model

    if model_spec is not None:
        loaded = [load_user_model(model_spec, path, model_args=model_args, trust=trust)
                  for path in (checkpoints or [None])]
        lines = [f"{um.description} ({um.checkpoint or 'its initial weights'}, {um.converted} neurons "
                 f"converted)" for um in loaded]
    else:
        loaded = [load_checkpoint(p, trust=trust, **overrides) for p in (checkpoints or demo_checkpoint_paths())]
        lines = [f"{lm.path} ({lm.format} format, {lm.config['name']}, {lm.config['neuron']}, T={lm.config['T']})"
                 for lm in loaded]
    runs = dict(zip(run_names(loaded), loaded))
    for (name, item), line in zip(runs.items(), lines):
        echo(f"{name}: {line}" + "".join(f"\n  - {note}" for note in item.notes), not chatty)
    return runs


def _print_result(result, path: Path) -> None:
    """The per-layer summary as a terminal table, the findings, and where the report is."""
    from gradflow.report import display_summary

    echo(f"\n{table(display_summary(result.summary))}\n")
    for line in result.findings()[:8]:
        echo(f"- {line}")
    echo(f"\nReport written to {path}/index.html")


def register(app: typer.Typer) -> None:
    """Add ``analyze`` to the gradflow app."""
    add_command(app, "analyze", analyze_command, FLAGS)
