"""Distances between a reference sample and a current one, and their bootstrap noise.

Detectors follow one shape: ``fit`` learns everything from the reference (sorted values, bin
edges, shares) into a frozen object; ``score`` measures a current sample against it and
never changes it; ``noise`` bootstraps the reference against itself at the current sample's
size. Bins come only from the reference, so tonight's number compares with last week's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from hindsight.stats.intervals import FloatArray

PSI_FLOOR = 1e-4
COARSEST_NOISE_GRID = 200  # bins; a current sample of n rows uses max(this, n / 4)


def wasserstein(u: npt.ArrayLike, v: npt.ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance between two one-dimensional samples.

    >>> wasserstein([0.0, 1.0, 3.0], [5.0, 6.0, 8.0])
    5.0
    """
    a, b = np.sort(np.asarray(u, np.float64)), np.sort(np.asarray(v, np.float64))
    return _sorted_distances(a, b)[0]


def _sorted_distances(a: FloatArray, b: FloatArray) -> tuple[float, float]:
    """(Wasserstein-1, KS) of two sorted samples, from one merge of the two: both CDFs are
    running counts along the merged order (a stable argsort of two sorted runs is a linear
    merge)."""
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    points = both[order]
    from_a = order < a.size
    gap = np.cumsum(from_a) / a.size - np.cumsum(~from_a) / b.size
    w1 = float(np.sum(np.abs(gap[:-1]) * np.diff(points)))
    # within a run of equal values the running counts are partial: read the CDFs at its end
    run_ends = np.append(points[1:] != points[:-1], True)
    return w1, float(np.max(np.abs(gap[run_ends])))


def _weighted_distance(a: FloatArray, weights: FloatArray, b: FloatArray) -> float:
    """Wasserstein-1 between sorted ``a`` carrying ``weights`` and sorted ``b`` (equal
    weights), from one merge: the CDF gap is a running sum of signed masses."""
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    mass = np.concatenate([weights / weights.sum(), np.full(b.size, -1.0 / b.size)])[order]
    gap = np.cumsum(mass)
    return float(np.sum(np.abs(gap[:-1]) * np.diff(both[order])))


def effective_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size of weighted rows: what a weighted reference is worth.

    >>> effective_size([1.0, 1.0, 1.0, 1.0])
    4.0
    >>> effective_size([3.0, 1.0, 0.0, 0.0])
    1.6
    """
    w = np.asarray(weights, np.float64)
    return float(w.sum() ** 2 / np.sum(w * w)) if np.any(w > 0) else 0.0


def rake(codes: Sequence[npt.ArrayLike], targets: Sequence[npt.ArrayLike],
         iterations: int = 100, tolerance: float = 1e-10) -> FloatArray:
    """Row weights (summing to the row count) under which, for every column, the weighted
    share of each code matches the target shares: iterative proportional fitting (raking).
    ``codes[j]`` holds column j's code per row (0..len(targets[j]) - 1). A target share on a
    code no row has cannot be met: each column's targets are renormalised over the codes
    present, and rows of a code whose target is zero get weight zero.

    With one column this is post-stratification: each row weighs target / observed share.

    >>> rake([[0, 0, 0, 1]], [[0.5, 0.5]]).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    columns = [np.asarray(c, np.int64) for c in codes]
    n = columns[0].size if columns else 0
    weights = np.ones(n)
    aims = []
    for column, target in zip(columns, targets, strict=True):
        aim = np.asarray(target, np.float64).copy()
        present = np.bincount(column, minlength=aim.size) > 0
        aim[~present] = 0.0
        if aim.sum() <= 0:
            return np.zeros(n)  # nothing the target asks for is in the rows
        aims.append(aim / aim.sum())
    for _ in range(iterations):
        worst = 0.0
        for column, aim in zip(columns, aims, strict=True):
            have = np.bincount(column, weights, minlength=aim.size) / max(weights.sum(), 1e-300)
            worst = max(worst, float(np.max(np.abs(have - aim))))
            ratio = np.divide(aim, have, out=np.zeros_like(aim), where=have > 0)
            weights = weights * ratio[column]
        if worst < tolerance:
            break
    total = weights.sum()
    return np.asarray(weights * n / total if total > 0 else weights, np.float64)


def ks_statistic(u: npt.ArrayLike, v: npt.ArrayLike) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two CDFs.

    >>> ks_statistic([1, 2, 3, 4], [3, 4, 5, 6])
    0.5
    """
    a, b = np.sort(np.asarray(u, np.float64)), np.sort(np.asarray(v, np.float64))
    return _sorted_distances(a, b)[1]


def numeric_drift(reference: npt.ArrayLike, current: npt.ArrayLike,
                  bins: int = 10) -> dict[str, float]:
    """PSI over the reference's quantile bins, the KS statistic and Wasserstein-1 in reference
    standard deviations, from one sort of each sample.

    >>> {k: round(v, 3) for k, v in numeric_drift([1, 2, 3, 4], [3, 4, 5, 6], bins=2).items()}
    {'psi': 4.604, 'ks': 0.5, 'wasserstein_sd': 1.789}
    """
    return NumericReference.fit(reference, bins).compare(current)


@dataclass(frozen=True, slots=True)
class NumericReference:
    """The reference side of ``numeric_drift`` (sorted, its bins, their shares, its spread):
    fitted once, compared with each day's sample."""

    values: FloatArray
    edges: FloatArray
    shares: FloatArray
    spread: float

    @classmethod
    def fit(cls, reference: npt.ArrayLike, bins: int = 10) -> NumericReference:
        values = np.sort(np.asarray(reference, np.float64))
        edges = quantile_edges(values, bins)
        return cls(values, edges, _sorted_shares(values, edges), float(np.std(values)))

    def compare(self, current: npt.ArrayLike) -> dict[str, float]:
        b = np.sort(np.asarray(current, np.float64))
        w1, ks = _sorted_distances(self.values, b)
        return {
            "psi": psi(self.shares, _sorted_shares(b, self.edges)),
            "ks": ks,
            "wasserstein_sd": w1 / self.spread if self.spread > 0 else 0.0,
        }


def _sorted_shares(values: FloatArray, edges: FloatArray) -> FloatArray:
    """``shares`` of sorted values: bin boundaries by binary search, no pass over the data.
    A value on an edge belongs to the bin above it, as in ``shares``."""
    cuts = np.searchsorted(values, edges, side="left")
    counts = np.diff(np.concatenate([[0], cuts, [values.size]]))
    return np.asarray(counts / max(values.size, 1), dtype=np.float64)


def quantile_edges(reference: npt.ArrayLike, bins: int = 10) -> FloatArray:
    """Inner bin edges at the reference's quantiles (duplicates dropped): the outer bins are
    open, so a current value beyond the reference's range still lands in a bin.

    >>> quantile_edges([1, 2, 3, 4, 5, 6, 7, 8], bins=4).tolist()
    [2.75, 4.5, 6.25]
    """
    values = np.asarray(reference, np.float64)
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.asarray(np.unique(inner), dtype=np.float64)


def shares(values: npt.ArrayLike, edges: npt.ArrayLike) -> FloatArray:
    """Share of ``values`` in each bin defined by inner ``edges`` (len(edges) + 1 bins).

    >>> shares([1, 2, 3, 10], [2.5]).tolist()
    [0.5, 0.5]
    """
    data = np.asarray(values, np.float64)
    counts = np.bincount(np.searchsorted(np.asarray(edges, np.float64), data, side="right"),
                         minlength=np.size(edges) + 1)
    return np.asarray(counts / max(data.size, 1), dtype=np.float64)


def psi(expected: Sequence[float] | FloatArray, actual: Sequence[float] | FloatArray,
        floor: float = PSI_FLOOR) -> float:
    """Population stability index between two sets of bin shares.

    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.9, 0.1], [0.5, 0.5]), 3)
    0.879
    """
    e = np.maximum(np.asarray(expected, np.float64), floor)
    a = np.maximum(np.asarray(actual, np.float64), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon(p: Sequence[float] | FloatArray, q: Sequence[float] | FloatArray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two distributions.

    >>> jensen_shannon([1.0, 0.0], [0.0, 1.0])
    1.0
    >>> jensen_shannon([0.3, 0.7], [0.3, 0.7])
    0.0
    """
    a = np.asarray(p, np.float64) / np.sum(p)
    b = np.asarray(q, np.float64) / np.sum(q)
    m = (a + b) / 2

    def kl(x: FloatArray) -> float:
        nonzero = x > 0
        return float(np.sum(x[nonzero] * np.log2(x[nonzero] / m[nonzero])))

    return float(np.sqrt(max((kl(a) + kl(b)) / 2, 0.0)))


def total_variation(p: Sequence[float] | FloatArray, q: Sequence[float] | FloatArray) -> float:
    """Total variation distance: the share of mass that would have to move.

    >>> total_variation([0.5, 0.5], [0.7, 0.3])
    0.2
    """
    return round(float(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum()
                       / 2), 12)


def tail_quantile(samples: npt.ArrayLike, level: float) -> float:
    """The ``level`` quantile of bootstrap samples; beyond what they resolve (fewer than five
    samples above it), extrapolated from a log-normal fit, as distances are skewed right.

    >>> round(tail_quantile(np.arange(1.0, 1001.0), 0.99), 2)
    990.01
    >>> samples = np.random.default_rng(0).lognormal(0.0, 0.5, 1000)
    >>> round(tail_quantile(samples, 0.99999), 1)   # exact: exp(0.5 * 4.265) = 8.4
    7.8
    """
    values = np.asarray(samples, np.float64)
    if (1.0 - level) * values.size >= 5 or np.any(values <= 0):
        return float(np.quantile(values, level))
    logs = np.log(values)
    return float(np.exp(logs.mean() + NormalDist().inv_cdf(level) * logs.std()))


@dataclass(frozen=True, slots=True)
class WassersteinDetector:
    """Wasserstein-1 against a numeric reference, with a binned bootstrap of its noise.

    The bootstrap draws, for each replicate, the current window's size from the reference's
    fine quantile bins (Poisson counts per bin instead of a resample and a sort), and measures
    the distance between bin CDFs: 1,000 replicates at 500,000 rows take milliseconds.
    """

    reference: FloatArray  # sorted
    edges: FloatArray  # fine quantile grid of the reference, outer edges included
    cdf: FloatArray  # the reference's CDF at the inner edges
    spread: float  # the reference's standard deviation, for effect sizes
    order: npt.NDArray[np.int64]  # the sorting permutation of the values as given to fit
    bins: npt.NDArray[np.int64]  # each sorted value's bin on the grid
    # The reference's side of a two-sample bootstrap on the fine grid is the same draw every
    # time (same counts, same seed): a detector kept across runs (a backfill's days, the
    # service's checks) keeps it from its second use on, so a run that uses it once holds no
    # more memory. By (replicates, seed): the counts, and the generator's state after them.
    reference_draws: dict[tuple[int, int], bool | tuple[npt.NDArray[np.integer], Any]] = field(
        default_factory=dict, compare=False, repr=False)

    @classmethod
    def fit(cls, reference: npt.ArrayLike, grid: int = 2000) -> Self:
        given = np.asarray(reference, np.float64)
        order = np.argsort(given, kind="stable")
        values = given[order]
        if values.size < 2:
            raise ValueError("the reference needs at least two values")
        edges = np.unique(np.quantile(values, np.linspace(0, 1, grid + 1)))
        cdf = np.searchsorted(values, edges[1:-1], side="right") / values.size
        bins = np.searchsorted(edges[1:-1], values, side="left")
        return cls(values, edges, cdf, float(np.std(values)), order, bins)

    def score(self, current: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> float:
        """The distance of ``current`` from the reference; with ``weights`` (one per
        reference value, in the order given to ``fit``), from the reference so weighted."""
        now = np.sort(np.asarray(current, np.float64))
        if weights is None:
            return _sorted_distances(self.reference, now)[0]
        return _weighted_distance(self.reference,
                                  np.asarray(weights, np.float64)[self.order], now)

    def noise(self, size: int, replicates: int = 1000, quantile: float = 0.99,
              seed: int = 0, two_sample: bool = True) -> float:
        """The ``quantile`` of the bootstrapped distances: at 0.99, the score that noise
        alone reaches once in a hundred draws."""
        return tail_quantile(self.bootstrap(size, replicates, seed, two_sample), quantile)

    def bootstrap(self, size: int, replicates: int = 1000, seed: int = 0,
                  two_sample: bool = True, weights: npt.ArrayLike | None = None) -> FloatArray:
        """Distances a current sample of ``size`` shows from noise alone. ``two_sample``: the
        reference is itself a sample, so draw it afresh too (its own noise is part of any
        comparison; a weighted reference is worth its effective size); otherwise compare
        with the reference as if it were the truth. ``weights`` as in ``score``."""
        if weights is None:
            probabilities = np.diff(np.concatenate([[0.0], self.cdf, [1.0]]))
            reference_size, base_cdf = self.reference.size, self.cdf
        else:
            ordered = np.asarray(weights, np.float64)[self.order]
            probabilities = np.bincount(self.bins, ordered, minlength=self.edges.size - 1)
            probabilities = probabilities / probabilities.sum()
            reference_size = max(int(effective_size(ordered)), 1)
            base_cdf = np.cumsum(probabilities)[:-1]
        edges = self.edges
        bins = max(COARSEST_NOISE_GRID, size // 4)
        if bins < probabilities.size:
            # A small current sample cannot resolve the fine grid: merged bins cost a fraction
            # of the draws and err on the high side (measured: +2-5% on the 99% quantile).
            starts = np.unique(np.linspace(0, probabilities.size, bins + 1).astype(np.int64))
            probabilities = np.add.reduceat(probabilities, starts[:-1])
            edges = edges[starts]
            base_cdf = np.cumsum(probabilities)[:-1]
        rng = np.random.default_rng(seed)

        def drawn(n: int) -> npt.NDArray[np.int64]:
            # Poisson bootstrap: independent Poisson counts per bin, normalised by their total,
            # match multinomial resampling for large n at a fraction of the cost.
            return rng.poisson(n * probabilities, (replicates, probabilities.size))

        if not two_sample:
            base = base_cdf
        elif weights is None and probabilities.size == self.edges.size - 1:
            base = _cdf(self._reference_draw(rng, lambda: drawn(reference_size), replicates,
                                             seed))
        else:
            base = _cdf(drawn(reference_size))
        gap = np.abs(_cdf(drawn(size)) - base)
        # The trapezoid rule over the grid: both CDFs are 0 at the lowest edge and 1 at the
        # highest, so the gap is 0 at both ends (a left sum overstates skewed tails by ~3%);
        # each inner edge's gap then weighs half the widths of the bins on either side.
        widths = np.diff(edges)
        return np.asarray(gap @ ((widths[:-1] + widths[1:]) / 2), np.float64)

    def _reference_draw(self, rng: np.random.Generator,
                        draw: Callable[[], npt.NDArray[np.integer]], replicates: int,
                        seed: int) -> npt.NDArray[np.integer]:
        """``draw()``, the first draw from ``rng`` (fresh from ``seed``), or the one kept;
        either way ``rng`` is left as ``draw()`` leaves it, so what follows is the same."""
        key = (replicates, seed)
        kept = self.reference_draws.get(key)
        if isinstance(kept, tuple):
            counts, state = kept
            rng.bit_generator.state = state
            return counts
        counts = draw()
        if kept is None:  # the first use: remember only that there was one
            self.reference_draws[key] = True
        else:  # the counts are small: their narrowest type (often a byte) is exact
            self.reference_draws[key] = (counts.astype(np.min_scalar_type(counts.max())),
                                         rng.bit_generator.state)
        return counts


def _cdf(counts: npt.NDArray[np.integer]) -> FloatArray:
    """Each replicate's CDF at the inner edges, from its counts per bin."""
    cumulative = np.cumsum(counts, axis=1, dtype=np.float64)
    return np.asarray(cumulative[:, :-1] / cumulative[:, -1:], np.float64)


@dataclass(frozen=True, slots=True)
class CategoryDetector:
    """Total variation between category shares, with a multinomial bootstrap of its noise.
    Works on counts per category, so a caller can count millions of rows however it likes."""

    categories: tuple[str, ...]
    expected: FloatArray

    @classmethod
    def fit(cls, counts: Mapping[str, float]) -> Self:
        names = tuple(sorted(counts))
        values = np.array([counts[n] for n in names], dtype=np.float64)
        if values.sum() <= 0:
            raise ValueError("the reference has no categories")
        return cls(names, values / values.sum())

    def current_shares(self, counts: Mapping[str, int]) -> tuple[FloatArray, float]:
        """Shares over the reference's categories, and the share of unseen categories."""
        total = float(sum(counts.values()))
        if total <= 0:
            return np.zeros(len(self.categories)), 0.0
        known = np.array([counts.get(n, 0) for n in self.categories], dtype=np.float64)
        return known / total, float(1.0 - known.sum() / total)

    def score(self, counts: Mapping[str, int]) -> float:
        """
        >>> CategoryDetector.fit({"a": 50, "b": 50}).score({"a": 50, "c": 50})
        0.5
        """
        found, unseen = self.current_shares(counts)
        return float((np.abs(found - self.expected).sum() + unseen) / 2)

    def noise(self, size: int, replicates: int = 1000, quantile: float = 0.99,
              seed: int = 0) -> float:
        return tail_quantile(self.bootstrap(size, replicates, seed), quantile)

    def bootstrap(self, size: int, replicates: int = 1000, seed: int = 0,
                  reference_size: int | None = None) -> FloatArray:
        """Total variation from noise alone; with ``reference_size``, the reference's own
        sampling noise is drawn too."""
        rng = np.random.default_rng(seed)
        current = rng.multinomial(size, self.expected, replicates) / size
        base = (rng.multinomial(reference_size, self.expected, replicates) / reference_size
                if reference_size else self.expected)
        return np.asarray(np.abs(current - base).sum(axis=1) / 2, np.float64)
