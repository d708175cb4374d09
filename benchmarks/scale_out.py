"""Benchmark: where Spark pays off, and what a bucket costs. Run by hand:

    python benchmarks/scale_out.py --repeat 3                        # engines, 10.5 M rows
    python benchmarks/scale_out.py --bucket moto --bucket-per-day 50000 --repeat 3

Engines: the daily job (the last day of a 21-day label window, ``Monitor.run``) on the same store
with DuckDB and with Spark ``local[2]``, each in a fresh process. The Spark figure is split into
the session's start (a JVM, once per process) and the run; process start is outside both sides.
Each engine is measured twice: counting the window from scratch (full: nothing carried), and
counting only the day's change from the counts the run of the day before carried
(incremental: that run, in the same process, is not timed), as a nightly schedule runs.
Both runs must store the same metrics (counts exactly, values within 1e-9): the benchmark fails
otherwise. Peak memory is not compared: Spark's is a JVM's heap, set by spark.driver.memory.

Bucket: the same daily job, DuckDB, on a store in a local directory and on the same files
uploaded to an S3 server on 127.0.0.1 (moto's server, or Ceph's radosgw with
``tests/objectstore/ceph.sh``); again the two must store the same metrics. A server on loopback
has no network latency: a real bucket adds a round trip per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from child import in_own_process
from daily_job import prepare

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
SPARK = {"master": "local[2]", "conf": {
    "spark.sql.shuffle.partitions": 8, "spark.driver.memory": "8g"}}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "hindsight-bench", "AWS_SECRET_ACCESS_KEY": "hindsight-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


def measure(config_file: Path, metrics_out: Path, incremental: bool) -> dict[str, float]:
    """One daily run in this fresh process; its metrics are written to ``metrics_out``.
    ``incremental``: after the (untimed) run of the day before, which carries its counts;
    otherwise the day before's carried counts are dropped first (they are a cache)."""
    import shutil
    from datetime import timedelta

    import pyarrow.parquet as pq

    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    config = load_config(config_file)
    with Monitor(config) as monitor:
        as_of = monitor.store.partitions(Table.PREDICTIONS)[-1]
        started = time.perf_counter()
        monitor.engine  # noqa: B018 - starts Spark's session, once per process
        session = time.perf_counter() - started
        before = as_of - timedelta(days=1)
        if incremental:
            monitor.run(before)
            assert monitor.engine.counts_change_only(
                as_of, as_of - timedelta(days=config.label_window_days - 1), as_of,
                _calibration(monitor)), "the day before's counts were not carried"
        else:
            shutil.rmtree(monitor.store.partition_dir(Table.COUNTS, before), ignore_errors=True)
        started = time.perf_counter()
        monitor.run(as_of)
        seconds = time.perf_counter() - started
        files = monitor.store.files(Table.METRICS, as_of, as_of)
        pq.write_table(pa.concat_tables([monitor.store.read(f.path) for f in files]),
                       metrics_out)
    return {"session": session, "seconds": seconds}


def _calibration(monitor: object) -> pa.Table | None:
    from hindsight.jobs.drift import calibration_table, read_reference

    store, config = monitor.store, monitor.config  # type: ignore[attr-defined]
    return calibration_table(read_reference(store, config), config)


def same_metrics(a: Path, b: Path, what: str) -> int:
    import pyarrow.parquet as pq

    keys = [("day", "ascending"), ("segment", "ascending"), ("metric", "ascending")]
    left, right = pq.read_table(a).sort_by(keys), pq.read_table(b).sort_by(keys)
    assert left.num_rows == right.num_rows > 0, f"{what}: {left.num_rows} vs {right.num_rows}"
    for column in ("day", "segment", "metric", "n_predictions", "n_labelled"):
        assert left[column].equals(right[column]), f"{what}: the runs disagree on {column}"
    gap = pc.max(pc.abs(pc.subtract(pc.fill_null(left["value"], 0.0),
                                    pc.fill_null(right["value"], 0.0)))).as_py()
    assert gap is not None and gap <= 1e-9, f"{what}: metrics differ by {gap}"
    return left.num_rows


def config_for(base: Path, store: str, engine: str, name: str) -> Path:
    raw = yaml.safe_load(base.read_text())
    raw.update(store=store, engine=engine)
    if engine == "spark":
        raw["spark"] = SPARK
    path = base.parent / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_side(config_file: Path, out: Path, env: dict[str, str] | None = None,
             incremental: bool = False) -> dict[str, float]:
    printed = in_own_process(HERE, "--measure", str(config_file), str(out),
                             *(["--incremental"] if incremental else []),
                             env={**os.environ, **(env or {})})
    return json.loads(printed.strip().splitlines()[-1])


def engines(args: argparse.Namespace) -> None:
    base = prepare(args.dir.resolve(), args.per_day, 21)
    sides = {"duckdb": config_for(base, str(base.parent / "store"), "duckdb", "duck.yaml"),
             "spark": config_for(base, str(base.parent / "store"), "spark", "spark.yaml")}
    kinds = ("full", "incremental")
    results: dict[tuple[str, str], list[dict[str, float]]] = {
        (name, kind): [] for name in sides for kind in kinds}
    for _ in range(args.repeat):
        for kind in kinds:
            for name, config_file in sides.items():  # alternate: a noisy machine hits both
                results[name, kind].append(run_side(
                    config_file, base.parent / f"metrics-{name}-{kind}.parquet",
                    incremental=kind == "incremental"))
    rows = 0
    for kind in kinds:
        rows = same_metrics(base.parent / f"metrics-duckdb-{kind}.parquet",
                            base.parent / f"metrics-spark-{kind}.parquet", f"{kind} runs")
    same_metrics(base.parent / "metrics-spark-full.parquet",
                 base.parent / "metrics-spark-incremental.parquet", "spark full vs incremental")
    print(f"daily job, {args.per_day:,} predictions a day, {args.per_day * 21:,} in the "
          f"21-day window; medians of {args.repeat}; all store the same {rows:,} metric rows:")
    median = {key: statistics.median(r["seconds"] for r in found)
              for key, found in results.items()}
    for name in sides:
        start = statistics.median(r["session"] for r in results[name, "full"])
        print(f"  {name:7}: full {median[name, 'full']:7.2f} s   incremental "
              f"{median[name, 'incremental']:7.2f} s   engine start {start:6.2f} s")
    for kind in kinds:
        print(f"  spark local[2] / duckdb, {kind} run only: "
              f"{median['spark', kind] / median['duckdb', kind]:.2f}x")


def bucket(args: argparse.Namespace) -> None:
    directory = (args.dir.parent / f"bucket-{args.bucket_per_day}").resolve()
    base = prepare(directory, args.bucket_per_day, 21)
    endpoint, stop = _start_server(args.bucket, directory)
    env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    try:
        _upload(directory / "store", "hindsight-bench", env)
        sides = {"local": config_for(base, str(directory / "store"), "duckdb", "local.yaml"),
                 "bucket": config_for(base, "s3://hindsight-bench/store", "duckdb",
                                      "bucket.yaml")}
        results: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(args.repeat):
            for name, config_file in sides.items():
                measured = run_side(config_file, directory / f"metrics-{name}.parquet", env)
                results[name].append(measured["seconds"])
        rows = same_metrics(directory / "metrics-local.parquet",
                            directory / "metrics-bucket.parquet", "local vs bucket")
    finally:
        stop()
    local, remote = (statistics.median(results[k]) for k in ("local", "bucket"))
    print(f"daily job (DuckDB), {args.bucket_per_day:,} predictions a day, 21-day window, "
          f"store on local disk vs in {args.bucket} on 127.0.0.1; medians of {args.repeat}; "
          f"both store the same {rows:,} metric rows:")
    print(f"  local {local:6.2f} s   bucket {remote:6.2f} s   = {remote / local:.2f}x")


def _start_server(kind: str, directory: Path) -> tuple[str, object]:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if kind == "moto":
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                    "-p", str(port)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)

        def stop() -> None:
            process.terminate()
            process.wait(timeout=30)
    else:
        cluster = directory / "ceph"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            monitor_port = probe.getsockname()[1]
        subprocess.run([str(ROOT / "tests/objectstore/ceph.sh"), str(cluster), str(port),
                        str(monitor_port)], check=True, capture_output=True)

        def stop() -> None:
            for pid_file in (cluster / "run").glob("*.pid"):
                subprocess.run(["kill", "-9", pid_file.read_text().strip()], check=False)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            httpx.get(endpoint, timeout=5)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    if kind == "radosgw":
        subprocess.run(["radosgw-admin", "-c", str(directory / "ceph/ceph.conf"), "user",
                        "create", "--uid=bench", "--display-name=bench",
                        f"--access-key={S3_ENV['AWS_ACCESS_KEY_ID']}",
                        f"--secret={S3_ENV['AWS_SECRET_ACCESS_KEY']}"],
                       check=True, capture_output=True)
    return endpoint, stop


def _upload(store: Path, bucket_name: str, env: dict[str, str]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                          region_name=env["AWS_DEFAULT_REGION"])
    client.create_bucket(Bucket=bucket_name)
    for path in store.rglob("*"):
        if path.is_file() and ".locks" not in path.parts:
            client.upload_file(str(path), bucket_name, f"store/{path.relative_to(store)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/daily_job"))
    parser.add_argument("--bucket", choices=["moto", "radosgw"], default=None,
                        help="measure the bucket's overhead instead of the engines")
    parser.add_argument("--bucket-per-day", type=int, default=50_000)
    parser.add_argument("--measure", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--incremental", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, args.incremental)))
        return
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if args.bucket:
        bucket(args)
    else:
        engines(args)


if __name__ == "__main__":
    main()
