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


def _zones(u: torch.Tensor, theta: float, h: float, edges: Sequence[float]) -> torch.Tensor:
    """Zone index (int32) of each potential: edges ``e <= 0`` are passed at ``x >= e h``, ``e > 0`` at ``x > e h``."""
    x = u - theta
    z = torch.zeros(u.shape, dtype=torch.int32, device=u.device)
    for e in edges:
        z.add_(torch.ge(x, e * h) if e <= 0 else torch.gt(x, e * h))
    return z


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
    # every step at once ([T, n, E]): a handful of ops and one bincount per sum, whatever T is
    z = _zones(torch.stack([u.reshape(n, -1) for u in us]), v_threshold, h, edges)
    E = z.shape[2]
    w = torch.stack([P.reshape(n, -1) for P in Ps]).double().square_()
    f2 = torch.stack([f.reshape(n, -1) for f in fs]).double().square_()
    for t in cut:
        f2[t - 1] = 0.0

    def count(codes: torch.Tensor, size: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``codes`` ``[S, n, E]`` (S steps) -> ``[n, S, size]``: per (sample, step) bin counts or weight sums."""
        S = codes.shape[0]
        itype = torch.int32 if S * n * size < 2 ** 31 else torch.int64
        group = torch.arange(S * n, dtype=itype, device=dev).view(S, n, 1)   # (step, sample) of every element
        idx = (group * size + codes).reshape(-1)
        wt = torch.ones(idx.shape, dtype=torch.float64, device=dev) if weights is None else weights.reshape(-1)
        # index_add_ into a buffer of known size: bincount would read the largest code back to the host
        # (a device sync inside the backward hook on a GPU); on the CPU both add in input order
        c = torch.zeros(S * n * size, dtype=torch.float64, device=dev).index_add_(0, idx, wt)
        return c.view(S, n, size).transpose(0, 1)

    def steps(part: torch.Tensor, before: int, after: int) -> torch.Tensor:
        """``part`` ``[n, S, ...]`` padded with zero steps to ``[n, T, ...]``."""
        pads = [part.new_zeros((n, k) + tuple(part.shape[2:])) for k in (before, after)]
        return torch.cat([pads[0], part, pads[1]], dim=1)

    ZZ = (Z, Z)
    out = {
        "count": torch.full((n, T), float(E), dtype=torch.float64, device=dev),
        "occupancy": count(z, Z).contiguous(),
        "spatial_sq": w.sum(2).T.contiguous(),
    }
    if T >= 2:
        code = z[:-1] * Z + z[1:]   # (z[t-1], z[t]) for t = 1..T-1, i.e. (z[t], z[t+1]) for t = 0..T-2
        out["source_mass"] = steps(count(code, Z * Z, w[1:]).reshape((n, T - 1) + ZZ), 1, 0)
        out["source"] = steps(count(code, Z * Z, w[1:] * f2[:-1]).reshape((n, T - 1) + ZZ), 1, 0)
        out["pair"] = steps(count(code, Z * Z).reshape((n, T - 1) + ZZ), 0, 1)
    else:
        out["source_mass"], out["source"], out["pair"] = (torch.zeros((n, T) + ZZ, dtype=torch.float64, device=dev)
                                                          for _ in range(3))
    if T >= 3:
        code = (z[:-2] * Z + z[1:-1]) * Z + z[2:]   # t = 1..T-2
        out["triple"] = steps(count(code, Z ** 3, f2[:-2]).reshape((n, T - 2, Z, Z, Z)), 1, 1)
    else:
        out["triple"] = torch.zeros((n, T, Z, Z, Z), dtype=torch.float64, device=dev)
    return {k: out[k] for k in KEYS}
