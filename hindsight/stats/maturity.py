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


def debiased_successes(successes: npt.ArrayLike, n: npt.ArrayLike,
                       odds_ratio: npt.ArrayLike) -> FloatArray:
    """Successes among ``n`` once the odds of success are divided by ``odds_ratio``.

    >>> debiased_successes([90.0], [100.0], [2.25]).round(2).tolist()
    [80.0]
    """
    k = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    r = np.asarray(odds_ratio, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        fixed = total * k / (k + r * (total - k))
    return np.where(total > 0, np.nan_to_num(fixed), 0.0)
