"""Spiking neurons: pure step functions with explicit state, and thin multi-step modules (SPEC §1).

Sequences are time-major, ``[T, N, ...]``. One step is three named phases:

* **charge** — ``u[t] = gamma * v[t-1] + x[t]`` with ``gamma = 1 - 1/tau``
  (or ``u[t] = v[t-1] + (x[t] - (v[t-1] - v_reset0)) / tau`` with ``decay_input=True``);
* **fire** — ``s[t] = H(u[t] - theta)`` with a surrogate gradient (:mod:`gradflow.surrogate`);
* **reset** — LIF soft ``v[t] = u[t] - theta s[t]``, hard ``v[t] = (1 - s[t]) u[t] + s[t] v_reset``;
  CLIF ``m[t] = m[t-1] sigmoid(u[t]/tau) + s[t]`` then ``v[t] = u[t] - s[t] (theta + sigmoid(m[t]))``.

``detach_reset=True`` stops the gradient through ``s[t]`` in the reset line only (CLIF's ``m`` line
keeps it). Initial state ``v[-1] = 0``, ``m[-1] = 0``.

The functional layer (:func:`charge`, :func:`lif_fire_reset`, :func:`clif_fire_reset`,
:func:`lif_step`, :func:`clif_step`) takes plain floats in :class:`NeuronParams` and is what the
recorder re-runs to obtain one-step Jacobians. The modules :class:`LIF`, :class:`CLIF` and
:class:`PLIF` hold the parameters, loop over time and let observers (the recorder) see every
per-step tensor of the autograd graph.

>>> lif = LIF(tau=2.0)
>>> x = torch.tensor([[0.6], [0.6], [0.6], [1.2]])        # [T=4, N=1]
>>> lif(x)[:, 0].tolist()                                  # u = 0.6, 0.9, 1.05 -> spike, ...
[0.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, List, NamedTuple, Optional, Union

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .errors import UsageError
from .surrogate import Surrogate, make_surrogate, spike

__all__ = [
    "NeuronParams",
    "LIFState",
    "CLIFState",
    "NeuronTrace",
    "NeuronOutput",
    "charge",
    "lif_fire_reset",
    "clif_fire_reset",
    "lif_step",
    "clif_step",
    "SpikingNeuron",
    "LIF",
    "CLIF",
    "PLIF",
    "NEURONS",
    "BACKENDS",
    "build_neuron",
]

Scalar = Union[float, torch.Tensor]

#: Implementations of the multi-step forward/backward (see :class:`SpikingNeuron`).
BACKENDS = ("torch", "fused")


class NeuronParams(NamedTuple):
    """Constant neuron parameters (plain floats, reusable by numpy theory code).

    ``tau`` is the membrane time constant (``gamma = 1 - 1/tau``), ``v_threshold`` is theta,
    ``v_reset=None`` selects the soft reset, ``smooth=True`` replaces the Heaviside forward by the
    surrogate's primitive (tests only; see :func:`gradflow.surrogate.spike`).
    """

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: Optional[float] = None
    surrogate: Surrogate = Surrogate("rectangle", 1.0)
    detach_reset: bool = False
    decay_input: bool = False
    smooth: bool = False


class LIFState(NamedTuple):
    """LIF (and PLIF) state after reset: ``v`` of shape ``[N, ...]``."""

    v: torch.Tensor


class CLIFState(NamedTuple):
    """CLIF state after reset: membrane ``v`` and complementary potential ``m``, both ``[N, ...]``."""

    v: torch.Tensor
    m: torch.Tensor


class NeuronTrace(NamedTuple):
    """What a multi-step forward shows its observers (all tensors are live graph nodes).

    ``x``: the input current ``[T, N, ...]``; ``u``: list of the T pre-reset potentials ``u[t]``;
    ``prev``: list of the T states *before* step t (``prev[0]`` is the zero initial state);
    ``spikes``: the module's output ``[T, N, ...]``, whose gradient is ``g_out`` of SPEC §2;
    ``inv_tau``: ``1/tau`` used in the step (a tensor for PLIF); ``cut``: the steps ``t`` whose
    incoming state was detached (truncated BPTT), where no gradient flows from ``t`` to ``t-1``.

    ``backend``: ``"torch"`` (the per-step autograd graph above) or ``"fused"``
    (:mod:`gradflow.fused`). With ``"fused"`` only ``x`` and ``spikes`` are graph nodes (a hook on
    ``spikes`` still sees ``g_out``); ``u`` and the tensors in ``prev`` are detached values, and
    ``tap`` is a list the observer may append callables to: the fused backward calls each as
    ``fn(g_out, P, temporal, delta)`` (device tensors ``[T, N, ...]``) once it has computed them.
    ``tap`` is None for the torch backend.
    """

    x: torch.Tensor
    u: List[torch.Tensor]
    prev: list
    spikes: torch.Tensor
    inv_tau: Scalar
    cut: tuple = ()
    backend: str = "torch"
    tap: Optional[list] = None


class NeuronOutput(NamedTuple):
    """``forward(x, return_states=True)``: spikes, ``u``, ``v`` and (CLIF) ``m``, each ``[T, N, ...]``."""

    spikes: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    m: Optional[torch.Tensor] = None


# ----------------------------------------------------------------------------- functional layer


def charge(x: torch.Tensor, v: torch.Tensor, p: NeuronParams, inv_tau: Optional[Scalar] = None) -> torch.Tensor:
    """Charge: the pre-reset potential ``u[t]`` from the input ``x[t]`` and the state ``v[t-1]``.

    ``decay_input=False`` (paper, default): ``u = (1 - 1/tau) v + x``.
    ``decay_input=True`` (SpikingJelly): ``u = v + (x - (v - v_reset0)) / tau``, ``v_reset0 = v_reset or 0``.
    ``inv_tau`` overrides ``1/p.tau`` (PLIF passes ``sigmoid(w)`` here).
    """
    k = (1.0 / p.tau) if inv_tau is None else inv_tau
    if p.decay_input:
        v0 = 0.0 if p.v_reset is None else p.v_reset
        return v + (x - (v - v0)) * k
    return v * (1.0 - k) + x


def _fire(u: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    # fire: s = H(u - theta), surrogate backward
    return spike(u - p.v_threshold, p.surrogate, p.smooth)


def lif_fire_reset(u: torch.Tensor, state: LIFState, p: NeuronParams):
    """Fire and reset one LIF step: ``(s[t], LIFState(v[t]))`` from ``u[t]``.

    Soft reset ``v = u - theta s``; hard reset ``v = (1 - s) u + s v_reset``. ``state`` (the state
    before the step) is unused by LIF but kept for a uniform signature.
    """
    s = _fire(u, p)
    # reset (detach_reset cuts the gradient of s in this line only)
    sr = s.detach() if p.detach_reset else s
    if p.v_reset is None:
        v = u - p.v_threshold * sr
    else:
        v = (1.0 - sr) * u + sr * p.v_reset
    return s, LIFState(v)


def clif_fire_reset(u: torch.Tensor, state: CLIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """Fire and reset one CLIF step (paper Eq. 19): ``(s[t], CLIFState(v[t], m[t]))``.

    ``m[t] = m[t-1] sigmoid(u[t]/tau) + s[t]``; ``v[t] = u[t] - s[t] (theta + sigmoid(m[t]))``.
    ``detach_reset`` detaches ``s`` in the ``v`` line only.
    """
    k = (1.0 / p.tau) if inv_tau is None else inv_tau
    s = _fire(u, p)
    # complementary potential
    m = state.m * torch.sigmoid(u * k) + s
    # reset
    sr = s.detach() if p.detach_reset else s
    v = u - sr * (p.v_threshold + torch.sigmoid(m))
    return s, CLIFState(v, m)


def lif_step(x: torch.Tensor, state: LIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """One LIF step: ``(s[t], new_state, u[t])``."""
    u = charge(x, state.v, p, inv_tau)
    s, new = lif_fire_reset(u, state, p)
    return s, new, u


def clif_step(x: torch.Tensor, state: CLIFState, p: NeuronParams, inv_tau: Optional[Scalar] = None):
    """One CLIF step: ``(s[t], new_state, u[t])``."""
    u = charge(x, state.v, p, inv_tau)
    s, new = clif_fire_reset(u, state, p, inv_tau)
    return s, new, u


# ----------------------------------------------------------------------------- modules


def _check_positive_float(name: str, value, *, above: float = 0.0) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or f <= above:
        raise UsageError(f"{name} must be a finite number above {above:g}, got {value!r}.")
    return f


class SpikingNeuron(nn.Module):
    """Base of the multi-step neurons: input ``[T, N, ...]`` current, output ``[T, N, ...]`` spikes.

    Arguments (all change gradients, so all are explicit): ``tau`` (> 1 so that
    ``gamma = 1 - 1/tau`` lies in (0, 1)), ``v_threshold``, ``v_reset`` (None = soft reset),
    ``surrogate`` and its ``alpha`` (None = the surrogate's default), ``detach_reset``,
    ``decay_input``; ``smooth_forward`` is for gradient checks only.

    ``backend``: ``"torch"`` (default) runs the step functions with autograd, so that every
    per-step tensor is a graph node observers can hook; ``"fused"`` runs all steps in one custom
    autograd node with a hand-derived backward (:mod:`gradflow.fused`: same outputs and gradients to
    float rounding, less memory, faster; gradients are not differentiable again, so no double
    backward). ``forward(x, return_states=True)`` always takes the torch path (its ``u``, ``v``, ``m``
    are differentiable). Switch a built model with ``m.backend = "fused"`` on its neurons.

    ``truncate=k`` truncates back-propagation through time to blocks of ``k`` steps: the state
    (``v``, and ``m`` for CLIF) entering every step ``t`` with ``t % k == 0`` is detached, so no
    gradient crosses a block boundary through the neuron's own state (``k=1``: spatial gradients
    only). The forward values are unchanged.
    """

    kind: str = "?"

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: Optional[float] = None,
        surrogate: str = "rectangle",
        alpha: Optional[float] = None,
        detach_reset: bool = False,
        decay_input: bool = False,
        smooth_forward: bool = False,
        truncate: Optional[int] = None,
        backend: str = "torch",
    ):
        super().__init__()
        self.tau = _check_positive_float("tau", tau, above=1.0)
        self.v_threshold = float(v_threshold)
        if not math.isfinite(self.v_threshold):
            raise UsageError(f"v_threshold must be finite, got {v_threshold!r}.")
        self.v_reset = None if v_reset is None else float(v_reset)
        self.sur = make_surrogate(surrogate, alpha)
        self.detach_reset = bool(detach_reset)
        self.decay_input = bool(decay_input)
        self.smooth_forward = bool(smooth_forward)
        self.truncate = truncate
        self.backend = backend
        self._step_observers: "OrderedDict[int, Callable]" = OrderedDict()

    # -- parameters and state
    @property
    def truncate(self) -> Optional[int]:
        """Truncated-BPTT block length ``k`` (None = full BPTT)."""
        return self._truncate

    @truncate.setter
    def truncate(self, k: Optional[int]) -> None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise UsageError(f"truncate must be a positive integer number of steps, got {k!r}.")
        self._truncate = k

    @property
    def backend(self) -> str:
        """``"torch"`` (autograd through the step functions) or ``"fused"`` (:mod:`gradflow.fused`)."""
        return getattr(self, "_backend", "torch")  # modules pickled before backends existed

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise UsageError(f"Unknown neuron backend {name!r}; choose one of {', '.join(BACKENDS)}.")
        self._backend = name

    @property
    def params(self) -> NeuronParams:
        """The neuron's constants as :class:`NeuronParams` (PLIF: ``tau`` at its current value)."""
        return NeuronParams(
            float(self.current_tau()), self.v_threshold, self.v_reset, self.sur,
            self.detach_reset, self.decay_input, self.smooth_forward,
        )

    def current_tau(self) -> float:
        """The time constant as a float (PLIF: its learned value; reads the device)."""
        return self.tau

    def step_params(self) -> NeuronParams:
        """:class:`NeuronParams` for the step functions without reading the device.

        The step functions take ``1/tau`` from :meth:`inv_tau`, so for PLIF the ``tau`` field here
        is the initial value and is not used by the step.
        """
        return NeuronParams(
            self.tau, self.v_threshold, self.v_reset, self.sur, self.detach_reset, self.decay_input,
            self.smooth_forward,
        )

    def inv_tau(self) -> Scalar:
        """``1/tau`` as used in the step: a float, or a 0-d tensor for PLIF (keeps the graph)."""
        return 1.0 / self.tau

    def init_state(self, like: torch.Tensor):
        """The zero state shaped like one step of input."""
        return LIFState(torch.zeros_like(like))

    def fire_reset(self, u: torch.Tensor, state, p: NeuronParams, inv_tau: Scalar):
        """Fire and reset one step (the function whose Jacobian the recorder takes)."""
        return lif_fire_reset(u, state, p)

    # -- observers
    def register_step_observer(self, fn: Callable[["SpikingNeuron", NeuronTrace], None]) -> RemovableHandle:
        """Call ``fn(module, trace)`` after every forward; returns a handle whose ``remove()`` detaches it."""
        handle = RemovableHandle(self._step_observers)
        self._step_observers[handle.id] = fn
        return handle

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard(v_reset={self.v_reset:g})"
        return (
            f"tau={self.current_tau():.4g}, v_threshold={self.v_threshold:g}, reset={reset}, "
            f"surrogate={self.sur.name}(alpha={self.sur.alpha:g}), detach_reset={self.detach_reset}, "
            f"decay_input={self.decay_input}" + ("" if self.backend == "torch" else f", backend={self.backend}")
        )

    # -- multi-step forward
    def forward(self, x: torch.Tensor, return_states: bool = False):
        """Run all ``T`` steps of ``x`` (``[T, N, ...]``); spikes ``[T, N, ...]`` (or :class:`NeuronOutput`)."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise UsageError(f"{type(self).__name__} expects a time-major tensor [T, N, ...], got {shape}.")
        if not x.is_floating_point():
            raise UsageError(f"{type(self).__name__} expects a floating-point input, got {x.dtype}.")
        p = self.step_params()
        k = self.inv_tau()
        if getattr(self, "_backend", "torch") == "fused" and not return_states:
            return self._forward_fused(x, p, k)
        state = self.init_state(x[0])
        us: List[torch.Tensor] = []
        prev: list = []
        spikes: List[torch.Tensor] = []
        states: list = []
        k_trunc = self.truncate
        cut = []
        for t in range(x.shape[0]):
            if k_trunc is not None and t > 0 and t % k_trunc == 0:
                # truncated BPTT: no gradient through the state across this block boundary
                state = type(state)(*(z.detach() for z in state))
                cut.append(t)
            prev.append(state)
            u = charge(x[t], state.v, p, k)
            s, state = self.fire_reset(u, state, p, k)
            us.append(u)
            spikes.append(s)
            states.append(state)
        out = torch.stack(spikes)
        if self._step_observers:
            trace = NeuronTrace(x, us, prev, out, k, tuple(cut))
            for fn in list(self._step_observers.values()):
                fn(self, trace)
        if not return_states:
            return out
        v = torch.stack([st.v for st in states])
        m = torch.stack([st.m for st in states]) if isinstance(state, CLIFState) else None
        return NeuronOutput(out, torch.stack(us), v, m)

    def _forward_fused(self, x: torch.Tensor, p: NeuronParams, k: Scalar) -> torch.Tensor:
        """All steps in one :mod:`gradflow.fused` node; observers get detached ``u``/``prev`` and a ``tap``."""
        from . import fused

        multistep = fused.clif_multistep if isinstance(self, CLIF) else fused.lif_multistep
        if not self._step_observers:
            return multistep(x, k, p, self.truncate)
        tap: list = []
        res = multistep(x, k, p, self.truncate, want_states=True, tap=tap)
        out, u = res[0], res[1]
        if isinstance(self, CLIF):
            prev = [CLIFState(v, m) for v, m in zip(res[2].unbind(0), res[3].unbind(0))]
        else:
            prev = [LIFState(v) for v in res[2].unbind(0)]
        cut = fused.cut_steps(x.shape[0], self.truncate)
        trace = NeuronTrace(x, list(u.unbind(0)), prev, out, k, cut, "fused", tap)
        for fn in list(self._step_observers.values()):
            fn(self, trace)
        return out


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (paper Eqs. 1-3), multi-step.

    >>> LIF(tau=2.0, v_reset=0.0)(torch.tensor([[1.5], [0.4], [0.5]]))[:, 0].tolist()
    [1.0, 0.0, 0.0]
    """

    kind = "lif"


class CLIF(SpikingNeuron):
    """Complementary LIF neuron (paper Eq. 19): LIF plus the complementary potential ``m``.

    Only the soft reset is defined for CLIF (``v_reset`` must be None).

    >>> CLIF(tau=2.0)(torch.tensor([[1.2], [1.0], [1.0]]))[:, 0].tolist()
    [1.0, 0.0, 1.0]
    """

    kind = "clif"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.v_reset is not None:
            raise UsageError("CLIF is defined with the soft reset only; leave v_reset unset (None).")

    def init_state(self, like: torch.Tensor):
        z = torch.zeros_like(like)
        return CLIFState(z, z)

    def fire_reset(self, u, state, p, inv_tau):
        return clif_fire_reset(u, state, p, inv_tau)


class PLIF(SpikingNeuron):
    """Parametric LIF: LIF whose ``tau = 1 / sigmoid(w)`` is learned per layer.

    ``w`` is an ``nn.Parameter`` initialised to ``-log(init_tau - 1)`` (SpikingJelly's
    ParametricLIFNode), so that ``tau == init_tau`` at the start.

    >>> plif = PLIF(init_tau=2.0); round(plif.current_tau(), 6)
    2.0
    """

    kind = "plif"

    def __init__(self, init_tau: float = 2.0, *args, tau: Optional[float] = None, **kwargs):
        if tau is not None:
            init_tau = tau
        init_tau = _check_positive_float("init_tau", init_tau, above=1.0)
        super().__init__(init_tau, *args, **kwargs)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def current_tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach().double()))

    def inv_tau(self) -> torch.Tensor:
        return torch.sigmoid(self.w)


#: Neuron kinds by name.
NEURONS = {"lif": LIF, "clif": CLIF, "plif": PLIF}


def build_neuron(kind: str, **kwargs) -> SpikingNeuron:
    """Make a neuron module by name (``lif``, ``clif`` or ``plif``); ``tau`` is PLIF's ``init_tau``.

    >>> build_neuron("clif", tau=1.5).kind
    'clif'
    """
    key = str(kind).lower()
    if key not in NEURONS:
        raise UsageError(f"Unknown neuron {kind!r}; choose one of {', '.join(NEURONS)}.")
    return NEURONS[key](**kwargs)
