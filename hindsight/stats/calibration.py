"""Label-free performance estimation: calibrate the model's confidence on the labelled
reference, then the expected accuracy of unlabelled predictions is the mean calibrated
probability of being right (in the manner of confidence-based performance estimation).

It is a leading indicator, not a measurement: it assumes the relation between confidence and
correctness holds, which is exactly what a silent failure can break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from hindsight.stats.drift import quantile_edges
from hindsight.stats.intervals import FloatArray


def isotonic_means(means: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """Weighted non-decreasing fit to ``means`` (pool adjacent violators).

    >>> isotonic_means([0.2, 0.5, 0.4, 0.9], [1, 1, 1, 1]).tolist()
    [0.2, 0.45, 0.45, 0.9]
    """
    values = [float(v) for v in np.asarray(means, np.float64)]
    w = [float(x) for x in np.asarray(weights, np.float64)]
    blocks: list[list[float]] = []  # [value, weight, count]
    for value, weight in zip(values, w, strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            total = w1 + w2
            merged = (v1 * w1 + v2 * w2) / total if total else (v1 + v2) / 2
            blocks.append([merged, total, c1 + c2])
    return np.asarray([b[0] for b in blocks for _ in range(int(b[2]))], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ConfidenceCalibration:
    """P(correct | score) as a step function over the reference's score quantiles."""

    edges: FloatArray  # inner edges; len(edges) + 1 steps
    probability: FloatArray  # per step, non-decreasing in the score

    @classmethod
    def fit(cls, scores: npt.ArrayLike, correct: npt.ArrayLike, bins: int = 20) -> Self:
        s = np.asarray(scores, np.float64)
        hit = np.asarray(correct, np.float64)
        if s.size < bins * 10:
            raise ValueError(f"calibration needs at least {bins * 10} labelled scores, got "
                             f"{s.size}")
        edges = quantile_edges(s, bins)
        step = np.searchsorted(edges, s, side="right")
        counts = np.bincount(step, minlength=edges.size + 1).astype(np.float64)
        hits = np.bincount(step, hit, minlength=edges.size + 1)
        means = np.where(counts > 0, hits / np.maximum(counts, 1), 0.0)
        return cls(edges, isotonic_means(means, counts))

    def estimate(self, scores: npt.ArrayLike) -> FloatArray:
        """The calibrated probability that each prediction is right."""
        return np.asarray(self.probability[np.searchsorted(
            self.edges, np.asarray(scores, np.float64), side="right")], dtype=np.float64)

    @property
    def lower_edges(self) -> FloatArray:
        """Each step's lower bound (-inf for the first), for an as-of join in SQL."""
        return np.concatenate([[-np.inf], self.edges])
