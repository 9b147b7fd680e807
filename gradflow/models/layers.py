"""Time-major building blocks shared by the architectures.

Every tensor between layers is time-major, ``[T, N, ...]``. Three kinds of layer meet in a network:

* **stateless** layers (conv, linear, pooling, flatten) see each step independently, so they run once on
  the time-merged tensor ``[T*N, ...]`` (:func:`merge_time`, :func:`split_time`, :func:`apply_merged`);
* **spiking neurons** (:class:`gradflow.neurons.SpikingNeuron`) take the whole ``[T, N, ...]`` sequence;
* **batch norm** keeps the official code's semantics, which calls the network once per time step:
  in training mode each step is normalised with its own batch statistics and the running statistics are
  updated once per step (T updates per call); with running statistics (eval mode) all steps are
  independent and run merged (:func:`batch_norm_over_time`). The module itself stays a plain
  ``nn.BatchNorm2d`` so state_dicts match the official ones key for key.

:class:`TimeSequential` is an ``nn.Sequential`` (same state_dict keys) whose forward applies each child
the right way, and :class:`TimeDropout` keeps one mask per sample for all T steps.

>>> seq = TimeSequential(nn.Linear(3, 2), nn.Flatten())
>>> seq(torch.zeros(4, 5, 3)).shape                       # [T=4, N=5, 3] -> [4, 5, 2]
torch.Size([4, 5, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from ..neurons import SpikingNeuron

__all__ = [
    "merge_time",
    "split_time",
    "apply_merged",
    "batch_norm_over_time",
    "apply_time_major",
    "is_time_major",
    "TimeSequential",
    "TimeDropout",
    "init_weights",
]


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``[T, N, ...] -> [T*N, ...]`` (step-major: rows ``t*N .. t*N+N-1`` hold step t)."""
    return x.flatten(0, 1)


def split_time(y: torch.Tensor, T: int) -> torch.Tensor:
    """``[T*N, ...] -> [T, N, ...]``, the inverse of :func:`merge_time`."""
    return y.reshape(T, y.shape[0] // T, *y.shape[1:])


def apply_merged(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a stateless per-step ``module`` on all steps of ``x`` ``[T, N, ...]`` at once."""
    return split_time(module(merge_time(x)), x.shape[0])


def batch_norm_over_time(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of a ``[T, N, C, ...]`` sequence, step by step where batch statistics are used.

    Training mode (or ``track_running_stats=False``): ``bn(x[t])`` for each t, i.e. per-step batch mean
    and variance over ``N`` and the spatial dims, and one running-statistics update per step, exactly as
    T separate calls of a single-step network do. Eval mode: running statistics, merged over T.
    """
    if bn.training or not bn.track_running_stats:
        return torch.stack([bn(x[t]) for t in range(x.shape[0])])
    return apply_merged(bn, x)


def is_time_major(module: nn.Module) -> bool:
    """Whether ``module`` takes a whole ``[T, N, ...]`` sequence itself (neurons, gradflow blocks)."""
    return isinstance(module, SpikingNeuron) or bool(getattr(module, "time_major", False))


def apply_time_major(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply any child module to a ``[T, N, ...]`` sequence with the semantics described above."""
    if is_time_major(module):
        return module(x)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return batch_norm_over_time(module, x)
    return apply_merged(module, x)


class TimeSequential(nn.Sequential):
    """``nn.Sequential`` over ``[T, N, ...]`` sequences (same children, same state_dict keys).

    Each child is applied by :func:`apply_time_major`: neurons and dropout see the sequence, batch norm
    runs per step in training, everything else runs on the merged ``[T*N, ...]`` tensor.
    """

    time_major = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            x = apply_time_major(module, x)
        return x


class TimeDropout(nn.Module):
    """Dropout with one mask per sample shared by all T steps.

    In training mode a Bernoulli(1 - p) mask of shape ``[1, N, ...]`` (one step) is drawn from torch's
    global generator, scaled by ``1 / (1 - p)`` and broadcast over T, as SpikingJelly's ``layer.Dropout``
    does when a single-step network is called T times. Identity in eval mode or with ``p = 0``.

    >>> drop = TimeDropout(0.5).train()
    >>> y = drop(torch.ones(3, 2, 4))                          # [T=3, N=2, 4]
    >>> bool((y == y[0]).all()) and set(y.unique().tolist()) <= {0.0, 2.0}
    True
    """

    time_major = True

    def __init__(self, p: float = 0.0):
        super().__init__()
        try:
            p = float(p)
        except (TypeError, ValueError):
            raise UsageError(f"dropout must be a probability in [0, 1), got {p!r}.") from None
        if not 0.0 <= p < 1.0:
            raise UsageError(f"dropout must be a probability in [0, 1), got {p!r}.")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * (mask / keep)

    def extra_repr(self) -> str:
        return f"p={self.p:g}, mask shared over T"


def init_weights(model: nn.Module) -> None:
    """Default initialisation: Kaiming-normal (fan-in, ReLU gain) conv and linear weights, zero biases.

    Batch norm keeps ``weight = 1``, ``bias = 0``. At ``tau = 2``, ``theta = 1`` on N(0, 1) input, in
    training mode (batch statistics) every neuron layer fires about 14-30% of the time at initialisation,
    so gradients are not all zero. In eval mode a fresh model's batch norms are the identity (running
    mean 0, variance 1) and firing fades with depth until running statistics have been learned.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
