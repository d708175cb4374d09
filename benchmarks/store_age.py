"""Benchmark: does a store's age show in a day's cost? The daily run and ingest on a store with a
year of history against the same store with a month, at the same daily volume.

    python benchmarks/store_age.py --per-day 20000 --repeat 3

Both stores hold the same last ``--young-days`` days (predictions and the labels that arrived
on them) and the same reference set; the old one also holds the ``--old-days`` before. They
are written straight into the Parquet layout (building a year through ingest would measure the
builder). Each measurement runs in a fresh interpreter (peak memory is its own VmHWM, not an
inherited high-water mark), alternating old and young:

- ``run``: ``hindsight run`` on the last day (21-day window). Both runs must store the same
  metrics: the benchmark fails if they differ.
- ``ingest``: the next day's predictions logged in 10 calls, into a copy of the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from child import in_own_process
from memory import own_peak_mib

HERE = Path(__file__).resolve()


def prepare(directory: Path, per_day: int, old_days: int, young_days: int) -> None:
    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.simulate import Scenario, Simulator, demo_config
    from hindsight.store.inputs import from_memory
    from hindsight.store.partitions import Store, Table
    from hindsight.store.schema import normalize_labels, normalize_predictions

    stamp = directory / "prepared.json"
    wanted = {"per_day": per_day, "old_days": old_days, "young_days": young_days}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    shutil.rmtree(directory, ignore_errors=True)
    simulator = Simulator(Scenario(per_day=per_day, days=old_days + 1, failure_start=None))
    stores = {}
    for age in ("old", "young"):
        (directory / age).mkdir(parents=True)
        (directory / age / "hindsight.yaml").write_text(yaml.safe_dump(demo_config("store")))
        with Monitor(load_config(directory / age / "hindsight.yaml")) as monitor:
            monitor.log_reference(simulator.reference())
            stores[age] = (monitor.config, Store.open(monitor.config.store))
    started = time.perf_counter()
    now = datetime.now(UTC)
    for index, day in enumerate(simulator.days()):
        if index == old_days:  # the day to ingest, kept aside
            pq.write_table(day.predictions, directory / "next-day.parquet")
            break
        for age, (config, store) in stores.items():
            if age == "young" and index < old_days - young_days:
                continue
            store.write(Table.PREDICTIONS,
                        normalize_predictions(from_memory(day.predictions), config), dt=day.day)
            if day.labels.num_rows:
                store.write(Table.LABELS,
                            normalize_labels(from_memory(day.labels), config, now), dt=day.day)
        if index % 30 == 0:
            print(f"  wrote {day.day}", file=sys.stderr, flush=True)
    print(f"prepared in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    stamp.write_text(json.dumps(wanted))


def measure(kind: str, folder: Path) -> dict[str, float]:
    from hindsight.cli import spare_pandas_probe
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    spare_pandas_probe()  # as the ``hindsight`` command does
    if kind == "ingest":
        work = folder.parent / f"{folder.name}-copy"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(folder, work)
        folder = work
    with Monitor.from_config(folder / "hindsight.yaml") as monitor:
        started = time.perf_counter()
        if kind == "run":
            monitor.run(monitor.store.partitions(Table.PREDICTIONS)[-1])
        else:
            batch = pq.read_table(folder.parent / "next-day.parquet")
            step = -(-batch.num_rows // 10)
            for start in range(0, batch.num_rows, step):
                monitor.log_predictions(batch.slice(start, step))
        seconds = time.perf_counter() - started
    peak = own_peak_mib()
    if kind == "ingest":
        shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "peak_mib": peak}


def stored_metrics(folder: Path) -> pa.Table:
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    with Monitor.from_config(folder / "hindsight.yaml") as monitor:
        last = monitor.store.partitions(Table.METRICS)[-1]
        files = monitor.store.files(Table.METRICS, last, last)
        table = pa.concat_tables([monitor.store.read(f.path) for f in files])
    return table.sort_by([("day", "ascending"), ("segment", "ascending"),
                          ("metric", "ascending")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--old-days", type=int, default=365)
    parser.add_argument("--young-days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/store_age"))
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    directory = args.dir.resolve()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    if args.prepare_only:
        prepare(directory, args.per_day, args.old_days, args.young_days)
        return
    # in a process of its own, like every measurement
    subprocess.run([sys.executable, str(HERE), "--prepare-only", "--dir", str(directory),
                    "--per-day", str(args.per_day), "--old-days", str(args.old_days),
                    "--young-days", str(args.young_days)], check=True)
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeat):
        for kind in ("run", "ingest"):
            for age in ("old", "young"):
                results.setdefault((kind, age), []).append(json.loads(in_own_process(
                    HERE, "--measure", kind, str(directory / age))))
    old, young = stored_metrics(directory / "old"), stored_metrics(directory / "young")
    assert old.num_rows == young.num_rows and old.num_rows > 0, "the runs stored other cells"
    for column in ("day", "segment", "metric", "n_predictions", "n_labelled"):
        assert old[column].equals(young[column]), f"the runs disagree on {column}"
    gap = pc.max(pc.abs(pc.subtract(pc.fill_null(old["value"], 0.0),
                                    pc.fill_null(young["value"], 0.0)))).as_py()
    assert gap is not None and gap <= 1e-12, f"the runs' metrics differ by {gap}"
    print(f"{args.per_day:,} predictions a day; a store of {args.old_days} days vs "
          f"{args.young_days} days; medians of {args.repeat}; the runs' {old.num_rows:,} "
          "metric rows are identical:")
    for kind, what in (("run", "daily run (21-day window)"),
                       ("ingest", f"ingest of one day ({args.per_day:,} rows in 10 calls)")):
        times = {age: statistics.median(r["seconds"] for r in results[(kind, age)])
                 for age in ("old", "young")}
        peaks = {age: max(r["peak_mib"] for r in results[(kind, age)])
                 for age in ("old", "young")}
        print(f"  {what:42s}: {times['old']:6.2f} s / {times['young']:6.2f} s = "
              f"{times['old'] / times['young']:.2f}x; peak {peaks['old']:.0f} / "
              f"{peaks['young']:.0f} MiB")


if __name__ == "__main__":
    main()
