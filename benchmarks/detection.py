"""Benchmark: how long a break of the serving path goes unpaged, per schedule.

    python benchmarks/detection.py --per-day 40000

Simulates three days of day-and-night traffic in which the serving path starts returning
garbage at ``--break-at`` (hours after midnight, UTC) on the second day, replays them with the
daily run alone and with intra-day checks at each ``--every``, and reports, for each, the
instant of the first page and its delay after the break. Every schedule must page on the break
(asserted) and nothing before it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hindsight.config import parse_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config


def first_page(per_day: int, broken_at: datetime, every: str | None) -> datetime:
    folder = Path(tempfile.mkdtemp(prefix="hindsight-detection-"))
    try:
        raw = demo_config(str(folder / "store"))
        raw["drift"] = {"every": every} if every else {}
        scenario = Scenario(per_day=per_day, days=3, failure_start=None, daily_cycle=True,
                            break_at=broken_at)
        with Monitor(parse_config(raw, source="detection")) as monitor:
            simulator = Simulator(scenario)
            monitor.log_reference(simulator.reference())
            for day in simulator.days():
                monitor.log_predictions(day.predictions)
            monitor.backfill(scenario.start, scenario.end, every=monitor.config.drift.every)
            pages = [a for a in monitor.alerts()
                     if a.kind == "prediction_drift" and a.state == "opened"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert pages, f"{every or 'daily'}: the break was never paged"
    assert pages[0].at is not None and pages[0].at > broken_at, (
        f"{every or 'daily'}: paged at {pages[0].at}, before the break")
    return pages[0].at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=40_000)
    parser.add_argument("--break-at", type=float, nargs="+", default=[9.0, 22.5],
                        help="hours after midnight (UTC) of the second day")
    parser.add_argument("--every", nargs="+", default=["1h", "15m"])
    args = parser.parse_args()
    second_day = Scenario().start + timedelta(days=1)
    print(f"{args.per_day:,} predictions a day with a daily cycle; the serving path breaks "
          "on the second day:")
    for hours in args.break_at:
        broken_at = datetime.combine(second_day, datetime.min.time(), UTC) + timedelta(
            hours=hours)
        for every in [None, *args.every]:
            paged = first_page(args.per_day, broken_at, every)
            delay = (paged - broken_at).total_seconds() / 3600
            label = f"checks every {every}" if every else "daily run only"
            print(f"  break at {broken_at:%H:%M}, {label:18s}: paged at "
                  f"{paged:%Y-%m-%d %H:%M} UTC, {delay:5.2f} h after the break")


if __name__ == "__main__":
    main()
