"""What a test can see: the smallest drop it catches, and how soon after onset.

Computed from the rules' own p-value functions (``significance``), not a separate
approximation: the smallest drop is the one whose *expected* counts give the p-value at which
a test rejecting at ``level`` does so with probability ``power``.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from hindsight.stats.intervals import FloatArray
from hindsight.stats.significance import mean_increase_pvalues, proportion_drop_pvalues

POWER = 0.8  # the chance that a run whose unit carries the drop alerts on it
_STEPS = 60  # bisection steps: the drop to 1e-18 of its range


def expected_pvalue_target(level: float, power: float = POWER) -> float:
    """The p-value the expected counts must reach so that a test at ``level`` rejects with
    probability ``power``: the statistic is normal with unit variance around its expected
    value, so that value must be ``z(level) + z(power)``.

    >>> round(expected_pvalue_target(0.05, 0.5), 6)
    0.05
    >>> round(expected_pvalue_target(0.05, 0.8), 5)
    0.00645
    """
    normal = NormalDist()
    z = normal.inv_cdf(1.0 - level) + normal.inv_cdf(power)
    return 1.0 - normal.cdf(z)


def min_detectable_drop(task: str, n: npt.ArrayLike, reference_total: npt.ArrayLike,
                        reference_squares: npt.ArrayLike, reference_n: npt.ArrayLike,
                        level: npt.ArrayLike, power: float = POWER) -> FloatArray:
    """Per cell, the smallest worsening of the metric (a fall in accuracy, a rise in the mean
    absolute error, in metric units) that the rule's one-sided test on ``n`` labelled rows
    against the reference's sufficient statistics rejects at ``level`` with probability
    ``power``. NaN where no drop can be (no rows, or not even accuracy 0 would do).

    >>> round(float(min_detectable_drop("classification", [250], [1880], [1880], [2000],
    ...                                 [0.001])[0]), 3)
    0.076
    >>> round(float(min_detectable_drop("regression", [400], [2000.0], [5000.0], [1000],
    ...                                 [0.001])[0]), 3)
    0.233
    """
    rows = np.asarray(n, np.float64)
    k0, s0, n0 = (np.asarray(x, np.float64) for x in (reference_total, reference_squares,
                                                       reference_n))
    target = np.vectorize(expected_pvalue_target, otypes=[np.float64])(
        np.broadcast_to(np.asarray(level, np.float64), rows.shape), power)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean0 = k0 / n0
        variance0 = np.maximum(s0 / n0 - mean0 * mean0, 0.0)
    if task == "classification":
        def pvalue(drop: FloatArray) -> FloatArray:
            return proportion_drop_pvalues((mean0 - drop) * rows, rows, k0, n0)
        high = np.nan_to_num(mean0)  # accuracy cannot fall below zero
    else:
        def pvalue(drop: FloatArray) -> FloatArray:
            mean = mean0 + drop
            return mean_increase_pvalues(mean * rows, (variance0 + mean * mean) * rows, rows,
                                         k0, s0, n0)
        high = np.nan_to_num(mean0 + 40.0 * np.sqrt(variance0) + 1.0)
    low = np.zeros_like(high)
    reachable = (rows > 0) & (n0 > 0) & (pvalue(high) <= target)
    for _ in range(_STEPS):
        middle = (low + high) / 2
        passes = pvalue(middle) <= target
        high = np.where(passes, middle, high)
        low = np.where(passes, low, middle)
    return np.where(reachable, high, np.nan)


def detection_delay(drop: float, detectable: float, first_age: int,
                    labelled_by_age: npt.ArrayLike) -> int | None:
    """Days from the onset day to the first run whose unit shows a drop of ``drop`` at least
    as large as ``detectable``. The unit pools the prediction days aged ``first_age``,
    ``first_age + 1``, ... holding ``labelled_by_age`` labelled rows; a run ``t`` days after
    onset sees the drop on the pooled days no older than ``t``, diluted by the rest.

    >>> detection_delay(0.2, 0.1, 3, [50, 50])   # one of two pooled days after onset is enough
    3
    >>> detection_delay(0.15, 0.1, 3, [50, 50])
    4
    >>> detection_delay(0.05, 0.1, 3, [50, 50]) is None
    True
    """
    n = np.asarray(labelled_by_age, np.float64)
    if not np.isfinite(detectable) or n.sum() <= 0 or drop < detectable:
        return None
    shown = drop * np.cumsum(n) / n.sum()
    return first_age + int(np.nonzero(shown >= detectable * (1 - 1e-12))[0][0])


def diluted_delay(shift: float, detectable: float, window_days: int) -> int | None:
    """Days from the onset day to the first run whose ``window_days`` window (its own day
    and the ones before it, equal volumes) shows a shift of ``shift`` at least as large as
    ``detectable``.

    >>> diluted_delay(0.1, 0.05, 1), diluted_delay(0.1, 0.05, 2), diluted_delay(0.1, 0.06, 2)
    (0, 0, 1)
    >>> diluted_delay(0.04, 0.05, 3) is None
    True
    """
    if not np.isfinite(detectable) or shift < detectable or shift <= 0:
        return None
    return max(int(np.ceil(window_days * detectable / shift - 1e-12)) - 1, 0)


def material_drop(task: str, n: npt.ArrayLike, reference_total: npt.ArrayLike,
                  reference_squares: npt.ArrayLike, reference_n: npt.ArrayLike,
                  min_effect: float, power: float = POWER) -> FloatArray:
    """Per cell, the smallest true worsening whose *observed* worsening on ``n`` rows reaches
    the rule's ``min_effect`` (absolute for classification, relative to the reference's mean
    for regression) with probability ``power``: the floor above the test's smallest drop,
    which alone alerts only half the time when the drop is exactly ``min_effect``.

    >>> round(float(material_drop("classification", [400], [1900], [1900], [2000],
    ...                           0.05)[0]), 3)
    0.064
    """
    rows = np.asarray(n, np.float64)
    k0, s0, n0 = (np.asarray(x, np.float64) for x in (reference_total, reference_squares,
                                                       reference_n))
    z = NormalDist().inv_cdf(power)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean0 = k0 / n0
        variance0 = np.maximum(s0 / n0 - mean0 * mean0, 0.0)
        effect = min_effect if task == "classification" else min_effect * mean0
        drop = np.asarray(effect, np.float64) * np.ones_like(rows)
        for _ in range(20):  # a fixed point: the unit's variance moves with the drop
            if task == "classification":
                after = np.clip(mean0 - drop, 0.0, 1.0)
                unit_variance = after * (1.0 - after)
            else:
                unit_variance = variance0
            drop = effect + z * np.sqrt(unit_variance / rows + variance0 / n0)
    return np.asarray(np.where((rows > 0) & (n0 > 0), drop, np.nan), np.float64)
