from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from hindsight.stats.intervals import mean_interval, wilson_interval, z_value


def test_z_value_matches_scipy_normal_quantile() -> None:
    for confidence in (0.8, 0.95, 0.99, 0.999):
        assert z_value(confidence) == pytest.approx(stats.norm.ppf(0.5 + confidence / 2))


def test_z_value_refuses_confidence_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        z_value(1.0)


@given(n=st.integers(1, 5000), share=st.floats(0, 1), confidence=st.sampled_from([0.9, 0.99]))
def test_wilson_interval_matches_statsmodels(n: int, share: float, confidence: float) -> None:
    k = round(share * n)
    low, high = wilson_interval([k], [n], confidence)
    expected = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert low[0] == pytest.approx(expected[0], abs=1e-9)
    assert high[0] == pytest.approx(expected[1], abs=1e-9)


def test_wilson_interval_is_uninformative_for_empty_cells() -> None:
    low, high = wilson_interval([0], [0])
    assert (low[0], high[0]) == (0.0, 1.0)


@settings(deadline=None, max_examples=20)
@given(p=st.floats(0.05, 0.95), n=st.integers(30, 400), seed=st.integers(0, 2**32 - 1))
def test_wilson_interval_covers_the_true_rate_about_as_often_as_promised(
    p: float, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    k = rng.binomial(n, p, size=4000)
    low, high = wilson_interval(k, np.full(4000, n), 0.95)
    coverage = np.mean((low <= p) & (p <= high))
    assert coverage > 0.90  # Wilson is close to nominal; a broken interval falls far below


def test_mean_interval_matches_scipy_normal_interval() -> None:
    values = np.random.default_rng(3).exponential(2.0, 500)
    low, high = mean_interval([values.sum()], [(values**2).sum()], [values.size], 0.95)
    expected = stats.norm.interval(0.95, loc=values.mean(),
                                   scale=values.std(ddof=0) / np.sqrt(values.size))
    assert low[0] == pytest.approx(expected[0])
    assert high[0] == pytest.approx(expected[1])
