"""Neuron kinds other libraries use: IF (no leak) and the reset-after-leak LIF of snnTorch.

All three are LIF-family kinds (state ``v``, the shared fire ``s[t] = H(u[t] - theta)`` with the
surrogate ``sg``; ``k = 1/tau``, ``beta = gamma = 1 - k``), so the adjoint of
:class:`~gradflow.neurons.lif.LIFKind` applies unchanged: ``temporal[t] = vu[t] G[t]``,
``G[t-1] = a delta[t]``, and the one-step factor is ``eps[t] = a * vu[t]``.

**IF** (``"if"``; SpikingJelly's ``IFNode``): LIF with ``tau = inf``, so ``k = 0``::

    u[t] = v[t-1] + x[t]                       (the hard-reset charge v - (v - v_reset) * 0 + x is the same)
    v[t] = u[t] - theta s[t]  |  (1 - s[t]) u[t] + s[t] v_reset
    a = du[t+1]/dv[t] = 1,    eps[t] = vu[t] = 1 - theta sg (soft) | (1 - s) + (v_reset - u) sg (hard)

``decay_input`` has no meaning without a leak and is refused.

**Reset after the leak** (``"lif_ral"``; snnTorch ``Leaky`` with ``reset_mechanism="subtract"`` and
its default ``reset_delay=True``). The state is the potential snnTorch returns, ``v[t] = mem[t]``, which
is never reset itself: the spike of step ``t`` is subtracted from the *next* step's charge, computed from
the previous potential and detached::

    r[t] = H(v[t-1] - theta)                   (a value: no gradient flows through it)
    u[t] = (beta * v[t-1] + x[t]) - theta * r[t]
    s[t] = H(u[t] - theta),   v[t] = u[t]
    a = beta,   vu = 1,   eps[t] = beta        (constant: the reset never carries gradient)

**No reset** (``"lif_noreset"``; snnTorch ``reset_mechanism="none"``): ``u[t] = beta * v[t-1] + x[t]``,
``v[t] = u[t]``; ``a = beta``, ``vu = 1``, ``eps = beta``. Both start at ``v[-1] = 0`` and have no hard
reset (snnTorch's ``reset_mechanism="zero"`` is LIF's hard reset to 0 with ``detach_reset``).

snnTorch fires only at ``u > theta``: its modules set ``fire_at_threshold=False``
(:class:`~gradflow.neurons.params.NeuronParams`). The expressions keep snnTorch's order of operations.

>>> import torch
>>> ral = LeakyRAL(tau=2.0)                     # beta = 0.5
>>> ral(torch.tensor([[1.2], [0.0], [0.0]]))[:, 0].tolist()   # u = 1.2, 0.6 - 1 = -0.4, -0.2
[1.0, 0.0, 0.0]
>>> IF()(torch.tensor([[0.6], [0.6], [0.6]]))[:, 0].tolist()  # u = 0.6, 1.2 -> spike, 0.2 + 0.6
[0.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from ..errors import UsageError
from ..surrogate import surrogate_grad
from .kind import FusedForward, register_kind
from .lif import LIFJacobian, LIFKind, LIFState
from .module import SpikingNeuron
from .params import NeuronParams, Scalar, make_params

__all__ = ["IFKind", "LeakyKind", "IF_KIND", "LIF_RAL_KIND", "LIF_NORESET_KIND", "IF", "LeakyRAL", "LeakyNoReset"]


class IFKind(LIFKind):
    """IF: LIF without leak (``tau = inf``); module docstring."""

    name = "if"

    def check(self, p: NeuronParams) -> None:
        super().check(p)
        if p.decay_input:
            raise UsageError("IF neurons have no leak, so decay_input (scaling the input by 1/tau) does not apply.")


def _above(v: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """``H(v - theta)`` as a value (no graph), with the kind's convention at ``v == theta``."""
    with torch.no_grad():
        return (torch.ge if p.fire_at_threshold else torch.gt)(v, p.v_threshold).to(v.dtype)


class LeakyKind(LIFKind):
    """snnTorch's ``Leaky``: the state is the un-reset potential; ``subtract`` takes the detached spike of
    the previous step off the charge (``"lif_ral"``), else there is no reset (``"lif_noreset"``)."""

    carry_needs_state = False

    def __init__(self, name: str, subtract: bool):
        self.name, self.subtract = name, subtract

    def check(self, p: NeuronParams) -> None:
        super().check(p)
        if p.v_reset is not None:
            raise UsageError(f"{self.name} neurons reset by subtraction or not at all; leave v_reset unset (None).")
        if p.decay_input:
            raise UsageError(f"{self.name} neurons charge u = beta * v + x; decay_input does not apply.")

    def charge(self, x, state, p, k=None):
        k = p.inv_tau if k is None else k
        u = state.v * (1.0 - k) + x
        if self.subtract:
            u = u - _above(state.v, p) * p.v_threshold
        return u

    def fire_reset(self, u, state, p, k=None):
        return self.fire(u, p), LIFState(u)

    def vu_window(self, p: NeuronParams) -> Optional[float]:
        return math.inf     # vu = 1 (the reset never carries gradient)

    def jacobian(self, u: torch.Tensor, prev=None, p: NeuronParams = NeuronParams(), k: Optional[Scalar] = None):
        sg = surrogate_grad(u - p.v_threshold, p.surrogate)
        return LIFJacobian(sg, torch.ones_like(u), self.charge_gain(p, k))

    def fused_forward(self, x: torch.Tensor, k: Scalar, p: NeuronParams, want_states: bool) -> FusedForward:
        """The step loop without a graph (the same operations as :meth:`step`, so the same bits)."""
        with torch.no_grad():
            state = self.init_state(x[0], p)
            us, ss, prev = [], [], []
            for t in range(x.shape[0]):
                prev.append(state.v)
                s, state, u = self.step(x[t], state, p, k)
                us.append(u)
                ss.append(s)
        u = torch.stack(us)
        return FusedForward(torch.stack(ss), (u,), u, LIFState(torch.stack(prev)) if want_states else None)

    def fused_jacobian(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams, k: Scalar,
                       ws=None) -> LIFJacobian:
        return self.jacobian(saved[0][t], None, p, k)

    def fused_v_prev(self, saved: Sequence[torch.Tensor], t: int, p: NeuronParams) -> torch.Tensor:
        return torch.zeros_like(saved[0][0]) if t == 0 else saved[0][t - 1]


IF_KIND = register_kind(IFKind())
LIF_RAL_KIND = register_kind(LeakyKind("lif_ral", subtract=True))
LIF_NORESET_KIND = register_kind(LeakyKind("lif_noreset", subtract=False))


class IF(SpikingNeuron):
    """Integrate-and-fire neuron (no leak), multi-step: LIF with ``tau = inf`` (module docstring).

    Takes LIF's arguments except ``tau`` and ``decay_input``.
    """

    dynamics = IF_KIND
    kind = IF_KIND.name

    def __init__(self, v_threshold: float = 1.0, v_reset: Optional[float] = None, surrogate: str = "rectangle",
                 alpha: Optional[float] = None, detach_reset: bool = False, smooth_forward: bool = False,
                 truncate: Optional[int] = None, backend: str = "torch", tau: float = math.inf, step_mode: str = "m"):
        if not math.isinf(tau):
            raise UsageError(f"IF neurons have no leak (tau = inf), got tau={tau!r}; use LIF for a leak.")
        super().__init__(2.0, v_threshold, v_reset, surrogate, alpha, detach_reset, False, smooth_forward,
                         truncate, backend, step_mode=step_mode)
        self._params = self._params._replace(tau=math.inf)

    def set_params(self, **changes) -> None:
        """As :meth:`SpikingNeuron.set_params`, keeping ``tau = inf``."""
        p = self._params._replace(**changes)
        new = make_params(p.tau, p.v_threshold, p.v_reset, p.surrogate, None, p.detach_reset, p.decay_input,
                          p.smooth, p.m_grad, allow_no_leak=True, fire_at_threshold=p.fire_at_threshold)
        self.dynamics.check(new)
        self._params = new


class LeakyRAL(SpikingNeuron):
    """LIF with the reset subtracted after the leak, from the previous step (snnTorch ``Leaky``'s
    default); ``tau = 1 / (1 - beta)``. Module docstring."""

    dynamics = LIF_RAL_KIND
    kind = LIF_RAL_KIND.name


class LeakyNoReset(SpikingNeuron):
    """LIF without any reset (snnTorch ``reset_mechanism="none"``); ``tau = 1 / (1 - beta)``."""

    dynamics = LIF_NORESET_KIND
    kind = LIF_NORESET_KIND.name
