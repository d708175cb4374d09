"""Label maturity: early labels are not a random sample when corrections arrive later than
approvals. Measured on mature days, the bias is an odds ratio per label age, and dividing it
out of a young day's odds of success removes it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hindsight.stats.intervals import FloatArray

MIN_FAILURES = 30  # fewer wrong predictions than this: too few to measure the bias


def delay_odds_ratio(correct_by_age: npt.ArrayLike, wrong_by_age: npt.ArrayLike) -> FloatArray:
    """r[a] = P(labelled within a days | correct) / P(labelled within a days | wrong), from
    the labels of mature days counted by the age (in days) at which each arrived. r > 1 means
    early labels flatter; 1 where it cannot be measured.

    >>> delay_odds_ratio([50, 30, 20], [2, 4, 4]).round(3).tolist()
    [1.0, 1.0, 1.0]
    >>> delay_odds_ratio([500, 300, 200], [20, 40, 40]).round(3).tolist()
    [2.5, 1.333, 1.0]
    """
    correct = np.asarray(correct_by_age, dtype=np.float64)
    wrong = np.asarray(wrong_by_age, dtype=np.float64)
    if wrong.sum() < MIN_FAILURES or correct.sum() == 0:
        return np.ones(correct.size)
    share_correct = np.cumsum(correct) / correct.sum()
    share_wrong = np.cumsum(wrong) / wrong.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = share_correct / share_wrong
    return np.where((share_wrong > 0) & np.isfinite(ratio), ratio, 1.0)


def debiased_counts(successes: npt.ArrayLike, n: npt.ArrayLike,
                    odds_ratio: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Successes and an effective sample size once the odds of success are divided by
    ``odds_ratio``. The correction stretches noise as well as the mean (by the delta method,
    f(p) = p / (p + r (1 - p)) has slope r / (p + r (1 - p))^2), so the effective n shrinks
    until a binomial of that size has the corrected rate's variance.

    >>> k, n = debiased_counts([90.0], [100.0], [2.25])
    >>> round(float(k[0] / n[0]), 4), round(float(n[0]), 1)
    (0.8, 56.2)
    >>> debiased_counts([90.0], [100.0], [1.0])[1].tolist()
    [100.0]
    """
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    r = np.asarray(odds_ratio, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / total
        denominator = p + r * (1.0 - p)
        fixed = p / denominator
        slope = r / denominator**2
        inflation = np.where((p > 0) & (p < 1), slope**2 * p * (1 - p) /
                             (fixed * (1 - fixed)), 1.0)
        n_eff = np.where(total > 0, total / inflation, 0.0)
    return np.nan_to_num(fixed * n_eff), np.nan_to_num(n_eff)
