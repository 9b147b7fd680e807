"""gradflow.stats: lag profiles, half-life, decay rate, weight projections, bootstrap intervals.

Numbers are checked against hand-computed literals, against direct computations from explicit
pair vectors and gradient vectors, and against brute-force loops written out here. The coverage
test draws 300 seeded sub-samples of 200 from a fixed skewed population and checks how often the
95% percentile interval of relative_1 covers the population value; it is deterministic (seeded),
observed at 0.913 (274 of 300), and must lie in [0.88, 0.98] (a 90% interval gives 0.870; resamples
of half the size, i.e. intervals too wide, give 0.990).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from gradflow import stats
from gradflow.errors import DataError, UsageError
from gradflow.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    bootstrap,
    bootstrap_counts,
    bootstrap_mean,
    decay_rate,
    decay_rate_many,
    half_life,
    half_life_many,
    lag_norm_from_pair_sq,
    percentile_interval,
    projections,
    relative_from_pair_sq,
    theory_error,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- reference loops


def ref_half_life(y, k=None, level=0.5):
    """The half-life rule written as a plain loop over the usable lags."""
    k = list(range(len(y))) if k is None else list(k)
    pts = sorted(zip(k, y))
    if pts[0][0] != 0:
        pts = [(0, 1.0)] + pts
    pts = [(kk, yy) for kk, yy in pts if math.isfinite(yy)]
    if len(pts) < 2:
        return math.nan
    if pts[0][1] <= level:
        return float(pts[0][0])
    for (k0, y0), (k1, y1) in zip(pts, pts[1:]):
        if y1 <= level:
            if y1 == 0:
                return float(k0)
            return k0 + (k1 - k0) * (math.log(y0) - math.log(level)) / (math.log(y0) - math.log(y1))
    return math.inf


def ref_decay_rate(y):
    num = den = 0.0
    for kk, yy in enumerate(y):
        if kk >= 1 and math.isfinite(yy) and yy > 0:
            num += kk * math.log(yy)
            den += kk * kk
    return math.exp(num / den) if den else math.nan


def random_profiles(rng, B, M):
    """Profiles with every edge case: NaN, Inf, exact zeros, values exactly 1/2, rises."""
    low = np.where(rng.random((B, 1)) < 0.3, 0.85, 0.3)          # some rows decay slowly
    y = np.cumprod(rng.uniform(low, 1.05, (B, M)), axis=1)
    y[:, 0] = 1.0
    u = rng.random((B, M))
    y[u < 0.08] = np.nan
    y[(u >= 0.08) & (u < 0.12)] = 0.0
    y[(u >= 0.12) & (u < 0.15)] = 0.5
    y[(u >= 0.15) & (u < 0.17)] = np.inf
    y[0, 1:] = np.nan                                              # one usable lag
    y[1, [0, 2, 3]], y[1, 4:] = np.nan, np.inf
    return y


# ----------------------------------------------------------------------------- half-life, decay rate


@pytest.mark.parametrize(
    "relative, lags, expected",
    [
        ([1.0, 0.8, 0.4], None, 1.6780719051126378),             # 1 + log(1.6) / log(2)
        ([1.0, 0.9, 0.6, 0.3], [0, 1, 2, 4], 2.526068811667588),  # 2 + 2 log(1.2) / log(2)
        ([1.0, 0.8, np.nan, 0.4], None, 2.3561438102252756),      # NaN skipped: lags 1 and 3
        ([0.8, 0.4], [1, 2], 1.6780719051126378),                 # relative_0 = 1 implied
        ([0.4, 0.8], [2, 1], 1.6780719051126378),                 # lags in any order
        ([0.4], [1], 0.7564707973660301),                         # log(2) / log(2.5), from implied 1
        ([0.25, 0.0625], [2, 4], 1.0),                            # 2 log(2) / log(4)
        ([1.0, 0.7, 0.5], None, 2.0),                             # exactly 1/2 at lag 2
        ([1.0, 0.9, 0.0], None, 1.0),                             # zero: the previous lag
        ([1.0, 0.0], None, 0.0),
        ([np.nan, 0.4, 0.3], None, 1.0),                          # first usable already <= 1/2
        ([1.0, 0.9, 0.8], None, math.inf),                        # never falls to 1/2
        ([1.0, 0.6, np.nan, np.inf], None, math.inf),
        ([1.0], None, math.nan),                                  # one usable lag
        ([1.0, np.nan], None, math.nan),
        ([np.nan, np.nan, 0.3], None, math.nan),
    ],
)
def test_half_life_hand_values(relative, lags, expected):
    got = half_life(relative, lags)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-14, abs=1e-15)
    assert got == pytest.approx(ref_half_life(relative, lags), rel=1e-14, nan_ok=True)


def test_half_life_level():
    assert half_life(0.5 ** np.arange(6), level=0.25) == pytest.approx(2.0, rel=1e-14)
    assert half_life([1.0, 0.3], level=0.1) == math.inf


@pytest.mark.parametrize("r", [0.05, 0.3, 0.5, 0.77, 0.95, 0.99])
def test_geometric_profile(r):
    K = 100
    y = r ** np.arange(K + 1)
    assert half_life(y) == pytest.approx(math.log(0.5) / math.log(r), rel=1e-13)
    assert decay_rate(y) == pytest.approx(r, rel=1e-13)
    assert decay_rate(y[:2]) == pytest.approx(r, rel=1e-15)


def test_decay_rate_hand_values():
    # lag 2 is zero and skipped: log r = (1 log .6 + 3 log .2) / (1 + 9)
    assert decay_rate([1.0, 0.6, 0.0, 0.2]) == pytest.approx(0.586305709947887, rel=1e-14)
    assert decay_rate([0.6, 0.2], lags=[1, 3]) == pytest.approx(0.586305709947887, rel=1e-14)
    assert decay_rate([1.0, 0.6, 0.5, 0.2], max_lag=1) == pytest.approx(0.6, rel=1e-14)
    assert math.isnan(decay_rate([1.0, 0.0, np.nan, np.inf]))
    assert math.isnan(decay_rate([1.0]))


def test_vectorised_equal_scalar_and_reference():
    rng = np.random.default_rng(7)
    y = random_profiles(rng, 600, 9)
    many = half_life_many(y)
    rates = decay_rate_many(y)
    for b in range(len(y)):
        ref = ref_half_life(list(y[b]))
        np.testing.assert_array_equal(many[b], half_life(y[b]))
        if math.isnan(ref):
            assert math.isnan(many[b])
        else:
            assert many[b] == pytest.approx(ref, rel=1e-12, abs=1e-12)
        assert rates[b] == pytest.approx(ref_decay_rate(list(y[b])), rel=1e-12, nan_ok=True)
    # the rule hits every branch in this sample
    assert np.isinf(many).any() and np.isnan(many).any() and (many == np.floor(many)).any()
    # leading axes of any shape
    np.testing.assert_array_equal(half_life_many(y.reshape(20, 30, 9)), many.reshape(20, 30))
    np.testing.assert_array_equal(decay_rate_many(y.reshape(20, 30, 9)), rates.reshape(20, 30))


def test_profile_errors():
    with pytest.raises(UsageError):
        half_life([1.0, -0.1])
    with pytest.raises(UsageError):
        half_life([1.0, 0.4], lags=[0, 1, 2])
    with pytest.raises(UsageError):
        half_life([1.0, 0.4], lags=[1, 1])
    with pytest.raises(UsageError):
        half_life([[1.0, 0.4]])
    with pytest.raises(UsageError):
        half_life([1.0, 0.4], level=1.0)
    with pytest.raises(UsageError):
        decay_rate(np.ones((2, 3)))


# ----------------------------------------------------------------------------- relative_k from pairs


def pair_vectors(rng, n, T, D, *, last_only=False):
    """Explicit pair vectors ``vec[s][t][t']`` (t' >= t) of n samples, each of D elements.

    ``pair[t, t'] = F^(t'-t) P[t']`` elementwise with a random per-element factor F in [0, 1).
    """
    P = rng.normal(size=(n, T, D)) * rng.lognormal(size=(n, T, 1))
    if last_only:
        P[:, :-1] = 0.0
    F = rng.uniform(0, 1, size=(n, D))
    return {(t, tp): F ** (tp - t) * P[:, tp] for t in range(T) for tp in range(t, T)}


def per_sample_pair_sq(vec, n, T, K1):
    out = np.zeros((n, T, K1))
    for (t, tp), v in vec.items():
        if tp - t < K1:
            out[:, t, tp - t] = np.sum(v**2, axis=1)
    return out


def direct_relative(vec, T, K1):
    """relative_k from the pooled vectors (samples concatenated: one L2 norm over all of them)."""
    rel = []
    for k in range(K1):
        num = sum(np.linalg.norm(vec[t, t + k].ravel()) ** 2 for t in range(T - k))
        den = sum(np.linalg.norm(vec[t + k, t + k].ravel()) ** 2 for t in range(T - k))
        rel.append(math.sqrt(num / den))
    return np.array(rel)


@pytest.mark.parametrize("K1", [6, 4, 1])
def test_relative_against_pair_vectors(K1):
    rng = np.random.default_rng(3)
    n, T, D = 5, 6, 11
    vec = pair_vectors(rng, n, T, D)
    pair_sq = per_sample_pair_sq(vec, n, T, K1).sum(axis=0)
    np.testing.assert_allclose(relative_from_pair_sq(pair_sq), direct_relative(vec, T, K1), rtol=1e-12)
    G = [math.sqrt(np.mean([np.linalg.norm(vec[t, t + k]) ** 2 for t in range(T - k)])) for k in range(K1)]
    np.testing.assert_allclose(lag_norm_from_pair_sq(pair_sq), G, rtol=1e-12)
    assert relative_from_pair_sq(pair_sq)[0] == 1.0
    # entries with t + k >= T do not exist: whatever they hold is ignored
    junk = pair_sq.copy()
    for t in range(T):
        for k in range(K1):
            if t + k >= T:
                junk[t, k] = 1e6
    np.testing.assert_array_equal(relative_from_pair_sq(junk), relative_from_pair_sq(pair_sq))
    np.testing.assert_array_equal(lag_norm_from_pair_sq(junk), lag_norm_from_pair_sq(pair_sq))


def test_relative_last_step_source_is_not_inflated():
    rng = np.random.default_rng(4)
    n, T, D = 3, 7, 9
    vec = pair_vectors(rng, n, T, D, last_only=True)
    pair_sq = per_sample_pair_sq(vec, n, T, T).sum(axis=0)
    rel = relative_from_pair_sq(pair_sq)
    truth = np.array([np.linalg.norm(vec[T - 1 - k, T - 1]) / np.linalg.norm(vec[T - 1, T - 1]) for k in range(T)])
    np.testing.assert_allclose(rel, truth, rtol=1e-12)
    # the 0.1 ratio G_k / G_0 is inflated by sqrt(T / (T - k)); relative_k is not
    G = lag_norm_from_pair_sq(pair_sq)
    np.testing.assert_allclose(G / G[0], truth * np.sqrt(T / (T - np.arange(T))), rtol=1e-12)
    assert rel[-1] < G[-1] / G[0] / 2


def test_relative_vectorised_and_nan():
    rng = np.random.default_rng(5)
    n, T = 4, 5
    per = per_sample_pair_sq(pair_vectors(rng, n, T, 3), n, T, T)
    np.testing.assert_allclose(
        relative_from_pair_sq(per), np.stack([direct_relative_from_sq(p) for p in per]), rtol=1e-12
    )
    zero = np.zeros((T, 3))
    zero[0, 1] = 0.0
    assert np.isnan(relative_from_pair_sq(zero)).all()
    only_first = np.zeros((T, 3))
    only_first[0, 0] = 2.0                          # P[0] only: no source has a step back
    np.testing.assert_array_equal(relative_from_pair_sq(only_first), [1.0, np.nan, np.nan])
    with pytest.raises(UsageError):
        relative_from_pair_sq(np.zeros((2, 3)))     # K + 1 > T
    with pytest.raises(UsageError):
        relative_from_pair_sq(-np.ones((3, 2)))


def direct_relative_from_sq(p):
    T, K1 = p.shape
    return np.array([math.sqrt(sum(p[t, k] for t in range(T - k)) / sum(p[t + k, 0] for t in range(T - k)))
                     for k in range(K1)])


# ----------------------------------------------------------------------------- weight projections


def test_projections_against_vectors():
    rng = np.random.default_rng(6)
    gs = rng.normal(size=(200, 30)) * rng.lognormal(sigma=2, size=(200, 1))
    gt = rng.normal(size=(200, 30)) * rng.lognormal(sigma=2, size=(200, 1)) - 0.5 * gs
    g = gs + gt
    ss, tt, st = (gs * gs).sum(1), (gt * gt).sum(1), (gs * gt).sum(1)
    p = projections(ss, tt, st)
    gg = (g * g).sum(1)
    np.testing.assert_allclose(p.spatial_projection, (gs * g).sum(1) / gg, rtol=1e-9)
    np.testing.assert_allclose(p.temporal_projection, (gt * g).sum(1) / gg, rtol=1e-9, atol=1e-12)
    cos = st / (np.linalg.norm(gs, axis=1) * np.linalg.norm(gt, axis=1))
    np.testing.assert_allclose(p.cosine, cos, rtol=1e-12)
    assert np.max(np.abs(p.spatial_projection + p.temporal_projection - 1)) < 1e-12
    assert (p.temporal_projection < 0).any() and (p.cosine < 0).any()


def test_projections_hand_and_degenerate():
    # g_s = (1, 0), g_t = (-1, 1): g = (0, 1); spatial 0, temporal 1, cosine -1/sqrt(2)
    p = projections(1.0, 2.0, -1.0)
    assert isinstance(p.spatial_projection, float)
    assert p == pytest.approx((0.0, 1.0, -1 / math.sqrt(2)), rel=1e-15, abs=1e-15)
    assert projections(4.0, 0.0, 0.0) == pytest.approx((1.0, 0.0, math.nan), nan_ok=True)
    assert projections(1.0, 1.0, -1.0) == pytest.approx((math.nan, math.nan, -1.0), nan_ok=True)  # g = 0
    with pytest.raises(UsageError):
        projections(-1.0, 1.0, 0.0)


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_counts_seeded():
    a = bootstrap_counts(37, n_resamples=50, seed=3)
    np.testing.assert_array_equal(a, bootstrap_counts(37, n_resamples=50, seed=3))
    assert not np.array_equal(a, bootstrap_counts(37, n_resamples=50, seed=4))
    assert a.shape == (50, 37) and a.dtype.kind == "i" and (a.sum(1) == 37).all() and (a >= 0).all()
    assert bootstrap_counts(37).shape == (DEFAULT_RESAMPLES, 37)
    assert abs(bootstrap_counts(200, seed=1).mean(0) - 1).max() < 0.25
    with pytest.raises(DataError):
        bootstrap_counts(0)
    with pytest.raises(UsageError):
        bootstrap_counts(5, n_resamples=0)


def test_bootstrap_counts_are_multinomial_draws():
    """Each row is Multinomial(n, 1/n): a sample's count is Binomial(n, 1/n) (mean 1, variance 1 - 1/n,
    P(0) = (1 - 1/n)^n), two samples' counts are correlated -1/(n-1); rows drawn in chunks of any size
    are the same rows."""
    n, B = 50, 4000
    c = bootstrap_counts(n, n_resamples=B, seed=5).astype(float)
    se = 1.0 / np.sqrt(B * n)          # rough scale of the sampling error of a pooled mean
    assert abs(c.mean() - 1.0) < 4 * se
    assert np.abs(c.mean(0) - 1.0).max() < 6 * np.sqrt((1 - 1 / n) / B)   # every sample drawn alike
    assert abs(c.var() - (1 - 1 / n)) < 0.05
    assert abs((c == 0).mean() - (1 - 1 / n) ** n) < 0.01
    corr = np.corrcoef(c[:, 0], c[:, 1])[0, 1]
    assert abs(corr + 1 / (n - 1)) < 0.05
    for chunk in (1, 7, 999):
        np.testing.assert_array_equal(np.concatenate(list(stats._count_chunks(n, 300, 3, chunk))),
                                      bootstrap_counts(n, n_resamples=300, seed=3))


def ratio_data(rng, n):
    """Per-sample pair_sq [n, 2, 2] whose relative_1 is a ratio of skewed sums."""
    src = rng.lognormal(0.0, 1.2, n)
    out = np.zeros((n, 2, 2))
    out[:, 0, 0] = rng.lognormal(0.0, 1.0, n)
    out[:, 1, 0] = src
    out[:, 0, 1] = src * rng.beta(2.0, 5.0, n) ** 2
    return out


def relative_1(sums):
    return relative_from_pair_sq(sums)[:, 1]


def test_bootstrap_equals_brute_force_and_is_reproducible():
    rng = np.random.default_rng(8)
    x = ratio_data(rng, 23)
    ci = bootstrap(x, relative_1, n_resamples=300, seed=11)
    counts = bootstrap_counts(23, n_resamples=300, seed=11)
    values = [relative_1(np.einsum("i,ijk->jk", c.astype(float), x)[None])[0] for c in counts]
    assert ci.estimate == pytest.approx(relative_1(x.sum(0)[None])[0], rel=1e-14)
    assert (ci.low, ci.high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])), rel=1e-12)
    assert ci.n_valid == 300
    assert bootstrap(x, relative_1, n_resamples=300, seed=11) == ci
    other = bootstrap(x, relative_1, n_resamples=300, seed=12)
    assert (other.low, other.high) != (ci.low, ci.high)
    assert DEFAULT_LEVEL == 0.95


def test_bootstrap_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.default_rng(9)
    x = ratio_data(rng, 13)
    metric = lambda s: relative_from_pair_sq(s)          # array metric: [B, 2]  # noqa: E731
    whole = bootstrap(x, metric, n_resamples=101, seed=2)
    monkeypatch.setattr(stats, "_CHUNK_ELEMENTS", 40)    # 3 resamples per chunk
    chunked = bootstrap(x, metric, n_resamples=101, seed=2)
    # the same resamples (the matrix product may round differently in another chunk size)
    counts = np.concatenate(list(stats._count_chunks(13, 101, 2, 3)))
    np.testing.assert_array_equal(counts, bootstrap_counts(13, n_resamples=101, seed=2))
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    assert whole.low.shape == (2,) and whole.low[0] == 1.0


def test_percentile_interval_inf_and_nan():
    assert percentile_interval([1.0, 2.0, 3.0, np.inf, np.nan], level=0.5) == (1.75, math.inf, 4)
    assert percentile_interval([np.inf] * 5) == (math.inf, math.inf, 5)
    assert percentile_interval([-np.inf, 1.0, 2.0, 3.0], level=0.5) == (-math.inf, 2.25, 4)
    lo, hi, m = percentile_interval([np.nan, np.nan])
    assert math.isnan(lo) and math.isnan(hi) and m == 0
    rng = np.random.default_rng(10)
    v = rng.normal(size=(999, 3))
    lo, hi, m = percentile_interval(v, level=0.9)
    np.testing.assert_allclose(np.stack([lo, hi]), np.percentile(v, [5, 95], axis=0), rtol=1e-13)
    assert m.tolist() == [999, 999, 999]


def test_bootstrap_half_life_with_infinite_resamples():
    # two samples: lag-1 transport 0.9 of ||P[1]||^2 = 1, and 0.1 of ||P[1]||^2 = 3. A resample
    # that draws the first twice (1/4 of them) has relative_1 = 0.9 and never falls to 1/2 within
    # K = 1 (half-life inf); both: sqrt(0.84/4); the second twice: 0.1, half-life log 2 / log 10
    x = np.array([[[1.0, 0.81], [1.0, 0.0]], [[1.0, 0.03], [3.0, 0.0]]])
    ci = bootstrap(x, lambda s: half_life_many(relative_from_pair_sq(s)), n_resamples=400, seed=0)
    assert ci.high == math.inf and ci.n_valid == 400
    assert ci.low == pytest.approx(math.log(2) / math.log(10), rel=1e-12)
    assert ci.estimate == pytest.approx(math.log(0.5) / math.log(math.sqrt(0.21)), rel=1e-12)


def test_bootstrap_nan_resamples_are_counted():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])   # metric undefined when sample 2 is not drawn
    ci = bootstrap(x, lambda s: np.where(s[:, 1] > 0, s[:, 0] / np.where(s[:, 1] > 0, s[:, 1], 1), np.nan),
                   n_resamples=1000, seed=0)
    counts = bootstrap_counts(3, seed=0)
    assert ci.n_valid == int((counts[:, 2] > 0).sum()) < 1000
    assert math.isfinite(ci.low) and math.isfinite(ci.high)


def test_bootstrap_errors():
    x = np.ones((4, 2))
    with pytest.raises(DataError):
        bootstrap(np.ones((0, 2)), lambda s: s[:, 0])
    with pytest.raises(UsageError):
        bootstrap(x, lambda s: s[:, 0], level=1.5)
    with pytest.raises(UsageError):
        bootstrap(x, lambda s: s[:, 0], seed=-1)
    with pytest.raises(UsageError):
        bootstrap(x, lambda s: s.sum())                  # not one value per resample


def test_bootstrap_mean():
    v = np.array([[0.1, 1.0], [0.3, np.nan], [np.nan, 3.0], [0.2, 5.0], [-0.4, np.inf]])
    ci = bootstrap_mean(v, n_resamples=200, seed=5)
    np.testing.assert_allclose(ci.estimate, [0.05, 3.0], rtol=1e-14)
    counts = bootstrap_counts(5, n_resamples=200, seed=5).astype(float)
    fin = np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (counts @ np.where(fin, v, 0)) / (counts @ fin)
    means = np.where(counts @ fin > 0, means, np.nan)
    for c in range(2):
        col = means[:, c][~np.isnan(means[:, c])]
        np.testing.assert_allclose([ci.low[c], ci.high[c]], np.percentile(col, [2.5, 97.5]), rtol=1e-12)
        assert ci.n_valid[c] == len(col)
    assert ci.n_valid[1] < 200                            # some resamples drew only NaN/inf passes


def test_bootstrap_coverage():
    """95% intervals of relative_1 from sub-samples of 200 cover the population value ~95% of the time."""
    pop = ratio_data(np.random.default_rng(2024), 20000)
    truth = relative_1(pop.sum(0)[None])[0]
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(300):
        sub = pop[rng.integers(0, len(pop), 200)]
        ci = bootstrap(sub, relative_1, seed=i)
        covered += ci.low <= truth <= ci.high
    frac = covered / 300
    print(f"coverage of the 95% interval: {frac:.3f} ({covered}/300)")
    assert 0.88 <= frac <= 0.98


# ----------------------------------------------------------------------------- theory error


def test_theory_error():
    meas = np.array([1.0, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02])
    pred = np.array([1.0, 0.5, 0.3, 0.1, 0.2, 9.0, 9.0])      # terms 0.25, 0, 0.5, 1; lags 5, 6 ignored
    assert theory_error(pred, meas) == pytest.approx(0.375, rel=1e-14)
    assert theory_error(pred, meas, max_lag=2) == pytest.approx(0.125, rel=1e-14)
    assert theory_error(pred[:3], meas[:3]) == pytest.approx(0.125, rel=1e-14)   # K = 2
    assert math.isnan(theory_error([1.0], [1.0]))
    assert theory_error([1.0, 0.2, 0.1], [1.0, 0.0, 0.1]) == math.inf            # terms inf, 0
    assert theory_error([1.0, np.nan, 0.2, 0.0], [1.0, 0.1, 0.1, 0.0]) == pytest.approx(1.0)
    assert math.isnan(theory_error([1.0, 0.0], [1.0, 0.0]))
    many = np.stack([meas, meas * 0.9, meas * 1.1])
    np.testing.assert_array_equal(theory_error(pred, many), [theory_error(pred, m) for m in many])


# ----------------------------------------------------------------------------- torch-free


def _run(code):
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)


def test_stats_module_imports_no_torch():
    # the parent package's __init__ is bypassed: this checks gradflow/stats.py's own imports
    code = ("import sys, types; pkg = types.ModuleType('gradflow'); pkg.__path__ = ['gradflow']; "
            "sys.modules['gradflow'] = pkg; import gradflow.stats; "
            "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)")
    res = _run(code)
    assert res.returncode == 0, res.stderr


def test_import_gradflow_stats_stays_torch_free():
    if _run("import gradflow, sys; assert 'torch' not in sys.modules").returncode != 0:
        pytest.xfail("gradflow/__init__.py still imports torch eagerly")
    res = _run("import gradflow.stats, sys; assert 'torch' not in sys.modules")
    assert res.returncode == 0, res.stderr
