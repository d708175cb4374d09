from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from hindsight.stats.drift import (
    CategoryDetector,
    WassersteinDetector,
    effective_size,
    jensen_shannon,
    ks_statistic,
    numeric_drift,
    psi,
    quantile_edges,
    rake,
    shares,
    total_variation,
    wasserstein,
)

samples = st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=200)


@given(samples, samples)
def test_wasserstein_matches_scipy(u: list[float], v: list[float]) -> None:
    assert wasserstein(u, v) == pytest.approx(stats.wasserstein_distance(u, v),
                                              rel=1e-9, abs=1e-9)


@given(samples, samples)
def test_ks_statistic_matches_scipy(u: list[float], v: list[float]) -> None:
    with warnings.catch_warnings():  # scipy's p-value for tiny samples warns; we need D only
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(u, v).statistic
    assert ks_statistic(u, v) == pytest.approx(expected, abs=1e-12)


@given(samples, samples)
def test_numeric_drift_from_one_sort_matches_scipy_and_the_binned_psi(
        u: list[float], v: list[float]) -> None:
    measured = numeric_drift(u, v, bins=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert measured["ks"] == pytest.approx(stats.ks_2samp(u, v).statistic, abs=1e-12)
    spread = float(np.std(u))
    expected_w = stats.wasserstein_distance(u, v) / spread if spread > 0 else 0.0
    assert measured["wasserstein_sd"] == pytest.approx(expected_w, rel=1e-9, abs=1e-9)
    edges = quantile_edges(u, 10)
    assert measured["psi"] == pytest.approx(psi(shares(u, edges), shares(v, edges)), abs=1e-12)


def test_jensen_shannon_matches_scipy_base_two() -> None:
    p, q = [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2))


def test_psi_by_hand_and_total_variation() -> None:
    expected, actual = np.array([0.25, 0.25, 0.5]), np.array([0.2, 0.3, 0.5])
    by_hand = sum((a - e) * np.log(a / e) for e, a in zip(expected, actual, strict=True))
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert total_variation(expected, actual) == pytest.approx(0.05)


def test_bins_come_from_the_reference_only() -> None:
    reference = np.random.default_rng(0).normal(0, 1, 10_000)
    edges = quantile_edges(reference, 10)
    assert shares(reference, edges) == pytest.approx(np.full(10, 0.1), abs=1e-3)
    assert shares(reference + 100, edges)[-1] == 1.0  # beyond the range: the open last bin


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_binned_bootstrap_noise_agrees_with_the_naive_resampling_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.gamma(2.0, 1.5, 4000)
    detector = WassersteinDetector.fit(reference)
    naive = [stats.wasserstein_distance(reference, rng.choice(reference, 1500))
             for _ in range(1500)]
    ours = detector.noise(1500, replicates=4000, quantile=0.9, seed=seed, two_sample=False)
    assert ours == pytest.approx(np.quantile(naive, 0.9), rel=0.1)


def test_the_wasserstein_detector_scores_in_the_reference_units() -> None:
    rng = np.random.default_rng(2)
    detector = WassersteinDetector.fit(rng.normal(0, 2, 20_000))
    assert detector.score(rng.normal(0.5, 2, 20_000)) == pytest.approx(0.5, abs=0.05)
    assert detector.spread == pytest.approx(2, rel=0.02)


def test_the_category_detector_counts_unseen_categories_as_moved_mass() -> None:
    detector = CategoryDetector.fit({"a": 50, "b": 50})
    assert detector.score({"a": 50, "b": 50}) == 0.0
    assert detector.score({"a": 50, "c": 50}) == pytest.approx(0.5)
    assert 0 < detector.noise(100, quantile=0.99) < 0.2


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_two_sample_noise_agrees_with_resampling_both_sides(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = rng.normal(0, 1, 3000)
    detector = WassersteinDetector.fit(reference)
    naive = [stats.wasserstein_distance(rng.choice(reference, 3000), rng.choice(reference, 800))
             for _ in range(1500)]
    ours = detector.noise(800, replicates=4000, quantile=0.9, seed=seed)
    assert ours == pytest.approx(np.quantile(naive, 0.9), rel=0.1)


def test_a_detector_used_again_draws_the_same_noise_as_a_fresh_one() -> None:
    """The reference's draws kept from a second use on change nothing that follows them: each
    call equals the same call on a detector that never drew before."""
    reference = np.random.default_rng(3).gamma(2.0, 1.0, 30_000)
    kept = WassersteinDetector.fit(reference, grid=1500)
    calls = [(40_000, 0), (41_000, 0), (39_500, 0), (40_000, 7), (40_000, 7), (500, 0)]
    for size, seed in calls:
        fresh = WassersteinDetector.fit(reference, grid=1500)
        assert np.array_equal(kept.bootstrap(size, 300, seed),
                              fresh.bootstrap(size, 300, seed))
    # both seeds were drawn more than once: both draws kept, and used from then on
    assert all(isinstance(kept.reference_draws[(300, seed)], tuple) for seed in (0, 7))

@settings(deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(0.01, 100)), min_size=2,
                max_size=200), samples)
def test_the_weighted_wasserstein_matches_scipy(
        reference: list[tuple[float, float]], current: list[float]) -> None:
    values, weights = (np.array(x) for x in zip(*reference, strict=True))
    detector = WassersteinDetector.fit(values)  # unsorted: weights follow the given order
    expected = stats.wasserstein_distance(values, current, u_weights=weights)
    assert detector.score(current, weights) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 1000))
def test_weighted_noise_agrees_with_resampling_the_weighted_reference(seed: int) -> None:
    """Half the reference is one stratum, half another; the window is 90% the first. The
    noise of a window drawn from the reweighted reference matches the naive loop."""
    rng = np.random.default_rng(seed)
    stratum = np.repeat([0, 1], 2000)
    reference = np.where(stratum == 0, rng.normal(0, 1, 4000), rng.gamma(2, 1.5, 4000) + 3)
    weights = rake([stratum], [[0.9, 0.1]])
    detector = WassersteinDetector.fit(reference)
    chance = weights / weights.sum()
    naive = [stats.wasserstein_distance(reference, rng.choice(reference, 800, p=chance),
                                        u_weights=weights) for _ in range(1500)]
    ours = np.quantile(detector.bootstrap(800, 4000, seed, two_sample=False,
                                          weights=weights), 0.9)
    assert ours == pytest.approx(np.quantile(naive, 0.9), rel=0.1)
    # two-sample: the reweighted reference is worth its effective size, not its rows
    both = [stats.wasserstein_distance(
        *(rng.choice(reference, size, p=chance) for size in (int(effective_size(weights)), 800)))
        for _ in range(1500)]
    ours_both = np.quantile(detector.bootstrap(800, 4000, seed, weights=weights), 0.9)
    assert ours_both == pytest.approx(np.quantile(both, 0.9), rel=0.1)


def test_raking_meets_every_margin_and_keeps_the_seed_s_odds_ratio() -> None:
    """A 2x2 seed of counts [[1, 1], [1, 2]] raked to halves on both margins: IPF keeps the
    seed's odds ratio (2), so the corner cells hold sqrt(2) / (1 + sqrt(2)) / 2 each."""
    rows = np.array([0, 0, 1, 1, 1])
    cols = np.array([0, 1, 0, 1, 1])
    weights = rake([rows, cols], [[0.5, 0.5], [0.5, 0.5]])
    cell = np.zeros((2, 2))
    np.add.at(cell, (rows, cols), weights / weights.sum())
    assert cell.sum(axis=1) == pytest.approx([0.5, 0.5], abs=1e-9)
    assert cell.sum(axis=0) == pytest.approx([0.5, 0.5], abs=1e-9)
    corner = np.sqrt(2) / (1 + np.sqrt(2)) / 2
    assert cell[0, 0] == pytest.approx(corner, abs=1e-9)
    assert cell[0, 0] * cell[1, 1] / (cell[0, 1] * cell[1, 0]) == pytest.approx(2.0)


def test_raking_renormalises_over_present_codes_and_zeroes_codes_not_targeted() -> None:
    """Code 3 has no row, so the targets become (1/3, 0, 2/3) over codes 0-2; the row of
    code 1 is not wanted at all."""
    weights = rake([[0, 0, 1, 2]], [[0.25, 0.0, 0.5, 0.25]])
    assert weights.tolist() == pytest.approx([2 / 3, 2 / 3, 0.0, 8 / 3])


def test_noise_of_a_small_window_on_a_large_reference_agrees_with_resampling() -> None:
    """300 rows against 30,000 in the reference: the grid is merged to what 300 rows
    resolve, and the noise still matches the naive loop (a little above it, never below)."""
    rng = np.random.default_rng(5)
    reference = rng.gamma(2.0, 1.5, 30_000)
    detector = WassersteinDetector.fit(reference, grid=1500)
    naive = [stats.wasserstein_distance(rng.choice(reference, 30_000), rng.choice(reference, 300))
             for _ in range(1500)]
    ours = np.quantile(detector.bootstrap(300, 4000), 0.99)
    assert np.quantile(naive, 0.99) * 0.97 <= ours <= np.quantile(naive, 0.99) * 1.12
