"""Single-step neurons in the recorder: the steps of a layer between two resets become one sequence.

A neuron in single-step mode (``step_mode="s"``, SpikingJelly's default and snnTorch's only mode) is
called once per time step and keeps its state until :meth:`~gradflow.neurons.SpikingNeuron.reset`. It
shows the recorder every step (a :class:`~gradflow.neurons.NeuronTrace` with ``t`` set). The recorder
opens a :class:`~.decompose.LayerPass` at ``t = 0`` and appends each step to it (:func:`add_step`):
its ``u[t]`` gets the same ``delta[t]`` hook as a multi-step forward, the spike output of the step (a
view, so that only the gradient from the rest of the network arrives there) a pre-hook giving
``g_out[t]``. When the backward reaches the layer the sequence is frozen, and when all ``delta[t]``
have arrived :func:`assemble` stacks the steps into the ``[T, N, ...]`` form :func:`~.decompose.finalize`
reads, so the temporal part, the closure ``spatial + temporal = delta``, pairs and lags are computed
by exactly the same code as for a multi-step layer. A module that also returns its potential (snnTorch's
``mem``, consumed downstream as a readout) shows it as ``trace.potential``; its gradient is part of the
spatial term ``P[t]`` (the gradient reaching ``u[t]`` from the step's own outputs).

Sequence boundaries: ``t = 0`` (a reset, or an input of another shape) starts a sequence; a step after
the backward of its sequence began without a reset is recorded as a new sequence that starts from the
carried state, with a warning (the boundary is ambiguous: the earlier steps were already
back-propagated). A step whose incoming state carries no gradient (detached: truncated BPTT) is a cut,
as in multi-step mode. The weight split is made per step (:func:`split_step`): each step's region (the
layers between the previous neurons and this step's input) gets ``P[t] du/dx`` back-propagated without
hooks, summed over the steps. While recording, a single-step module hands out
its spikes (and potential) through views, so gradients can differ from unrecorded ones by rounding
(the same terms summed in another order), not bit for bit as for multi-step layers.
"""

from __future__ import annotations

import torch

from ..neurons import NeuronTrace, SpikingNeuron, temporal_from_delta
from .decompose import LayerPass
from .decompose import _total_hook as total_hook
from .region import Region, RegionError

__all__ = ["open_pass", "add_step", "assemble", "split_step", "release"]


def open_pass(module: SpikingNeuron, name: str, index: int, trace: NeuronTrace) -> LayerPass:
    """A new, empty single-step sequence for ``module`` (``trace`` is its first step)."""
    x = trace.x
    k = trace.inv_tau.detach() if isinstance(trace.inv_tau, torch.Tensor) else trace.inv_tau
    n = x.shape[0] if x.dim() > 0 else 1
    ps = LayerPass(module=module, name=name, index=index, kind=trace.kind, params=trace.params, k=k, cut=(),
                   T=0, n=n, E=int(x.numel() // max(n, 1)),
                   trace=NeuronTrace(x, [], [], None, k, (), "torch", None, trace.kind, trace.params, 0),
                   region=None, deltas=[])
    ps.single, ps.frozen, ps.outs, ps.g_outs, ps.g_pots = True, False, [], [], []
    ps.potential_after_reset = bool(trace.potential_after_reset)
    return ps


def add_step(ps: LayerPass, trace: NeuronTrace) -> int:
    """Append one step to an open sequence; returns its index in the sequence."""
    t = ps.T
    ps.T += 1
    ps.deltas.append(None)
    ps.g_outs.append(None)
    ps.g_pots.append(None)
    ps.outs.append(trace.spikes)
    ps.trace.u.append(trace.u[0])
    ps.trace.prev.append(trace.prev[0])
    if trace.cut and t > 0:
        ps.cut = ps.cut + (t,)
    return t


def assemble(ps: LayerPass):
    """Stack the sequence's spikes and output gradients (``[T, N, ...]``) for :func:`~.decompose.finalize`.

    Returns None, or, when the module's returned potential received a gradient, the ``given`` tuple
    ``(g_out, P, temporal, delta)`` with ``P[t] = g_out[t] sg[t] + g_pot[t] dpot/du[t]`` (``dpot/du`` 1
    for ``u[t]``, the Jacobian's ``vu[t]`` for ``v[t]``) and ``temporal`` from the recorded deltas through
    the kind's adjoint, exactly as :func:`~.decompose.finalize` computes it.
    """
    if not getattr(ps, "outs", None):
        return None
    outs = ps.outs
    ps.trace = ps.trace._replace(spikes=torch.stack([o.detach() for o in outs]), cut=ps.cut)
    if all(g is None for g in ps.g_outs):
        ps.g_out = None
    else:
        ps.g_out = torch.stack([torch.zeros_like(o) if g is None else g for g, o in zip(ps.g_outs, outs)])
    g_pots = ps.g_pots
    if all(g is None for g in g_pots):
        return None
    kind, p, k, T = ps.kind, ps.params, ps.k, ps.T
    us = [u.detach() for u in ps.trace.u]
    prevs = [kind.State(*(z.detach() for z in s)) for s in ps.trace.prev]
    jacs = [kind.jacobian(us[t], prevs[t], p, k) for t in range(T)]
    zero = torch.zeros_like(us[0])
    deltas = [zero if d is None else d for d in ps.deltas]
    temps = temporal_from_delta(kind, jacs.__getitem__, deltas, ps.cut)
    Ps = []
    for t in range(T):
        P = zero if ps.g_out is None else jacs[t].sg * ps.g_out[t]
        if g_pots[t] is not None:
            P = P + (g_pots[t] * kind.vu(jacs[t]) if ps.potential_after_reset else g_pots[t])
        Ps.append(P)
    g_out = ps.g_out if ps.g_out is not None else torch.zeros((T,) + tuple(zero.shape), dtype=zero.dtype,
                                                                     device=zero.device)
    temporal = torch.stack([zero if tp is None else tp for tp in temps])
    return g_out, torch.stack(Ps), temporal, torch.stack(deltas)


def _spatial(ps: LayerPass, t: int) -> torch.Tensor:
    """``P[t] = g_out[t] sg[t]`` (+ the returned potential's gradient) of one step, before finalize."""
    kind, p, k = ps.kind, ps.params, ps.k
    u = ps.trace.u[t].detach()
    prev = kind.State(*(z.detach() for z in ps.trace.prev[t]))
    jac = kind.jacobian(u, prev, p, k)
    g_out, g_pot = ps.g_outs[t], ps.g_pots[t]
    P = torch.zeros_like(u) if g_out is None else jac.sg * g_out
    if g_pot is not None:
        P = P + (g_pot * kind.vu(jac) if ps.potential_after_reset else g_pot)
    return P


def split_step(ps: LayerPass, t: int, region: Region) -> None:
    """Weight split of one step: back-propagate ``P[t] du/dx`` through the step's region without hooks
    and add it to the layer's spatial part; hooks on the region's parameter nodes add the main backward's
    total (:func:`~.decompose.finish_weight_split` takes the difference at the end of the backward).
    Every step's region must hold the same parameters (else the split is skipped with a reason)."""
    if ps.weight_error:
        return
    names = [name for name, _ in region.params]
    if ps.weight_parts is None:
        ps.weight_names = names
        ps.weight_parts = [(None, None)] * len(names)
        ps.weight_totals = [None] * len(names)
    elif names != ps.weight_names:
        ps.weight_error = "the regions of its steps hold different parameters"
        return
    P = _spatial(ps, t)
    gain = ps.kind.input_gain(ps.params, ps.k)
    if not (isinstance(gain, float) and gain == 1.0):
        P = P * gain
    try:
        g_s = region.vjp(P)
    except (RegionError, RuntimeError) as err:
        ps.weight_error = str(err).splitlines()[0]
        return
    ps.weight_parts = [(b if a is None else (a if b is None else a + b), None)
                       for (a, _), b in zip(ps.weight_parts, g_s)]
    for node, edges in region.param_edges.items():
        ps.handles.append(node.register_hook(total_hook(ps, edges)))


def release(ps: LayerPass) -> None:
    """Drop the sequence's per-step references (the statistics stay)."""
    ps.outs, ps.g_outs, ps.g_pots = [], [], []
