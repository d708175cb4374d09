from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from hindsight.stats.power import (
    detection_delay,
    diluted_delay,
    material_drop,
    min_detectable_drop,
)
from hindsight.stats.significance import proportion_drop_pvalues


@pytest.mark.parametrize(("n", "n0", "p0", "level"), [
    (250, 2000, 0.94, 0.001), (100, 700, 0.9, 0.01), (5000, 5000, 0.8, 1e-5)])
def test_the_smallest_drop_matches_the_arcsine_power_of_statsmodels(
    n: int, n0: int, p0: float, level: float,
) -> None:
    drop = float(min_detectable_drop("classification", [n], [p0 * n0], [p0 * n0], [n0],
                                     [level])[0])
    # statsmodels' effect size is 2 asin(sqrt p): the same scale, without the 3/8 continuity
    effect = proportion_effectsize(p0, p0 - drop)
    power = NormalIndPower().power(effect, nobs1=n0, ratio=n / n0, alpha=level,
                                   alternative="larger")
    assert power == pytest.approx(0.8, abs=0.02)


def test_drops_of_the_reported_size_are_rejected_by_the_rules_test_about_four_times_in_five(
) -> None:
    rng = np.random.default_rng(0)
    n, n0, p0, level = 300, 3000, 0.93, 0.001
    drop = float(min_detectable_drop("classification", [n], [p0 * n0], [p0 * n0], [n0],
                                     [level])[0])
    draws = 4000
    current = rng.binomial(n, p0 - drop, draws)
    reference = rng.binomial(n0, p0, draws)
    rejected = proportion_drop_pvalues(current, np.full(draws, n), reference,
                                       np.full(draws, n0)) <= level
    assert rejected.mean() == pytest.approx(0.8, abs=0.03)


def test_the_smallest_rise_in_a_mean_error_matches_a_normal_power_calculation() -> None:
    n, n0, mean0, variance0, level = 400, 1000, 2.0, 1.0, 0.001
    rise = float(min_detectable_drop("regression", [n], [mean0 * n0],
                                     [(variance0 + mean0 ** 2) * n0], [n0], [level])[0])
    se = math.sqrt(variance0 / n + variance0 * n0 / (n0 - 1) / n0)
    expected = se * (norm.isf(level) + norm.isf(0.2))
    assert rise == pytest.approx(expected, rel=0.01)


def test_cells_without_rows_or_beyond_any_drop_have_none() -> None:
    found = min_detectable_drop("classification", [0, 3, 500], [90, 90, 90], [90, 90, 90],
                                [100, 100, 100], [0.001, 1e-6, 0.001])
    assert math.isnan(found[0]) and math.isnan(found[1]) and not math.isnan(found[2])


def test_a_pooled_unit_catches_a_drop_once_enough_of_its_days_are_after_onset() -> None:
    assert detection_delay(0.3, 0.1, 5, [10, 10, 10]) == 5
    assert detection_delay(0.12, 0.1, 5, [10, 10, 10]) == 7
    assert detection_delay(0.09, 0.1, 5, [10, 10, 10]) is None
    assert diluted_delay(0.1, 0.1, 3) == 2


def test_a_drop_of_exactly_min_effect_is_not_reported_as_detectable_with_power() -> None:
    # the observed drop must reach min_effect too: at exactly min_effect it does half the time
    floor = material_drop("classification", [20_000], [19_000], [19_000], [200_000], 0.05)
    assert 0.05 < float(floor[0]) < 0.055
    small = material_drop("classification", [100], [1_900], [1_900], [2_000], 0.05)
    assert float(small[0]) > 0.05 + 0.8 * (0.9 * 0.1 / 100) ** 0.5
