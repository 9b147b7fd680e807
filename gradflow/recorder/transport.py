"""The window predictor's inputs, summed on the device per sample (docs/theory.md §6, Eq. 31).

:func:`gradflow.theory.window.transport_inputs` defines, for one layer, the per-step sums the default
``window`` model needs: zone occupancies, one- and two-step zone transitions weighted by the reset
factor ``f = dv/du``, and the zone split of the squared spatial gradient one step back. This module
computes exactly the same sums from the recorded tensors, on the model's device and without a host
sync, but **per sample** (the batch dim of ``[T, N, ...]``), so that a report can resample them with the
gradient norms (:func:`gradflow.stats.bootstrap`)::

    count       [n, T]           elements of sample i per step
    occupancy   [n, T, Z]        #{z[t] = a}
    spatial_sq  [n, T]           sum P[t]^2
    source_mass [n, T, Z, Z]     sum P[t]^2 [z[t-1] = y, z[t] = a]
    source      [n, T, Z, Z]     sum P[t]^2 f[t-1]^2 [z[t-1] = y, z[t] = a]
    pair        [n, T, Z, Z]     #{z[t] = y, z[t+1] = a}
    triple      [n, T, Z, Z, Z]  sum f[t-1]^2 [z[t-1] = x, z[t] = y, z[t+1] = a]

Summed over the sample axis they equal the theory's dict (tests/test_recorder_transport.py checks it
at 1e-12 in float64). ``f[t-1]`` is zero where truncated BPTT cut the step ``t-1 -> t``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..theory.surrogates import TheoryError
from ..theory.window import ZONE_EDGES, zone_width

__all__ = ["transport_sums", "transport_bytes", "KEYS"]

#: The per-sample sums, in the order of the theory's ``INPUT_KEYS`` (``zone_edges`` is not a sum).
KEYS = ("count", "occupancy", "spatial_sq", "source_mass", "source", "pair", "triple")


def transport_bytes(T: int, n_zones: int = len(ZONE_EDGES) + 1) -> int:
    """Bytes kept per sample, layer and backward pass: ``8 T (2 + Z + 3 Z^2 + Z^3)``.

    >>> transport_bytes(6)        # Z = 6
    15936
    """
    Z = n_zones
    return 8 * T * (2 + Z + 3 * Z * Z + Z ** 3)


def _zones(x: torch.Tensor, theta: float, h: float, edges: Sequence[float], *,
           host: Optional[bool] = None) -> torch.Tensor:
    """Zone index (int32) of each potential in ``x`` (overwritten with ``x - theta``): edges ``e <= 0``
    are passed at ``x - theta >= e h``, ``e > 0`` at ``x - theta > e h``. ``host``: compare in numpy
    (default: on the CPU for float32/float64; the torch path is the device path, same results)."""
    x.sub_(theta)
    z = torch.zeros(x.shape, dtype=torch.int32, device=x.device)
    if host is None:
        host = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if host:
        # the same comparisons in numpy, on the same memory: several times faster than torch's on the CPU
        xn, zn = x.numpy(), z.numpy()
        for e in edges:
            zn += (xn >= e * h) if e <= 0 else (xn > e * h)
        return z
    passed = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for e in edges:
        (torch.ge if e <= 0 else torch.gt)(x, e * h, out=passed)
        z.add_(passed)
    return z


def _bin_sums(idx: torch.Tensor, total: int, weights: Optional[torch.Tensor] = None, *,
              host: Optional[bool] = None) -> torch.Tensor:
    """float64 ``[total]``: how many of the flat indices ``idx`` fall in each bin, or the sum of their
    ``weights``. ``host``: ``torch.bincount`` (default on the CPU, where it is the fastest way and adds each
    bin's elements in input order); elsewhere ``index_add_`` into a buffer of known size, because on a GPU
    ``bincount`` reads the largest index back to the host (a device sync inside the backward hook)."""
    if host is None:
        host = idx.device.type == "cpu"
    if host:
        w = None if weights is None else weights.reshape(-1).double()   # sums in float64
        return torch.bincount(idx, weights=w, minlength=total).double()
    if weights is None:
        src = torch.ones((), dtype=torch.float64, device=idx.device).expand(idx.shape)
    else:
        src = weights.reshape(-1)
    return torch.zeros(total, dtype=torch.float64, device=idx.device).index_add_(0, idx, src)


def _stack64(parts: List[torch.Tensor], n: int) -> torch.Tensor:
    """The step tensors as one float64 ``[T, n, E]`` (one allocation)."""
    out = torch.empty((len(parts), n, parts[0].numel() // n), dtype=torch.float64, device=parts[0].device)
    for t, v in enumerate(parts):
        out[t].copy_(v.reshape(n, -1))
    return out


def transport_sums(
    us: List[torch.Tensor],
    Ps: List[torch.Tensor],
    fs: List[torch.Tensor],
    cut: Sequence[int],
    *,
    n: int,
    v_threshold: float,
    surrogate: str,
    alpha: Optional[float],
    edges: Sequence[float] = ZONE_EDGES,
    pooled: bool = False,
) -> Optional[Dict[str, torch.Tensor]]:
    """Per-sample window-model sums of one layer and pass (module docstring), float64 device tensors.

    us, Ps, fs: per step ``[N, ...]`` potentials ``u[t]``, spatial gradients ``P[t]`` and reset
    factors ``f[t] = dv[t]/du[t]`` (the kind's closed-form Jacobian); ``cut``: steps whose incoming
    state was detached. ``pooled``: sum over the pass's ``n`` samples on the device (a leading axis of
    length 1, ~``n`` times less memory; the sums are the per-sample ones added, to rounding). Returns
    None for a surrogate the theory has no window width for.
    """
    try:
        h = zone_width(surrogate, alpha)
    except TheoryError:
        return None
    T, Z = len(us), len(edges) + 1
    dev = us[0].device
    if pooled:
        n = 1
    # every step at once ([T, n, E]), few full-size temporaries: this runs inside the backward hook
    z = _zones(torch.stack([u.reshape(n, -1) for u in us]), v_threshold, h, edges)
    E = z.shape[2]
    w = _stack64(Ps, n).square_()
    f2 = _stack64(fs, n).square_()
    for t in cut:
        f2[t - 1] = 0.0

    def add_codes(code: torch.Tensor, size: int) -> torch.Tensor:
        """``code`` ``[S, n, E]`` (in place) -> flat bin index of (step, sample, code)."""
        S = code.shape[0]
        if S * n * size >= 2 ** 31:
            code = code.long()
        return code.add_(torch.arange(0, S * n * size, size, dtype=code.dtype, device=dev).view(S, n, 1)).view(-1)

    def count(idx: torch.Tensor, S: int, size: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Bin counts (or weight sums) of flat indices from :func:`add_codes` -> ``[n, S, size]``."""
        return _bin_sums(idx, S * n * size, weights).view(S, n, size).transpose(0, 1)

    def steps(part: torch.Tensor, before: int, after: int) -> torch.Tensor:
        """``part`` ``[n, S, ...]`` padded with zero steps to ``[n, T, ...]``."""
        pads = [part.new_zeros((n, k) + tuple(part.shape[2:])) for k in (before, after)]
        return torch.cat([pads[0], part, pads[1]], dim=1)

    ZZ = (Z, Z)
    out = {
        "count": torch.full((n, T), float(E), dtype=torch.float64, device=dev),
        "spatial_sq": w.sum(2).T.contiguous(),
    }
    if T >= 3:
        # (z[t-1], z[t], z[t+1]) for t = 1..T-2, weighted by f[t-1]^2
        code3 = (z[:-2] * Z).add_(z[1:-1]).mul_(Z).add_(z[2:])
        out["triple"] = steps(count(add_codes(code3, Z ** 3), T - 2, Z ** 3, f2[:-2]).reshape((n, T - 2, Z, Z, Z)), 1, 1)
        del code3
    else:
        out["triple"] = torch.zeros((n, T, Z, Z, Z), dtype=torch.float64, device=dev)
    if T >= 2:
        # (z[t-1], z[t]) for t = 1..T-1, i.e. (z[t], z[t+1]) for t = 0..T-2
        idx = add_codes((z[:-1] * Z).add_(z[1:]), Z * Z)
        out["source_mass"] = steps(count(idx, T - 1, Z * Z, w[1:]).reshape((n, T - 1) + ZZ), 1, 0)
        # f2 becomes f[t-1]^2 P[t]^2 in place: the triple above was its last plain use
        out["source"] = steps(count(idx, T - 1, Z * Z, f2[:-1].mul_(w[1:])).reshape((n, T - 1) + ZZ), 1, 0)
        pair = count(idx, T - 1, Z * Z).reshape((n, T - 1) + ZZ)
        out["pair"] = steps(pair, 0, 1)
        # occupancy from the pair counts: z[t] = y for t <= T-2 (sum over a), z[T-1] = a (sum over y)
        out["occupancy"] = torch.cat([pair.sum(3), pair[:, -1:].sum(2)], dim=1)
    else:
        out["occupancy"] = count(add_codes(z, Z), T, Z)
        out["source_mass"], out["source"], out["pair"] = (torch.zeros((n, T) + ZZ, dtype=torch.float64, device=dev)
                                                          for _ in range(3))
    return {k: out[k] for k in KEYS}
