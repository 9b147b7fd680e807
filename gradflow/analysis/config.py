"""How :func:`gradflow.analyze` records: :class:`AnalysisConfig` (every field is also a keyword of analyze)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch

from .. import stats, theory
from ..errors import UsageError
from ..losses import get_loss
from ..schema import RECORD_MODES

__all__ = ["AnalysisConfig", "MODES", "MAX_AUTO_BATCH", "Progress"]

MODES = RECORD_MODES

#: The largest batch the automatic batch size picks (larger batches barely speed up a CPU).
MAX_AUTO_BATCH = 256

#: ``progress(run, samples_done, samples_total)``, called after every recorded backward pass.
Progress = Callable[[str, int, int], None]

def _bad(argument: str, message: str) -> UsageError:
    """A :class:`UsageError` about the library argument ``argument`` (named in ``err.arguments``, so
    that the command line can show its own flag in its place: ``max_lag`` -> ``--max-lag``)."""
    return UsageError(message, arguments=(argument,))


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _bad(name, f"{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class AnalysisConfig:
    """How :func:`analyze` records (every field is also a keyword argument of :func:`analyze`).

    ``samples``: input samples to record in all (default 1024), in backward passes of ``batch_size``
    samples (the last pass takes the remainder). ``batch_size=None`` picks the largest power of two up
    to :data:`MAX_AUTO_BATCH` whose estimated memory (:func:`estimate_memory`) fits ``memory_limit_gb``.
    ``seed``: seed of the input batches. ``loss``: ``ce`` (mean over t of the cross-entropy of the step
    logits) or ``tet``; a built-in task scores its own readout steps with it. ``mode``: one of
    :data:`MODES`. ``device``: ``cpu``, ``cuda`` or ``cuda:N``. ``pairs``: record the pair norms, the
    lag table and the theory comparison (cost grows with ``T * (max_lag + 1)``). ``weights``: record
    the spatial/temporal split of the weight gradients. ``max_lag``: the largest lag recorded
    (None: all ``T - 1``). ``memory_limit_gb``: refuse to record when the estimated memory of one
    backward pass exceeds it (None: no check). ``theory_model``: the theory's prediction model for
    ``predicted_relative`` (None: the theory's default; :data:`gradflow.theory.MODELS`). ``resamples``:
    bootstrap resamples of the report's 95% intervals (over samples, seeded with ``seed``).
    ``output_index``: for the user's own network, which element of its output holds the logits (an
    index or a key; None: found by shape, :func:`gradflow.io.usermodel.extract_logits`).

    Raises :class:`UsageError` naming the field on a bad value.

    >>> AnalysisConfig(samples=64).batches(16)
    4
    >>> AnalysisConfig(max_lag=-1)
    Traceback (most recent call last):
    ...
    gradflow.errors.UsageError: max_lag must be a non-negative integer, got -1.
    """

    samples: int = 1024
    batch_size: Optional[int] = None
    seed: int = 0
    loss: str = "ce"
    mode: str = "eval"
    device: str = "cpu"
    pairs: bool = True
    weights: bool = True
    max_lag: Optional[int] = None
    memory_limit_gb: Optional[float] = 8.0
    theory_model: Optional[str] = None
    resamples: int = stats.DEFAULT_RESAMPLES
    output_index: Union[int, str, None] = None

    def __post_init__(self) -> None:
        _positive_int("samples", self.samples)
        _positive_int("resamples", self.resamples)
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise _bad("seed", f"seed must be an integer, got {self.seed!r}.")
        get_loss(self.loss)
        if self.mode not in MODES:
            raise _bad("mode", f"mode must be one of {', '.join(MODES)}, got {self.mode!r}.")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise _bad("device", f"device must be cpu, cuda or cuda:N, got {self.device!r}.") from None
        if self.max_lag is not None and (isinstance(self.max_lag, bool) or not isinstance(self.max_lag, int)
                                         or self.max_lag < 0):
            raise _bad("max_lag", f"max_lag must be a non-negative integer, got {self.max_lag!r}.")
        if self.memory_limit_gb is not None and not (self.memory_limit_gb > 0):
            raise _bad("memory_limit_gb", f"memory_limit_gb must be positive, got {self.memory_limit_gb!r}.")
        if self.theory_model is not None and self.theory_model not in theory.MODELS:
            raise _bad("theory_model", f"theory_model must be one of {', '.join(theory.MODELS)}, "
                                       f"got {self.theory_model!r}.")

    def batches(self, batch_size: int) -> int:
        """Backward passes needed for :attr:`samples` at ``batch_size`` samples each."""
        return math.ceil(self.samples / batch_size)


