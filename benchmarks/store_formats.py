"""Benchmark: hindsight itself with each ``storage.table_format`` (parquet, delta), side by
side, on a local disk and in a bucket of moto's S3 server on 127.0.0.1. Run by hand:

    python benchmarks/store_formats.py --per-day 20000 --days 21 --batches 20 --batch 100

The simulator's ``--days`` days (predictions, the labels that arrived each day, the reference
set; a failure planted a week before the end) are logged through ``Monitor.log_predictions``
and ``Monitor.log_labels`` into four stores: Parquet and Delta, local and in the bucket. Then:

1. the daily run of the last day (``Monitor.run``), each in a fresh process: "nightly" (the day
   before's run, untimed, carried its counts) and "cold" (nothing carried), on every store;
   seconds, and the requests and bytes the bucket served;
2. ``Monitor.migrate`` (``hindsight storage migrate``) of a copy of the local Parquet store,
   made before any run, and the same runs on the migrated store;
3. ingest through ``Monitor.log_predictions`` of ``--batches`` batches of ``--batch`` rows of
   the next day, a fifth of each batch re-sent from the batch before (as in
   ``table_formats.py``), alternating between the four stores: median and p90 seconds a
   batch, and requests a batch in the bucket.

The bucket counts every request of every process by kind (``table_formats.CountingS3``, which
also makes conditional writes atomic, as S3 does). The benchmark fails unless every store
holds each prediction id and each label once, and unless every store, the migrated one too,
holds the same metrics, alerts and drift as the local Parquet store (floats within 1e-9).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from child import in_own_process
from table_formats import (
    RESENT,
    batches,
    counted,
    counting_bucket,
    ids_once,
    median_ms,
    requests_in,
)

HERE = Path(__file__).resolve()
BUCKET = "store-formats"
FORMATS = ("parquet", "delta")
KINDS = ("nightly", "cold")
TOLERANCE = 1e-9


def config(location: str, table_format: str) -> Any:
    from hindsight.config import parse_config
    from hindsight.simulate import demo_config

    return parse_config({**demo_config(location), "storage": {"table_format": table_format}})


def monitor(location: str, table_format: str, today: date) -> Any:
    """A monitor whose clock says noon of ``today``: every simulated day is in the past."""
    from hindsight.monitor import Monitor

    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    return Monitor(config(location, table_format), clock=lambda: noon)


# --- the simulated inputs ------------------------------------------------------------------

class Inputs:
    """``days`` days of the simulator and the predictions of the day after (ingested in
    batches); a failure planted a week before the end, so that the runs raise alerts."""

    def __init__(self, per_day: int, days: int) -> None:
        from hindsight.simulate import Scenario, Simulator

        simulator = Simulator(Scenario(per_day=per_day, days=days + 1,
                                       failure_start=max(days - 7, 0)))
        self.reference = simulator.reference()
        every = list(simulator.days())
        self.days, self.next_day = every[:-1], every[-1]
        self.as_of = self.days[-1].day

    def log(self, target: Any) -> None:
        target.log_reference(self.reference)
        for day in self.days:
            target.log_predictions(day.predictions)
            if day.labels.num_rows:
                target.log_labels(day.labels)

    def ids(self) -> set[str]:
        return {i for d in self.days for i in d.predictions["prediction_id"].to_pylist()}

    def labels(self) -> int:
        return sum(d.labels.num_rows for d in self.days)


# --- what a store holds --------------------------------------------------------------------

def stored(location: str, table: Any, columns: list[str]) -> pa.Table:
    from hindsight.store.partitions import Store

    store = Store.open(location)
    files = store.files(table)
    return pa.concat_tables([store.read(f.path).select(columns) for f in files],
                            promote_options="permissive")


def each_once(location: str, expected_ids: set[str], expected_labels: int) -> None:
    """The store holds each expected prediction id once, and each label (id, arrival) once."""
    from hindsight.store.partitions import Table
    from hindsight.store.schema import ARRIVED_AT

    ids = ids_once(stored(location, Table.PREDICTIONS, ["prediction_id"]), location)
    if ids != expected_ids:
        raise AssertionError(f"{location}: {len(ids - expected_ids)} ids stored that were not "
                             f"sent, {len(expected_ids - ids)} sent and missing")
    labels = stored(location, Table.LABELS, ["prediction_id", ARRIVED_AT])
    distinct = labels.group_by(["prediction_id", ARRIVED_AT]).aggregate([]).num_rows
    if not labels.num_rows == distinct == expected_labels:
        raise AssertionError(f"{location}: {labels.num_rows} labels stored, {distinct} "
                             f"distinct, {expected_labels} sent")


def results(location: str) -> dict[str, pa.Table]:
    """The metrics, alerts and drift tables the runs stored, in one order."""
    from hindsight.store.partitions import Store, Table

    store = Store.open(location)
    found = {}
    for table in (Table.METRICS, Table.ALERTS, Table.DRIFT):
        rows = pa.concat_tables([store.read(f.path) for f in store.files(table)],
                                promote_options="permissive")
        keys = [c for c in rows.column_names if not pa.types.is_floating(rows[c].type)]
        found[table.value] = rows.sort_by([(c, "ascending") for c in keys
                                           if _sortable(rows[c].type)])
    return found


def _sortable(kind: pa.DataType) -> bool:
    return not (pa.types.is_nested(kind) or pa.types.is_dictionary(kind))


def same_results(left: dict[str, pa.Table], right: dict[str, pa.Table], what: str) -> None:
    """Every column equal, floats within ``TOLERANCE`` (null where the other is null)."""
    for name, a in left.items():
        b = right[name]
        if a.schema.names != b.schema.names or a.num_rows != b.num_rows:
            raise AssertionError(f"{what}, {name}: {a.num_rows} rows of {a.schema.names} vs "
                                 f"{b.num_rows} of {b.schema.names}")
        for column in a.column_names:
            x, y = a[column], b[column]
            if pa.types.is_floating(x.type):
                if not pc.is_null(x).equals(pc.is_null(y)):
                    raise AssertionError(f"{what}, {name}.{column}: nulls differ")
                gap = pc.max(pc.abs(pc.subtract(x, y))).as_py()
                if gap is not None and gap > TOLERANCE:
                    raise AssertionError(f"{what}, {name}.{column}: differs by {gap}")
            elif not x.equals(y.cast(x.type)):
                raise AssertionError(f"{what}, {name}.{column}: values differ")


# --- one daily run, in a process of its own ------------------------------------------------

def measure(location: str, table_format: str, as_of: date, kind: str) -> dict[str, Any]:
    """The run of ``as_of`` in this fresh process: seconds, and what the bucket served (when
    the store is in one)."""
    from hindsight.store.partitions import Table

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "") if "://" in location else ""
    with monitor(location, table_format, as_of) as watching:
        store = watching.store
        if kind == "nightly":
            watching.run(as_of - timedelta(days=1))  # carries its counts, as the night before
        else:
            for info in store.listing(Table.COUNTS):
                store.fs.delete_file(info.path)
        if endpoint:
            counted(endpoint)
        started = time.perf_counter()
        summary = watching.run(as_of)
        seconds = time.perf_counter() - started
        served = counted(endpoint) if endpoint else {}
    return {"seconds": seconds, "served": served, "alerts": len(summary.alerts)}


def daily_runs(stores: dict[str, tuple[str, str]], as_of: date, repeat: int,
               env: dict[str, str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {
        (name, kind): [] for name in stores for kind in KINDS}
    for _ in range(repeat):
        for kind in KINDS:
            for name, (location, table_format) in stores.items():  # alternate
                printed = in_own_process(HERE, "--measure", location, table_format,
                                         as_of.isoformat(), kind, env=env)
                found[name, kind].append(json.loads(printed.strip().splitlines()[-1]))
    return found


# --- the run -------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="daily runs per store and kind")
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/store_formats"))
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        location, table_format, as_of, kind = args.measure
        print(json.dumps(measure(location, table_format, date.fromisoformat(as_of), kind)))
        return
    directory = args.dir.resolve()
    with counting_bucket(directory, BUCKET) as endpoint:
        run(args, directory, endpoint)


Stores = dict[str, tuple[str, str]]  # name: (location, table_format)


def run(args: argparse.Namespace, directory: Path, endpoint: str) -> None:
    inputs = Inputs(args.per_day, args.days)
    stores = {f"{f}, {where}": (str(directory / f) if where == "local"
                                else f"s3://{BUCKET}/{f}", f)
              for where in ("local", "bucket") for f in FORMATS}
    load(inputs, stores, endpoint)
    original = stores["parquet, local"][0]
    migrated = str(directory / "migrated")
    shutil.copytree(original, migrated)  # inputs only: its runs are the same as the original's
    env = {**os.environ}
    print(f"\ndaily run of {inputs.as_of} (a {args.days}-day window), each in a fresh "
          f"process, median of {args.repeat}:")
    report_runs(stores, daily_runs(stores, inputs.as_of, args.repeat, env))
    migrate(migrated, inputs.next_day.day)
    after: Stores = {"migrated, local": (migrated, "delta")}
    print("the same runs on the migrated store:")
    report_runs(after, daily_runs(after, inputs.as_of, args.repeat, env))
    agree({**stores, **after}, original, inputs)
    ingest(inputs, stores, endpoint, args.batches, args.batch)


def load(inputs: Inputs, stores: Stores, endpoint: str) -> None:
    print(f"{len(inputs.days)} days x {inputs.days[0].predictions.num_rows:,} predictions with "
          "their labels, logged into each store:")
    for name, (location, table_format) in stores.items():
        counted(endpoint)
        started = time.perf_counter()
        with monitor(location, table_format, inputs.next_day.day) as target:
            inputs.log(target)
        requests = requests_in(counted(endpoint))
        print(f"  {name:15}: {time.perf_counter() - started:6.1f} s"
              + (f", {requests:,} requests" if location.startswith("s3://") else ""))


def report_runs(stores: Stores, runs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    for kind in KINDS:
        for name, (location, _) in stores.items():
            found = runs[name, kind]
            line = (f"  {kind:7} {name:15}: "
                    f"{statistics.median(r['seconds'] for r in found):6.2f} s")
            if location.startswith("s3://"):
                served = [r["served"] for r in found]
                line += (f"  {statistics.median(requests_in(s) for s in served):6.0f} requests "
                         f"({_kinds(served[-1])}), "
                         f"{statistics.median(s['bytes_served'] for s in served) / 2**20:6.2f} "
                         "MiB served")
            print(line)


def migrate(location: str, today: date) -> None:
    """``hindsight storage migrate`` of the copy of the local Parquet store."""
    started = time.perf_counter()
    with monitor(location, "delta", today) as target:
        moved = target.migrate()
    seconds = time.perf_counter() - started
    print(f"\nmigrate (hindsight storage migrate) of the local Parquet store: {seconds:.2f} s, "
          + ", ".join(f"{m.table} {m.rows:,} rows in {m.days} days" for m in moved))


def agree(stores: Stores, original: str, inputs: Inputs) -> None:
    expected = results(original)
    for name, (location, _) in stores.items():
        each_once(location, inputs.ids(), inputs.labels())
        if location != original:
            same_results(expected, results(location), f"{name} against parquet, local")
    print(f"every store holds each of {len(inputs.ids()):,} ids and {inputs.labels():,} "
          "labels once, and the same "
          + ", ".join(f"{t.num_rows:,} {name} rows" for name, t in expected.items()))


def ingest(inputs: Inputs, stores: Stores, endpoint: str, count: int, size: int) -> None:
    """``count`` batches of ``size`` rows of the next day into every store, alternating."""
    work = batches(inputs.next_day.predictions, count, size)
    monitors = {name: monitor(location, table_format, inputs.next_day.day)
                for name, (location, table_format) in stores.items()}
    seconds: dict[str, list[float]] = {name: [] for name in stores}
    requests: dict[str, list[Counter[str]]] = {name: [] for name in stores}
    for batch in work:
        for name, target in monitors.items():  # alternate: a noisy machine hits all alike
            counted(endpoint)
            started = time.perf_counter()
            target.log_predictions(batch)
            seconds[name].append(time.perf_counter() - started)
            requests[name].append(Counter(counted(endpoint)))
    for target in monitors.values():
        target.close()
    sent = {i for b in work for i in b["prediction_id"].to_pylist()}
    for location, _ in stores.values():
        each_once(location, inputs.ids() | sent, inputs.labels())
    print(f"\ningest of {count} batches of {size} rows of {inputs.next_day.day} "
          f"({size // RESENT} re-sent from the batch before), every store holding each id once:")
    for name, (location, _) in stores.items():
        line = f"  {name:15}: {median_ms(seconds[name])}"
        if location.startswith("s3://"):
            total: Counter[str] = sum(requests[name], Counter())
            line += (f";  {requests_in(total) / count:5.1f} requests a batch "
                     f"({_kinds(total, count)}), {requests_in(requests[name][-1])} in the last")
        print(line)


def _kinds(found: dict[str, int], per: int = 1) -> str:
    return ", ".join(f"{k} {v / per:.1f}".removesuffix(".0") for k, v in sorted(found.items())
                     if k not in ("bytes_served", "412 precondition failed"))


if __name__ == "__main__":
    sys.exit(main())
