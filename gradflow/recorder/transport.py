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
    """Zone index (int64) of each potential: edges ``e <= 0`` are passed at ``x >= e h``, ``e > 0`` at ``x > e h``."""
    x = u - theta
    z = torch.zeros(u.shape, dtype=torch.int64, device=u.device)
    for e in edges:
        z += (x >= e * h) if e <= 0 else (x > e * h)
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
) -> Optional[Dict[str, torch.Tensor]]:
    """Per-sample window-model sums of one layer and pass (module docstring), float64 device tensors.

    us, Ps, fs: per step ``[N, ...]`` potentials ``u[t]``, spatial gradients ``P[t]`` and reset
    factors ``f[t] = dv[t]/du[t]`` (the kind's closed-form Jacobian); ``cut``: steps whose incoming
    state was detached. Returns None for a surrogate the theory has no window width for.
    """
    try:
        h = zone_width(surrogate, alpha)
    except TheoryError:
        return None
    T, Z = len(us), len(edges) + 1
    dev = us[0].device
    offs = torch.arange(n, device=dev).unsqueeze(1)  # [n, 1]: sample offsets for the bincounts
    z = [_zones(u.reshape(n, -1), v_threshold, h, edges) for u in us]  # each [n, E]
    E = z[0].shape[1]
    w = [P.reshape(n, -1).double().square() for P in Ps]
    f2 = [f.reshape(n, -1).double().square() for f in fs]
    for t in cut:
        f2[t - 1] = torch.zeros_like(f2[t - 1])

    def count(codes: torch.Tensor, size: int, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        idx = (offs * size + codes).reshape(-1)
        wt = None if weights is None else weights.reshape(-1)
        return torch.bincount(idx, weights=wt, minlength=n * size).double().reshape(n, size)

    f64 = dict(dtype=torch.float64, device=dev)
    out = {
        "count": torch.full((n, T), float(E), **f64),
        "occupancy": torch.zeros(n, T, Z, **f64),
        "spatial_sq": torch.zeros(n, T, **f64),
        "source_mass": torch.zeros(n, T, Z, Z, **f64),
        "source": torch.zeros(n, T, Z, Z, **f64),
        "pair": torch.zeros(n, T, Z, Z, **f64),
        "triple": torch.zeros(n, T, Z, Z, Z, **f64),
    }
    for t in range(T):
        out["occupancy"][:, t] = count(z[t], Z)
        out["spatial_sq"][:, t] = w[t].sum(1)
        if t >= 1:
            code = z[t - 1] * Z + z[t]
            out["source_mass"][:, t] = count(code, Z * Z, w[t]).reshape(n, Z, Z)
            out["source"][:, t] = count(code, Z * Z, w[t] * f2[t - 1]).reshape(n, Z, Z)
        if t <= T - 2:
            out["pair"][:, t] = count(z[t] * Z + z[t + 1], Z * Z).reshape(n, Z, Z)
        if 1 <= t <= T - 2:
            code = (z[t - 1] * Z + z[t]) * Z + z[t + 1]
            out["triple"][:, t] = count(code, Z ** 3, f2[t - 1]).reshape(n, Z, Z, Z)
    return out
