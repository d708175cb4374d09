"""Alert quality on the seed scenario: how fast the planted failure is caught, and how quiet
the monitor stays without one. Run by hand:

    python benchmarks/alert_quality.py                       # 500,000 predictions/day
    python benchmarks/alert_quality.py --per-day 40000 --seeds 101

For each seed: 42 days with a 23-point collapse in a cell of about 250 predictions a day from
day 28, replayed day by day; then 60 days with no failure but benign input drift from day 25
(a large customer onboards, amounts and languages shift). The seeds differ from the tests'.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from hindsight.demo import run_demo
from hindsight.jobs.evaluation import Incident, evaluate
from hindsight.simulate import Scenario


def replay(directory: Path, scenario: Scenario) -> tuple[list[str], float]:
    started = time.perf_counter()
    if directory.exists():
        shutil.rmtree(directory)
    result = run_demo(directory, scenario)
    seconds = time.perf_counter() - started
    incidents = []
    if scenario.failure_day is not None:
        incidents = [Incident(segment=dict(scenario.failure_segment), start=scenario.failure_day)]
    score = evaluate(result.alerts, incidents, len(result.runs))
    lines = []
    for d in score.detections:
        found = (f"detected after {d.delay_days} days on the "
                 f"{'exact' if d.exact else 'an overlapping'} segment") if d.alert else "missed"
        lines.append(f"  planted failure from {d.incident.start}: {found}")
    lines.append(f"  false alerts: {len(score.false_alerts)}")
    lines += [f"    {a.date} {a.message}" for a in score.false_alerts]
    return lines, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--null-days", type=int, default=60)
    parser.add_argument("--only-null", action="store_true",
                        help="skip the failure scenarios, run only the one without a failure")
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/alert_quality"))
    args = parser.parse_args()
    for seed in [] if args.only_null else args.seeds:
        scenario = Scenario(per_day=args.per_day, days=42, failure_start=28, seed=seed)
        lines, seconds = replay(args.dir / f"failure-{seed}", scenario)
        print(f"seed {seed}, {args.per_day:,}/day, failure: ({seconds:.0f} s)")
        print("\n".join(lines), flush=True)
    null = Scenario(per_day=args.per_day, days=args.null_days, failure_start=None,
                    benign_drift_start=25, seed=args.seeds[0] + 1000)
    lines, seconds = replay(args.dir / "benign", null)
    print(f"seed {null.seed}, {args.per_day:,}/day, {args.null_days} days, no failure, "
          f"benign drift from day 25: ({seconds:.0f} s)")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
