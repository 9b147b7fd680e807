"""The command line as a whole: one module per command, Enum choices listed in --help, repeated list
options, help panels, and every error as one line with the right exit code (2 usage, 1 data)."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import gradflow
from gradflow import schema
from gradflow.io.checkpoints import load_checkpoint
from gradflow.lab.experiments import EXPERIMENTS
from gradflow_cli import common, main
from gradflow_cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "300", "TERMINAL_WIDTH": "300"}  # one help row per option, nothing wrapped
TINY = "delay:delay=0,num_classes=2,group=2"

# (command, flag, the values --help must list, where they come from)
CHOICES = [
    ("analyze", "--neuron", schema.NEURON_KINDS),
    ("analyze", "--surrogate", schema.SURROGATES),
    ("analyze", "--arch", schema.ARCHITECTURES),
    ("analyze", "--mode", schema.RECORD_MODES),
    ("analyze", "--loss", schema.LOSSES),
    ("train", "--neuron", schema.NEURON_KINDS),
    ("train", "--switch-to", schema.NEURON_KINDS),
    ("train", "--arch", schema.ARCHITECTURES),
    ("train", "--optimizer", schema.OPTIMIZERS),
    ("train", "--loss", schema.LOSSES),
    ("train", "--backend", schema.BACKENDS),
    ("theory", "--surrogate", schema.SURROGATES),
    ("theory", "--reset", schema.RESETS),
    ("theory", "--neuron", ("lif", "clif", "both")),
    ("experiment", "experiment", tuple(EXPERIMENTS)),
    ("bench", "--part", ("all", "neurons", "training", "watch")),
]


def _help(command: str) -> str:
    res = runner.invoke(app, [command, "--help"], env=WIDE)
    assert res.exit_code == 0, res.output
    return res.output


def _error_line(res) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("gradflow: error: ") and "Traceback" not in res.output
    return lines[0]


def test_every_command_has_its_own_module():
    names = [m.__name__.rsplit(".", 1)[1] for m in main.COMMAND_MODULES]
    assert sorted(names) == sorted(["analyze_cmd", "report_cmd", "theory_cmd", "demo_cmd", "train_cmd",
                                    "clif_to_lif_cmd", "experiment_cmd", "bench_cmd"])
    res = runner.invoke(app, ["--help"], env=WIDE)
    for command in ("analyze", "report", "theory", "demo", "train", "clif-to-lif", "experiment", "bench"):
        assert command in res.output


def test_help_does_not_load_torch():
    code = ("import sys; from typer.testing import CliRunner; from gradflow_cli.main import app; "
            "r = CliRunner().invoke(app, ['train', '--help']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("command, flag, values", CHOICES, ids=[f"{c}{f}" for c, f, _ in CHOICES])
def test_help_lists_the_choices(command, flag, values):
    text = _help(command)
    row = next((line for line in text.splitlines() if f" {flag} " in line and "<" in line), None)
    assert row is not None, flag
    metavar = f"<{'|'.join(values)}>"
    if len(metavar) < 100:
        assert metavar in row  # Typer lists the Enum's values itself, in the library's order
    else:  # Typer shortens a long list; the help text lists every value
        flat = " ".join(text.replace("│", " ").split())
        assert row[row.index("<"):].startswith(metavar[:40]) and all(f" {v} (" in flat for v in values)


@pytest.mark.parametrize("command, panels, sentence", [
    ("analyze", ["Reading the checkpoint", "Your own network", "Inputs", "Recording", "Output"],
     "Records --samples input samples through every spiking layer, compares the measured decay of the temporal "
     "gradient"),
    ("train", ["Task and data", "Model", "Optimisation", "Recording", "Output"],
     "Loss and accuracy are scored on the task's readout steps (all steps for static tasks). The output directory"),
    ("theory", ["Neuron", "Simulated input", "Output"],
     "Writes CSVs, Markdown/LaTeX tables, PNG/SVG figures, summary.json and a self-contained index.html. Runs in "
     "seconds"),
    ("bench", ["What to run", "Output"],
     "Neurons: forward + backward of one LIF/CLIF layer, a step-by-step baseline"),
    ("demo", ["Neurons", "Recorded networks", "Output"], "Runs in seconds on a laptop CPU; DIR/index.html embeds"),
    ("clif-to-lif", ["Sweep", "Output"],
     "The weights are kept; each LIF neuron takes the CLIF neuron's tau, threshold and surrogate. Reference rows"),
    ("experiment", ["Runs", "Scale (experiments that take it)"],
     "Writes runs.csv, summary.csv, summary.md, further tables and figures/ to --out; report.md, written by a"),
])
def test_help_groups_options_in_panels(command, panels, sentence):
    text = _help(command)
    found = [p for p in panels if f"─ {p} ─" in text]
    assert sorted(found, key=lambda p: text.index(f"─ {p} ─")) == panels  # all there, in this order
    # docstrings are reflowed: a paragraph is not cut where the source's lines end
    assert sentence in text


def test_no_arguments_shows_help_with_exit_code_2():
    res = runner.invoke(app, [])
    assert res.exit_code == 2 and "analyze" in res.output


@pytest.mark.parametrize("argv, fragment", [
    (["analyze", "--surrogate", "relu"], "Unknown surrogate 'relu'; choose one of rectangle, sigmoid, atan, triangle "
                                         "(--surrogate)."),
    (["train", "--optimizer", "rmsprop"], "Unknown optimizer 'rmsprop'; choose one of sgd, adam (--optimizer)."),
    (["train", "--switch-to", "izh"], "Unknown neuron 'izh'; choose one of lif, clif, plif, if (--switch-to)."),
    (["analyze", "--arch", "resnet9"], "Unknown architecture 'resnet9'; choose one of mlp, snn5_noAP"),
    (["bench", "--part", "everything"], "Unknown part 'everything'; choose one of all, neurons, training, watch (--part)."),
    (["analyze", "--samples", "many"], "--samples"),
    (["analyze", "--bogus"], "No such option: --bogus"),
    (["clif-to-lif"], "Missing argument"),
    (["experiment", "clif-to-lif"], "Missing option '--out'"),
])
def test_usage_errors_are_one_line_with_exit_code_2(argv, fragment):
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    line = _error_line(res)
    assert fragment in line and f"See 'gradflow {argv[0]} --help'." in line


def test_lists_are_repeated_options(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", "--task", TINY, "--epochs", "0", "--n-train", "8", "--n-test", "8",
                              "--widths", "6", "--widths", "5", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out / "model.pt").config["widths"] == [6, 5]
    # one form only: a comma list is a usage error that says how to give several values
    res = runner.invoke(app, ["train", "--task", TINY, "--widths", "6,5", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "--widths" in _error_line(res) and "Repeat the option for several values" in res.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, code, fragment", [
    # library errors name library arguments; the command line shows its own flags instead
    (["analyze", "--samples", "0"], 2, "--samples must be a positive integer, got 0."),
    (["analyze", "--max-lag", "-1"], 2, "--max-lag must be a non-negative integer, got -1."),
    (["analyze", "--T", "0"], 2, "--T must be a positive integer"),
    (["analyze", "--memory-limit", "0.000001", "--samples", "8"], 2, "use --max-lag, a smaller --batch-size or "
                                                                      "fewer --samples, or raise --memory-limit."),
    (["train", "--task", TINY, "--switch-to", "clif"], 2, "--switch-to and --at-epoch go together"),
    (["train", "--task", TINY, "--lr", "0"], 2, "--lr must be a positive number"),
    (["train", "--task", TINY, "--T", "9"], 2, "leave --T unset"),
    # data errors: exit code 1
    (["clif-to-lif", "{bad}"], 1, "not a readable PyTorch checkpoint"),
])
def test_library_errors_map_to_flags_and_exit_codes(tmp_path, argv, code, fragment):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    argv = [a.replace("{bad}", str(bad)) for a in argv]
    if argv[0] in ("analyze", "train"):
        argv += ["--out", str(tmp_path / "out")]
    res = runner.invoke(app, argv)
    assert res.exit_code == code, res.output
    assert fragment in _error_line(res)


def test_clif_to_lif_on_a_lif_checkpoint_is_a_usage_error(tmp_path):
    net = gradflow.models.build("mlp", in_features=4, widths=(4,), num_classes=2, T=3)
    gradflow.save_checkpoint(net, tmp_path / "lif.pt", task={"name": "delay", "delay": 0}, seed=0)
    res = runner.invoke(app, ["clif-to-lif", str(tmp_path / "lif.pt")])
    assert res.exit_code == 2 and "needs a CLIF-trained checkpoint; this one has lif neurons" in _error_line(res)


def test_interrupt_is_exit_code_130(monkeypatch):
    import gradflow.lab.experiments as experiments

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_experiment", interrupted)
    res = runner.invoke(app, ["experiment", "clif-to-lif", "--out", "x"])
    assert res.exit_code == 130 and _error_line(res) == "gradflow: error: interrupted."


def test_terminal_tables_and_flag_mapping_doctests():
    result = doctest.testmod(common)
    assert result.attempted >= 4 and result.failed == 0
    assert common.to_flags("batches must be positive.", {"batches": "--batches"}, ()) == "--batches must be positive."
    # without .arguments only the opening word is replaced: a later "batches" is prose
    assert common.to_flags("The source gave no batches.", {"batches": "--batches"}) == "The source gave no batches."
    assert torch.__version__  # the library is importable next to the CLI
