"""The neuron modules: hold one :class:`NeuronParams`, loop over time, let observers see every step.

:class:`SpikingNeuron` is the multi-step ``nn.Module`` for every kind; :class:`LIF`, :class:`CLIF` and
:class:`PLIF` bind it to their :class:`~gradflow.neurons.kind.NeuronKind` (``dynamics``). Input and
output are time-major, ``[T, N, ...]``. Two interchangeable backends run the steps:

* ``"torch"`` (default): the kind's step functions under autograd, so every per-step tensor is a
  graph node that observers (the recorder) can hook;
* ``"fused"``: all steps in one autograd node with the kind's hand-written adjoint
  (:mod:`gradflow.neurons.fused`): same outputs, gradients equal to rounding, less memory and time.

The constants live in one :class:`NeuronParams` (``module.params``); ``tau``, ``v_threshold``,
``v_reset``, ``sur``, ``detach_reset``, ``decay_input`` and ``smooth_forward`` read (and set, with
validation) its fields. PLIF learns ``tau = 1 / sigmoid(w)``; its ``params``, ``tau``, ``repr`` and the
recorder's ``layer_info`` report the learned value.

>>> lif = LIF(tau=2.0)
>>> x = torch.tensor([[0.6], [0.6], [0.6], [1.2]])        # [T=4, N=1]
>>> lif(x)[:, 0].tolist()                                  # u = 0.6, 0.9, 1.05 -> spike, ...
[0.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, List, NamedTuple, Optional

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import UsageError
from ..schema import BACKENDS
from ..surrogate import Surrogate
from .adjoint import cut_steps
from .clif import CLIF_KIND
from .fused import multistep
from .kind import NeuronKind
from .lif import LIF_KIND, PLIF_KIND
from .params import NeuronParams, Scalar, make_params

__all__ = ["NeuronTrace", "NeuronOutput", "SpikingNeuron", "LIF", "CLIF", "PLIF", "NEURONS", "build_neuron", "reset_net"]


class NeuronTrace(NamedTuple):
    """What a multi-step forward shows its observers.

    ``x``: the input current ``[T, N, ...]`` (a graph node); ``u``: list of the T pre-reset potentials;
    ``prev``: list of the T states *before* each step (``prev[0]`` is the initial state);
    ``spikes``: the output ``[T, N, ...]``, whose gradient is ``g_out``; ``inv_tau``: the ``k = 1/tau``
    the step used (a tensor for PLIF); ``cut``: the steps whose incoming state was detached (truncated
    BPTT); ``backend``; ``tap``: with the fused backend a list the observer may append
    ``fn(g_out, P, temporal, delta)`` to (:mod:`gradflow.neurons.fused`), else None; ``kind``: the
    :class:`~gradflow.neurons.kind.NeuronKind`; ``params``: the :class:`NeuronParams` of the step.

    With the torch backend ``u`` and ``prev`` are live graph nodes; with the fused backend they are
    detached values and only ``x`` and ``spikes`` are graph nodes; ``u`` and CLIF's ``prev[t].m`` then
    share memory with what the fused node saved for its backward: read them, do not write into them
    (the backward would raise).

    Single-step mode (``step_mode="s"``) calls the observers after every step with a trace of that one
    step: ``x``, ``spikes`` ``[N, ...]``, one-element ``u`` and ``prev``, ``t`` its index in the
    sequence since the last :meth:`SpikingNeuron.reset` (0 starts a sequence), ``cut`` ``(t,)`` when the
    incoming state was detached. ``t`` is None for multi-step traces. A single-step module that also
    returns its membrane potential (snnTorch's ``mem``) shows it as ``potential`` (a graph node used only
    downstream; ``potential_after_reset``: it is ``v[t]``, else ``u[t]``), so that its gradient counts as
    spatial too.
    """

    x: torch.Tensor
    u: List[torch.Tensor]
    prev: list
    spikes: torch.Tensor
    inv_tau: Scalar
    cut: tuple = ()
    backend: str = "torch"
    tap: Optional[list] = None
    kind: Optional[NeuronKind] = None
    params: Optional[NeuronParams] = None
    t: Optional[int] = None
    potential: Optional[torch.Tensor] = None
    potential_after_reset: bool = False


class NeuronOutput(NamedTuple):
    """``forward(x, return_states=True)``: spikes, ``u``, ``v`` and (CLIF) ``m``, each ``[T, N, ...]``."""

    spikes: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    m: Optional[torch.Tensor] = None


class _Field:
    """A module attribute that reads (and, validated, sets) one field of the module's ``NeuronParams``."""

    def __init__(self, field: str, doc: str):
        self.field, self.__doc__ = field, doc

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        return getattr(obj._params, self.field)

    def __set__(self, obj, value) -> None:
        obj.set_params(**{self.field: value})


class SpikingNeuron(nn.Module):
    """A multi-step spiking neuron layer: input current ``[T, N, ...]``, output spikes ``[T, N, ...]``.

    Arguments (all change gradients, so all are explicit): ``tau`` (> 1, ``gamma = 1 - 1/tau``),
    ``v_threshold``, ``v_reset`` (None = soft reset; a value = hard reset, toward which the potential
    also leaks and at which it starts), ``surrogate`` and its ``alpha`` (None = the surrogate's
    default), ``detach_reset``, ``decay_input``; ``smooth_forward`` is for gradient checks only;
    ``m_grad`` (CLIF only, default True): False stops the gradient through ``m`` (forward unchanged).

    ``backend``: ``"torch"`` or ``"fused"`` (module docstring); ``forward(x, return_states=True)``
    always takes the torch path (its ``u``, ``v``, ``m`` are differentiable). Switch a built model
    with ``m.backend = "fused"`` on its neurons.

    ``truncate=k`` truncates back-propagation through time to blocks of ``k`` steps: the state entering
    every step ``t`` with ``t % k == 0`` is detached (``k = 1``: spatial gradients only). Forward
    values are unchanged.

    ``step_mode``: ``"m"`` (default) takes whole sequences ``[T, N, ...]``; ``"s"`` takes one step
    ``[N, ...]`` per call and keeps the state on the module until :meth:`reset` (SpikingJelly's
    single-step mode; :func:`reset_net` resets every neuron of a model). A step whose input has another
    shape, dtype or device than the kept state starts a new sequence. Single steps always run the torch
    backend's step.
    """

    dynamics: NeuronKind = LIF_KIND
    kind: str = LIF_KIND.name

    tau = _Field("tau", "Membrane time constant (PLIF: the learned value).")
    v_threshold = _Field("v_threshold", "Threshold theta.")
    v_reset = _Field("v_reset", "None (soft reset) or the hard reset value.")
    sur = _Field("surrogate", "The surrogate gradient (name, alpha).")
    detach_reset = _Field("detach_reset", "No gradient through s in the reset line.")
    decay_input = _Field("decay_input", "The input is scaled by 1/tau (SpikingJelly's decay_input=True).")
    smooth_forward = _Field("smooth", "Forward through the surrogate's primitive (gradient checks only).")
    m_grad = _Field("m_grad", "CLIF: False stops every gradient through the complementary potential m.")

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
        m_grad: bool = True,
        step_mode: str = "m",
    ):
        super().__init__()
        p = make_params(tau, v_threshold, v_reset, surrogate, alpha, detach_reset, decay_input, smooth_forward,
                        m_grad)
        self.dynamics.check(p)
        self._params = p
        self.truncate = truncate
        self.backend = backend
        self.step_mode = step_mode
        self._state, self._t = None, 0
        self._step_observers: "OrderedDict[int, Callable]" = OrderedDict()

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> NeuronParams:
        """The neuron's constants, the single source of truth (PLIF: ``tau`` at its learned value)."""
        return self._params

    def set_params(self, **changes) -> None:
        """Replace fields of :attr:`params` (validated as in the constructor), e.g. ``set_params(tau=3.0)``."""
        p = self._params._replace(**changes)
        new = make_params(p.tau, p.v_threshold, p.v_reset, p.surrogate, None, p.detach_reset, p.decay_input,
                          p.smooth, p.m_grad, allow_no_leak=math.isinf(self._params.tau),
                          fire_at_threshold=p.fire_at_threshold)
        self.dynamics.check(new)
        self._params = new

    def current_tau(self) -> float:
        """The time constant as a float (PLIF: its learned value, read from the device)."""
        return self.params.tau

    def inv_tau(self) -> Scalar:
        """``k = 1/tau`` as the step uses it: a float, or a 0-d tensor for PLIF (keeps the graph)."""
        return self._params.inv_tau

    def init_state(self, like: torch.Tensor) -> tuple:
        """The state before step 0 shaped like one step of input (``v = v_reset`` or 0, ``m = 0``)."""
        return self.dynamics.init_state(like, self._params)

    def fire_reset(self, u: torch.Tensor, state, p: NeuronParams, inv_tau: Scalar):
        """Fire and reset one step with the module's kind (:meth:`NeuronKind.fire_reset`)."""
        return self.dynamics.fire_reset(u, state, p, inv_tau)

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
    def step_mode(self) -> str:
        """``"m"`` (whole sequences per call) or ``"s"`` (one step per call, state kept until :meth:`reset`)."""
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in ("s", "m"):
            raise UsageError(f"step_mode must be 's' (one step per call) or 'm' (whole sequences), got {mode!r}.")
        self._step_mode = mode
        self._state, self._t = None, 0

    def reset(self) -> None:
        """Forget the state kept between single-step calls: the next step starts a new sequence."""
        self._state, self._t = None, 0

    @property
    def backend(self) -> str:
        """``"torch"`` (autograd through the step functions) or ``"fused"`` (:mod:`gradflow.neurons.fused`)."""
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise UsageError(f"Unknown neuron backend {name!r}; choose one of {', '.join(BACKENDS)}.")
        self._backend = name

    def __setstate__(self, state: dict) -> None:
        """Unpickle modules of any gradflow version (0.1 kept the constants as loose attributes)."""
        legacy = {key: state.pop(key) for key in ("tau", "v_threshold", "v_reset", "sur", "detach_reset",
                                                  "decay_input", "smooth_forward") if key in state}
        super().__setstate__(state)
        if "_params" not in self.__dict__:
            sur = legacy.get("sur", Surrogate())
            self._params = NeuronParams(float(legacy.get("tau", 2.0)), float(legacy.get("v_threshold", 1.0)),
                                        legacy.get("v_reset"), sur, bool(legacy.get("detach_reset", False)),
                                        bool(legacy.get("decay_input", False)),
                                        bool(legacy.get("smooth_forward", False)))
        self.__dict__.setdefault("_backend", "torch")
        self.__dict__.setdefault("_step_mode", "m")
        self.__dict__.setdefault("_state", None)
        self.__dict__.setdefault("_t", 0)
        self.__dict__.setdefault("_truncate", None)
        self.__dict__.setdefault("_step_observers", OrderedDict())

    # ------------------------------------------------------------------ observers
    def register_step_observer(self, fn: Callable[["SpikingNeuron", NeuronTrace], None]) -> RemovableHandle:
        """Call ``fn(module, trace)`` after every forward; returns a handle whose ``remove()`` detaches it."""
        handle = RemovableHandle(self._step_observers)
        self._step_observers[handle.id] = fn
        return handle

    def extra_repr(self) -> str:
        p = self.params
        reset = "soft" if p.v_reset is None else f"hard(v_reset={p.v_reset:g})"
        return (
            f"tau={p.tau:.4g}, v_threshold={p.v_threshold:g}, reset={reset}, "
            f"surrogate={p.surrogate.name}(alpha={p.surrogate.alpha:g}), detach_reset={p.detach_reset}, "
            f"decay_input={p.decay_input}" + ("" if p.m_grad else ", m_grad=False")
            + ("" if self.backend == "torch" else f", backend={self.backend}")
            + ("" if self.step_mode == "m" else ", step_mode=s")
        )

    # ------------------------------------------------------------------ multi-step forward
    def forward(self, x: torch.Tensor, return_states: bool = False):
        """Run all ``T`` steps of ``x`` (``[T, N, ...]``); spikes ``[T, N, ...]`` (or :class:`NeuronOutput`)."""
        if self._step_mode == "s":
            return self._forward_step(x)
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise UsageError(f"{type(self).__name__} expects a time-major tensor [T, N, ...], got {shape}.")
        if not x.is_floating_point():
            raise UsageError(f"{type(self).__name__} expects a floating-point input, got {x.dtype}.")
        p, k, kind = self._params, self.inv_tau(), self.dynamics
        if self._backend == "fused" and not return_states:
            return self._forward_fused(x, p, k)
        state = kind.init_state(x[0], p)
        us: List[torch.Tensor] = []
        prev: list = []
        spikes: List[torch.Tensor] = []
        states: list = []
        cut = cut_steps(x.shape[0], self._truncate)
        for t in range(x.shape[0]):
            if t in cut:  # truncated BPTT: no gradient through the state across this block boundary
                state = type(state)(*(z.detach() for z in state))
            prev.append(state)
            s, state, u = kind.step(x[t], state, p, k)
            us.append(u)
            spikes.append(s)
            states.append(state)
        out = torch.stack(spikes)
        if self._step_observers:
            trace = NeuronTrace(x, us, prev, out, k, cut, "torch", None, kind, p)
            for fn in list(self._step_observers.values()):
                fn(self, trace)
        if not return_states:
            return out
        m = torch.stack([st.m for st in states]) if "m" in kind.State._fields else None
        return NeuronOutput(out, torch.stack(us), torch.stack([st.v for st in states]), m)

    def _forward_step(self, x: torch.Tensor) -> torch.Tensor:
        """One step ``[N, ...]`` of single-step mode, from the kept state (new sequence if none fits).

        With observers (a recorder) the spikes come back through a view, so that the gradient arriving
        from the rest of the network (``g_out``) is told apart from the reset's own use of ``s``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or not x.is_floating_point():
            what = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise UsageError(f"{type(self).__name__} in single-step mode expects a floating-point step [N, ...], got a {what}.")
        p, k, kind = self._params, self.inv_tau(), self.dynamics
        state, t = self._state, self._t
        if state is None or state.v.shape != x.shape or state.v.dtype != x.dtype or state.v.device != x.device:
            state, t = kind.init_state(x, p), 0
        cut = ()
        if t > 0 and self._truncate is not None and t % self._truncate == 0:
            state = type(state)(*(z.detach() for z in state))
        if t > 0 and x.requires_grad and not any(z.requires_grad for z in state):
            cut = (t,)  # no gradient reaches the earlier steps through this state
        s, new, u = kind.step(x, state, p, k)
        self._state, self._t = new, t + 1
        if not self._step_observers:
            return s
        out = s.view_as(s)
        trace = NeuronTrace(x, [u], [state], out, k, cut, "torch", None, kind, p, t)
        for fn in list(self._step_observers.values()):
            fn(self, trace)
        return out

    def _forward_fused(self, x: torch.Tensor, p: NeuronParams, k: Scalar) -> torch.Tensor:
        """All steps in one fused node; observers get detached ``u``/``prev`` and a ``tap``."""
        kind = self.dynamics
        if not self._step_observers:
            return multistep(kind, x, k, p, self._truncate)
        tap: list = []
        res = multistep(kind, x, k, p, self._truncate, want_states=True, tap=tap)
        out, u, prev_all = res[0], res[1], kind.State(*res[2:])
        prev = [kind.State(*(z[t] for z in prev_all)) for t in range(x.shape[0])]
        trace = NeuronTrace(x, list(u.unbind(0)), prev, out, k, cut_steps(x.shape[0], self._truncate), "fused",
                            tap, kind, p)
        for fn in list(self._step_observers.values()):
            fn(self, trace)
        return out


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (paper Eqs. 1-3), multi-step.

    >>> LIF(tau=2.0, v_reset=0.0)(torch.tensor([[1.5], [0.4], [0.5]]))[:, 0].tolist()
    [1.0, 0.0, 0.0]
    """

    dynamics = LIF_KIND
    kind = LIF_KIND.name


class CLIF(SpikingNeuron):
    """Complementary LIF neuron (paper Eq. 19): LIF plus the complementary potential ``m``; soft reset only.

    >>> CLIF(tau=2.0)(torch.tensor([[1.2], [1.0], [1.0]]))[:, 0].tolist()
    [1.0, 0.0, 1.0]
    """

    dynamics = CLIF_KIND
    kind = CLIF_KIND.name


class PLIF(SpikingNeuron):
    """Parametric LIF: LIF whose ``tau = 1 / sigmoid(w)`` is learned per layer.

    ``w`` is an ``nn.Parameter`` initialised to ``-log(init_tau - 1)`` (SpikingJelly's
    ParametricLIFNode), so that ``tau == init_tau`` at the start. ``params.tau`` (and ``tau``,
    ``current_tau()``, the ``repr``) is the learned value.

    >>> plif = PLIF(init_tau=2.0); round(plif.current_tau(), 6)
    2.0
    """

    dynamics = PLIF_KIND
    kind = PLIF_KIND.name
    tau = property(lambda self: self.params.tau, lambda self, value: self.set_params(tau=value),
                   doc="The learned time constant ``1 / sigmoid(w)``.")

    def __init__(self, init_tau: float = 2.0, *args, tau: Optional[float] = None, **kwargs):
        if tau is not None:
            init_tau = tau
        super().__init__(init_tau, *args, **kwargs)
        self.w = nn.Parameter(torch.tensor(-math.log(self._params.tau - 1.0)))

    @property
    def params(self) -> NeuronParams:
        return self._params._replace(tau=float(1.0 / torch.sigmoid(self.w.detach().double())))

    def set_params(self, **changes) -> None:
        tau = changes.pop("tau", None)
        if changes:
            super().set_params(**changes)
        if tau is not None:
            tau = make_params(tau=tau).tau
            with torch.no_grad():
                self.w.fill_(-math.log(tau - 1.0))

    def inv_tau(self) -> torch.Tensor:
        return torch.sigmoid(self.w)


def reset_net(model: nn.Module) -> None:
    """Reset the kept state of every gradflow neuron in ``model`` (single-step mode), like SpikingJelly's
    ``functional.reset_net``."""
    for m in model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset()


#: Neuron modules by kind name.
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
