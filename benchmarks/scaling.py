"""Benchmark: the daily job at growing volume (default 50,000, 500,000 and 5,000,000
predictions a day, 21-day label join), time and peak memory, beside the bare DuckDB query.

    python benchmarks/scaling.py                         # ~25 min to simulate 5 M x 21 days
    python benchmarks/scaling.py --sizes 50000 500000

Each size's store is simulated once into ``--dir/<size>`` and reused. Every measurement is a
fresh process (``daily_job.py --measure``), alternating: the job as it runs daily (from the
counts the day before's run carried), the job with nothing carried, the bare query. Growth no
faster than linear shows as flat or falling seconds and MiB per million rows of the window
(of the job with nothing carried: it reads the whole window).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from child import in_own_process
from daily_job import carry_day_before, prepare

HERE = Path(__file__).resolve().parent
DAYS = 21


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 500_000, 5_000_000])
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=HERE / ".data" / "scaling")
    args = parser.parse_args()
    print(f"daily job, {args.days}-day label window, median of {args.repeat}:")
    print(f"  {'per day':>10} {'window rows':>12} {'job s':>8} {'cold s':>8} {'bare s':>8} "
          f"{'ratio':>6} {'cold':>6} {'job MiB':>8} {'cold MiB':>8} {'bare MiB':>8} "
          f"{'s / M rows':>10} {'MiB / M rows':>12}")
    for size in args.sizes:
        config_file = prepare((args.dir / str(size)).resolve(), size, args.days)
        carry_day_before(config_file)
        found: dict[str, list[dict[str, float]]] = {"job": [], "job-cold": [], "bare": []}
        for _ in range(args.repeat):
            for kind in found:
                found[kind].append(json.loads(in_own_process(
                    HERE / "daily_job.py", "--measure", kind, "--dir", str(config_file.parent))))
        seconds = {k: statistics.median(r["seconds"] for r in v) for k, v in found.items()}
        peak = {k: max(r["peak_mib"] for r in v) for k, v in found.items()}
        millions = size * min(args.days, DAYS) / 1e6
        print(f"  {size:>10,} {size * min(args.days, DAYS):>12,} {seconds['job']:>8.2f} "
              f"{seconds['job-cold']:>8.2f} {seconds['bare']:>8.2f} "
              f"{seconds['job'] / seconds['bare']:>6.2f} "
              f"{seconds['job-cold'] / seconds['bare']:>6.2f} {peak['job']:>8.0f} "
              f"{peak['job-cold']:>8.0f} {peak['bare']:>8.0f} "
              f"{seconds['job-cold'] / millions:>10.3f} {peak['job-cold'] / millions:>12.1f}",
              flush=True)


if __name__ == "__main__":
    main()
