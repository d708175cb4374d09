"""Benchmark: the daily job over predictions and labels read in place, beside the same rows in
the store. Run by hand:

    python benchmarks/sources.py --per-day 20000 --days 21 --repeat 3

The simulator's rows are logged into a store (as ``daily_job.py`` prepares it); the same rows
are written, a day a file, as a Hive-partitioned Parquet prefix (``dt=``) and as a Delta table
(a commit a day), and all of it is uploaded to moto's S3 server on 127.0.0.1. Three sides then
run the last day: the store's own tables, the Parquet prefix and the Delta table (each with a
store of its own for what hindsight writes, the reference set copied in). Each side is measured
in a fresh process twice: as it runs nightly (the day before's run, untimed, carried its counts)
and cold (nothing carried). Measured: seconds, and the bytes and files DuckDB's queries read
from the bucket (listings, Delta's log and footers read to plan are outside both). The three
must store the same metrics (counts exactly, values within 1e-9), or the benchmark fails. A
server on loopback has no network latency: a real bucket adds a round trip per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from child import in_own_process
from daily_job import prepare
from scale_out import S3_ENV, _start_server, same_metrics

HERE = Path(__file__).resolve()
BUCKET = "hindsight-lake"
SIDES = ("store", "parquet", "delta")
KINDS = ("nightly", "cold")


def write_lake(store_root: Path, lake: Path) -> None:
    """The store's rows, a day a file, as a Parquet prefix and a Delta table."""
    from deltalake import write_deltalake

    from hindsight.store.partitions import Store, Table

    if (lake / "written").exists():
        return
    store = Store.open(store_root)
    for table in (Table.PREDICTIONS, Table.LABELS):
        for day in store.partitions(table):
            rows = pa.concat_tables([pq.read_table(f.path) for f in store.files(table, day, day)],
                                    promote_options="permissive")
            rows = rows.select([c for c in rows.column_names if not c.startswith("_hindsight")])
            directory = lake / "parquet" / table.value / f"dt={day}"
            directory.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, directory / "part-0.parquet")
            write_deltalake(str(lake / "delta" / table.value), rows, mode="append")
    (lake / "written").touch()


def upload(directory: Path, prefix: str, env: dict[str, str]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          region_name=env["AWS_DEFAULT_REGION"])
    for path in directory.rglob("*"):
        if path.is_file() and ".locks" not in path.parts and path.name != "written":
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(directory)}")


def side_config(base: Path, side: str) -> Path:
    raw = yaml.safe_load(base.read_text())
    raw["store"] = f"s3://{BUCKET}/{'store' if side == 'store' else f'hindsight-{side}'}"
    if side != "store":
        for table in ("predictions", "labels"):
            raw[table] = {"format": side, "path": f"s3://{BUCKET}/serving/{side}/{table}"}
    path = base.parent / f"{side}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def measure(config_file: Path, metrics_out: Path, as_of_text: str,
            kind: str) -> dict[str, float]:
    """One run of ``as_of`` in this fresh process: seconds, and bytes and files read."""
    from datetime import date, timedelta

    from hindsight.config import load_config
    from hindsight.engine.duck import DuckDBEngine
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    as_of = date.fromisoformat(as_of_text)
    with Monitor(load_config(config_file)) as monitor:
        engine = monitor.engine
        assert isinstance(engine, DuckDBEngine)
        store = monitor.store
        if kind == "nightly":
            monitor.run(as_of - timedelta(days=1))  # carries its counts, as the night before
        else:  # nothing carried: counts from scratch
            for info in store.listing(Table.COUNTS):
                store.fs.delete_file(info.path)
        before = dict(engine.bytes_read())
        started = time.perf_counter()
        monitor.run(as_of)
        seconds = time.perf_counter() - started
        read = {p: n - before.get(p, 0) for p, n in engine.bytes_read().items()
                if n > before.get(p, 0)}
        files = store.files(Table.METRICS, as_of, as_of)
        pq.write_table(pa.concat_tables([store.read(f.path) for f in files]), metrics_out)
    return {"seconds": seconds, "bytes": float(sum(read.values())), "files": float(len(read))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/sources"))
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        config_file, out, as_of, kind = args.measure
        print(json.dumps(measure(Path(config_file), Path(out), as_of, kind)))
        return
    directory = args.dir.resolve()
    base = prepare(directory, args.per_day, args.days)
    write_lake(directory / "store", directory / "lake")
    from hindsight.store.partitions import Store, Table

    as_of = Store.open(directory / "store").partitions(Table.PREDICTIONS)[-1]
    endpoint, stop = _start_server("moto", directory)
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    results: dict[tuple[str, str], list[dict[str, float]]] = {
        (side, kind): [] for side in SIDES for kind in KINDS}
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
                     region_name=S3_ENV["AWS_DEFAULT_REGION"]).create_bucket(Bucket=BUCKET)
        upload(directory / "store", "store", env)
        upload(directory / "lake", "serving", env)
        for side in SIDES[1:]:  # the reference set, in the store of each side
            upload(directory / "store" / Table.REFERENCE.value,
                   f"hindsight-{side}/{Table.REFERENCE.value}", env)
        configs = {side: side_config(base, side) for side in SIDES}
        for _ in range(args.repeat):
            for kind in KINDS:
                for side in SIDES:  # alternate: a noisy machine hits all alike
                    printed = in_own_process(
                        HERE, "--measure", str(configs[side]),
                        str(directory / f"metrics-{side}-{kind}.parquet"), as_of.isoformat(),
                        kind, env=env)
                    results[side, kind].append(json.loads(printed.strip().splitlines()[-1]))
        rows = 0
        for side in SIDES[1:]:
            for kind in KINDS:
                rows = same_metrics(directory / f"metrics-store-{kind}.parquet",
                                    directory / f"metrics-{side}-{kind}.parquet",
                                    f"{side} vs store, {kind}")
    finally:
        stop()  # type: ignore[operator]
    print(f"daily run of {as_of}, {args.per_day:,} predictions a day over {args.days} days, in "
          f"moto on 127.0.0.1; medians of {args.repeat}; all three store the same {rows:,} "
          "metric rows:")
    for kind in KINDS:
        for side in SIDES:
            found = results[side, kind]
            seconds = statistics.median(r["seconds"] for r in found)
            read = statistics.median(r["bytes"] for r in found)
            files = statistics.median(r["files"] for r in found)
            print(f"  {kind:7} {side:7}: {seconds:6.2f} s   read {read / 2**20:8.2f} MiB "
                  f"from {files:4.0f} files")


if __name__ == "__main__":
    sys.exit(main())
