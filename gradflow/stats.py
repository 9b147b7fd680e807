"""Sample statistics of recorded gradient flow: lag profiles, weight projections, bootstrap intervals.

Numpy only (no torch, no pandas), so that :mod:`gradflow.theory` and the report code can share one
definition of every number. The quantities are defined in docs/reference.md (the ``lags``,
``weights`` and ``summary`` tables) and docs/theory.md (half-life and decay rate):

* lag profile of one layer, from ``pair_sq[t, k] = ||pair[t, t+k]||^2`` (squared L2 norm over batch
  and neurons, already summed over whatever samples are pooled)::

      G_k        = sqrt( sum_{t=0}^{T-1-k} pair_sq[t, k] / (T - k) )
      relative_k = sqrt( sum_{t=0}^{T-1-k} pair_sq[t, k] / sum_{t=0}^{T-1-k} pair_sq[t+k, 0] )

  (``pair[t', t'] = P[t']``, so the denominator is the squared spatial gradient of the sources that
  have a step k back; sources without a spatial gradient add nothing to either sum);
* ``half_life``: the lag where ``relative_k`` first falls to 1/2, log-linear between lags;
  ``decay_rate``: the factor ``r`` of the fit ``log relative_k = k log r``;
* weight projections ``<g_s, g>/||g||^2``, ``<g_t, g>/||g||^2`` and the cosine of the two parts;
* percentile bootstrap intervals over samples (or over backward passes for per-pass quantities),
  seeded, :data:`DEFAULT_RESAMPLES` resamples at level :data:`DEFAULT_LEVEL`;
* ``theory_error``: median relative error of a predicted profile over lags 1..4.

Every function is vectorised over leading axes, so a metric can be applied to all bootstrap
resamples at once.

>>> import numpy as np
>>> pair_sq = np.array([[4.0, 1.0], [4.0, 0.0]])   # T = 2; lag 1: pair[0, 1] has norm 1, P[1] norm 2
>>> relative_from_pair_sq(pair_sq)
array([1. , 0.5])
>>> half_life(relative_from_pair_sq(pair_sq))
1.0
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

import numpy as np

from .errors import DataError, UsageError

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_LEVEL",
    "Interval",
    "Projections",
    "half_life",
    "half_life_many",
    "decay_rate",
    "decay_rate_many",
    "relative_from_pair_sq",
    "lag_sums",
    "relative_from_lag_sums",
    "lag_norm_from_pair_sq",
    "projections",
    "bootstrap_counts",
    "bootstrap",
    "bootstrap_mean",
    "percentile_interval",
    "theory_error",
]

DEFAULT_RESAMPLES = 1000
"""Bootstrap resamples per interval unless told otherwise."""

DEFAULT_LEVEL = 0.95
"""Coverage of the reported intervals: ``<metric>_ci_low`` / ``<metric>_ci_high`` are its bounds."""

# Largest number of float64 elements (resample counts, or resampled sums) held at once by
# :func:`bootstrap`; 2**22 elements are 32 MiB. Resamples are drawn in chunks below it.
_CHUNK_ELEMENTS = 2**22

# Count arrays up to this many elements (8 MiB as float64) are kept between calls (a few of them): a
# report bootstraps every layer, and a watched run every recorded step, with the same (n, resamples,
# seed), and drawing the counts is a large part of a small bootstrap's cost.
_CACHED_ELEMENTS = 2**20


class Interval(NamedTuple):
    """A point estimate with its bootstrap interval (floats for a scalar metric, else arrays).

    ``estimate`` is the metric on all samples, ``low``/``high`` the percentile interval's bounds and
    ``n_valid`` how many of the resamples gave a value (not NaN) and entered the percentiles.
    """

    estimate: object
    low: object
    high: object
    n_valid: object


class Projections(NamedTuple):
    """The signed weight split of one parameter (columns of the ``weights`` table)."""

    spatial_projection: object
    temporal_projection: object
    cosine: object


def _out(x):
    """0-d arrays become Python floats; anything else stays an array."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


# ----------------------------------------------------------------------------- lag profiles


def _profile(relative, lags) -> Tuple[np.ndarray, np.ndarray]:
    """Validate a lag profile ``[..., M]`` and its lags ``[M]``; sort by lag; add lag 0 (= 1) if absent."""
    y = np.asarray(relative, dtype=np.float64)
    if y.ndim == 0:
        raise UsageError("relative must be a lag profile (an array with one entry per lag), got a scalar.")
    if np.any(y < 0):
        raise UsageError("relative must be non-negative (it is a ratio of norms).")
    if lags is None and y.shape[-1] > 0:   # lags 0..M-1: sorted, distinct, lag 0 present
        return y, np.arange(y.shape[-1], dtype=np.float64)
    k = np.arange(y.shape[-1], dtype=np.float64) if lags is None else np.asarray(lags, dtype=np.float64)
    if k.ndim != 1 or k.shape[0] != y.shape[-1]:
        raise UsageError(f"lags must be a 1-D array with one entry per profile value ({y.shape[-1]}), "
                         f"got shape {k.shape}.")
    if not np.all(np.isfinite(k)) or np.any(k < 0) or len(np.unique(k)) != len(k):
        raise UsageError("lags must be distinct, finite and non-negative.")
    order = np.argsort(k, kind="stable")
    k, y = k[order], y[..., order]
    if k.size == 0 or k[0] != 0:
        k = np.concatenate([[0.0], k])
        y = np.concatenate([np.ones(y.shape[:-1] + (1,)), y], axis=-1)
    return y, k


def half_life_many(relative, lags=None, level: float = 0.5) -> np.ndarray:
    """Half-life of each lag profile in ``relative[..., M]``: returns an array of shape ``[...]``.

    The half-life is the lag ``k*`` at which ``relative_k`` first falls to ``level`` (1/2), found by
    linear interpolation in ``log(relative)`` between the two neighbouring usable lags
    ``k_j < k_i``, where ``i`` is the first usable lag with ``relative_i <= level``::

        k* = k_j + (k_i - k_j) * log(relative_j / level) / log(relative_j / relative_i)

    which is exact for a geometric profile ``r^k``: ``k* = log(level) / log(r)`` (docs/theory.md).

    * ``lags`` (default ``0..M-1``) gives the lag of each column; ``relative_0 = 1`` is implied
      when lag 0 is absent. Non-finite entries (NaN, Inf) are skipped: the neighbours are then the
      nearest usable lags on either side.
    * ``relative_i = 0`` at the crossing: the log-linear rule's limit as ``relative_i -> 0+`` is
      ``k* = k_j`` (the previous usable lag), and that is returned, so the half-life is continuous
      in the profile (a resample whose value underflows to 0 agrees with one where it is tiny).
    * ``inf`` when the profile stays above ``level`` up to its largest usable lag; ``k_i`` itself
      when the first usable value is already ``<= level``; NaN with fewer than two usable lags.

    >>> half_life_many([[1.0, 0.8, 0.64, 0.512, 0.4096], [1.0, 0.9, 0.9, 0.9, 0.9]]).round(6)
    array([3.106284,      inf])
    >>> float(half_life_many([1.0, 0.25]))   # log(2) / log(4)
    0.5
    """
    level = float(level)
    if not 0 < level < 1:
        raise UsageError(f"level must lie strictly between 0 and 1, got {level}.")
    y, k = _profile(relative, lags)
    M = y.shape[-1]
    usable = np.isfinite(y)
    below = usable & (y <= level)
    i = np.argmax(below, axis=-1)                              # first usable lag at or below level
    last_usable = np.maximum.accumulate(np.where(usable, np.arange(M), -1), axis=-1)
    prev = np.concatenate([np.full(y.shape[:-1] + (1,), -1), last_usable[..., :-1]], axis=-1)
    j = np.take_along_axis(prev, i[..., None], axis=-1)[..., 0]  # last usable lag before i
    yi = np.take_along_axis(y, i[..., None], axis=-1)[..., 0]
    yj = np.take_along_axis(y, np.maximum(j, 0)[..., None], axis=-1)[..., 0]
    ki, kj = k[i], k[np.maximum(j, 0)]
    with np.errstate(divide="ignore", invalid="ignore"):
        # yj > level >= yi >= 0 wherever it is used: both logs positive; yi = 0 gives frac = 0
        frac = np.log(yj / level) / np.log(yj / yi)
        crossing = np.where(j < 0, ki, kj + (ki - kj) * frac)
    out = np.where(below.any(axis=-1), crossing, np.inf)
    return np.where(usable.sum(axis=-1) < 2, np.nan, out)


def half_life(relative, lags=None, level: float = 0.5) -> float:
    """Half-life of one lag profile ``relative[M]`` (lags ``0..M-1`` unless ``lags`` is given).

    The scalar form of :func:`half_life_many` (see there for the rule and the edge cases):
    ``k* = k_j + (k_i - k_j) log(relative_j / 1/2) / log(relative_j / relative_i)`` between the
    lags around the first fall to 1/2; ``inf`` if it never falls, NaN with under two usable lags.

    >>> round(half_life([1.0, 0.8, 0.64, 0.512, 0.4096]), 6)   # log(1/2) / log(0.8)
    3.106284
    >>> round(half_life([0.4], lags=[1]), 12)   # relative_0 = 1 implied: log(1/2) / log(0.4)
    0.756470797366
    >>> half_life([1.0, 0.9, 0.0])   # falls to exactly 0 after lag 1: the crossing is lag 1
    1.0
    """
    if np.ndim(relative) != 1:
        raise UsageError("half_life takes one lag profile (1-D); use half_life_many for several.")
    return float(half_life_many(relative, lags, level))


def decay_rate_many(relative, lags=None, *, max_lag: Optional[float] = None) -> np.ndarray:
    """Per-step decay factor ``r`` of each lag profile in ``relative[..., M]``: shape ``[...]``.

    Least-squares fit of ``log relative_k = k log r`` through the origin (``relative_0 = 1``) over
    the lags ``1 <= k (<= max_lag)`` with finite ``relative_k > 0``::

        log r = sum_k k log(relative_k) / sum_k k^2

    so a geometric profile ``r^k`` gives back ``r``. NaN where no lag qualifies.

    >>> decay_rate_many([[1.0, 0.5, 0.25], [1.0, 0.0, np.nan]])
    array([0.5, nan])
    """
    y, k = _profile(relative, lags)
    ok = (k >= 1) & np.isfinite(y) & (y > 0)
    if max_lag is not None:
        ok &= k <= max_lag
    logy = np.log(np.where(ok, y, 1.0))
    num = np.sum(np.where(ok, k * logy, 0.0), axis=-1)
    den = np.sum(np.where(ok, k * k, 0.0), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.exp(num / den), np.nan)


def decay_rate(relative, lags=None, *, max_lag: Optional[float] = None) -> float:
    """Per-step decay factor ``r`` of one lag profile: ``log r = sum k log rel_k / sum k^2``.

    The scalar form of :func:`decay_rate_many` (lags ``k >= 1`` with finite positive values; NaN
    if there are none).

    >>> round(decay_rate([1.0, 0.5, 0.25, 0.125]), 12)
    0.5
    >>> round(decay_rate([0.6, 0.0, 0.2], lags=[1, 2, 3]), 12)  # exp((log .6 + 3 log .2) / 10)
    0.586305709948
    """
    if np.ndim(relative) != 1:
        raise UsageError("decay_rate takes one lag profile (1-D); use decay_rate_many for several.")
    return float(decay_rate_many(relative, lags, max_lag=max_lag))


def _pair_sums(pair_sq) -> Tuple[np.ndarray, np.ndarray, int]:
    """Validate ``pair_sq[..., T, K+1]``; return the lag sums ``[..., K+1]``, the source sums, T."""
    a = np.asarray(pair_sq, dtype=np.float64)
    if a.ndim < 2 or a.shape[-1] < 1 or a.shape[-2] < a.shape[-1]:
        raise UsageError(f"pair_sq must have shape [..., T, K+1] with K+1 <= T, got {a.shape}.")
    if np.any(a < 0):
        raise UsageError("pair_sq holds squared norms and must be non-negative.")
    T, K1 = a.shape[-2], a.shape[-1]
    valid = (np.arange(T)[:, None] + np.arange(K1)[None, :]) < T      # pair[t, t+k] exists
    num = np.sum(np.where(valid, a, 0.0), axis=-2)
    p_sq = a[..., :, 0]                                               # ||P[t']||^2
    src = np.cumsum(p_sq[..., ::-1], axis=-1)[..., ::-1][..., :K1]    # sum_{t' >= k} ||P[t']||^2
    return num, src, T


def relative_from_pair_sq(pair_sq) -> np.ndarray:
    """Transport ratios ``relative[..., K+1]`` from squared pair norms ``pair_sq[..., T, K+1]``.

    ``pair_sq[..., t, k] = ||pair[t, t+k]||^2`` (summed over the samples pooled); entries with
    ``t + k >= T`` do not exist and are ignored. With ``pair[t', t'] = P[t']``::

        relative_k = sqrt( sum_{t=0}^{T-1-k} pair_sq[t, k] / sum_{t'=k}^{T-1} pair_sq[t', 0] )

    the share of the spatial gradient of the sources that have a step k back which survives the
    k steps, weighted by the sources' squared size (docs/reference.md, ``lags`` table). Sources
    with ``P = 0`` add nothing to either sum, so a loss at the last step only is not inflated by
    ``sqrt(T / (T - k))``. ``relative_0 = 1``; NaN where the denominator is 0.

    >>> pair_sq = np.zeros((3, 3)); pair_sq[2, 0] = 4.0          # only P[2] != 0, ||P[2]|| = 2
    >>> pair_sq[1, 1], pair_sq[0, 2] = 1.0, 0.25                # it reaches steps 1, 0 with norms 1, .5
    >>> relative_from_pair_sq(pair_sq)
    array([1.  , 0.5 , 0.25])
    """
    num, src, _ = _pair_sums(pair_sq)
    return relative_from_lag_sums(num, src)


def lag_sums(pair_sq) -> Tuple[np.ndarray, np.ndarray]:
    """The two sums behind :func:`relative_from_pair_sq`, ``num[..., K+1]`` and ``src[..., K+1]``::

        num_k = sum_{t=0}^{T-1-k} pair_sq[t, k]        src_k = sum_{t'=k}^{T-1} pair_sq[t', 0]

    Both are linear in ``pair_sq``, so the sums over samples (or a resample's weighted sums) of the
    per-sample ``num``, ``src`` are those of the summed ``pair_sq``: a bootstrap can resample these
    ``2 (K+1)`` numbers per sample instead of all ``T (K+1)``.

    >>> num, src = lag_sums(np.array([[4.0, 1.0], [9.0, 0.0]]))
    >>> num.tolist(), src.tolist()
    ([13.0, 1.0], [13.0, 9.0])
    """
    num, src, _ = _pair_sums(pair_sq)
    return num, src


def relative_from_lag_sums(num, src) -> np.ndarray:
    """``relative_k = sqrt(num_k / src_k)`` from the sums of :func:`lag_sums` (``[..., K+1]`` each):
    ``relative_0 = 1``, NaN where ``src_k = 0``.

    >>> relative_from_lag_sums(np.array([13.0, 1.0]), np.array([13.0, 4.0]))
    array([1. , 0.5])
    """
    num, src = np.asarray(num, dtype=np.float64), np.asarray(src, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(np.where(src > 0, num / src, np.nan))
    rel[..., 0] = np.where(src[..., 0] > 0, 1.0, np.nan)
    return rel


def lag_norm_from_pair_sq(pair_sq) -> np.ndarray:
    """RMS pair norm per lag, ``G[..., K+1]``, from ``pair_sq[..., T, K+1]`` (the ``lags`` table's ``norm``).

        G_k = sqrt( sum_{t=0}^{T-1-k} pair_sq[t, k] / (T - k) )

    the root mean square over the ``T - k`` pairs at lag k, including sources without a spatial
    gradient (unlike :func:`relative_from_pair_sq`).

    >>> lag_norm_from_pair_sq([[4.0, 1.0], [0.0, 0.0]])   # G_0 = sqrt(4/2), G_1 = sqrt(1/1)
    array([1.41421356, 1.        ])
    """
    num, _, T = _pair_sums(pair_sq)
    return np.sqrt(num / (T - np.arange(num.shape[-1])))


# ----------------------------------------------------------------------------- weight split


def projections(ss, tt, st) -> Projections:
    """Signed weight split from inner products of the spatial and temporal weight-gradient parts.

    ``ss = ||g_s||^2``, ``tt = ||g_t||^2``, ``st = <g_s, g_t>`` (broadcastable arrays); with
    ``g = g_s + g_t`` and ``||g||^2 = ss + tt + 2 st``::

        spatial_projection  = <g_s, g> / ||g||^2 = (ss + st) / ||g||^2
        temporal_projection = <g_t, g> / ||g||^2 = (tt + st) / ||g||^2
        cosine              = st / sqrt(ss tt)

    The projections sum to 1 (to rounding); a negative temporal projection means the temporal part
    shrinks the update (docs/reference.md, ``weights`` table). NaN where ``||g||^2 <= 0`` (the
    parts cancel; ``||g||^2`` from inner products then also loses its relative precision) and,
    for the cosine, where either part is 0. Scalars in, floats out.

    >>> p = projections(1.0, 0.25, -0.25)   # g_s = (1, 0), g_t = (-0.25, 0.433): cosine -1/2
    >>> [round(v, 12) for v in p]
    [1.0, 0.0, -0.5]
    """
    ss, tt, st = (np.asarray(v, dtype=np.float64) for v in (ss, tt, st))
    if np.any(ss < 0) or np.any(tt < 0):
        raise UsageError("ss and tt are squared norms and must be non-negative.")
    gg = ss + tt + 2.0 * st
    with np.errstate(divide="ignore", invalid="ignore"):
        spatial = np.where(gg > 0, (ss + st) / gg, np.nan)
        temporal = np.where(gg > 0, (tt + st) / gg, np.nan)
        prod = ss * tt
        cosine = np.where(prod > 0, st / np.sqrt(prod), np.nan)
    return Projections(_out(spatial), _out(temporal), _out(cosine))


# ----------------------------------------------------------------------------- bootstrap


def _check_bootstrap_args(n_resamples, seed, level=DEFAULT_LEVEL) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise UsageError(f"n_resamples must be a positive integer, got {n_resamples!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}.")
    if not 0 < float(level) < 1:
        raise UsageError(f"level must lie strictly between 0 and 1, got {level!r}.")


#: Indices drawn and counted at once by :func:`_draw_counts` (256 KiB of int64).
_DRAW_BLOCK = 2 ** 15


def _count_chunks(n: int, n_resamples: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Resample counts ``[b, n]`` (float64) in chunks of at most ``chunk`` rows, from one seeded generator.

    The generator's stream does not depend on the chunking, so the concatenated chunks equal
    :func:`bootstrap_counts` for every chunk size. Small count arrays drawn in one chunk are cached
    (read-only).
    """
    if chunk >= n_resamples and n * n_resamples <= _CACHED_ELEMENTS:
        yield _cached_counts(n, n_resamples, seed)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, chunk):
        yield _draw_counts(rng, n, min(chunk, n_resamples - start))


def _draw_counts(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    """``rows`` resamples of ``n`` samples: ``n`` indices drawn uniformly with replacement per row
    (``rng.integers``, int64, row after row), counted per row -> float64 ``[rows, n]``. Each row is
    a ``Multinomial(n, (1/n, ..., 1/n))`` draw; the generator's stream runs on from call to call, so
    drawing in chunks gives the same rows. (0.2.3 and earlier drew ``rng.multinomial``: the same
    distribution, other rows, about four times slower.)

    The rows are drawn and counted in blocks of about ``_DRAW_BLOCK`` indices (the same stream, so the
    same rows): the temporaries stay small and are reused, where whole-array temporaries would each
    take fresh memory from the system (page faults: most of the cost of a first draw in a process).
    """
    out = np.empty((rows, n), dtype=np.float64)
    block = max(1, min(rows, _DRAW_BLOCK // max(n, 1)))
    offsets = (np.arange(block, dtype=np.int64) * n)[:, None]      # row b counts into bins b*n .. b*n+n-1
    for start in range(0, rows, block):
        b = min(block, rows - start)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int64)
        idx += offsets[:b]
        out[start:start + b] = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
    return out


@functools.lru_cache(maxsize=4)
def _cached_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    counts = _draw_counts(np.random.default_rng(seed), n, n_resamples)
    counts.setflags(write=False)
    return counts


def bootstrap_counts(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Multinomial resample counts ``[n_resamples, n]`` (int64): row b says how often each sample is drawn.

    Each row is one draw of ``n`` samples with replacement, ``Multinomial(n, (1/n, ..., 1/n))``:
    ``n`` indices drawn uniformly from ``numpy.random.default_rng(seed)`` (``integers``) and
    counted; the same ``(n, n_resamples, seed)`` always gives the same array. :func:`bootstrap` uses
    exactly these rows (drawn in chunks).

    >>> c = bootstrap_counts(5, n_resamples=3, seed=1)
    >>> c.shape, c.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    _check_bootstrap_args(n_resamples, seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"a bootstrap needs at least one sample, got n={n!r}.")
    return np.concatenate(list(_count_chunks(int(n), int(n_resamples), int(seed), int(n_resamples)))).astype(np.int64)


def percentile_interval(values, level: float = DEFAULT_LEVEL) -> Tuple[object, object, object]:
    """Percentile interval over axis 0 of resampled values ``[B, ...]``: ``(low, high, n_valid)``.

    ``low`` and ``high`` are the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the non-NaN
    values, linearly interpolated between order statistics (numpy's default ``linear`` method);
    ``+inf`` values (e.g. half-lives of resamples that never fall to 1/2) count as the largest
    values, so a bound that reaches them is ``inf``. NaN values are left out and ``n_valid``
    counts the rest; a bound is NaN when no value is left.

    >>> percentile_interval([1.0, 2.0, 3.0, np.inf, np.nan], level=0.5)   # quartiles of 1, 2, 3, inf
    (1.75, inf, 4)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or v.shape[0] == 0:
        raise DataError("percentile_interval needs at least one resampled value.")
    m = np.sum(~np.isnan(v), axis=0)
    qs = ((1 - level) / 2, (1 + level) / 2)
    ranks = []
    for q in qs:
        h = (np.maximum(m, 1) - 1) * q
        lo = np.floor(h).astype(np.intp)
        ranks.append((h, lo, np.minimum(lo + 1, np.maximum(m - 1, 0))))
    if np.all((m == v.shape[0]) | (m == 0)):
        # columns without NaN (or all NaN: their bounds are NaN whatever the order) need only the ranks
        # used in place, not a full sort (the values at those ranks are the sorted array's)
        kth = np.unique(np.concatenate([np.ravel(r[1:]) for r in ranks]))
        v = np.partition(v, kth, axis=0)
    else:
        v = np.sort(v, axis=0)        # NaN sort last, after +inf
    bounds = []
    for h, lo, hi in ranks:
        frac = h - lo
        v_lo = np.take_along_axis(v, lo[None], axis=0)[0]
        v_hi = np.take_along_axis(v, hi[None], axis=0)[0]
        with np.errstate(invalid="ignore"):
            inner = v_lo + frac * (v_hi - v_lo)
        inner = np.where(np.isinf(v_lo), v_lo, np.where(np.isinf(v_hi), v_hi, inner))
        b = np.where((frac == 0) | (v_lo == v_hi), v_lo, inner)
        bounds.append(_out(np.where(m > 0, b, np.nan)))
    m = int(m) if np.ndim(m) == 0 else m
    return bounds[0], bounds[1], m


def _apply(metric, sums: np.ndarray) -> np.ndarray:
    """``metric(sums)`` as float64, checked to keep the leading resample axis."""
    val = np.asarray(metric(sums), dtype=np.float64)
    if val.ndim == 0 or val.shape[0] != sums.shape[0]:
        raise UsageError("metric must return one value (or array) per resample along axis 0.")
    return val


def bootstrap(
    per_sample,
    metric: Callable[[np.ndarray], np.ndarray],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Percentile bootstrap interval of a metric of additive per-sample contributions.

    ``per_sample[n, ...]`` holds each sample's contribution to some sums (per-sample squared
    norms ``pair_sq[n, T, K+1]``, per-sample dot products, ...). Resample b draws the n samples
    with replacement (counts ``c[b, i]`` from :func:`bootstrap_counts`) and forms the sums

        S_b = sum_i c[b, i] * per_sample[i]            (counts @ per_sample.reshape(n, -1))

    ``metric`` maps sums with a leading resample axis, ``[B, ...]``, to values ``[B, ...']`` (any
    trailing shape), each row from its own sums, e.g. ``lambda s: relative_from_pair_sq(s)[:, 1]``
    (it is called once per chunk, the full-sample sums as an extra first row of the first chunk). Returns
    ``Interval(estimate, low, high, n_valid)``: ``estimate`` is the metric of the full-sample sums,
    ``low``/``high`` the percentile interval of the resampled values at ``level``
    (:func:`percentile_interval`: NaN resamples left out and counted in ``n_valid``, ``+inf``
    kept). Resamples are drawn and evaluated in chunks so that at most about 2**22 counts or sums
    are held at once; the resamples do not depend on the chunking (the sums' rounding may).

    The resampled units are the rows of ``per_sample``: samples for per-sample sums; backward
    passes for quantities that exist only per pass (see :func:`bootstrap_mean`).

    >>> x = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])   # (value, weight) per sample
    >>> ci = bootstrap(x, lambda s: s[:, 0] / s[:, 1], n_resamples=200, seed=0)
    >>> ci.estimate, ci.low <= 2.5 <= ci.high, ci.n_valid
    (2.5, True, 200)
    """
    _check_bootstrap_args(n_resamples, seed, level)
    x = np.asarray(per_sample, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError("a bootstrap needs at least one sample; per_sample is empty.")
    n, tail = x.shape[0], x.shape[1:]
    flat = x.reshape(n, -1)
    chunk = max(1, min(int(n_resamples), _CHUNK_ELEMENTS // max(n, flat.shape[1], 1)))
    values, estimate = [], None
    for counts in _count_chunks(n, int(n_resamples), int(seed), chunk):
        sums = counts @ flat
        if estimate is None:       # the full-sample sums ride along as row 0 of the first chunk
            sums = np.concatenate([flat.sum(axis=0)[None], sums])
        val = _apply(metric, sums.reshape((sums.shape[0],) + tail))
        if estimate is None:
            estimate, val = val[0], val[1:]
        values.append(val)
    low, high, n_valid = percentile_interval(np.concatenate(values), level)
    return Interval(_out(estimate), low, high, n_valid)


def bootstrap_mean(
    values,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Bootstrap interval of the mean of per-unit values ``values[n, ...]`` over axis 0.

    For quantities that exist only per backward pass, not per sample: the weight gradient is summed
    over a pass's batch, so the weight split's projections (or its inner products) are one value per
    pass and their interval resamples passes (cluster bootstrap with passes as the units). With
    few passes such an interval is coarse: with n passes there are at most ``C(2n-1, n)`` distinct
    resamples. Non-finite entries (e.g. the projection of a pass whose gradient vanished) are left
    out, column by column: the estimate is the mean of the finite entries, and each resample's mean
    is over the finite entries it drew (NaN, hence excluded, if it drew none).

        mean_b = sum_i c[b, i] v_i [v_i finite] / sum_i c[b, i] [v_i finite]

    >>> ci = bootstrap_mean([0.1, 0.3, np.nan, 0.2], n_resamples=500, seed=0)
    >>> round(ci.estimate, 12), 0.1 <= ci.low <= ci.high <= 0.3
    (0.2, True)
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0:
        raise UsageError("bootstrap_mean needs an array of per-unit values, got a scalar.")
    finite = np.isfinite(v)
    stacked = np.stack([np.where(finite, v, 0.0), finite.astype(np.float64)], axis=1)   # [n, 2, ...]

    def mean(s):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s[:, 1] > 0, s[:, 0] / s[:, 1], np.nan)

    return bootstrap(stacked, mean, n_resamples=n_resamples, seed=seed, level=level)


# ----------------------------------------------------------------------------- theory against measurement


def theory_error(predicted, measured, max_lag: int = 4) -> object:
    """Median relative error of a predicted lag profile: ``[..., K+1]`` profiles give ``[...]``.

        theory_error = median over k = 1..min(max_lag, K) of |predicted_k - measured_k| / measured_k

    with profiles indexed by lag (column k is lag k) and broadcast against each other, so a
    prediction ``[K+1]`` can be scored against resampled measurements ``[B, K+1]``. Lags where the
    term is undefined (a non-finite value, or 0/0) are left out; a measured 0 against a positive
    prediction counts as ``inf``. NaN when no lag is left (or K = 0).

    >>> round(theory_error([1.0, 0.5, 0.3, 0.1], [1.0, 0.4, 0.3, 0.2]), 12)   # terms 0.25, 0, 0.5
    0.25
    """
    p, m = np.broadcast_arrays(np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64))
    if p.ndim == 0:
        raise UsageError("theory_error takes lag profiles (arrays with one entry per lag), got scalars.")
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise UsageError(f"max_lag must be a positive integer, got {max_lag!r}.")
    L = min(int(max_lag), p.shape[-1] - 1)
    if L < 1:
        return _out(np.full(p.shape[:-1], np.nan))
    pk, mk = p[..., 1:L + 1], m[..., 1:L + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.abs(pk - mk) / mk
    terms = np.where(np.isfinite(pk) & np.isfinite(mk) & ~np.isnan(terms), terms, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)               # all-NaN rows give NaN
        return _out(np.nanmedian(terms, axis=-1))
