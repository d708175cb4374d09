from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from hindsight.stats.significance import (
    benjamini_hochberg,
    holm,
    mean_increase_pvalues,
    normal_sf,
    proportion_drop_pvalues,
)


def test_normal_sf_matches_scipy() -> None:
    z = np.linspace(-6, 6, 49)
    assert normal_sf(z) == pytest.approx(stats.norm.sf(z), rel=1e-9, abs=1e-300)


@given(k1=st.integers(70, 130), k0=st.integers(700, 1300))
def test_proportion_drop_pvalues_agree_with_statsmodels_for_middling_rates(
    k1: int, k0: int,
) -> None:
    # Near 50% the arcsine and the pooled z-test are the same test; they part in the tails.
    _, pooled = proportions_ztest([k1, k0], [200, 2000], alternative="smaller")
    if 0.01 < pooled < 0.5:
        ours = proportion_drop_pvalues([k1], [200], [k0], [2000])[0]
        assert ours == pytest.approx(pooled, rel=0.15)


@pytest.mark.parametrize(("n", "rate"), [(141, 0.92), (300, 0.95), (120, 0.7)])
def test_proportion_drop_pvalues_do_not_overstate_the_tail(n: int, rate: float) -> None:
    # Under no drop, a p-value below a level must happen at most that often.
    rng = np.random.default_rng(n)
    k1 = rng.binomial(n, rate, 2_000_000)
    k0 = rng.binomial(550, rate, 2_000_000)
    p = proportion_drop_pvalues(k1, np.full(k1.size, n), k0, np.full(k0.size, 550))
    for level in (1e-3, 1e-4):
        assert np.mean(p < level) <= level * 1.3


def test_proportion_drop_pvalue_is_one_for_empty_cells() -> None:
    assert proportion_drop_pvalues([0], [0], [50], [50])[0] == 1.0


def test_mean_increase_pvalues_match_a_welch_z_test_on_raw_values() -> None:
    rng = np.random.default_rng(11)
    current, baseline = rng.exponential(1.2, 300), rng.exponential(1.0, 3000)
    ours = mean_increase_pvalues([current.sum()], [(current**2).sum()], [current.size],
                                 [baseline.sum()], [(baseline**2).sum()], [baseline.size])[0]
    se = np.sqrt(current.var(ddof=1) / current.size + baseline.var(ddof=1) / baseline.size)
    expected = stats.norm.sf((current.mean() - baseline.mean()) / se)
    assert ours == pytest.approx(expected, rel=1e-9)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=300), st.sampled_from([0.01, 0.05, 0.2]))
def test_benjamini_hochberg_matches_statsmodels(pvalues: list[float], q: float) -> None:
    expected, *_ = multipletests(pvalues, alpha=q, method="fdr_bh")
    assert benjamini_hochberg(pvalues, q).tolist() == expected.tolist()


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**32 - 1))
def test_benjamini_hochberg_on_null_cells_rarely_rejects_anything(seed: int) -> None:
    # 2,000 cells with no real drop: the family-wise chance of any rejection is at most q.
    rng = np.random.default_rng(seed)
    k = rng.binomial(150, 0.94, 2000)
    p = proportion_drop_pvalues(k, np.full(2000, 150), np.full(2000, 9400), np.full(2000, 10000))
    assert benjamini_hochberg(p, 0.01).sum() <= 2


@settings(max_examples=30)  # statsmodels' multipletests takes ~60 ms a call
@given(st.lists(st.floats(0, 1), min_size=1, max_size=300), st.sampled_from([0.001, 0.01, 0.05]))
def test_holm_matches_statsmodels(pvalues: list[float], alpha: float) -> None:
    expected, *_ = multipletests(pvalues, alpha=alpha, method="holm")
    assert holm(pvalues, alpha).tolist() == expected.tolist()


def test_holm_is_stricter_than_benjamini_hochberg_once_there_are_true_discoveries() -> None:
    p = [1e-12] * 5 + [3e-6] + [0.5] * 1500
    assert benjamini_hochberg(p, 0.001)[5] and not holm(p, 0.001)[5]


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**32 - 1))
def test_holm_on_null_cells_almost_never_rejects(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = rng.binomial(150, 0.94, 2000)
    p = proportion_drop_pvalues(k, np.full(2000, 150), np.full(2000, 9400), np.full(2000, 10000))
    assert holm(p, 0.01).sum() <= 1
