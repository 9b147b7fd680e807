"""Spike functions with surrogate gradients (docs/reference.md, Surrogates).

The forward pass is the Heaviside step ``H(x) = 1 if x >= 0 else 0`` of ``x = u - theta``; the
backward pass multiplies the incoming gradient by a surrogate derivative ``sg(x)``:

============  =====================================================  =============
name          ``sg(x)``                                              default alpha
============  =====================================================  =============
rectangle     ``1/alpha`` where ``|x| <= alpha/2``, else 0           1.0
sigmoid       ``alpha * sig(alpha x) * (1 - sig(alpha x))``          4.0
atan          ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``             2.0
triangle      ``max(0, alpha - alpha^2 |x|)``                        1.0
fast_sigmoid  ``1 / (1 + alpha |x|)^2`` (snnTorch's fast_sigmoid)    25.0
============  =====================================================  =============

Each surrogate is the derivative of a smooth (or piecewise-linear) *primitive* ``F`` with
``F(-inf) = 0`` and ``F(+inf) = 1``. :func:`spike` with ``smooth=True`` uses ``F`` in the forward
pass instead of ``H``; the backward pass is the same. That mode exists for testing: with it, a
whole neuron is a differentiable function whose analytic backward ``torch.autograd.gradcheck`` can
compare against finite differences.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch

from .errors import UsageError
from .schema import SURROGATE_DEFAULT_ALPHA

__all__ = ["SURROGATES", "ADAPTER_SURROGATES", "Surrogate", "make_surrogate", "spike", "surrogate_grad", "primitive"]

#: Surrogate names and their default ``alpha`` (:data:`gradflow.schema.SURROGATE_DEFAULT_ALPHA`).
SURROGATES: dict[str, float] = dict(SURROGATE_DEFAULT_ALPHA)

#: Surrogates the adapters need for other libraries' neurons (snnTorch's ``fast_sigmoid``), with their
#: default ``alpha``: accepted by :func:`make_surrogate` and the neurons, not yet offered as a choice of
#: the command line or covered by :mod:`gradflow.theory`.
ADAPTER_SURROGATES: dict[str, float] = {"fast_sigmoid": 25.0}


class Surrogate(NamedTuple):
    """A surrogate choice: ``name`` (one of :data:`SURROGATES`) and its width parameter ``alpha``."""

    name: str = "rectangle"
    alpha: float = 1.0


def make_surrogate(name: str = "rectangle", alpha: Optional[float] = None) -> Surrogate:
    """Validate ``name`` and fill in the default ``alpha``.

    >>> make_surrogate("sigmoid")
    Surrogate(name='sigmoid', alpha=4.0)
    """
    if isinstance(name, Surrogate):
        return name if alpha is None else Surrogate(name.name, float(alpha))
    defaults = SURROGATES if name in SURROGATES else ADAPTER_SURROGATES
    if name not in defaults:
        known = ", ".join(SURROGATES)
        raise UsageError(f"Unknown surrogate {name!r}; choose one of {known}.")
    a = defaults[name] if alpha is None else float(alpha)
    if not (a > 0 and math.isfinite(a)):
        raise UsageError(f"Surrogate alpha must be a positive number, got {alpha!r}.")
    return Surrogate(name, a)


def surrogate_grad(x: torch.Tensor, sur: Surrogate) -> torch.Tensor:
    """``sg(x)`` elementwise, ``x = u - theta`` (same shape and dtype as ``x``)."""
    a = sur.alpha
    if sur.name == "rectangle":
        # comparison written straight into a float tensor: converting a bool mask is far slower on CPU
        return torch.le(x.abs(), a / 2, out=torch.empty_like(x)).mul_(1.0 / a)
    if sur.name == "sigmoid":
        sig = torch.sigmoid(a * x)
        return a * sig * (1.0 - sig)
    if sur.name == "atan":
        return (a / 2) / (1.0 + (math.pi / 2 * a * x) ** 2)
    if sur.name == "triangle":
        return torch.clamp(a - a * a * x.abs(), min=0.0)
    if sur.name == "fast_sigmoid":
        return 1.0 / (a * x.abs() + 1.0) ** 2
    raise UsageError(f"Unknown surrogate {sur.name!r}.")


def primitive(x: torch.Tensor, sur: Surrogate) -> torch.Tensor:
    """The primitive ``F`` of ``sg`` with ``F(-inf) = 0``, ``F(inf) = 1`` (``dF/dx = sg(x)``).

    rectangle: ``clamp(x/alpha + 1/2, 0, 1)``; sigmoid: ``sig(alpha x)``;
    atan: ``atan(pi/2 alpha x)/pi + 1/2``; triangle: ``(alpha x + 1)^2 / 2`` on ``[-1/alpha, 0]``,
    ``1 - (1 - alpha x)^2 / 2`` on ``[0, 1/alpha]``, clamped to 0 and 1 outside; fast_sigmoid:
    ``1/2 + x / (1 + alpha |x|)`` (its surrogate integrates to ``2/alpha``, not 1, as snnTorch defines
    it, so this primitive tends to ``1/2 +- 1/alpha``).
    """
    a = sur.alpha
    if sur.name == "rectangle":
        return torch.clamp(x / a + 0.5, 0.0, 1.0)
    if sur.name == "sigmoid":
        return torch.sigmoid(a * x)
    if sur.name == "atan":
        return torch.atan(math.pi / 2 * a * x) / math.pi + 0.5
    if sur.name == "triangle":
        z = torch.clamp(a * x, -1.0, 1.0)
        return torch.where(z < 0, 0.5 * (z + 1.0) ** 2, 1.0 - 0.5 * (1.0 - z) ** 2)
    if sur.name == "fast_sigmoid":
        return 0.5 + x / (1.0 + a * x.abs())
    raise UsageError(f"Unknown surrogate {sur.name!r}.")


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, ``g * sg(x)`` backward. Saves only ``x``.

    ``setup_context`` style, so that ``torch.func.grad`` works through spikes (``vmap`` does not: the
    forward writes into an ``out=`` tensor, which has no batching rule).
    """

    generate_vmap_rule = True

    @classmethod
    def apply(cls, x, name, alpha, smooth):
        # torch's Function.apply binds default arguments with inspect.signature on every call for a
        # setup_context Function (about 20 us, a tenth of a small model's forward with one call per
        # neuron layer and step). Every argument here is positional and has no default, so outside
        # torch.func transforms the call goes straight to the C++ base, as torch's own apply ends.
        active = getattr(torch._C, "_are_functorch_transforms_active", None)
        if active is None or active():
            return super().apply(x, name, alpha, smooth)
        return super(torch.autograd.Function, cls).apply(x, name, alpha, smooth)

    @staticmethod
    def forward(x: torch.Tensor, name: str, alpha: float, smooth: bool) -> torch.Tensor:
        sur = Surrogate(name, alpha)
        if smooth:
            return primitive(x, sur)
        return torch.ge(x, 0, out=torch.empty_like(x))  # H(x), H(0) = 1

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, name, alpha, _ = inputs
        ctx.save_for_backward(x)
        ctx.sur = Surrogate(name, alpha)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad(x, ctx.sur), None, None, None


def spike(x: torch.Tensor, sur: Surrogate, smooth: bool = False) -> torch.Tensor:
    """Fire: ``H(x)`` forward (``H(0) = 1``), surrogate ``sg(x)`` backward.

    ``x`` is ``u - theta``. With ``smooth=True`` the forward is the primitive ``F(x)`` instead
    (for gradient checks); the backward is identical.

    >>> x = torch.tensor([-0.6, -0.5, 0.0, 0.3], requires_grad=True)
    >>> s = spike(x, Surrogate("rectangle", 1.0)); s.sum().backward()
    >>> s.tolist(), x.grad.tolist()
    ([0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0])
    """
    return _SpikeFunction.apply(x, sur.name, float(sur.alpha), bool(smooth))
