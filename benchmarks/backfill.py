"""Benchmark: a backfill that derives the reference once against one that derives it per day.

    python benchmarks/backfill.py --per-day 40000 --days 60 --repeat 1

One store of ``--days`` simulated days. Two ways to replay every day of it, each in a fresh
process on its own copy of the store, alternating:

- ``backfill``: ``hindsight backfill`` (``Monitor.backfill``): one engine, and the reference's
  rows, calibration, counts and drift detectors derived once for all the days;
- ``per-day``: a fresh ``Monitor`` for each day, which derives them again each day and counts
  its window from the counts the day before's run carried in the store (what a scheduler
  running ``hindsight run`` day by day does, minus the process start).

Both must store the same metrics, alerts and drift (floats within 1e-12): the benchmark fails
otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from child import in_own_process
from daily_job import prepare
from memory import own_peak_mib

HERE = Path(__file__).resolve()
MODES = ("backfill", "per-day")


def measure(mode: str, config_file: Path, days: int) -> dict[str, float]:
    from hindsight.cli import spare_pandas_probe
    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    spare_pandas_probe()  # as the ``hindsight`` command does
    config = load_config(config_file)
    with Monitor(config) as probe:
        last = probe.store.partitions(Table.PREDICTIONS)[-1]
    first = last - timedelta(days=days - 1)
    started = time.perf_counter()
    if mode == "backfill":
        with Monitor(config) as monitor:
            monitor.backfill(first, last)
    else:
        for offset in range(days):
            with Monitor(config) as monitor:
                monitor.run(first + timedelta(days=offset))
    return {"seconds": time.perf_counter() - started, "peak_mib": own_peak_mib()}


def results(store: Path) -> dict[str, pa.Table]:
    from hindsight.store.partitions import Store, Table

    opened = Store.open(store)
    found = {}
    for table in (Table.METRICS, Table.ALERTS, Table.DRIFT):
        files = opened.files(table)
        found[table.value] = pa.concat_tables([opened.read(f.path) for f in files])
    return found


def agree(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> int:
    rows = 0
    for name, left in a.items():
        right = b[name]
        assert left.schema == right.schema and left.num_rows == right.num_rows, name
        for column in left.column_names:
            if pa.types.is_floating(left.schema.field(column).type):
                gap = pc.max(pc.abs(pc.subtract(pc.fill_null(left[column], 0.0),
                                                pc.fill_null(right[column], 0.0)))).as_py()
                assert (gap or 0.0) <= 1e-12, f"{name}.{column} differs by {gap}"
            else:
                assert left[column].equals(right[column]), f"{name}.{column} differs"
        rows += left.num_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/backfill"))
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, config_file, days = args.measure
        print(json.dumps(measure(mode, Path(config_file), int(days))))
        return
    base = prepare(args.dir.resolve() / "data", args.per_day, args.days)
    timings: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            copy = base.parent.parent / mode
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(base.parent, copy)
            timings[mode].append(json.loads(in_own_process(
                HERE, "--measure", mode, str(copy / base.name), str(args.days))))
    rows = agree(results(base.parent.parent / "backfill" / "store"),
                 results(base.parent.parent / "per-day" / "store"))
    print(f"{args.days} daily runs, {args.per_day:,} predictions a day; medians of "
          f"{args.repeat}; both store the same {rows:,} result rows:")
    for mode in MODES:
        seconds = statistics.median(t["seconds"] for t in timings[mode])
        peak = max(t["peak_mib"] for t in timings[mode])
        print(f"  {mode:9}: {seconds:7.2f} s   ({seconds / args.days:.2f} s a day)   "
              f"peak {peak:,.0f} MiB")
    ratio = (statistics.median(t["seconds"] for t in timings["per-day"])
             / statistics.median(t["seconds"] for t in timings["backfill"]))
    print(f"  per-day / backfill: {ratio:.2f}x")


if __name__ == "__main__":
    main()
