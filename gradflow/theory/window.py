"""The ``window`` predictor: a layer's transport from a few per-step population statistics (docs §6).

The exact transport (:mod:`gradflow.theory.transport`, docs Eq. 27) is a ``P^2``-weighted mean
of ``prod f^2`` over the k steps before each source. This model keeps the weighting by the
gradient for one step only and takes everything older from the whole population, unweighted:

1. every neuron is in one *zone* per step, by where ``u - theta`` lies relative to the surrogate's
   window (default: far below, below, in the window below threshold, in the window at or above
   threshold, above, far above; :data:`ZONE_EDGES`);
2. the first step back is counted with the gradient: ``source[t, y, z]`` is the squared spatial
   gradient at ``t`` on neurons in zone ``z`` now and ``y`` one step earlier, times ``f[t-1]^2``;
3. each older step is a second-order Markov step of the zone process, counted on all neurons:
   ``triple[t, x, y, z] / pair[t, y, z]`` with the factor moment ``f[t-1]^2`` inside ``triple``.

So the predictor reads, per layer and step, only zone occupancies, one- and two-step zone
transition counts (with the matching moments of ``f^2``) and the zone split of the squared spatial
gradient one step back. It never follows a neuron across two steps weighted by its gradient and
never reads temporal gradients or pair norms. For LIF with the rectangle surrogate at
``alpha = theta``, ``f^2`` is 0 in the window zones and 1 elsewhere, so every moment is a count.

:func:`transport_inputs` computes the statistics from arrays (the recorder computes the same sums
on the device), :func:`predict_transport` turns them into ``relative_k``. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .factors import NeuronConfig
from .surrogates import TheoryError, resolve_alpha, sg
from .transport import _flat, one_step_jacobian

__all__ = [
    "INPUT_KEYS",
    "ZONE_EDGES",
    "add_transport_inputs",
    "predict_transport",
    "predict_transport_many",
    "transport_inputs",
    "transport_summary",
    "transport_summary_many",
    "window_zones",
    "zone_width",
]

#: Zone edges in units of the window half-width ``h``, relative to ``theta`` (docs Eq. 30). An edge
#: ``e <= 0`` belongs to the zone above it (``x >= e``), an edge ``e > 0`` to the zone below it
#: (``x <= e``), so the rectangle window ``|x| <= h`` is zones 2-3 and ``x = 0`` (a spike) zone 3.
ZONE_EDGES: tuple = (-2.0, -1.0, 0.0, 1.0, 2.0)

#: Keys of the dict :func:`transport_inputs` returns (arrays; all but ``zone_edges`` are sums).
INPUT_KEYS = ("count", "occupancy", "spatial_sq", "source_mass", "source", "pair", "triple", "zone_edges")


def zone_width(surrogate: str, alpha: float | None = None) -> float:
    """Half-width ``h`` of the window that scales the zone edges (docs Eq. 30).

    ``h = 1 / (2 sg(0))``, the half-width of the rectangle with the surrogate's peak: ``alpha/2``
    for the rectangle (its window exactly), ``1/(2 alpha)`` for the triangle (half its support,
    so that the zones also split where its factor varies), ``2/alpha`` for sigmoid and ``1/alpha``
    for atan.

    >>> zone_width("rectangle"), zone_width("sigmoid"), zone_width("atan"), zone_width("triangle")
    (0.5, 0.5, 0.5, 0.5)
    """
    if surrogate == "rectangle":
        return resolve_alpha(surrogate, alpha) / 2.0
    return 1.0 / (2.0 * float(sg(0.0, surrogate, alpha)))


def window_zones(u, *, v_threshold: float = 1.0, surrogate: str = "rectangle", alpha: float | None = None,
                 edges: Sequence[float] = ZONE_EDGES) -> np.ndarray:
    """Zone index of every potential, ``0..len(edges)`` (int64, the shape of ``u``) (docs Eq. 30).

    With ``x = u - theta`` and ``h`` from :func:`zone_width`, the zone counts the edges ``e * h``
    below ``x``: an edge ``e <= 0`` is passed when ``x >= e h``, an edge ``e > 0`` when ``x > e h``.

    >>> window_zones([-0.5, 0.2, 0.5, 0.8, 1.0, 1.5, 1.7, 2.5]).tolist()
    [0, 1, 2, 2, 3, 3, 4, 5]
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or np.any(np.diff(e) <= 0):
        raise TheoryError(f"zone edges must be strictly increasing, got {list(edges)}")
    x = np.asarray(u, dtype=np.float64) - float(v_threshold)
    h = zone_width(surrogate, alpha)
    z = np.zeros(x.shape, dtype=np.int64)
    for ei in e:
        z += (x >= ei * h) if ei <= 0 else (x > ei * h)
    return z


def transport_inputs(
    u,
    P,
    *,
    neuron: str = "lif",
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "rectangle",
    alpha: float | None = None,
    v_reset: float | None = None,
    detach_reset: bool = False,
    m_grad: bool = True,
    edges: Sequence[float] = ZONE_EDGES,
    cut=(),
) -> dict:
    """Per-step statistics of one layer that the ``window`` predictor needs (docs Eq. 31).

    u, P: ``[T, N, ...]`` potentials and spatial gradients of one recorded batch (flattened over
    everything after ``T``; float64). With ``z[t]`` the zones (:func:`window_zones`, ``Z`` zones),
    ``f[t]`` the reset factor (:func:`~gradflow.theory.factors.reset_factor`; CLIF: at fixed
    ``m[t-1]``, rebuilt from ``u``; zeroed at truncation ``cut``s), sums over all elements ``n``:

    ============== ============= =================================================================
    key            shape         value
    ============== ============= =================================================================
    count          ``[T]``       number of elements per step
    occupancy      ``[T, Z]``    ``#{z[t] = z}``
    spatial_sq     ``[T]``       ``sum P[t]^2``
    source_mass    ``[T, Z, Z]`` ``sum P[t]^2 [z[t-1] = y, z[t] = z]`` (row 0 is 0)
    source         ``[T, Z, Z]`` ``sum P[t]^2 f[t-1]^2 [z[t-1] = y, z[t] = z]`` (row 0 is 0)
    pair           ``[T, Z, Z]`` ``#{z[t] = y, z[t+1] = z}`` (row T-1 is 0)
    triple         ``[T, Z, Z, Z]`` ``sum f[t-1]^2 [z[t-1] = x, z[t] = y, z[t+1] = z]`` (rows 0, T-1 are 0)
    zone_edges     ``[Z-1]``     the edges used (not a sum)
    ============== ============= =================================================================

    Every entry but ``zone_edges`` is a sum over elements, so the inputs of several batches add
    (:func:`add_transport_inputs`) and per-sample inputs can be bootstrapped. Only ``source`` and
    ``source_mass`` involve the gradient, and only at one step and the step before it.
    """
    cfg = NeuronConfig(neuron, tau, v_threshold, surrogate, alpha, v_reset, detach_reset, m_grad=m_grad)
    u2, P2 = _flat(u, "u"), _flat(P, "P")
    if u2.shape != P2.shape:
        raise TheoryError(f"u and P must have the same shape, got {np.shape(u)} and {np.shape(P)}")
    T, M = u2.shape
    z = window_zones(u2, v_threshold=cfg.v_threshold, surrogate=cfg.surrogate, alpha=cfg.alpha, edges=edges)
    Z = len(edges) + 1
    f, _ = one_step_jacobian(u2, cfg, cut)
    f2 = f * f
    w = P2 * P2
    occ = np.stack([np.bincount(z[t], minlength=Z) for t in range(T)]).astype(np.float64)
    source_mass = np.zeros((T, Z, Z))
    source = np.zeros((T, Z, Z))
    pair = np.zeros((T, Z, Z))
    triple = np.zeros((T, Z, Z, Z))
    for t in range(T):
        if t >= 1:
            idx = z[t - 1] * Z + z[t]
            source_mass[t] = np.bincount(idx, weights=w[t], minlength=Z * Z).reshape(Z, Z)
            source[t] = np.bincount(idx, weights=w[t] * f2[t - 1], minlength=Z * Z).reshape(Z, Z)
        if t <= T - 2:
            pair[t] = np.bincount(z[t] * Z + z[t + 1], minlength=Z * Z).reshape(Z, Z)
        if 1 <= t <= T - 2:
            idx3 = (z[t - 1] * Z + z[t]) * Z + z[t + 1]
            triple[t] = np.bincount(idx3, weights=f2[t - 1], minlength=Z**3).reshape(Z, Z, Z)
    return dict(count=np.full(T, float(M)), occupancy=occ, spatial_sq=w.sum(axis=1), source_mass=source_mass,
                source=source, pair=pair, triple=triple, zone_edges=np.asarray(edges, dtype=np.float64))


def add_transport_inputs(*inputs: Mapping) -> dict:
    """Sum the inputs of several batches (same layer, same ``T`` and zone edges).

    >>> a = {k: np.ones(2) for k in ("count", "spatial_sq")} | {"zone_edges": np.zeros(1)}
    >>> add_transport_inputs(a, a)["count"].tolist()
    [2.0, 2.0]
    """
    if not inputs:
        raise TheoryError("add_transport_inputs needs at least one set of inputs")
    edges = np.asarray(inputs[0]["zone_edges"])
    out = {}
    for k, v in inputs[0].items():
        if k == "zone_edges":
            continue
        out[k] = np.sum([np.asarray(i[k], dtype=np.float64) for i in inputs], axis=0)
    for i in inputs[1:]:
        if not np.array_equal(np.asarray(i["zone_edges"]), edges):
            raise TheoryError("transport inputs with different zone edges cannot be added")
    out["zone_edges"] = edges
    return out


def _check_inputs(inputs: Mapping):
    missing = [k for k in ("spatial_sq", "source", "pair", "triple") if k not in inputs]
    if missing:
        raise TheoryError(f"transport inputs lack {missing}; compute them with transport_inputs")
    sp = np.asarray(inputs["spatial_sq"], dtype=np.float64)
    src = np.asarray(inputs["source"], dtype=np.float64)
    pair = np.asarray(inputs["pair"], dtype=np.float64)
    tri = np.asarray(inputs["triple"], dtype=np.float64)
    T = sp.shape[0]
    Z = src.shape[-1]
    if src.shape != (T, Z, Z) or pair.shape != (T, Z, Z) or tri.shape != (T, Z, Z, Z):
        raise TheoryError("transport inputs have inconsistent shapes: spatial_sq [T], source and pair "
                          f"[T, Z, Z], triple [T, Z, Z, Z]; got {sp.shape}, {src.shape}, {pair.shape}, {tri.shape}")
    return sp, src, pair, tri


def predict_transport(inputs: Mapping, gamma: float, K: int | None = None) -> np.ndarray:
    """Predicted ``relative_k``, ``k = 0..K``, from :func:`transport_inputs` (docs Eq. 32).

    For each source step ``t'`` and lag ``k``, a zone-pair vector is carried back from the source::

        V[y, z]  = source[t', y, z]                                     (zones at t'-1, t')
        V[x, y] <- sum_z triple[j, x, y, z] / pair[j, y, z] * V[y, z]   for j = t'-1, ..., t'-k+1
        relative_k^2 = gamma^(2k) * sum_{t'=k}^{T-1} sum V / sum_{t'=k}^{T-1} spatial_sq[t']

    (a ratio with ``pair = 0`` counts as 0). ``gamma``: the layer's leak ``1 - 1/tau`` (a float in
    [0, 1]; 1 for an IF neuron, which does not leak). ``K`` defaults to ``T - 1``. Returns float64
    ``[K+1]`` with ``relative_0 = 1``; NaN everywhere when the layer has no spatial gradient, and NaN
    at lags with no source.
    """
    sp, src, pair, tri = _check_inputs(inputs)
    return _predict(sp[None], src[None], pair[None], tri[None], gamma, K)[0]


def predict_transport_many(inputs: Mapping, gamma: float, K: int | None = None) -> np.ndarray:
    """:func:`predict_transport` for a stack of inputs (e.g. bootstrap resamples): ``[B, K+1]``.

    Every input array carries a leading axis ``B`` (``spatial_sq [B, T]``, ``source`` and ``pair``
    ``[B, T, Z, Z]``, ``triple [B, T, Z, Z, Z]``); ``zone_edges`` is shared. Row ``b`` equals
    ``predict_transport`` of the ``b``-th inputs.

    >>> u = np.array([[[1.2]], [[0.2]], [[1.1]]]); P = np.array([[[0.0]], [[0.5]], [[1.0]]])
    >>> one = transport_inputs(u, P)
    >>> many = {k: np.stack([v, v]) if k != "zone_edges" else v for k, v in one.items()}
    >>> bool(np.allclose(predict_transport_many(many, 0.5), predict_transport(one, 0.5), equal_nan=True))
    True
    """
    sp = np.asarray(inputs["spatial_sq"], dtype=np.float64)
    src = np.asarray(inputs["source"], dtype=np.float64)
    pair = np.asarray(inputs["pair"], dtype=np.float64)
    tri = np.asarray(inputs["triple"], dtype=np.float64)
    if sp.ndim != 2 or src.ndim != 4 or pair.shape != src.shape or tri.ndim != 5:
        raise TheoryError("predict_transport_many needs a leading resample axis: spatial_sq [B, T], source and "
                          f"pair [B, T, Z, Z], triple [B, T, Z, Z, Z]; got {sp.shape}, {src.shape}, {tri.shape}")
    return _predict(sp, src, pair, tri, gamma, K)


def _predict(sp, src, pair, tri, gamma, K) -> np.ndarray:
    """The recursion of :func:`predict_transport` on inputs with a leading batch axis ``B``.

    All sources advance together: ``V_1[t'] = source[t']`` and ``V_k[t'] = step[t'-k+1] V_{k-1}[t']``,
    so the cost is ``O(K T)`` zone products rather than ``O(K^2 T)``.
    """
    g = float(gamma)
    if not 0.0 <= g <= 1.0:
        raise TheoryError(f"gamma must lie in [0, 1], got {gamma!r}")
    B, T = sp.shape
    K = T - 1 if K is None else int(K)
    if not 0 <= K <= T - 1:
        raise TheoryError(f"K must lie in 0..T-1 = {T - 1}, got {K}")
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(pair[:, :, None] > 0, tri / pair[:, :, None], 0.0)  # [B, T, x, y, z]
    rel = np.full((B, K + 1), np.nan)
    total = sp.sum(axis=1)
    rel[total > 0, 0] = 1.0
    V = src.copy()  # V[:, t'] after k - 1 steps back from source t'
    for k in range(1, K + 1):
        if k >= 2:
            # source t' (>= k) takes one more step back, through step t' - k + 1
            V[:, k:] = np.einsum("btxyz,btyz->btxy", step[:, 1:T - k + 1], V[:, k:])
        den = sp[:, k:].sum(axis=1)
        num = V[:, k:].sum(axis=(1, 2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.sqrt(np.maximum(num, 0.0) / den) * g**k
        rel[:, k] = np.where(den > 0, r, np.nan)
    return rel


def transport_summary(inputs: Mapping, *, in_window: Sequence[int] | None = None) -> dict:
    """Numbers that explain a layer's transport in words (docs §6, "A layer's decay in words"), from the same inputs.

    * ``one_step_survival``: ``sum source / sum_{t>=1} spatial_sq``, the ``P^2``-weighted mean of
      ``f[t-1]^2`` (so ``relative_1 = gamma * sqrt(one_step_survival)`` exactly, Eq. 33)
    * ``in_window_before``: share of the squared spatial gradient (steps ``t >= 1``) on neurons that
      were in the window one step earlier (zones ``in_window``, default the two around ``x = 0``)
    * ``occupancy``: the population's mean share in the window zones over all steps

    >>> import numpy as np
    >>> u = np.array([[[1.2]], [[1.1]]]); P = np.array([[[0.0]], [[1.0]]])
    >>> s = transport_summary(transport_inputs(u, P))
    >>> s["one_step_survival"], s["in_window_before"], s["occupancy"]
    (0.0, 1.0, 1.0)
    """
    sp, src, _, _ = _check_inputs(inputs)
    Z = src.shape[-1]
    edges = np.asarray(inputs.get("zone_edges", ZONE_EDGES), dtype=np.float64)
    if in_window is None:
        in_window = [int(np.sum(edges < 0)), int(np.sum(edges <= 0))]  # the zones just below / at 0
    in_window = sorted(set(int(i) for i in in_window))
    mass = np.asarray(inputs.get("source_mass", np.full_like(src, np.nan)), dtype=np.float64)
    den = sp[1:].sum()
    occ = np.asarray(inputs.get("occupancy", np.full((sp.shape[0], Z), np.nan)), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return dict(
            one_step_survival=float(src[1:].sum() / den) if den > 0 else math.nan,
            in_window_before=float(mass[1:, in_window, :].sum() / den) if den > 0 else math.nan,
            occupancy=float(occ[:, in_window].sum() / occ.sum()) if occ.sum() > 0 else math.nan,
        )


def transport_summary_many(inputs: Mapping, *, in_window: Sequence[int] | None = None) -> dict:
    """:func:`transport_summary` for a stack of inputs with a leading axis ``B``: a dict of ``[B]`` arrays.

    >>> u = np.array([[[1.2]], [[1.1]]]); P = np.array([[[0.0]], [[1.0]]])
    >>> one = transport_inputs(u, P)
    >>> many = {k: np.stack([v, v]) if k != "zone_edges" else v for k, v in one.items()}
    >>> transport_summary_many(many)["in_window_before"].tolist()
    [1.0, 1.0]
    """
    sp = np.asarray(inputs["spatial_sq"], dtype=np.float64)
    src = np.asarray(inputs["source"], dtype=np.float64)
    mass = np.asarray(inputs["source_mass"], dtype=np.float64)
    occ = np.asarray(inputs["occupancy"], dtype=np.float64)
    edges = np.asarray(inputs.get("zone_edges", ZONE_EDGES), dtype=np.float64)
    if in_window is None:
        in_window = [int(np.sum(edges < 0)), int(np.sum(edges <= 0))]
    in_window = sorted(set(int(i) for i in in_window))
    den = sp[:, 1:].sum(axis=1)
    occ_total = occ.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return dict(
            one_step_survival=np.where(den > 0, src[:, 1:].sum(axis=(1, 2, 3)) / den, np.nan),
            in_window_before=np.where(den > 0, mass[:, 1:][:, :, in_window, :].sum(axis=(1, 2, 3)) / den, np.nan),
            occupancy=np.where(occ_total > 0, occ[:, :, in_window].sum(axis=(1, 2)) / occ_total, np.nan),
        )

