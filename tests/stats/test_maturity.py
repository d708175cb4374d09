from __future__ import annotations

import numpy as np
import pytest

from hindsight.stats.maturity import debiased_counts, delay_odds_ratio


def labelled_by_age(rng: np.random.Generator, accuracy: float, n: int,
                    ages: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of correct and wrong predictions by the day their label arrived; a wrong one's
    label (a correction) takes twice as long as an approval."""
    correct = rng.random(n) < accuracy
    delay = rng.lognormal(np.log(4.0), 1.0, n) * np.where(correct, 1.0, 2.0)
    age = np.minimum(delay.astype(int), ages - 1)
    return (np.bincount(age[correct], minlength=ages),
            np.bincount(age[~correct], minlength=ages))


def test_the_odds_ratio_removes_the_flattery_of_early_labels() -> None:
    rng = np.random.default_rng(0)
    mature_correct, mature_wrong = labelled_by_age(rng, 0.94, 200_000, 60)
    ratio = delay_odds_ratio(mature_correct, mature_wrong)
    # a young day of a segment that truly collapsed to 71%, seen 5 days in
    young_correct, young_wrong = labelled_by_age(rng, 0.71, 20_000, 60)
    k, n = young_correct[:6].sum(), young_correct[:6].sum() + young_wrong[:6].sum()
    assert k / n > 0.78  # what a naive monitor sees
    fixed, effective = debiased_counts([k], [n], [ratio[5]])
    assert fixed[0] / effective[0] == pytest.approx(0.71, abs=0.015)
    assert effective[0] < n
    assert ratio[5] > 1.5 and ratio[-1] == pytest.approx(1.0)


def test_without_informative_delays_the_ratio_is_one() -> None:
    rng = np.random.default_rng(1)
    correct = rng.random(100_000) < 0.9
    age = rng.integers(0, 20, 100_000)
    ratio = delay_odds_ratio(np.bincount(age[correct], minlength=20),
                             np.bincount(age[~correct], minlength=20))
    assert ratio == pytest.approx(np.ones(20), abs=0.1)


def test_debiasing_keeps_all_or_nothing_cells_as_they_are() -> None:
    k, n = debiased_counts([0, 50, 7, 0], [0, 50, 7, 9], [2.0] * 4)
    assert k.tolist() == [0, 50, 7, 0] and n.tolist() == [0, 50, 7, 9]


def test_the_effective_size_matches_the_spread_of_debiased_rates() -> None:
    rng = np.random.default_rng(3)
    k = rng.binomial(200, 0.9, 20_000).astype(float)
    fixed, effective = debiased_counts(k, np.full(k.size, 200.0), np.full(k.size, 2.0))
    rate = fixed / effective
    implied = rate.mean() * (1 - rate.mean()) / rate.var()
    assert np.median(effective) == pytest.approx(implied, rel=0.05)
