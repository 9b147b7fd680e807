"""Losses over per-step logits ``O[t]`` of shape ``[T, N, classes]`` (docs/reference.md, Inputs, losses and
analysis settings).

The default, :func:`ce_over_time`, is the mean over t of the cross-entropy of the step-t logits,
``L = (1/T) sum_t CE(O[t], y)``, the CE part of TET as the official CLIF training code computes it.
:func:`tet` adds ``lambda * MSE(O[t], phi)`` with ``lambda = 0.05``, ``phi = 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import UsageError

__all__ = ["ce_over_time", "tet", "LOSSES", "get_loss"]


def _check(logits: torch.Tensor, y: torch.Tensor) -> None:
    if logits.dim() != 3:
        raise UsageError(f"Expected per-step logits [T, N, classes], got shape {tuple(logits.shape)}.")
    if y.dim() != 1 or y.shape[0] != logits.shape[1]:
        raise UsageError(f"Expected labels [N] with N={logits.shape[1]}, got shape {tuple(y.shape)}.")


def ce_over_time(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(1/T) sum_t CE(O[t], y)`` for logits ``[T, N, C]`` and integer labels ``[N]``.

    >>> O = torch.zeros(4, 2, 10)                   # uniform logits: CE = log(10)
    >>> round(ce_over_time(O, torch.tensor([1, 2])).item(), 5)
    2.30259
    """
    _check(logits, y)
    T, N, C = logits.shape
    # mean over t of the per-step mean CE == mean over all T*N terms
    return F.cross_entropy(logits.reshape(T * N, C), y.repeat(T))


def tet(logits: torch.Tensor, y: torch.Tensor, lam: float = 0.05, phi: float = 1.0) -> torch.Tensor:
    """TET loss: ``(1/T) sum_t [CE(O[t], y) + lam * MSE(O[t], phi)]`` (Deng et al. 2022)."""
    _check(logits, y)
    mse = F.mse_loss(logits, torch.full_like(logits, phi))
    return ce_over_time(logits, y) + lam * mse


#: Losses by name (the names, in this order, are :data:`gradflow.schema.LOSSES`; a test checks).
LOSSES = {"ce": ce_over_time, "tet": tet}


def get_loss(name: str):
    """The loss function called ``name`` (``ce`` or ``tet``).

    >>> get_loss("tet").__name__
    'tet'
    """
    if name not in LOSSES:
        raise UsageError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.", arguments=("loss",))
    return LOSSES[name]
