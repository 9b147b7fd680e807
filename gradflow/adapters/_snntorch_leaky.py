"""The converted snnTorch ``Leaky`` (see :mod:`gradflow.adapters.snntorch`); imports snnTorch.

A module-level class (so converted models pickle); only :mod:`gradflow.adapters.snntorch` imports this
file, when it converts an snnTorch neuron, so gradflow itself never requires snnTorch.
"""

from __future__ import annotations

from typing import Optional

import snntorch
import torch
from torch import nn

from ..errors import UsageError
from ..neurons import LIFState, NeuronParams

__all__ = ["GradflowLeaky"]


class GradflowLeaky(snntorch.Leaky):
    """snnTorch's ``Leaky`` call (``spk, mem = lif(x, mem)`` / ``spk = lif(x)``) on a gradflow kind.

    Built by :func:`gradflow.adapters.snntorch.convert_module` from a ``Leaky`` (its parameters and
    buffers are kept). ``_gf_kind``/``_gf_params``: the kind and its constants; ``_gf_mode``: the reset
    (``subtract_delay``, ``zero_delay``, ``none``, ``subtract_now``, ``zero_now``). A learned ``beta`` enters as ``k = 1 - beta.clamp(0, 1)``, a learned ``threshold`` as a 0-d tensor,
    so autograd gives their gradients as snnTorch does.
    """

    _gradflow_converted = True

    def forward(self, input_: torch.Tensor, mem: Optional[torch.Tensor] = None):
        """One step: ``(spk, mem)``, or ``spk`` with ``init_hidden`` (both with ``output``)."""
        if self.init_hidden and mem is not None:
            raise UsageError("`mem` should not be passed as an argument while `init_hidden=True`.")
        if mem is None:
            mem = self.mem
        if mem.shape != input_.shape:  # snnTorch: a fresh sequence starts from zeros
            mem = torch.zeros_like(input_)
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
        if mode in ("subtract_delay", "none", "zero_delay"):
            self.mem = u
        elif mode == "subtract_now":  # snnTorch: mem - (spk - reset) * threshold, s not detached
            self.mem = u - (s - r) * p.v_threshold
        else:  # zero_now: LIF's hard reset to 0 in the step
            self.mem = new.v
        spk = s * self.graded_spikes_factor
        if self.output:
            return spk, self.mem
        if self.init_hidden:
            return spk
        return spk, self.mem
