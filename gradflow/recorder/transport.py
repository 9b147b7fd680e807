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

import functools
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..theory.surrogates import TheoryError
from ..theory.window import ZONE_EDGES, zone_width

__all__ = ["transport_sums", "transport_bytes", "zone_vu", "KEYS"]

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
    """Zone index of each potential in ``x`` (not modified): edges ``e <= 0`` are passed at
    ``x - theta >= e h``, ``e > 0`` at ``x - theta > e h``. ``host``: compare in numpy (default: on the
    CPU for float32/float64; the torch path is the device path, same results). The host path returns
    uint8 when the codes of three zones, ``Z**3``, fit in it (``Z = len(edges) + 1 <= 6``): a quarter of
    the memory of int32 in every later pass over the codes, and ``torch.bincount`` reads them faster; the
    device path returns int32."""
    x = x - theta
    if host is None:
        host = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if host:
        # the same comparisons in numpy, on the same memory: several times faster than torch's on the CPU
        z = torch.zeros(x.shape, dtype=torch.uint8 if (len(edges) + 1) ** 3 <= 256 else torch.int32)
        xn, zn = x.numpy(), z.numpy()
        passed = np.empty(xn.shape, dtype=bool)
        for e in edges:
            (np.greater_equal if e <= 0 else np.greater)(xn, e * h, out=passed)
            zn += passed
        return z
    z = torch.zeros(x.shape, dtype=torch.int32, device=x.device)
    passed = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    for e in edges:
        (torch.ge if e <= 0 else torch.gt)(x, e * h, out=passed)
        z.add_(passed)
    return z


def zone_vu(kind, p, k, like: torch.Tensor, edges: Sequence[float] = ZONE_EDGES) -> Optional[torch.Tensor]:
    """``f = dv/du`` of each zone, float64 ``[Z]`` on the CPU, when it is one value per zone; else None.

    It is when the kind's ``vu`` depends on ``u`` only through ``|u - theta| <= w``
    (:meth:`~gradflow.neurons.kind.NeuronKind.vu_window`) and no zone straddles ``+-w``: zone ``z``
    covers ``x = u - theta`` between the edges ``e h`` around it (:func:`_zones`), compared as the
    potentials' dtype compares them. The value of each zone is the kind's own ``vu`` at a point inside
    it (in ``like``'s dtype). Only for CPU potentials (elsewhere the zone values would have to be copied
    to the device inside the backward). With it, :func:`transport_sums` weights whole zones: ``f[t-1]^2``
    sums become counts times ``f^2`` of the zone. The answer depends only on the kind, ``p``, ``k``, the
    dtype and the edges, and is kept for the next pass (do not modify the returned tensor).
    """
    if like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64):
        return None
    # a learned k (a 0-d tensor) as its value and dtype, so that equal values share the cached answer
    key = (float(k.detach()), k.dtype) if isinstance(k, torch.Tensor) else (k, None)
    return _zone_vu(kind, p, key, like.dtype, tuple(edges))


@functools.lru_cache(maxsize=64)
def _zone_vu(kind, p, key: tuple, dtype: torch.dtype, edges: tuple) -> Optional[torch.Tensor]:
    k = key[0] if key[1] is None else torch.tensor(key[0], dtype=key[1])
    w = kind.vu_window(p)
    if w is None:
        return None
    try:
        h = zone_width(p.surrogate.name, p.surrogate.alpha)
    except TheoryError:
        return None

    def cast(v: float) -> float:          # the value as a comparison in the potentials' dtype sees it
        return float(torch.tensor(v, dtype=torch.float64).to(dtype))

    bounds = [cast(e * h) for e in edges]
    w = math.inf if math.isinf(w) else cast(w)
    Z, reps = len(edges) + 1, []
    for z in range(Z):
        lo = bounds[z - 1] if z > 0 else -math.inf
        hi = bounds[z] if z < Z - 1 else math.inf
        # an edge at -w is passed at x >= -w and one at +w only at x > w, as the window |x| <= w includes both
        if not ((lo >= -w and hi <= w) or hi <= -w or lo >= w):
            return None                                   # the zone straddles the window's edge
        if math.isinf(lo) and math.isinf(hi):
            reps.append(0.0)
        elif math.isinf(lo):
            reps.append(hi - max(1.0, abs(hi)))
        elif math.isinf(hi):
            reps.append(lo + max(1.0, abs(lo)))
        else:
            reps.append(lo + (hi - lo) / 2)
    u = torch.tensor(reps, dtype=dtype) + p.v_threshold
    if not torch.equal(_zones(u, p.v_threshold, h, edges).long(), torch.arange(Z)):
        return None                                       # a zone too thin for a point inside it
    jac = kind.jacobian(u, None, p, k)
    return kind.vu(jac).double()


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
    f_zone: Optional[torch.Tensor] = None,
) -> Optional[Dict[str, torch.Tensor]]:
    """Per-sample window-model sums of one layer and pass (module docstring), float64 device tensors.

    us, Ps, fs: per step ``[N, ...]`` potentials ``u[t]``, spatial gradients ``P[t]`` and reset
    factors ``f[t] = dv[t]/du[t]`` (the kind's closed-form Jacobian); ``cut``: steps whose incoming
    state was detached. ``pooled``: sum over the pass's ``n`` samples on the device (a leading axis of
    length 1, ~``n`` times less memory; the sums are the per-sample ones added, to rounding). ``f_zone``:
    ``f`` per zone (:func:`zone_vu`, CPU tensors only) when it is one value per zone; ``fs`` is then not
    read, and the ``f[t-1]^2`` sums are the unweighted counts (and ``P[t]^2`` sums) times the zone's
    ``f^2`` (the same numbers as weighting each element when ``f^2`` is 0 or 1, as for LIF with the
    rectangle surrogate and ``alpha = theta``; otherwise equal to rounding). Returns None for a
    surrogate the theory has no window width for.
    """
    try:
        h = zone_width(surrogate, alpha)
    except TheoryError:
        return None
    T, Z = len(us), len(edges) + 1
    dev = us[0].device
    if pooled:
        n = 1
    # Step by step: every bin belongs to one step, so counting each step's elements on their own adds
    # the same elements in the same order as one count over all steps, while the temporaries stay one
    # step in size (on the CPU, fresh memory for all steps at once costs more than the arithmetic).
    z = [_zones(u.reshape(n, -1), v_threshold, h, edges) for u in us]   # [n, E] each, uint8 on the CPU
    E = z[0].shape[1]
    cut_from = {t - 1 for t in cut}          # f[t-1] counts as zero where the step t-1 -> t was cut
    offsets = {}

    def flat(code: torch.Tensor, size: int) -> torch.Tensor:
        """``code`` ``[n, E]`` -> flat bin index of (sample, code): ``code`` itself for one sample, else
        ``code + i * size`` (int32, or int64 past 2**31 bins) in a reused buffer (uint8 codes would overflow)."""
        if n == 1:
            return code.view(-1)
        dtype = torch.int64 if n * size >= 2 ** 31 else torch.int32
        if dtype not in offsets:
            offsets[dtype] = (torch.arange(0, n, dtype=dtype, device=dev).view(n, 1),
                              torch.empty((n, E), dtype=dtype, device=dev))
        step, out = offsets[dtype]
        return torch.add(code, step, alpha=size, out=out).view(-1)       # computed in int32/int64

    def bins(idx: torch.Tensor, size: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Counts (or weight sums) per bin of the flat indices ``idx`` -> ``[n, size]``."""
        return _bin_sums(idx, n * size, weights).view(n, size)

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros((n, T) + shape, dtype=torch.float64, device=dev)

    spatial_sq, occupancy = zeros(), zeros(Z)
    triple, source_mass, source, pair = zeros(Z, Z, Z), zeros(Z, Z), zeros(Z, Z), zeros(Z, Z)
    # buffers reused by every step: P[t]^2, f[t-1]^2 (float64) and the zone codes
    w = torch.empty((n, E), dtype=torch.float64, device=dev)
    f2_zone = None if f_zone is None else f_zone.to(device=dev, dtype=torch.float64).square()
    f2 = torch.empty_like(w) if T >= 2 and f2_zone is None else None
    code = torch.empty((n, E), dtype=z[0].dtype, device=dev)
    pair_code = torch.empty_like(code) if T >= 2 else None
    for t in range(T):
        w.copy_(Ps[t].reshape(n, -1)).square_()                          # P[t]^2 in float64
        spatial_sq[:, t] = w.sum(1)
        if t == 0:
            continue
        cut_here = t - 1 in cut_from
        pc = torch.mul(z[t - 1], Z, out=pair_code).add_(z[t])            # (z[t-1], z[t])
        if not cut_here:
            if f2 is not None:
                f2.copy_(fs[t - 1].reshape(n, -1)).square_()             # f[t-1]^2
            if t + 1 < T:
                # (z[t-1], z[t], z[t+1]) weighted by f[t-1]^2 (by zone: counted, weighted below)
                torch.mul(pc, Z, out=code).add_(z[t + 1])
                triple[:, t] = bins(flat(code, Z ** 3), Z ** 3, f2).view(n, Z, Z, Z)
        idx = flat(pc, Z * Z)                                            # (sample, z[t-1], z[t])
        source_mass[:, t] = bins(idx, Z * Z, w).view(n, Z, Z)
        if not cut_here:
            if f2 is not None:
                source[:, t] = bins(idx, Z * Z, f2.mul_(w)).view(n, Z, Z)    # f[t-1]^2 P[t]^2
            elif bool(torch.isfinite(source_mass[:, t]).all()):          # (CPU only: no device sync)
                source[:, t] = source_mass[:, t] * f2_zone.view(1, Z, 1)   # f^2 of the zone of z[t-1]
            else:
                # a bin that overflowed (or holds inf/NaN): 0 * inf would be NaN where the elements'
                # f^2 P^2 add up to 0, so weight the elements here, with the zone's f^2 per element
                fe = f2_zone[z[t - 1].reshape(-1).long()].view(n, E)
                source[:, t] = bins(idx, Z * Z, fe.mul_(w)).view(n, Z, Z)
        pair[:, t - 1] = bins(idx, Z * Z).view(n, Z, Z)
    if f2_zone is not None:
        triple.mul_(f2_zone.view(1, 1, Z, 1, 1))                         # f[t-1]^2 of the zone of z[t-1]
    if T >= 2:
        # occupancy from the pair counts: z[t] = y for t <= T-2 (sum over a), z[T-1] = a (sum over y)
        occupancy[:, :-1] = pair[:, :-1].sum(3)
        occupancy[:, -1] = pair[:, -2].sum(1)
    else:
        occupancy[:, 0] = bins(flat(z[0], Z), Z)
    out = {"count": torch.full((n, T), float(E), dtype=torch.float64, device=dev), "occupancy": occupancy,
           "spatial_sq": spatial_sq, "source_mass": source_mass, "source": source, "pair": pair, "triple": triple}
    return {k: out[k] for k in KEYS}
