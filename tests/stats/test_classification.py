from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hindsight.stats.classification import f1_scores, ratio


def test_macro_f1_from_counts_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 5, 800)
    predicted = np.where(rng.random(800) < 0.7, truth, rng.integers(0, 5, 800))
    classes = np.union1d(truth, predicted)
    tp = [np.sum((predicted == c) & (truth == c)) for c in classes]
    n_predicted = [np.sum(predicted == c) for c in classes]
    n_true = [np.sum(truth == c) for c in classes]
    ours = np.mean(f1_scores(tp, n_predicted, n_true))
    assert ours == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_ratio_is_nan_not_zero_when_nothing_was_counted() -> None:
    assert np.isnan(ratio([0], [0])[0])
