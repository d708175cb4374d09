"""Benchmark: the bootstrapped Wasserstein threshold against the naive scipy loop.

    python benchmarks/bootstrap.py                          # 500,000 vs 500,000, 1,000 reps
    python benchmarks/bootstrap.py --naive-replicates 1000  # the naive loop in full (~5 min)

The naive loop resamples the current window's size from the reference and calls
scipy.stats.wasserstein_distance each time; hindsight draws Poisson counts over the reference's
quantile grid. Both estimate the same 99th percentile (compared with the reference taken as
the truth, as the naive loop does); the naive loop's time is measured on its own replicates
and scaled to the same count. Both run in this one process, alternating.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import stats

from hindsight.stats.drift import WassersteinDetector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--naive-replicates", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reference = rng.gamma(2.0, 1.5, args.rows)
    ours_s, naive_s, ours_q, naive_q, ours_m, naive_m = [], [], [], [], [], []
    for i in range(args.repeat):
        started = time.perf_counter()
        detector = WassersteinDetector.fit(reference)
        noise = detector.bootstrap(args.rows, args.replicates, seed=i, two_sample=False)
        ours_q.append(float(np.quantile(noise, 0.99)))
        ours_s.append(time.perf_counter() - started)
        ours_m.append(float(np.median(noise)))
        started = time.perf_counter()
        naive = [stats.wasserstein_distance(reference, rng.choice(reference, args.rows))
                 for _ in range(args.naive_replicates)]
        naive_s.append((time.perf_counter() - started) * args.replicates / args.naive_replicates)
        naive_q.append(float(np.quantile(naive, 0.99)))
        naive_m.append(float(np.median(naive)))
    ours, loop = statistics.median(ours_s), statistics.median(naive_s)
    print(f"99th percentile of W1 noise, {args.rows:,} vs {args.rows:,}, "
          f"{args.replicates:,} replicates, median of {args.repeat}:")
    print(f"  hindsight (fit + Poisson bootstrap) : {ours:8.3f} s   "
          f"threshold {statistics.median(ours_q):.6f}")
    print(f"  naive scipy loop (scaled from {args.naive_replicates}) : {loop:8.1f} s   "
          f"threshold {statistics.median(naive_q):.6f}")
    print(f"  speed-up                            : {loop / ours:8.0f} x")
    gap = statistics.median(ours_q) / statistics.median(naive_q) - 1
    print(f"  threshold difference                : {gap:+8.1%} "
          f"(the naive estimate's own noise at {args.naive_replicates} replicates included)")
    low, high = quantile_interval(np.asarray(naive), 0.99)
    print(f"  the naive threshold's own 95% interval: {low / naive_q[-1] - 1:+.1%} to "
          f"{high / naive_q[-1] - 1:+.1%} of its estimate (order statistics, last repeat)")
    middle = statistics.median(ours_m) / statistics.median(naive_m) - 1
    print(f"  median of the noise, difference     : {middle:+8.1%} (the steadier comparison)")


def quantile_interval(samples: np.ndarray, q: float,
                      confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for a quantile: the order statistics whose ranks bracket
    it with binomial probability ``confidence``."""
    ordered = np.sort(samples)
    tail = (1 - confidence) / 2
    low = int(stats.binom.ppf(tail, ordered.size, q))
    high = int(stats.binom.ppf(1 - tail, ordered.size, q))
    return float(ordered[max(low - 1, 0)]), float(ordered[min(high, ordered.size - 1)])


if __name__ == "__main__":
    main()
