"""One-sided tests of "worse than the reference" from counts, and false-discovery control.

Vectorised over cells: every run tests thousands of (segment, day) cells at once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hindsight.stats.intervals import FloatArray

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def normal_sf(z: npt.ArrayLike) -> FloatArray:
    """Upper tail of the standard normal, P(Z > z).

    >>> round(float(normal_sf([1.959964])[0]), 4)
    0.025
    """
    values = np.asarray(z, dtype=np.float64)
    if values.size == 0:
        return values.astype(np.float64)
    return np.asarray(0.5 * _erfc(values / math.sqrt(2.0)), dtype=np.float64)


def proportion_drop_pvalues(
    successes: npt.ArrayLike, n: npt.ArrayLike,
    reference_successes: npt.ArrayLike, reference_n: npt.ArrayLike,
) -> FloatArray:
    """P-values of the one-sided test that the current rate is *below* the reference rate,
    on Anscombe's arcsine scale, asin(sqrt((k + 3/8) / (n + 3/4))), where a proportion's
    variance is 1 / (4 n) whatever the rate. Near 0 or 1 the usual pooled z-test is far too
    sure of itself in the tail that alerts live in (about 4x too many rejections at 1e-5 for
    150 rows at 92%); the arcsine test errs on the quiet side. Empty cells get p = 1.

    >>> round(float(proportion_drop_pvalues([85], [100], [940], [1000])[0]), 6)
    0.001745
    """
    k1, n1 = np.asarray(successes, np.float64), np.asarray(n, np.float64)
    k0, n0 = np.asarray(reference_successes, np.float64), np.asarray(reference_n, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        current = np.arcsin(np.sqrt((k1 + 0.375) / (n1 + 0.75)))
        reference = np.arcsin(np.sqrt((k0 + 0.375) / (n0 + 0.75)))
        z = (reference - current) / np.sqrt(0.25 / n1 + 0.25 / n0)
    return np.where((n1 > 0) & (n0 > 0), normal_sf(np.nan_to_num(z)), 1.0)


def mean_increase_pvalues(
    total: npt.ArrayLike, squares: npt.ArrayLike, n: npt.ArrayLike,
    reference_total: npt.ArrayLike, reference_squares: npt.ArrayLike,
    reference_n: npt.ArrayLike,
) -> FloatArray:
    """P-values of the unequal-variance z-test that the current mean is *above* the reference
    mean, from sums and sums of squares (e.g. of absolute errors).

    >>> round(float(mean_increase_pvalues([230.0], [600.0], [100],
    ...                                   [2000.0], [5000.0], [1000])[0]), 4)
    0.0005
    """
    def moments(t: npt.ArrayLike, s: npt.ArrayLike, c: npt.ArrayLike
                ) -> tuple[FloatArray, FloatArray]:
        count = np.asarray(c, np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.asarray(t, np.float64) / count
            spread = np.maximum(np.asarray(s, np.float64) / count - mean * mean, 0.0)
            sample_variance = spread * count / np.maximum(count - 1.0, 1.0)
            return mean, sample_variance / count  # the variance of the mean

    m1, v1 = moments(total, squares, n)
    m0, v0 = moments(reference_total, reference_squares, reference_n)
    se = np.sqrt(v1 + v0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (m1 - m0) / se
    return np.where(se > 0, normal_sf(np.nan_to_num(z)), 1.0)


def holm(pvalues: npt.ArrayLike, alpha: float) -> npt.NDArray[np.bool_]:
    """Which hypotheses to reject so that the chance of *any* false rejection stays at most
    ``alpha`` (Holm's step-down procedure; uniformly more powerful than Bonferroni).

    >>> holm([0.001, 0.008, 0.039, 0.041, 0.042, 0.06], 0.05).tolist()
    [True, True, False, False, False, False]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    passed = p[order] <= alpha / (m - np.arange(m))
    failed = np.nonzero(~passed)[0]
    count = int(failed[0]) if failed.size else m
    reject = np.zeros(m, dtype=bool)
    reject[order[:count]] = True
    return reject


def benjamini_hochberg(pvalues: npt.ArrayLike, q: float) -> npt.NDArray[np.bool_]:
    """Which hypotheses to reject so that the false discovery rate stays at most ``q``.

    >>> benjamini_hochberg([0.001, 0.008, 0.039, 0.041, 0.042, 0.06], 0.05).tolist()
    [True, True, False, False, False, False]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if passed.any():
        last = int(np.nonzero(passed)[0].max())
        reject[order[: last + 1]] = True
    return reject


def paired_drop_pvalue(lost: int, gained: int) -> float:
    """Exact one-sided sign test (McNemar's, exact) that a candidate is worse than the model
    it would replace on the same items: ``lost`` items the promoted model got right and the
    candidate wrong, ``gained`` the reverse. P(X >= lost) for X ~ Binomial(lost + gained, 1/2).

    >>> round(paired_drop_pvalue(15, 5), 4)
    0.0207
    >>> paired_drop_pvalue(0, 0)
    1.0
    """
    n = lost + gained
    if n == 0 or lost == 0:
        return 1.0
    log_half = n * math.log(0.5)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half
             for k in range(lost, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))
