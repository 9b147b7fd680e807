"""Blocks of neurons for the fused loops: all ``T`` steps of one block while it stays in the CPU's cache.

The fused forward and backward (:mod:`gradflow.neurons.fused`) are sequences of elementwise operations
per step. On a CPU, running all ``T`` steps of a block of :data:`CPU_BLOCK` neurons before moving on
keeps the block's state and scratch tensors in cache (a 4 MB tensor per step and operation would not
fit); on a GPU one block holds every neuron (one kernel per operation over the whole layer). Neurons are
independent, so every element sees the same operations for any block size; the one exception is the
last bit of a vectorised transcendental function (CLIF's sigmoids), which the CPU kernels may round
differently for the few elements of a block's tail that do not fill a vector register.
"""

from __future__ import annotations

from typing import Iterator

import torch

__all__ = ["CPU_BLOCK", "chunk_slices"]

#: Neurons per block on the CPU (2**17 float32 values are 512 KiB).
CPU_BLOCK = 1 << 17


def chunk_slices(flat: torch.Tensor) -> Iterator[slice]:
    """Slices of the last dim of ``flat`` ``[T, M]``: blocks of :data:`CPU_BLOCK` on the CPU, one on a GPU.

    >>> [(s.start, s.stop) for s in chunk_slices(torch.zeros(2, 5))]
    [(0, 5)]
    """
    M = flat.shape[-1]
    step = M if (flat.device.type != "cpu" or M <= CPU_BLOCK) else CPU_BLOCK
    for lo in range(0, max(M, 1), max(step, 1)):
        yield slice(lo, min(M, lo + step))
