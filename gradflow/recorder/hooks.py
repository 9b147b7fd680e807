"""The recorder's life cycle: observers, the hooks it places on its own and the user's graph, and their removal.

:func:`record` returns a :class:`Recorder`; inside its ``with`` block every forward of a gradflow neuron
is observed (:meth:`~gradflow.neurons.SpikingNeuron.register_step_observer`) and, for the recorded
layers, the backward is read:

* torch backend: a tensor hook on each internal ``u[t]`` gives ``delta[t]``; a pre-hook on the spike
  output's node gives ``g_out`` (what that node receives, after any user hook on the spikes);
* fused backend: the node's *tap* hands over ``g_out``, ``P``, ``temporal`` and ``delta``;
* with ``weights=True``: a pre-hook on the layer's region root (``x.grad_fn``) finishes the layer
  before the main backward enters the region, whose spatial part is then back-propagated without
  hooks (:mod:`.region`), and post-hooks on the region's parameter nodes read the total;
* an engine callback closes each backward pass (one ``step``);
* single-step neurons (``step_mode="s"``) report every step; the steps of a layer between two resets
  are assembled into one sequence and decomposed like a multi-step forward (:mod:`.single`).

**No side effects.** The recorder never calls ``torch.autograd.grad`` or ``backward`` and never calls
the autograd engine on the user's graph: every user tensor hook, ``retain_grad()``, module backward
hook and post-accumulate-grad hook fires exactly as often, with the same values, as without recording,
and every ``.grad`` is bit-identical (single-step neurons: equal to rounding, see :mod:`.single`). Its
own hooks only read and return None. All hooks are removed on
exit (also on error); flags the user changed inside a failing block are restored.

Everything runs on the model's device; hooks launch only device work (no ``.item()``, no host
transfers). Tables are built when asked for (:mod:`.tables`).
"""

from __future__ import annotations

import collections
import warnings
from typing import Deque, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import UsageError
from ..neurons import NeuronTrace, SpikingNeuron
from . import single, tables
from .decompose import LayerPass, finalize, finish_weight_split, start_weight_split
from .region import find_region

__all__ = ["Recorder", "record"]

# spike outputs kept per neuron module as region boundaries (a module may be called several times per forward)
_BOUNDARIES_PER_MODULE = 8


class Recorder:
    """Records gradient flow through every gradflow neuron of ``model``; use :func:`record`.

    Parameters
    ----------
    model:
        any ``nn.Module`` containing :class:`~gradflow.neurons.SpikingNeuron` layers (or a neuron).
    pairs:
        compute ``pair[t, t']`` norms, the ``pairs`` and ``lags`` tables and per-sample pair norms
        (cost ``O(T * min(T, max_lag + 1))`` elementwise steps per layer).
    weights:
        split the gradient of the parameters between the previous neuron layers and each layer into
        spatial and temporal parts (one extra hook-free back-propagation of each layer's spatial part
        through its region).
    max_lag:
        only lags ``0..max_lag`` are computed (None = all ``T - 1``).
    layers:
        record only these qualified module names (default: all neuron layers).
    keep_tensors:
        keep ``u``, ``delta``, ``P``, ``temporal``, ``eps`` (and the pair vectors) per layer and step,
        detached on the model's device, for :meth:`tensors`. Memory grows with every recorded step.
    transport:
        also sum, per sample, the inputs of the theory's default ``window`` predictor (zone
        occupancies and transitions, the zone split of the spatial gradient one step back;
        :mod:`gradflow.recorder.transport`), for :meth:`transport_inputs`. Costs a few bincounts per
        layer and step and :func:`~gradflow.recorder.transport.transport_bytes` per sample.
        ``"pooled"``: the same sums added over each backward pass's samples on the device (one row
        per pass instead of one per sample: what a training monitor needs, with no resampling of the
        prediction); ``transport_bytes`` per pass.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        pairs: bool = True,
        weights: bool = True,
        max_lag: Optional[int] = None,
        layers: Optional[Sequence[str]] = None,
        keep_tensors: bool = False,
        transport: Union[bool, str] = False,
    ):
        if not isinstance(model, nn.Module):
            raise UsageError(f"gradflow.record expects a torch.nn.Module, got {type(model).__name__}.")
        if transport not in (False, True, "pooled"):
            raise UsageError(f"transport must be False, True or 'pooled', got {transport!r}.")
        if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 0):
            raise UsageError(f"max_lag must be a non-negative integer, got {max_lag!r}.")
        self.model = model
        self.pairs_enabled = bool(pairs)
        self.weights_enabled = bool(weights)
        self.max_lag = max_lag
        self.keep_tensors = bool(keep_tensors)
        self.transport_mode = "pooled" if transport == "pooled" else bool(transport)
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, SpikingNeuron)]
        if not found:
            hint = ""
            libs = sorted({lib for m in model.modules() for lib, name in (("SpikingJelly", "spikingjelly"),
                           ("snnTorch", "snntorch")) if type(m).__module__.startswith(name)})
            if libs:
                hint = f" It holds {' and '.join(libs)} neurons: swap them with gradflow.convert(model) first."
            raise UsageError(f"{type(model).__name__} contains no gradflow spiking neurons to record.{hint}")
        names = {n for n, _ in found}
        if layers is not None:
            missing = [n for n in layers if n not in names]
            if missing:
                raise UsageError(f"No neuron layer named {missing[0]!r}; the model has {', '.join(sorted(names))}.")
        self._all_neurons = found
        self._selected = {id(m) for n, m in found if layers is None or n in set(layers)}
        self._names = {id(m): (n or m.kind) for n, m in found}
        self._param_names = {id(p): n for n, p in model.named_parameters()}
        self._handles: list = []
        self._order: Dict[int, int] = {}  # id(module) -> layer_index (forward order)
        self._pending: Dict[int, List[LayerPass]] = {}
        self._in_backward: List[LayerPass] = []
        self._finished: List[LayerPass] = []
        self._boundaries: Dict[int, Deque] = {}  # id(module) -> recent spike-output nodes
        self._region_owner: Dict[int, LayerPass] = {}  # id(node) -> pass whose region holds it
        self._open: Dict[int, LayerPass] = {}  # id(module) -> single-step sequence being assembled
        self._step = 0
        self._callback_queued = False
        self._active = False
        self._saved_flags = None
        self._warned = False
        self._warned_about: set = set()

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "Recorder":
        if self._active:
            raise UsageError("This recorder is already active; nest a new gradflow.record instead.")
        self._saved_flags = (
            {m: m.training for m in self.model.modules()},
            {p: p.requires_grad for p in self.model.parameters()},
        )
        self._active = True
        try:
            for _, module in self._all_neurons:
                self._handles.append(module.register_step_observer(self._observe))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close()
        if exc_type is not None and self._saved_flags is not None:
            training, req = self._saved_flags
            for m, flag in training.items():
                m.training = flag
            for p, flag in req.items():
                p.requires_grad_(flag)
        return None

    def _close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for passes in self._pending.values():
            for ps in passes:
                self._release(ps)
        self._pending.clear()
        for ps in self._in_backward:
            self._release(ps)
        self._in_backward.clear()
        self._boundaries.clear()
        self._region_owner.clear()
        self._open.clear()
        self._active = False

    @property
    def active(self) -> bool:
        """True inside the ``with`` block (observers attached)."""
        return self._active

    @property
    def num_hooks(self) -> int:
        """Number of hooks this recorder currently holds on modules, tensors and graph nodes."""
        n = len(self._handles)
        for passes in self._pending.values():
            n += sum(len(p.handles) for p in passes)
        return n + sum(len(p.handles) for p in self._in_backward)

    def _release(self, ps: LayerPass) -> None:
        if getattr(ps, "single", False):
            single.release(ps)
        if ps.region is not None:
            for nid in ps.region.nodes:
                if self._region_owner.get(nid) is ps:
                    del self._region_owner[nid]
        ps.release()

    # ------------------------------------------------------------------ forward side
    def _enter(self, module: SpikingNeuron, trace: NeuronTrace):
        """What every forward (or single step) of a neuron does first: find the weight-split region of a
        recorded layer, remember the spike output as a region boundary, and number the layer in forward
        order. Returns ``(key, region)`` for a recorded layer, None for one that is not recorded."""
        key = id(module)
        region = None
        if self.weights_enabled and key in self._selected:
            boundaries = {fn for dq in self._boundaries.values() for fn in dq}
            region = find_region(trace.x, boundaries, self._param_names)
        self._boundaries.setdefault(key, collections.deque(maxlen=_BOUNDARIES_PER_MODULE)).append(
            trace.spikes.grad_fn)
        if key not in self._selected:
            return None
        if key not in self._order:
            self._order[key] = len(self._order)
        return key, region

    def _observe(self, module: SpikingNeuron, trace: NeuronTrace) -> None:
        """Step observer: called after each forward of any neuron of the model."""
        if not trace.spikes.requires_grad:
            return  # no graph (no_grad / frozen), nothing to record
        if trace.t is not None:
            return self._observe_step(module, trace)
        entered = self._enter(module, trace)
        if entered is None:
            return
        key, region = entered
        for old in self._pending.pop(key, []):  # a new forward forgets forwards never back-propagated
            self._release(old)
        x = trace.x
        ps = LayerPass(
            module=module, name=self._names[key], index=self._order[key], kind=trace.kind, params=trace.params,
            k=trace.inv_tau.detach() if isinstance(trace.inv_tau, torch.Tensor) else trace.inv_tau,
            cut=tuple(trace.cut), T=x.shape[0], n=x.shape[1], E=int(x[0, :1].numel()), trace=trace,
            region=region, deltas=[None] * x.shape[0],
        )
        if region is not None:
            self._claim(ps)
            ps.handles.append(region.root.register_prehook(lambda grads, ps=ps: self._on_region_root(ps)))
        if trace.tap is not None:
            # fused backend: one autograd node; its backward hands over g_out, P, temporal and delta
            trace.tap.append(lambda g_out, P, temporal, delta, ps=ps: self._on_tap(ps, g_out, P, temporal, delta))
        else:
            node, nr = trace.spikes.grad_fn, trace.spikes.output_nr
            ps.handles.append(node.register_prehook(lambda grads, ps=ps, nr=nr: self._on_output_grad(ps, grads[nr])))
            for t, u in enumerate(trace.u):
                if u.requires_grad:
                    ps.handles.append(u.register_hook(lambda g, ps=ps, t=t: self._on_u_grad(ps, t, g)))
        self._pending.setdefault(key, []).append(ps)

    def _observe_step(self, module: SpikingNeuron, trace: NeuronTrace) -> None:
        """One step of a single-step neuron: add it to the layer's open sequence (module docstring of
        :mod:`gradflow.recorder.single`)."""
        entered = self._enter(module, trace)
        if entered is None:
            return
        key, region = entered
        ps = self._open.get(key)
        if ps is None or trace.t == 0 or ps.frozen:
            if ps is not None and not ps.frozen:  # a sequence never back-propagated
                self._pending.pop(key, None)
                self._release(ps)
            if trace.t != 0 and ps is not None and ps.frozen:
                self._warn_once(f"gradflow.record: {self._names[key]} continued a single-step sequence after a "
                                "backward pass without reset(); the later steps are recorded as a new sequence "
                                "whose first state is the carried one")
            ps = single.open_pass(module, self._names[key], self._order[key], trace)
            self._open[key] = ps
            self._pending[key] = [ps]
        t = single.add_step(ps, trace)
        if region is not None:
            ps.handles.append(region.root.register_prehook(
                lambda grads, ps=ps, t=t, region=region: self._on_step_region_root(ps, t, region)))
        nr = trace.spikes.output_nr
        ps.handles.append(trace.spikes.grad_fn.register_prehook(
            lambda grads, ps=ps, t=t, nr=nr: self._on_step_output_grad(ps, t, grads[nr])))
        u = trace.u[0]
        if u.requires_grad:
            ps.handles.append(u.register_hook(lambda g, ps=ps, t=t: self._on_u_grad(ps, t, g)))
        pot = trace.potential
        if pot is not None and pot.grad_fn is not None:
            ps.handles.append(pot.grad_fn.register_prehook(
                lambda grads, ps=ps, t=t, nr=pot.output_nr: self._on_step_potential_grad(ps, t, grads[nr])))

    def _on_step_output_grad(self, ps: LayerPass, t: int, g: Optional[torch.Tensor]) -> None:
        self._touch(ps)
        ps.g_outs[t] = g

    def _on_step_region_root(self, ps: LayerPass, t: int, region) -> None:
        """The main backward is about to enter the region of step ``t``: split its weight gradient."""
        if ps.trace is None:
            return
        self._touch(ps)
        single.split_step(ps, t, region)

    def _on_step_potential_grad(self, ps: LayerPass, t: int, g: Optional[torch.Tensor]) -> None:
        self._touch(ps)
        ps.g_pots[t] = g

    def _warn_once(self, message: str) -> None:
        key = message.split(" (")[0].split(";")[0]
        if key not in self._warned_about:
            self._warned_about.add(key)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _claim(self, ps: LayerPass) -> None:
        """Note the region's nodes; a node already in another pending layer's region marks both as shared."""
        for nid in ps.region.nodes:
            other = self._region_owner.get(nid)
            if other is not None and other is not ps and other.trace is not None:
                other.shared = ps.shared = True
            self._region_owner[nid] = ps

    # ------------------------------------------------------------------ backward side
    def _touch(self, ps: LayerPass) -> None:
        """A hook of ``ps`` fired: make sure the pass is closed at the end of this backward."""
        if not self._callback_queued:
            self._callback_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)
        pend = self._pending.get(id(ps.module), [])
        if ps in pend:
            pend.remove(ps)
            self._in_backward.append(ps)
        if getattr(ps, "single", False):
            ps.frozen = True  # its backward has begun: the sequence has all its steps

    def _on_output_grad(self, ps: LayerPass, g: Optional[torch.Tensor]) -> None:
        self._touch(ps)
        ps.g_out = g

    def _on_u_grad(self, ps: LayerPass, t: int, g: torch.Tensor) -> None:
        self._touch(ps)
        if ps.done:
            return
        if ps.deltas[t] is None:
            ps.arrived += 1
        ps.deltas[t] = g
        if ps.arrived == len(ps.deltas):
            self._finalize(ps)

    def _on_region_root(self, ps: LayerPass) -> None:
        """The main backward is about to enter the layer's region: every delta that will come has come."""
        if ps.trace is None:
            return
        self._touch(ps)
        if not ps.done:
            self._finalize(ps)

    def _on_tap(self, ps: LayerPass, g_out, P, temporal, delta) -> None:
        if ps.done or ps.trace is None:
            return
        self._touch(ps)
        ps.g_out = g_out
        self._finalize(ps, given=(g_out, P, temporal, delta))

    def _finalize(self, ps: LayerPass, given=None) -> None:
        if getattr(ps, "single", False):
            given = single.assemble(ps) or given
        P, temporal = finalize(ps, pairs=self.pairs_enabled, max_lag=self.max_lag, keep=self.keep_tensors,
                               given=given, transport=self.transport_mode,
                               need_temporal=ps.region is not None and ps.shared)
        if ps.region is not None:
            start_weight_split(ps, P, temporal)
        ps.deltas = []
        ps.g_out = None

    def _on_backward_end(self) -> None:
        """Engine callback at the end of a backward pass: close every touched layer (one step)."""
        self._callback_queued = False
        touched = list(self._in_backward)
        self._in_backward = []
        for ps in touched:
            if not ps.done:
                self._finalize(ps)  # late (no region hook fired): the region has already run
            finish_weight_split(ps)
            if ps.weight_error and not self._warned:
                self._warned = True
                warnings.warn(f"gradflow.record: weight split of {ps.name} skipped: {ps.weight_error}",
                              RuntimeWarning, stacklevel=2)
            ps.step = self._step
            self._release(ps)
            self._finished.append(ps)
        if touched:
            self._step += 1
            self._boundaries.clear()

    # ------------------------------------------------------------------ tables
    def _collect(self) -> List[LayerPass]:
        passes = sorted(self._finished, key=lambda ps: (ps.step, ps.index))
        if not passes:
            raise UsageError(
                "Nothing was recorded: no backward pass reached a recorded neuron inside the "
                "gradflow.record block (was loss.backward() called, with gradients enabled?)."
            )
        return passes

    def per_step(self) -> pd.DataFrame:
        """One row per (step, layer, t) (:func:`gradflow.recorder.tables.per_step`)."""
        return tables.per_step(self._collect())

    def _passes_for(self, table: str) -> List[LayerPass]:
        """The finished passes, after checking that ``table`` was recorded."""
        passes = self._collect()
        if table in ("pairs", "lags") and not self.pairs_enabled:
            raise UsageError("Pairs were not recorded; use gradflow.record(model, pairs=True).")
        if table == "weights" and not self.weights_enabled:
            raise UsageError("The weight split was not recorded; use gradflow.record(model, weights=True).")
        return passes

    def pairs(self) -> pd.DataFrame:
        """One row per (step, layer, t, t_source): ``||pair[t, t_source]||`` (:func:`.tables.pairs`)."""
        return tables.pairs(self._passes_for("pairs"))

    def lags(self) -> pd.DataFrame:
        """One row per (step, layer, lag): ``norm`` (G_k) and ``relative`` (:func:`.tables.lags`)."""
        return tables.lags(self._passes_for("lags"))

    def weights(self) -> pd.DataFrame:
        """One row per (step, layer, param): the signed spatial/temporal weight split (:func:`.tables.weights`)."""
        return tables.weights(self._passes_for("weights"))

    def columns(self, table: str) -> "tables.Columns":
        """The columns of ``per_step``, ``pairs``, ``lags``, ``weights`` or ``layer_info`` as a dict of numpy
        arrays (or lists) in column order: the same values as the DataFrame methods, without building a
        DataFrame (for writers that only turn them into text, e.g. :func:`gradflow.watch`)."""
        builders = {"per_step": tables.per_step_columns, "pairs": tables.pairs_columns, "lags": tables.lags_columns,
                    "weights": tables.weights_columns, "layer_info": tables.layer_info_columns}
        if table not in builders:
            raise UsageError(f"Unknown table {table!r}; choose one of {', '.join(builders)}.")
        return builders[table](self._passes_for(table))

    def samples(self) -> Dict[str, "tables.LayerSamples"]:
        """Per layer, the per-sample squared norms and counts of every recorded pass (:class:`.tables.LayerSamples`).

        The batch dim is dim 1 of the neuron's ``[T, N, ...]`` input; samples of all backward passes
        are concatenated (``step`` says which pass). Under torch.distributed every rank must call it
        (it gathers all ranks' samples).
        """
        return tables.samples(self._collect(), self.pairs_enabled)

    @property
    def transport_enabled(self) -> bool:
        """True when the window model's inputs are collected (``transport`` True or ``"pooled"``)."""
        return bool(self.transport_mode)

    def transport_inputs(self) -> Dict[str, Dict[str, np.ndarray]]:
        """Per layer, the ``window`` predictor's inputs with a leading sample axis (``transport=True``;
        with ``transport="pooled"`` the leading axis has one row per backward pass).

        Each dict has the keys of :func:`gradflow.theory.window.transport_inputs` (``count`` ``[n, T]``,
        ``occupancy`` ``[n, T, Z]``, ..., ``triple`` ``[n, T, Z, Z, Z]``, and the shared ``zone_edges``);
        summed over axis 0 it is the theory's dict for all recorded samples, and resampling its rows
        resamples the prediction with the measurement. Layers whose surrogate has no window width in
        the theory are left out.
        """
        passes = self._collect()
        if not self.transport_enabled:
            raise UsageError("The window model's inputs were not recorded; use gradflow.record(model, transport=True).")
        return tables.transport_inputs(passes)

    def tensors(self, layer: str, step: int = 0) -> dict:
        """The kept tensors (``keep_tensors=True``) of one layer at one step.

        Keys: ``u``, ``delta``, ``spatial``, ``temporal``, ``eps`` (each ``[T, N, ...]``) and, with
        pairs, ``pairs`` (a list over t of ``[K_t, N, ...]`` tensors, row k = ``pair[t, t+k]``).
        """
        if not self.keep_tensors:
            raise UsageError("Tensors were not kept; use gradflow.record(model, keep_tensors=True).")
        for ps in self._finished:
            if ps.name == layer and ps.step == step:
                return dict(ps.tensors)
        raise UsageError(f"No recorded layer {layer!r} at step {step}.")

    @property
    def steps(self) -> int:
        """Number of recorded backward passes so far."""
        return self._step

    def layer_info(self) -> pd.DataFrame:
        """One row per recorded layer: its neuron constants (PLIF: the tau of the latest recorded pass)."""
        return tables.layer_info(self._collect())

    def _repr_html_(self) -> str:
        """A notebook summary of what was recorded (:func:`gradflow.report.notebook.recorder_html`)."""
        # imported here so that `import gradflow.recorder` does not load the report toolkit (no cycle:
        # the notebook module never imports the recorder)
        from ..report.notebook import recorder_html

        return recorder_html(self)

    def plot(self, kind: str = "lags", **options):
        """A matplotlib Figure of the recorded tables: ``kind`` one of lags, pairs, norms, share,
        projection, activity (:func:`gradflow.report.notebook.plot_recorder`)."""
        from ..report.notebook import plot_recorder

        return plot_recorder(self, kind, **options)


def record(
    model: nn.Module,
    *,
    pairs: bool = True,
    weights: bool = True,
    max_lag: Optional[int] = None,
    layers: Optional[Sequence[str]] = None,
    keep_tensors: bool = False,
    transport: Union[bool, str] = False,
) -> Recorder:
    """Record the gradient flow of every gradflow neuron in ``model`` while the ``with`` block runs.

    Usage::

        with gradflow.record(model, pairs=True, weights=True) as rec:
            logits = model(x)
            loss = gradflow.losses.ce_over_time(logits, y)
            loss.backward()
        rec.per_step(); rec.pairs(); rec.lags(); rec.weights(); rec.samples()

    Hooks are attached on entry and all removed on exit (also on error). Recording changes no gradient
    and fires no user hook (module docstring). Each backward pass that reaches a recorded layer is one
    ``step``. See :class:`Recorder`.
    """
    return Recorder(model, pairs=pairs, weights=weights, max_lag=max_lag, layers=layers, keep_tensors=keep_tensors,
                    transport=transport)
