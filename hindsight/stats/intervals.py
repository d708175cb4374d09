"""Confidence intervals for proportions and means, vectorised over cells."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def z_value(confidence: float) -> float:
    """The two-sided standard-normal quantile for a confidence level.

    >>> round(z_value(0.95), 4)
    1.96
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval for a binomial proportion; stays inside [0, 1] for small n.

    Cells with ``n == 0`` get the uninformative interval [0, 1].

    >>> low, high = wilson_interval([81], [100], 0.95)
    >>> round(float(low[0]), 4), round(float(high[0]), 4)
    (0.7222, 0.8749)
    """
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / total
        denominator = 1.0 + z * z / total
        centre = (p + z * z / (2.0 * total)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / total + z * z / (4.0 * total * total)) / denominator
    empty = total <= 0
    low = np.where(empty, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(empty, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def mean_interval(
    total: npt.ArrayLike, sum_of_squares: npt.ArrayLike, n: npt.ArrayLike,
    confidence: float = 0.95,
) -> tuple[FloatArray, FloatArray]:
    """Normal-approximation interval for a mean from its sufficient statistics.

    >>> low, high = mean_interval([10.0], [24.0], [5], 0.95)   # values 1, 1, 2, 3, 3
    >>> round(float(low[0]), 3), round(float(high[0]), 3)
    (1.216, 2.784)
    """
    s = np.asarray(total, dtype=np.float64)
    ss = np.asarray(sum_of_squares, dtype=np.float64)
    count = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / count
        variance = np.maximum(ss / count - mean * mean, 0.0)
        half = z_value(confidence) * np.sqrt(variance / count)
    return mean - half, mean + half
