"""Performance metrics from counts, so that cells can be rolled up and pooled before scoring."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hindsight.stats.intervals import FloatArray


def ratio(numerator: npt.ArrayLike, denominator: npt.ArrayLike) -> FloatArray:
    """Element-wise ratio, NaN where the denominator is zero.

    >>> ratio([1, 3], [2, 0]).tolist()
    [0.5, nan]
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def f1_scores(
    tp: npt.ArrayLike, n_predicted: npt.ArrayLike, n_true: npt.ArrayLike
) -> FloatArray:
    """Per-class F1 = 2 tp / (predicted + true); 0 for a class predicted or present but never hit.

    >>> f1_scores([8, 0], [10, 2], [10, 0]).tolist()
    [0.8, 0.0]
    """
    return np.nan_to_num(ratio(2 * np.asarray(tp, dtype=np.float64),
                               np.add(n_predicted, n_true)), nan=0.0)
