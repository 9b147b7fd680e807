"""The weight split without touching the user's graph: a hook-free vector-Jacobian product of one region.

A neuron layer's *region* is the part of the autograd graph between the spike outputs of the previous
neuron layers and the layer's input current ``x`` (its convolutions, linear maps, batch norms,
residual additions, reshapes): the nodes reached from ``x.grad_fn`` before any neuron output, kept only
where they lead to a parameter. The weight split (docs/reference.md, ``weights`` table) needs each
parameter's gradient from the spatial part alone, ``P * du/dx`` back-propagated through the region.

Calling ``torch.autograd.grad`` for that would re-enter the user's graph while the main backward runs:
every tensor hook, ``retain_grad()`` and module backward hook inside the region would fire again.
:meth:`Region.vjp` instead calls the region's nodes directly, in topological order, with their saved
tensors: a node's ``apply`` computes its local vector-Jacobian product and nothing else (the autograd
engine, not the node, runs tensor hooks, ``retain_grad`` and node hooks; leaves' ``AccumulateGrad`` is
never called). The result is exactly what the engine would give, bit for bit (same kernels, same
accumulation order within a node), and nothing the user can observe happens.

A convolution or linear map whose input gradient is not needed (its input is a previous layer's spikes
or the data) computes only its weight and bias gradients (a convolution through an output mask, a
linear map through autograd's own formula for the weight), so the extra cost is the weight gradients
and the batch-norm backward only. Custom autograd functions (``torch.autograd.Function``) are called through
their ``backward`` with missing gradients filled with zeros, as the engine does. The reentrant
activation checkpoint re-runs a forward when called; a region holding one cannot be split without side
effects and raises :class:`RegionError`.

Must run while the main backward has not yet reached the region (its saved tensors still exist): the
recorder calls it from the layer's own backward (a hook on ``x.grad_fn`` or the fused node's tap).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch

__all__ = ["Region", "RegionError", "find_region"]

_REFUSED = ("CheckpointFunctionBackward",)


class RegionError(RuntimeError):
    """The region holds a node that cannot be called without side effects (the message names it)."""


class Region:
    """The part of the graph between the previous neuron layers and one layer's input ``x``.

    ``root``/``root_nr``: ``x.grad_fn`` and ``x``'s output number on it; ``order``: the nodes that
    lead to a parameter, in topological order (consumers first); ``params``: ``[(name, parameter)]``
    sorted by name; ``param_edges``: ``node -> [(edge index, parameter index)]``; ``nodes``: the set
    of node ids (to find regions that share nodes).
    """

    def __init__(self, root, root_nr: int, order: list, params: list, param_edges: Dict[object, list],
                 keep: Set[object]):
        self.root, self.root_nr, self.order = root, root_nr, order
        self.params, self.param_edges, self._keep = params, param_edges, keep
        self.nodes = {id(n) for n in order}

    def vjp(self, cotangent: torch.Tensor) -> List[Optional[torch.Tensor]]:
        """``d<cotangent, x>/d param`` for every region parameter (None where no gradient arrives)."""
        grads: List[Optional[torch.Tensor]] = [None] * len(self.params)
        buffers: Dict[object, Dict[int, torch.Tensor]] = {self.root: {self.root_nr: cotangent}}
        owned: Dict[int, torch.Tensor] = {}  # buffers allocated here (safe to add to in place), kept alive
        edges_of = self.param_edges
        with torch.no_grad():
            for node in self.order:
                got = buffers.pop(node, None)
                if not got:
                    continue
                if node.name() == "SelectBackward0" and self._scatter_select(node, got.get(0), buffers, owned):
                    continue
                outs = _call(node, got, self._keep, edges_of.get(node, ()))
                params_here = dict(edges_of.get(node, ()))
                for j, ((nxt, nr), g) in enumerate(zip(node.next_functions, outs)):
                    if g is None or nxt is None:
                        continue
                    if j in params_here:
                        i = params_here[j]
                        g = _conform(g, self.params[i][1])
                        grads[i] = g if grads[i] is None else grads[i] + g
                    elif nxt in self._keep:
                        md = nxt._input_metadata[nr]
                        g = _conform_md(g, md)
                        slot = buffers.setdefault(nxt, {})
                        slot[nr] = g if nr not in slot else slot[nr] + g
        return grads


    def _scatter_select(self, node, g: Optional[torch.Tensor], buffers, owned: Dict[int, torch.Tensor]) -> bool:
        """``x[i]``'s backward without a full zero tensor per index: add ``g`` into one buffer per input.

        The engine's ``select_backward`` allocates a zero tensor of the input's size for every index (T
        of them for a per-step loop); here all indices of one input share a buffer. Same values: each
        slice receives exactly one gradient, added to zeros.
        """
        (nxt, nr), = node.next_functions
        if g is None or nxt is None or nxt not in self._keep:
            return g is None or nxt is None
        slot = buffers.setdefault(nxt, {})
        full = slot.get(nr)
        if full is None or owned.get(id(full)) is not full:
            base = g.new_zeros(tuple(node._saved_self_sym_sizes))
            if full is not None:
                base += full
            full = slot[nr] = base
            owned[id(full)] = full
        full.select(node._saved_dim, node._saved_index).add_(g)
        return True


def _conform(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if g.shape != like.shape:
        g = g.sum_to_size(like.shape)
    return g if g.dtype == like.dtype else g.to(like.dtype)


def _conform_md(g: torch.Tensor, md) -> torch.Tensor:
    """What the engine does to a gradient before it reaches a node input: reduce a broadcast, cast."""
    if tuple(g.shape) != tuple(md.shape):
        g = g.sum_to_size(tuple(md.shape))
    return g if g.dtype == md.dtype else g.to(md.dtype)


def _call(node, got: Dict[int, torch.Tensor], keep: Set[object], param_edges) -> Sequence[Optional[torch.Tensor]]:
    """One node's local vector-Jacobian product, without the engine (so without any hook)."""
    name = node.name()
    if any(name.startswith(r) for r in _REFUSED):
        raise RegionError(f"{name} (activation checkpointing) would re-run a forward; "
                          "the weight split of this layer is skipped.")
    metas = node._input_metadata
    args = [got.get(i) for i in range(len(metas))]
    if name == "ConvolutionBackward0":
        return _conv_backward(node, args[0], keep, {j for j, _ in param_edges})
    if name in ("AddmmBackward0", "MmBackward0"):
        outs = _mm_backward(node, args[0], keep, {j for j, _ in param_edges})
        if outs is not None:
            return outs
    if hasattr(node, "_forward_cls"):  # a custom autograd.Function: call its backward
        args = [a if a is not None else torch.zeros(tuple(m.shape), dtype=m.dtype, device=m.device)
                for a, m in zip(args, metas)]
        outs = node.apply(*args)
        outs = outs if isinstance(outs, tuple) else (outs,)
        # backward returns one gradient per forward input; next_functions lists the tensor inputs
        needs = [i for i, n in enumerate(node.needs_input_grad) if n]
        valid = [j for j, (nxt, _) in enumerate(node.next_functions) if nxt is not None]
        mapped: List[Optional[torch.Tensor]] = [None] * len(node.next_functions)
        for i, j in zip(needs, valid):
            mapped[j] = outs[i] if i < len(outs) else None
        return mapped
    outs = node(*args)
    return outs if isinstance(outs, tuple) else (outs,)


def _needed(node, keep: Set[object], param_slots: Set[int]) -> List[bool]:
    """Per input of ``node``: does the region need its gradient (a parameter, or a node leading to one)?"""
    return [nxt is not None and (j in param_slots or nxt in keep) for j, (nxt, _) in enumerate(node.next_functions)]


def _conv_backward(node, grad: Optional[torch.Tensor], keep: Set[object], param_slots: Set[int]):
    """``aten.convolution_backward`` with the node's saved tensors, computing only the needed gradients."""
    if grad is None:
        return (None, None, None)
    mask = _needed(node, keep, param_slots)
    return torch.ops.aten.convolution_backward(
        grad, node._saved_input, node._saved_weight, node._saved_bias_sym_sizes_opt, node._saved_stride,
        node._saved_padding, node._saved_dilation, node._saved_transposed, node._saved_output_padding,
        node._saved_groups, mask,
    )


def _times(g: torch.Tensor, s) -> torch.Tensor:
    """``g * s``, skipped for ``s == 1`` (autograd's ``maybe_multiply``)."""
    return g if s == 1 else g * s


def _mm_backward(node, grad: Optional[torch.Tensor], keep: Set[object], param_slots: Set[int]):
    """The weight (and bias) gradients of a linear map's ``addmm``/``mm`` node without its input
    gradient, when that input is a previous layer's spikes or the data; None (call the node) when the
    input gradient is needed or the case is not the plain strided real one.

    The formulas and the choice between them are autograd's (``mm_mat2_backward``: a column-major
    ``mat2``, as ``weight.t()`` is, gets ``(grad^T mat1)^T``), so the bits are the node's.
    """
    addmm = node.name() == "AddmmBackward0"
    slots = (1, 2) if addmm else (0, 1)          # next_functions of (mat1, mat2); addmm's 0 is ``self``
    needed = _needed(node, keep, param_slots)
    if grad is None:
        return (None,) * len(needed)
    if needed[slots[0]]:
        return None                               # the input gradient is wanted: the node computes both
    try:      # saved-attribute names of the torch versions this was checked on; others call the node
        mat1 = node._saved_mat1 if addmm else node._saved_self
        sizes, strides = node._saved_mat2_sym_sizes, node._saved_mat2_sym_strides
        alpha, beta = (node._saved_alpha, node._saved_beta) if addmm else (1, 1)
    except AttributeError:
        return None
    if (mat1 is None or grad.layout != torch.strided or mat1.layout != torch.strided
            or grad.is_complex() or mat1.is_complex()):
        return None
    out: List[Optional[torch.Tensor]] = [None] * len(needed)
    if needed[slots[1]]:
        if strides[0] == 1 and strides[1] == sizes[0]:            # column-major mat2
            out[slots[1]] = _times(grad.t().mm(mat1).t(), alpha)
        else:
            out[slots[1]] = _times(mat1.t().mm(grad), alpha)
    if addmm and needed[0]:
        out[0] = _times(grad, beta)
    return tuple(out)


def find_region(x: torch.Tensor, boundaries: Set[object], param_names: Dict[int, str]) -> Optional[Region]:
    """The region of the layer whose input current is ``x`` (None when ``x`` has no ``grad_fn``).

    ``boundaries``: the ``grad_fn`` of every neuron output seen so far in this forward (the walk stops
    there); ``param_names``: ``id(parameter) -> qualified name`` (leaves not in it are ignored).
    Iterative depth-first search; nodes that lead to no parameter are dropped.
    """
    root = x.grad_fn
    if root is None:
        return None
    post: List[object] = []  # post-order
    reaches: Dict[object, bool] = {}
    params: Dict[int, Tuple[str, torch.Tensor]] = {}
    raw_edges: Dict[object, List[Tuple[int, int]]] = {}
    stack: List[Tuple[object, int]] = [(root, 0)]
    seen = {root}
    while stack:
        node, i = stack.pop()
        nexts = node.next_functions
        if i < len(nexts):
            stack.append((node, i + 1))
            nxt = nexts[i][0]
            if nxt is None or nxt in boundaries:
                continue
            var = getattr(nxt, "variable", None)
            if var is not None or type(nxt).__name__ == "AccumulateGrad":
                if var is not None and id(var) in param_names:
                    params.setdefault(id(var), (param_names[id(var)], var))
                    raw_edges.setdefault(node, []).append((i, id(var)))
                continue
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, 0))
            continue
        post.append(node)
        reaches[node] = node in raw_edges or any(
            reaches.get(n, False) for n, _ in nexts if n is not None and n not in boundaries)
    if not params:
        return None
    order = [n for n in reversed(post) if reaches[n]]
    names = sorted(params.values(), key=lambda item: item[0])
    index = {id(p): i for i, (_, p) in enumerate(names)}
    edges = {node: [(j, index[pid]) for j, pid in lst] for node, lst in raw_edges.items()}
    return Region(root, x.output_nr, order, names, edges, set(order))
