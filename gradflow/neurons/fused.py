"""The fused backend: all ``T`` steps of any neuron kind in one autograd node (``backend='fused'``).

The torch backend records every elementwise op of every step (several saved ``[N, ...]`` tensors per
step, ``~10 T`` graph nodes). :class:`FusedNeuron` instead runs the kind's
:meth:`~gradflow.neurons.kind.NeuronKind.fused_forward` (the same operations as the step, so the same
spikes, bit for bit), saves only what that loop keeps (``u``; CLIF also ``m``) and differentiates by hand
with the kind's adjoint (:func:`gradflow.neurons.adjoint.sweep`)::

    P[t]      = g_out[t] * sg(u[t] - theta)            (spatial)
    temporal  = c[t] . G[t],  delta[t] = P[t] + temporal[t],  G[t-1] = b[t] delta[t] + D[t]^T G[t]
    grad_x[t] = delta[t] * du/dx                      (1, or 1/tau with decay_input)

with the Jacobian of step t recomputed from the saved tensors, one block of neurons at a time
(:mod:`gradflow.neurons.chunks`). A learned ``k = 1/tau`` (PLIF) gets ``dL/dk = sum_t delta[t] du[t]/dk``.
``truncate`` cuts the carry at every step ``t > 0`` with ``t % truncate == 0``. Gradients are not
differentiable again (no double backward).

A *tap* (a list, possibly empty when the function is called and filled later) lets an observer (the
recorder) see the decomposition without hooks: after the backward has computed everything it calls each
``fn`` in it as ``fn(g_out, P, temporal, delta)`` (device tensors ``[T, N, ...]``, no host sync). With
a tap attached the backward computes ``delta = temporal + g_out * sg`` exactly as without (``P`` is
written for the tap separately), so a tap never changes a gradient bit; ``P + temporal`` equals
``delta`` to rounding.

>>> import torch
>>> from gradflow.neurons.params import NeuronParams
>>> x = torch.tensor([[1.2], [0.2], [0.9]], requires_grad=True)
>>> s = lif_multistep(x, 0.5, NeuronParams(tau=2.0))
>>> s[:, 0].tolist()
[1.0, 0.0, 1.0]
>>> s.sum().backward(); x.grad[:, 0].tolist()          # same as LIF(tau=2.0) through autograd
[1.0, 0.5, 1.0]
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from .adjoint import cut_steps, sweep
from .chunks import chunk_slices
from .clif import CLIF_KIND
from .kind import NeuronKind, takes_ws
from .lif import LIF_KIND, PLIF_KIND
from .params import NeuronParams, Scalar, charge_dk

__all__ = ["FusedNeuron", "multistep", "lif_multistep", "clif_multistep", "cut_steps"]


class FusedNeuron(torch.autograd.Function):
    """All ``T`` steps of one neuron kind in one autograd node.

    ``apply(x, k, kind, p, cut, want_states, tap)``: ``x`` ``[T, N, ...]``; ``k = 1/tau`` (a float, or a
    0-d tensor when ``kind.learned_tau``); ``p`` the :class:`~gradflow.neurons.params.NeuronParams`
    (its ``tau`` is not used, ``k`` is); ``cut`` the truncation steps (:func:`cut_steps`);
    ``want_states`` adds the detached ``u`` and the states before each step (each ``[T, N, ...]``) to
    the outputs; ``tap`` a list of callables or None. Returns ``spikes`` or ``(spikes, u, *prev)``.
    """

    @staticmethod
    def forward(ctx, x, k, kind: NeuronKind, p: NeuronParams, cut: Tuple[int, ...], want_states: bool, tap):
        fw = kind.fused_forward(x, k, p, want_states)
        k_tensor = isinstance(k, torch.Tensor) and kind.learned_tau
        ctx.save_for_backward(*fw.saved, k if k_tensor else None, x if (k_tensor and p.decay_input) else None)
        ctx.n_saved = len(fw.saved)
        ctx.k = None if k_tensor else (float(k) if isinstance(k, torch.Tensor) else k)
        ctx.kind, ctx.p, ctx.cut, ctx.tap = kind, p, frozenset(cut), tap
        if want_states:
            extra = (fw.u, *fw.prev)
            ctx.mark_non_differentiable(*extra)
            return (fw.spikes, *extra)
        return fw.spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, g, *_unused):
        saved = ctx.saved_tensors
        n = ctx.n_saved
        state_saved, k_t, x_saved = saved[:n], saved[n], saved[n + 1]
        kind, p, cut, tap = ctx.kind, ctx.p, ctx.cut, ctx.tap
        k = ctx.k if k_t is None else k_t.detach()
        need_k = k_t is not None and ctx.needs_input_grad[1]
        T = state_saved[0].shape[0]
        flat = [s.reshape(T, -1) for s in state_saved]
        g2 = g.reshape(T, -1)
        x2 = None if x_saved is None else x_saved.reshape(T, -1)
        keep = bool(tap)
        delta = torch.empty_like(flat[0])
        P_all = torch.empty_like(delta) if keep else None
        temp_all = torch.empty_like(delta) if keep else None  # rows without a temporal part are zeroed below
        grad_k = torch.zeros((), dtype=torch.float64, device=delta.device) if need_k else None
        fields = len(kind.State._fields)
        with_ws = takes_ws(kind.fused_jacobian)
        for sl in chunk_slices(delta):
            block = [f[:, sl] for f in flat]
            d_block = delta[:, sl]
            ws: dict = {}  # one set of cache-resident buffers for every step of this block
            carry = [tuple(torch.empty_like(d_block[0]) for _ in range(fields)) for _ in range(2)]

            def P_at(t, jac, sl=sl, ws=ws):
                # delta = temporal + g_out sg in one addcmul (P is not materialised for the gradient), the
                # same with or without a tap: a tap gets P written separately and changes no gradient bit
                if keep:
                    torch.mul(g2[t, sl], jac.sg, out=P_all[t, sl])
                    ws["temporal"] = temp_all[t, sl]  # a kind's back writes its temporal part there (no copy)
                return (g2[t, sl], jac.sg)

            if with_ws:
                jac_at = lambda t, b=block, ws=ws: kind.fused_jacobian(b, t, p, k, ws)  # noqa: E731
            else:  # a kind written before workspaces existed
                jac_at = lambda t, b=block: kind.fused_jacobian(b, t, p, k)  # noqa: E731
            steps = sweep(kind, jac_at, T, cut, P_at=P_at, out=d_block, ws=ws, carry_bufs=carry)
            for t, _, step in steps:
                if step.delta.data_ptr() != d_block[t].data_ptr():
                    d_block[t].copy_(step.delta)  # no temporal part (last step, or a cut): delta = P
                if keep:
                    row = temp_all[t, sl]
                    if step.temporal is None:
                        row.zero_()
                    elif step.temporal.data_ptr() != row.data_ptr():
                        row.copy_(step.temporal)
                if need_k:
                    xb = None if x2 is None else x2[:, sl]
                    dk = charge_dk(None if xb is None else xb[t], kind.fused_v_prev(block, t, p), p)
                    grad_k += (d_block[t] * dk).sum(dtype=torch.float64)
        shape = state_saved[0].shape
        delta = delta.view(shape)
        grad_x = delta * k if p.decay_input else delta
        if keep:
            for fn in list(tap):
                fn(g, P_all.view(shape), temp_all.view(shape), delta)
        gk = grad_k.to(k_t.dtype) if need_k else None
        return grad_x, gk, None, None, None, None, None


def multistep(
    kind: NeuronKind,
    x: torch.Tensor,
    k: Scalar,
    p: NeuronParams,
    truncate: Optional[int] = None,
    want_states: bool = False,
    tap: Optional[list] = None,
):
    """``kind`` fused over ``x`` ``[T, N, ...]``: spikes, or ``(spikes, u, *prev)`` with ``want_states``.

    ``k = 1/tau`` (a float, or PLIF's ``sigmoid(w)``); ``truncate`` as in
    :class:`~gradflow.neurons.SpikingNeuron`; ``tap``: see the module docstring.
    """
    if isinstance(k, torch.Tensor) and not kind.learned_tau:
        k = float(k)
    return FusedNeuron.apply(x, k, kind, p, cut_steps(x.shape[0], truncate), bool(want_states), tap)


def lif_multistep(x, k, p, truncate=None, want_states=False, tap=None):
    """Fused LIF (PLIF when ``k`` is a tensor): spikes, or ``(spikes, u, v_prev)`` with ``want_states``."""
    kind = PLIF_KIND if isinstance(k, torch.Tensor) else LIF_KIND
    return multistep(kind, x, k, p, truncate, want_states, tap)


def clif_multistep(x, k, p, truncate=None, want_states=False, tap=None):
    """Fused CLIF: spikes, or ``(spikes, u, v_prev, m_prev)`` with ``want_states``."""
    return multistep(CLIF_KIND, x, k, p, truncate, want_states, tap)
