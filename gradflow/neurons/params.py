"""Neuron constants and the phases every kind shares: charge and fire (docs/reference.md, Neurons).

Notation (time-major tensors ``[T, N, ...]``, ``t = 0..T-1``): ``x[t]`` the input current, ``u[t]`` the
membrane potential after charging and before reset, ``s[t]`` the spike, ``v[t]`` the potential after
reset, ``theta`` the threshold, ``k = 1/tau`` and ``gamma = 1 - k``.

* **charge** (this module, shared by every kind)::

      u[t] = x[t] + gamma * v[t-1]                              soft reset (v_reset None), default
      u[t] = v[t-1] - (v[t-1] - v_reset) * k + x[t]              hard reset: the leak pulls toward v_reset
      u[t] = v[t-1] + (x[t] - (v[t-1] - v_rest)) * k             decay_input=True (v_rest = v_reset or 0)

  In all three ``du[t]/dv[t-1] = 1 - k = gamma`` (:func:`charge_gain`) and ``du[t]/dx[t]`` is 1, or
  ``k`` with ``decay_input`` (:func:`input_gain`). The expressions are written with the operations, in
  the order, that SpikingJelly's ``LIFNode`` uses, so that both give the same spikes.
* **fire**: ``s[t] = H(u[t] - theta)`` forward (``H(0) = 1``), the surrogate ``sg(u[t] - theta)`` backward
  (:mod:`gradflow.surrogate`).

The reset is the kind's own (:mod:`gradflow.neurons.lif`, :mod:`gradflow.neurons.clif`).

:class:`NeuronParams` holds plain floats, so numpy code (the theory) can read it without torch.

>>> p = NeuronParams(tau=4.0, v_reset=-0.5)
>>> p.gamma, p.inv_tau, p.v_rest, p.hard_reset
(0.75, 0.25, -0.5, True)
>>> float(charge(torch.tensor(0.5), torch.tensor(-0.5), p))   # v_reset: no leak at rest, u = v + x
0.0
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Union

import torch

from ..errors import UsageError
from ..surrogate import Surrogate, make_surrogate, spike

__all__ = [
    "Scalar",
    "NeuronParams",
    "make_params",
    "charge",
    "fire",
    "charge_gain",
    "input_gain",
    "charge_dk",
]

#: ``1/tau`` as the step functions take it: a float, or a 0-d tensor when tau is learned (PLIF).
Scalar = Union[float, torch.Tensor]


class NeuronParams(NamedTuple):
    """The constants of one neuron layer (plain Python values; docs/reference.md, Neurons).

    ``tau``: membrane time constant in steps (``gamma = 1 - 1/tau``; ``inf`` means no leak);
    ``v_threshold``: theta; ``v_reset``: None for the soft reset (subtract theta), else the hard reset
    value, toward which the potential also leaks and at which it starts; ``surrogate``: name and
    ``alpha``; ``detach_reset``: no gradient through ``s[t]`` in the reset line; ``decay_input``: the
    input is scaled by ``1/tau`` too; ``smooth``: the forward uses the surrogate's primitive instead of
    the Heaviside step (gradient checks only); ``m_grad`` (CLIF only): False stops every gradient
    through CLIF's complementary potential ``m`` (the forward is unchanged; an ablation);
    ``fire_at_threshold``: True fires at ``u >= theta`` (``H(0) = 1``, gradflow's and SpikingJelly's
    convention), False only at ``u > theta`` (``H(0) = 0``, snnTorch's); the surrogate is the same.

    A PLIF module's ``params`` carries its learned ``tau``; its step takes ``1/tau`` as a tensor.
    """

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: Optional[float] = None
    surrogate: Surrogate = Surrogate("rectangle", 1.0)
    detach_reset: bool = False
    decay_input: bool = False
    smooth: bool = False
    m_grad: bool = True
    fire_at_threshold: bool = True

    @property
    def inv_tau(self) -> float:
        """``k = 1/tau`` (0 for ``tau = inf``)."""
        return 0.0 if math.isinf(self.tau) else 1.0 / self.tau

    @property
    def gamma(self) -> float:
        """``gamma = 1 - 1/tau = du[t+1]/dv[t]``, the leak factor per step."""
        return 1.0 - self.inv_tau

    @property
    def hard_reset(self) -> bool:
        """True when ``v_reset`` is given."""
        return self.v_reset is not None

    @property
    def v_rest(self) -> float:
        """The potential the leak pulls toward and the initial potential: ``v_reset``, or 0 (soft)."""
        return 0.0 if self.v_reset is None else self.v_reset


def _number(name: str, value, *, above: Optional[float] = None, allow_inf: bool = False) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}.") from None
    if math.isnan(f) or (math.isinf(f) and not (allow_inf and f > 0)):
        raise UsageError(f"{name} must be finite, got {value!r}.")
    if above is not None and not f > above:
        raise UsageError(f"{name} must be a finite number above {above:g}, got {value!r}.")
    return f


def make_params(
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: Optional[float] = None,
    surrogate="rectangle",
    alpha: Optional[float] = None,
    detach_reset: bool = False,
    decay_input: bool = False,
    smooth: bool = False,
    m_grad: bool = True,
    *,
    allow_no_leak: bool = False,
    fire_at_threshold: bool = True,
) -> NeuronParams:
    """Validated :class:`NeuronParams` from user arguments; :class:`~gradflow.UsageError` on a bad value.

    ``tau`` must exceed 1 (so that ``gamma`` lies in (0, 1)); ``tau = inf`` (no leak) only with
    ``allow_no_leak``. ``alpha=None`` takes the surrogate's default.

    >>> make_params(tau=3, surrogate="atan").surrogate
    Surrogate(name='atan', alpha=2.0)
    """
    return NeuronParams(
        tau=_number("tau", tau, above=1.0, allow_inf=allow_no_leak),
        v_threshold=_number("v_threshold", v_threshold),
        v_reset=None if v_reset is None else _number("v_reset", v_reset),
        surrogate=make_surrogate(surrogate, alpha),
        detach_reset=bool(detach_reset),
        decay_input=bool(decay_input),
        smooth=bool(smooth),
        m_grad=bool(m_grad),
        fire_at_threshold=bool(fire_at_threshold),
    )


def _k(p: NeuronParams, inv_tau: Optional[Scalar]) -> Scalar:
    return p.inv_tau if inv_tau is None else inv_tau


def charge(x: torch.Tensor, v: torch.Tensor, p: NeuronParams, inv_tau: Optional[Scalar] = None) -> torch.Tensor:
    """Charge: ``u[t]`` from the input ``x[t]`` and the state ``v[t-1]`` (module docstring, three forms).

    ``inv_tau`` overrides ``1/p.tau`` (PLIF passes ``sigmoid(w)``, a tensor that keeps the graph).
    """
    k = _k(p, inv_tau)
    if p.decay_input:
        return v + (x - (v - p.v_rest)) * k
    if p.v_reset is not None:
        return v - (v - p.v_reset) * k + x
    if isinstance(k, torch.Tensor):  # PLIF: k keeps the graph
        return v * (1.0 - k) + x
    return torch.add(x, v, alpha=1.0 - k)  # x + gamma v in one operation


def fire(u: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """Fire: ``s = H(u - theta)`` with the surrogate ``sg(u - theta)`` as its derivative.

    ``H(0) = 1``; with ``p.fire_at_threshold`` False, ``H(0) = 0`` (the value at ``u == theta`` is
    subtracted as a constant, so the gradient is the surrogate's everywhere).
    """
    s = spike(u - p.v_threshold, p.surrogate, p.smooth)
    if p.fire_at_threshold or p.smooth:
        return s
    return s - torch.eq(u, p.v_threshold, out=torch.empty_like(s))


def charge_gain(p: NeuronParams, inv_tau: Optional[Scalar] = None) -> Scalar:
    """``a = du[t+1]/dv[t] = 1 - k`` (every charge form); a detached 0-d tensor for a tensor ``k``."""
    k = _k(p, inv_tau)
    if isinstance(k, torch.Tensor):
        return (1.0 - k).detach()
    return 1.0 - k


def input_gain(p: NeuronParams, inv_tau: Optional[Scalar] = None) -> Scalar:
    """``du[t]/dx[t]``: 1, or ``k`` with ``decay_input`` (detached for a tensor ``k``)."""
    if not p.decay_input:
        return 1.0
    k = _k(p, inv_tau)
    return k.detach() if isinstance(k, torch.Tensor) else k


def charge_dk(x: Optional[torch.Tensor], v_prev: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """``du[t]/dk`` at fixed ``x[t]`` and ``v[t-1]`` (the gradient of a learned ``k = 1/tau``).

    ``-(v[t-1] - v_rest)`` without ``decay_input``, ``x[t] - (v[t-1] - v_rest)`` with it.
    """
    rel = v_prev - p.v_rest if p.v_rest != 0.0 else v_prev
    if p.decay_input:
        return x - rel
    return -rel
