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

With ``--against TREE`` it times instead the backfill of this tree against the backfill of the
source tree ``TREE`` (another checkout, e.g. the code before a change), each in a fresh process
on its own copy of the store, alternating (which goes first alternates too), with their wall
and CPU time; both must store the very same metrics, alerts, drift and runs (to the bit, less
the runs' own timings):

    python benchmarks/backfill.py --per-day 40000 --days 60 --repeat 2 --against ../main
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    usage = resource.getrusage(resource.RUSAGE_SELF)
    import hindsight

    return {"seconds": time.perf_counter() - started, "peak_mib": own_peak_mib(),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "tree": str(Path(hindsight.__file__).resolve().parent.parent)}


def results(store: Path, runs: bool = False) -> dict[str, pa.Table]:
    """The results stored; ``runs``: with the runs, less their own timings."""
    from hindsight.store.partitions import Store, Table

    opened = Store.open(store)
    found = {}
    for table in (Table.METRICS, Table.ALERTS, Table.DRIFT, *([Table.RUNS] if runs else [])):
        files = opened.files(table)
        found[table.value] = pa.concat_tables([opened.read(f.path) for f in files])
    if runs:
        found[Table.RUNS.value] = found[Table.RUNS.value].drop_columns(["seconds"])
    return found


def agree(a: dict[str, pa.Table], b: dict[str, pa.Table], exact: bool = False) -> int:
    rows = 0
    for name, left in a.items():
        right = b[name]
        assert left.schema == right.schema and left.num_rows == right.num_rows, name
        for column in left.column_names:
            if pa.types.is_floating(left.schema.field(column).type) and not exact:
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
    parser.add_argument("--against", type=Path,
                        help="time this tree's backfill against that of the source tree given")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, config_file, days = args.measure
        print(json.dumps(measure(mode, Path(config_file), int(days))))
        return
    base = prepare(args.dir.resolve() / "data", args.per_day, args.days)
    if args.against is not None:
        side_by_side(base, args.days, args.repeat, args.against.resolve())
        return
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


def side_by_side(base: Path, days: int, repeat: int, before: Path) -> None:
    """This tree's backfill against ``before``'s, alternating, results asserted identical."""
    trees = {"this tree": HERE.parent.parent, f"{before}": before}
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_ in range(repeat):
        for name in list(trees)[::-1] if round_ % 2 else list(trees):
            copy = base.parent.parent / f"tree-{list(trees).index(name)}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(base.parent, copy)
            env = {**os.environ, "PYTHONPATH": str(trees[name])}
            timings[name].append(json.loads(in_own_process(
                HERE, "--measure", "backfill", str(copy / base.name), str(days), env=env)))
            assert timings[name][-1]["tree"] == str(trees[name]), timings[name][-1]["tree"]
    stores = [base.parent.parent / f"tree-{i}" / "store" for i in range(len(trees))]
    rows = agree(results(stores[0], runs=True), results(stores[1], runs=True), exact=True)
    print(f"{days} daily runs as one backfill, this tree against {before}; both store the same "
          f"{rows:,} result rows, to the bit:")
    for name, runs in timings.items():
        listed = ", ".join(f"{t['seconds']:.1f} s ({t['cpu_seconds']:.0f} CPU-s, "
                           f"{t['peak_mib']:,.0f} MiB)" for t in runs)
        print(f"  {name}: {listed}")


if __name__ == "__main__":
    main()
