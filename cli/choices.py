"""The choices of the command line as Enums, so that ``--help`` lists them and Typer checks them.

Every list comes from where the library keeps it: neuron kinds, surrogates, backends, architectures,
tasks, losses, optimizers, recording modes, resets and the theory's neuron choices from the torch-free
:mod:`gradflow.schema`, the experiments from their torch-free registry
(:data:`gradflow.lab.experiments.EXPERIMENTS`). Nothing here imports torch, so ``gradflow --help``
stays quick.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable, Type

from gradflow import schema
from gradflow.lab.experiments import EXPERIMENTS

__all__ = ["choices", "Neuron", "Surrogate", "Backend", "Arch", "Loss", "Optimizer", "Mode", "Reset",
           "TheoryNeuron", "ExperimentName", "BenchPart"]


def choices(name: str, values: Iterable[str]) -> Type[Enum]:
    """A ``str`` Enum called ``name`` whose members are ``values`` (member name = value).

    >>> list(choices("Colour", ["red", "green"]).__members__)
    ['red', 'green']
    """
    return Enum(name, [(v, v) for v in values], type=str)


Neuron = choices("Neuron", schema.NEURON_KINDS)
Surrogate = choices("Surrogate", schema.SURROGATES)
Backend = choices("Backend", schema.BACKENDS)
Arch = choices("Arch", schema.ARCHITECTURES)
Loss = choices("Loss", schema.LOSSES)
Optimizer = choices("Optimizer", schema.OPTIMIZERS)
Mode = choices("Mode", schema.RECORD_MODES)
Reset = choices("Reset", schema.RESETS)
TheoryNeuron = choices("TheoryNeuron", schema.THEORY_NEURONS)
ExperimentName = choices("ExperimentName", EXPERIMENTS)

#: What ``gradflow bench --part`` runs: the parts of :func:`gradflow.lab.bench.run_bench`.
BENCH_PARTS = {"all": ("neurons", "training"), "neurons": ("neurons",), "training": ("training",),
               "watch": ("watch",)}
BenchPart = choices("BenchPart", BENCH_PARTS)


def value(choice) -> object:
    """The plain value of an Enum choice (None stays None)."""
    return None if choice is None else getattr(choice, "value", choice)
