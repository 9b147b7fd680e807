"""The converted snnTorch ``Leaky`` (see :mod:`gradflow.adapters.snntorch`); imports snnTorch.

A module-level class (so converted models pickle as far as snnTorch's own surrogates allow); only
:mod:`gradflow.adapters.snntorch` imports this file, when it converts an snnTorch neuron, so gradflow
itself never requires snnTorch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

import snntorch
import torch
from torch import nn

from ..errors import UsageError
from ..neurons import LIFState, NeuronParams, NeuronTrace, SpikingNeuron

__all__ = ["GradflowLeaky", "make"]


class GradflowLeaky(snntorch.Leaky, SpikingNeuron):
    """snnTorch's ``Leaky`` call (``spk, mem = lif(x, mem)`` / ``spk = lif(x)``) on a gradflow kind, and a
    single-step gradflow neuron the recorder sees.

    Built by :func:`make` from a ``Leaky`` (its parameters and buffers are kept). ``_gf_kind``: the kind
    whose step runs; ``dynamics``/``_params``: the kind and constants the recorder decomposes with (the
    same, except for ``subtract`` without delay: LIF's soft reset, whose Jacobian it has, see
    :mod:`gradflow.adapters.snntorch`); ``_gf_mode``: the reset (``subtract_delay``, ``zero_delay``,
    ``none``, ``subtract_now``, ``zero_now``). A learned ``beta`` enters as ``k = 1 - beta.clamp(0, 1)``,
    a learned ``threshold`` as a 0-d tensor, so autograd gives their gradients as snnTorch does.

    Sequences: a step continues the sequence only when it receives the potential the previous step
    returned (the tensor itself); anything else (``init_leaky()``, ``utils.reset(net)``, the user's own
    state) starts a new one. A state that carries no gradient (``detach_hidden``) is a cut.
    """

    _gradflow_converted = True

    def forward(self, input_: torch.Tensor, mem: Optional[torch.Tensor] = None):
        """One step: ``(spk, mem)``, or ``spk`` with ``init_hidden`` (both with ``output``)."""
        if self.init_hidden and mem is not None:
            raise UsageError("`mem` should not be passed as an argument while `init_hidden=True`.")
        if mem is None:
            mem = self.mem
        t = 0
        if mem is self._gf_last and mem is not None:  # the sequence goes on from the internal potential
            mem, t = self._gf_internal, self._t
        if mem.shape != input_.shape:  # snnTorch: a fresh sequence starts from zeros
            mem, t = torch.zeros_like(input_), 0
        p: NeuronParams = self._gf_params
        k = p.inv_tau
        if isinstance(self.beta, nn.Parameter):
            k = 1.0 - self.beta.clamp(0, 1)
        if isinstance(self.threshold, nn.Parameter):
            p = p._replace(v_threshold=self.threshold)
        mode = self._gf_mode
        with torch.no_grad():  # snnTorch's detached reset signal H(mem[t-1] - threshold)
            r = torch.gt(mem, p.v_threshold).to(mem.dtype)
        state = (1.0 - r) * mem if mode == "zero_delay" else mem
        s, new, u = self._gf_kind.step(input_, LIFState(state), p, k)
        out = s.view_as(s) if self._step_observers else s
        if mode in ("subtract_delay", "none", "zero_delay"):
            internal = u
        elif mode == "subtract_now":  # snnTorch: mem - (spk - reset) * threshold, s not detached
            internal = u - (s - r) * p.v_threshold
        else:  # zero_now: LIF's hard reset to 0 in the step
            internal = new.v
        # what the user gets is a view: its gradient (a readout of mem) is told apart from the state's
        self.mem = internal.view_as(internal) if self._step_observers else internal
        self._gf_internal, self._gf_last, self._t = internal, self.mem, t + 1
        if self._step_observers:
            cut = (t,) if t > 0 and input_.requires_grad and not state.requires_grad else ()
            rp = self._params._replace(v_threshold=p.v_threshold)
            trace = NeuronTrace(input_, [u], [LIFState(state)], out, k, cut, "torch", None, self.dynamics, rp, t,
                                self.mem, mode in ("subtract_now", "zero_now"))
            for fn in list(self._step_observers.values()):
                fn(self, trace)
        spk = out * self.graded_spikes_factor
        if self.output:
            return spk, self.mem
        if self.init_hidden:
            return spk
        return spk, self.mem

    def reset(self) -> None:
        """Start a new sequence at the next step (as ``reset_mem`` does for snnTorch)."""
        self.reset_mem()
        self._gf_last, self._gf_internal, self._t = None, None, 0


def make(lif: nn.Module, kind, params: NeuronParams, mode: str, record_kind, record_params: NeuronParams) -> GradflowLeaky:
    """A :class:`GradflowLeaky` sharing ``lif``'s parameters and buffers (the ``_parameters``/``_buffers``
    dictionaries are copied, the tensors shared), registered with snnTorch so that its class-level
    ``reset_hidden``/``detach_hidden`` and ``snntorch.utils.reset`` reach it."""
    new = GradflowLeaky.__new__(GradflowLeaky)
    new.__dict__.update({k: v for k, v in lif.__dict__.items() if k != "reset"})  # 'reset': snnTorch's last signal
    for key in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
        if key in lif.__dict__:
            new.__dict__[key] = type(lif.__dict__[key])(lif.__dict__[key])
    new.__dict__.update(
        _gf_kind=kind, _gf_params=params, _gf_mode=mode, _gf_last=None, _gf_internal=None, _t=0, _state=None,
        dynamics=record_kind, kind=record_kind.name, _params=record_params, _step_observers=OrderedDict(),
        _backend="torch", _truncate=None, _step_mode="s",
    )
    snntorch.SpikingNeuron.instances.append(new)
    return new
