"""Surrogate derivatives and the Heaviside spike, in numpy (docs/reference.md, Neurons).

Every function here is elementwise on float64 arrays and mirrors the backward pass that
gradflow's torch neurons use, so the closed forms in :mod:`gradflow.theory.factors` can be
compared with autograd to rounding error. Formula numbers refer to ``docs/theory.md``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit

from ..errors import UsageError

__all__ = [
    "DEFAULT_ALPHA",
    "SURROGATES",
    "TheoryError",
    "heaviside",
    "resolve_alpha",
    "sg",
    "sg_support",
]

#: Default sharpness ``alpha`` of each surrogate (docs/reference.md, the surrogate table).
DEFAULT_ALPHA = {"rectangle": 1.0, "sigmoid": 4.0, "atan": 2.0, "triangle": 1.0}

#: Surrogate names in the order of the surrogate table (docs/reference.md).
SURROGATES = tuple(DEFAULT_ALPHA)


class TheoryError(UsageError):
    """Invalid argument (exit code 2) or unusable table or model (``exit_code=1``) in the theory.

    A :class:`gradflow.errors.UsageError`, hence a ``ValueError``: the message is one sentence
    naming the offending value, so the CLI can print it as is.
    """


def resolve_alpha(surrogate: str, alpha: float | None) -> float:
    """Return ``alpha``, or the surrogate's default when ``alpha`` is None.

    Raises :class:`TheoryError` for an unknown surrogate name or a non-positive alpha.

    >>> resolve_alpha("sigmoid", None)
    4.0
    """
    if surrogate not in DEFAULT_ALPHA:
        raise TheoryError(f"unknown surrogate {surrogate!r}; expected one of {SURROGATES}")
    a = DEFAULT_ALPHA[surrogate] if alpha is None else float(alpha)
    if not a > 0 or not math.isfinite(a):
        raise TheoryError(f"surrogate alpha must be a positive finite number, got {alpha!r}")
    return a


def heaviside(x):
    """Forward spike ``H(x) = 1 if x >= 0 else 0`` (note ``H(0) = 1``), as float64."""
    return (np.asarray(x, dtype=np.float64) >= 0).astype(np.float64)


def sg(x, surrogate: str = "rectangle", alpha: float | None = None):
    """Surrogate derivative ``sg(x)`` of the spike at ``x = u - theta`` (docs Eq. 1).

    ======== ================================================ =============
    name     ``sg(x)``                                        default alpha
    ======== ================================================ =============
    rectangle ``1/alpha`` where ``|x| <= alpha/2``, else 0     1
    sigmoid  ``alpha * sig(alpha x) * (1 - sig(alpha x))``    4
    atan     ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``       2
    triangle ``max(0, alpha - alpha^2 |x|)``                  1
    ======== ================================================ =============

    Each integrates to 1 over the real line. ``x``: array of any shape; returns float64 of the
    same shape.

    >>> float(sg(0.2, "rectangle"))
    1.0
    >>> float(sg(0.0, "triangle", 2.0))
    2.0
    """
    a = resolve_alpha(surrogate, alpha)
    x = np.asarray(x, dtype=np.float64)
    if surrogate == "rectangle":
        return (np.abs(x) <= a / 2).astype(np.float64) / a
    if surrogate == "sigmoid":
        z = expit(a * x)
        return a * z * (1.0 - z)
    if surrogate == "atan":
        return (a / 2) / (1.0 + (math.pi / 2 * a * x) ** 2)
    return np.maximum(0.0, a - a * a * np.abs(x))


def sg_support(surrogate: str, alpha: float | None = None) -> float:
    """Half-width ``h`` of the set where ``sg(x) != 0`` (``inf`` for sigmoid and atan).

    rectangle: ``|x| <= alpha/2``; triangle: ``|x| < 1/alpha``. The window fraction (docs/reference.md) is
    ``P(|u - theta| <= h)`` for these two and 1 for the smooth ones.
    """
    a = resolve_alpha(surrogate, alpha)
    if surrogate == "rectangle":
        return a / 2
    if surrogate == "triangle":
        return 1.0 / a
    return math.inf
