"""Benchmark: hindsight's store beside Delta Lake (delta-rs) and Iceberg (pyiceberg, a SQL
catalog on SQLite), all three in one bucket of moto's S3 server on 127.0.0.1. Run by hand:

    python benchmarks/table_formats.py --per-day 20000 --days 21 --batches 20 --batch 100

The simulator's predictions for ``--days`` days are loaded into each side (the store through
``Monitor.log_predictions``, Delta a commit a day partitioned by ``dt``, Iceberg an append a day
with an identity partition on ``dt``); then, side by side:

1. ingest: ``--batches`` batches of ``--batch`` rows of the next day, a fifth of each batch
   re-sent from the batch before, stored with each id once: the store's own look-up; Delta a
   MERGE inserting when no row of the day's partition has the id; Iceberg ``Table.upsert``
   inserting only what does not match. Seconds per batch and requests to the bucket per batch.
   The store and Delta again on a local disk, Delta with and without the fsync of what its
   commit wrote (delta-rs does not fsync; the store does before it answers).
2. the daily run's read: every row of the last 21 days into DuckDB (the store through its own
   listing and a pyarrow dataset; Delta through ``to_pyarrow_dataset``; Iceberg through a scan
   to Arrow: DuckDB's delta and iceberg extensions cannot be downloaded here). Seconds, requests
   and bytes served.
3. concurrency: ``--writers`` processes sending overlapping ids at once to each side; every
   acknowledged id must be stored, and none twice.
   Delta commits with S3's conditional write (``If-None-Match: *``, delta-rs's default since
   1.0: no lock, no DynamoDB); Iceberg's SQL catalog on SQLite compares and swaps the table's
   metadata location, on one machine. Iceberg runs twice: with pyiceberg's own commit retries
   (which re-apply an upsert's append to the newer snapshot without checking it again) and as
   ``iceberg-own``, those retries off and the whole upsert run again on a conflict.
4. readers beside Delta's compaction and vacuum (DuckDB and polars through the table's log),
   and a plain glob of the store's files beside hindsight's compaction.

Requests are counted by the S3 server itself (a WSGI layer around moto, in a process of its
own): every request of every process, by kind, with the bytes it served. moto checks
``If-None-Match`` and then writes, two steps another thread can come between; the layer makes
conditional writes one at a time, as S3 makes them atomic. The three sides must read back the
same ids, each once, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve()
BUCKET = "formats"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "hindsight-bench", "AWS_SECRET_ACCESS_KEY": "hindsight-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}
SIDES = ("store", "delta", "iceberg")
RESENT = 5  # one row in this many of a batch was in the batch before


# --- the S3 server that counts -------------------------------------------------------------

class CountingS3:
    """moto's WSGI application, counting each request by kind and the bytes it served."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.conditional = threading.Lock()  # If-None-Match / If-Match writes, one at a time
        self.counts: Counter[str] = Counter()
        self.served = 0

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/__counts__":
            with self.lock:
                body = json.dumps({**self.counts, "bytes_served": self.served}).encode()
                if environ.get("QUERY_STRING") == "reset":
                    self.counts, self.served = Counter(), 0
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        status: list[str] = []

        def recorded(code: str, headers: list[tuple[str, str]], *info: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *info)

        conditional = environ["REQUEST_METHOD"] in ("PUT", "POST") and (
            "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ)
        if conditional:
            self.conditional.acquire()
        try:
            body = b"".join(self.app(environ, recorded))
        finally:
            if conditional:
                self.conditional.release()
        with self.lock:
            self.counts[_kind(environ)] += 1
            if status and status[0].startswith("412"):
                self.counts["412 precondition failed"] += 1
            self.served += len(body)
        return [body]


def _kind(environ: dict[str, Any]) -> str:
    method = environ["REQUEST_METHOD"]
    has_key = "/" in environ["PATH_INFO"].strip("/")
    query = environ.get("QUERY_STRING", "")
    if method == "GET":
        return "GET" if has_key else "LIST"
    if method == "PUT":
        if "HTTP_IF_NONE_MATCH" in environ:
            return "PUT If-None-Match: " + str(environ["HTTP_IF_NONE_MATCH"])
        return "PUT If-Match" if "HTTP_IF_MATCH" in environ else "PUT"
    if method == "POST":
        return "DELETE (batch)" if "delete" in query else "POST (multipart)"
    return str(method)


def serve(port_file: Path) -> None:
    """The counting S3 server, in this process until it is killed."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = CountingS3(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    written = port_file.with_suffix(".tmp")
    written.write_text(str(server.port))
    written.rename(port_file)
    server.serve_forever()


def start_server(directory: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port_file = directory / "s3.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, str(HERE), "--serve", str(port_file)])
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the S3 server did not start (exit {process.poll()})")
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    counted(endpoint)  # answers: ready
    return endpoint, process


def counted(endpoint: str) -> dict[str, int]:
    """The requests the server answered since the last call, by kind (and resets them)."""
    with urllib.request.urlopen(f"{endpoint}/__counts__?reset", timeout=30) as answer:
        return dict(json.loads(answer.read()))


def requests_in(found: dict[str, int]) -> int:
    return sum(v for k, v in found.items() if k not in ("bytes_served", "412 precondition failed"))


# --- the rows ------------------------------------------------------------------------------

def simulated(per_day: int, days: int) -> list[pa.Table]:
    """``days + 1`` days of the simulator's predictions, each with its ``dt``; the last day is
    the one ingested in batches."""
    from hindsight.simulate import Scenario, Simulator

    scenario = Scenario(per_day=per_day, days=days + 1, failure_start=None)
    out: list[pa.Table] = []
    for day in Simulator(scenario).days():
        rows = day.predictions
        out.append(rows.append_column("dt", pa.array([day.day.isoformat()] * rows.num_rows)))
    return out


def batches(last_day: pa.Table, count: int, size: int) -> list[pa.Table]:
    """``count`` batches of ``size`` rows; a fifth of each batch re-sends the batch before's."""
    resent = size // RESENT
    fresh = size - resent
    out: list[pa.Table] = []
    for index in range(count):
        new = last_day.slice(index * fresh, fresh)
        old = out[-1].slice(0, resent) if out else last_day.slice(count * fresh, resent)
        out.append(pa.concat_tables([new, old]))
    assert last_day.num_rows >= (count + 1) * fresh, "--per-day too small for the batches"
    return out


# --- the three sides -----------------------------------------------------------------------

def storage_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": S3_ENV["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": S3_ENV["AWS_SECRET_ACCESS_KEY"]}


class Side:
    """One way of storing the predictions: load days, ingest a batch, read a window."""

    name = ""

    def load(self, days: list[pa.Table]) -> None:
        raise NotImplementedError

    def ingest(self, batch: pa.Table) -> int:
        """Store what of ``batch`` is not stored yet; returns how many rows that was."""
        raise NotImplementedError

    def read(self, first: str, last: str) -> pa.Table:
        raise NotImplementedError


class StoreSide(Side):
    """hindsight's own store in the bucket, written through ``Monitor.log_predictions``."""

    name = "store"

    def __init__(self, endpoint: str, today: date, location: str | None = None) -> None:
        from hindsight.config import parse_config
        from hindsight.monitor import Monitor
        from hindsight.simulate import demo_config

        os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
        noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
        self.monitor = Monitor(parse_config(demo_config(location or f"s3://{BUCKET}/store")),
                               clock=lambda: noon)

    def load(self, days: list[pa.Table]) -> None:
        for rows in days:
            self.monitor.log_predictions(rows.drop_columns(["dt"]))

    def ingest(self, batch: pa.Table) -> int:
        return self.monitor.log_predictions(batch.drop_columns(["dt"])).stored

    def read(self, first: str, last: str) -> pa.Table:
        import duckdb
        import pyarrow.dataset as ds

        from hindsight.store.partitions import Table

        store = self.monitor.store
        files = [f.path for f in store.files(Table.PREDICTIONS, date.fromisoformat(first),
                                             date.fromisoformat(last))]
        con = duckdb.connect()
        con.register("p", ds.dataset(files, filesystem=store.fs, format="parquet"))
        return con.sql("SELECT * FROM p").to_arrow_table()


class DeltaSide(Side):
    """A Delta table partitioned by ``dt``; ingest is a MERGE that inserts an id only when the
    day's partition has no row with it, retried from a fresh snapshot when a concurrent commit
    conflicts."""

    name = "delta"

    def __init__(self, endpoint: str, local: Path | None = None, fsync: bool = False) -> None:
        self.uri = str(local) if local else f"s3://{BUCKET}/delta/predictions"
        self.options = {} if local else storage_options(endpoint)
        self.local, self.fsync = local, fsync
        self.table: Any = None
        self.retries = 0
        self.conflicts: Counter[str] = Counter()

    def load(self, days: list[pa.Table]) -> None:
        from deltalake import DeltaTable, write_deltalake

        for rows in days:
            write_deltalake(self.uri, rows, mode="append", partition_by=["dt"],
                            storage_options=self.options)
        self.table = DeltaTable(self.uri, storage_options=self.options)

    def open(self) -> None:
        from deltalake import DeltaTable

        self.table = DeltaTable(self.uri, storage_options=self.options)

    def ingest(self, batch: pa.Table) -> int:
        from deltalake.exceptions import CommitFailedError

        days = ", ".join(f"'{d}'" for d in pc.unique(batch["dt"]).to_pylist())
        while True:
            try:
                done = self.table.merge(
                    batch, f"t.dt IN ({days}) AND t.dt = s.dt AND t.prediction_id = "
                    "s.prediction_id", source_alias="s", target_alias="t",
                ).when_not_matched_insert_all().execute()
                if self.fsync:
                    self.synced()
                return int(done["num_target_rows_inserted"])
            except CommitFailedError as exc:
                self.retries += 1
                self.conflicts[str(exc).splitlines()[0][:120]] += 1
                self.table.update_incremental()

    def synced(self) -> None:
        """What hindsight does before it answers on a local disk, after delta-rs wrote without
        fsync: the commit just made, the files it added, and their directories, on the disk."""
        assert self.local is not None
        log = self.local / "_delta_log"
        commit = log / f"{self.table.version():020d}.json"
        paths = [commit]
        for line in commit.read_text().splitlines():
            added = json.loads(line).get("add")
            if added:
                paths.append(self.local / urllib.parse.unquote(added["path"]))
        for path in [*paths, *{p.parent for p in paths}]:
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def read(self, first: str, last: str) -> pa.Table:
        import duckdb
        from deltalake import DeltaTable

        dataset = DeltaTable(self.uri, storage_options=self.options).to_pyarrow_dataset()
        con = duckdb.connect()
        con.register("p", dataset)
        return con.sql("SELECT * FROM p WHERE dt BETWEEN $first AND $last",
                       params={"first": first, "last": last}).to_arrow_table()


class IcebergSide(Side):
    """An Iceberg table in a SQL catalog on SQLite, data and metadata in the bucket, an
    identity partition on ``dt``; ingest is ``Table.upsert`` inserting what does not match.
    ``own_retry``: the library's commit retries off, the whole upsert retried on a conflict."""

    name = "iceberg"

    def __init__(self, endpoint: str, catalog_file: Path, own_retry: bool = False) -> None:
        from pyiceberg.catalog.sql import SqlCatalog

        self.catalog = SqlCatalog(
            "bench", uri=f"sqlite:///{catalog_file}", warehouse=f"s3://{BUCKET}/iceberg",
            **{"s3.endpoint": endpoint, "s3.region": "us-east-1",
               "s3.access-key-id": S3_ENV["AWS_ACCESS_KEY_ID"],
               "s3.secret-access-key": S3_ENV["AWS_SECRET_ACCESS_KEY"]})
        self.own_retry = own_retry
        self.retries = 0
        self.conflicts: Counter[str] = Counter()
        self.table: Any = None

    def load(self, days: list[pa.Table]) -> None:
        self.catalog.create_namespace_if_not_exists("bench")
        table = self.catalog.create_table("bench.predictions", schema=days[0].schema)
        with table.update_spec() as spec:
            spec.add_identity("dt")
        for rows in days:
            table.append(rows)
        self.table = table

    def open(self, name: str = "bench.predictions") -> None:
        self.table = self.catalog.load_table(name)

    def ingest(self, batch: pa.Table) -> int:
        from pyiceberg.exceptions import CommitFailedException

        while True:
            try:
                if self.own_retry:
                    self.table.refresh()
                done = self.table.upsert(batch, join_cols=["prediction_id"],
                                         when_matched_update_all=False)
                return int(done.rows_inserted)
            except CommitFailedException as exc:
                self.retries += 1
                self.conflicts[str(exc).splitlines()[0][:120]] += 1
                if not self.own_retry:
                    raise

    def read(self, first: str, last: str) -> pa.Table:
        import duckdb

        table = self.catalog.load_table("bench.predictions")
        con = duckdb.connect()
        con.register("p", table.scan(row_filter=f"dt >= '{first}' AND dt <= '{last}'")
                     .to_arrow_batch_reader())
        return con.sql("SELECT * FROM p").to_arrow_table()


# --- measurements --------------------------------------------------------------------------

def ids_once(rows: pa.Table, what: str) -> set[str]:
    ids = rows["prediction_id"].to_pylist()
    found = set(ids)
    if len(found) != len(ids):
        twice = [i for i, n in Counter(ids).items() if n > 1]
        raise AssertionError(f"{what}: {len(ids) - len(found)} rows repeat an id, e.g. "
                             f"{twice[:3]}")
    return found


def median_ms(values: list[float]) -> str:
    p90 = sorted(values)[math.ceil(len(values) * 0.9) - 1]
    return (f"median {statistics.median(values) * 1000:7.1f} ms, p90 {p90 * 1000:7.1f}, "
            f"max {max(values) * 1000:7.1f}")


def concurrent_writers(kind: str, endpoint: str, directory: Path, writers: int,
                       pool: pa.Table, size: int, rounds: int) -> dict[str, Any]:
    """``writers`` processes, each sending ``rounds`` batches drawn from one pool of ids (each
    id sent by about two writers), started together."""
    go = directory / f"go-{kind}"
    go.unlink(missing_ok=True)
    pool_file = directory / "pool.arrow"
    with pa.OSFile(str(pool_file), "wb") as sink, pa.ipc.new_file(sink, pool.schema) as out:
        out.write_table(pool)
    processes = []
    for writer in range(writers):
        out_file = directory / f"acked-{kind}-{writer}.json"
        out_file.unlink(missing_ok=True)
        processes.append((out_file, subprocess.Popen(
            [sys.executable, str(HERE), "--writer", kind, endpoint, str(directory),
             str(pool_file), str(writer), str(writers), str(size), str(rounds), str(go)],
            env={**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": endpoint})))
    ready = [directory / f"ready-{kind}-{w}" for w in range(writers)]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for _, p in processes):
            raise RuntimeError(f"{kind} writers did not get ready")
        time.sleep(0.05)
    started = time.perf_counter()
    go.touch()
    results = []
    for out_file, process in processes:
        if process.wait(timeout=900) != 0:
            raise RuntimeError(f"{kind} writer exited {process.returncode}")
        results.append(json.loads(out_file.read_text()))
    seconds = time.perf_counter() - started
    for r in ready:
        r.unlink()
    acked = set().union(*(set(r["acked"]) for r in results))
    conflicts: Counter[str] = sum((Counter(r["conflicts"]) for r in results), Counter())
    return {"acked": acked, "seconds": seconds, "retries": sum(r["retries"] for r in results),
            "conflicts": conflicts, "errors": [e for r in results for e in r["errors"]]}


def writer(kind: str, endpoint: str, directory: Path, pool_file: Path, index: int,
           writers: int, size: int, rounds: int, go: Path) -> None:
    """One writer process: batches of ids drawn from the shared pool, overlapping the next
    writer's; prints what it acknowledged."""
    import random

    with pa.memory_map(str(pool_file)) as source:
        pool = pa.ipc.open_file(source).read_all()
    side: Any
    if kind == "store":
        side = StoreSide(endpoint, date.fromisoformat(pool["dt"][0].as_py()))
    elif kind == "delta":
        side = DeltaSide(endpoint)
        side.open()
    else:
        side = IcebergSide(endpoint, directory / "catalog.db", own_retry=kind == "iceberg-own")
        side.open()
    library_retries = RetriesLogged()
    logging.getLogger("pyiceberg").addHandler(library_retries)
    logging.getLogger("pyiceberg").propagate = False
    rng = random.Random(index)
    # writer i draws from the pool's slices i and i+1: each id is sent by two writers
    span = pool.num_rows // writers
    mine = [*range(index * span, (index + 1) * span),
            *range(((index + 1) % writers) * span, ((index + 1) % writers + 1) * span)]
    acked: list[str] = []
    errors: list[str] = []
    (directory / f"ready-{kind}-{index}").touch()
    while not go.exists():
        time.sleep(0.01)
    for _ in range(rounds):
        batch = pool.take(sorted(rng.sample(mine, size)))
        try:
            side.ingest(batch)
            acked.extend(batch["prediction_id"].to_pylist())
        except Exception as exc:  # an unacknowledged batch is reported
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
    (directory / f"acked-{kind}-{index}.json").write_text(json.dumps(
        {"acked": acked, "retries": getattr(side, "retries", 0) + library_retries.count,
         "conflicts": dict(getattr(side, "conflicts", {})), "errors": errors}))


class RetriesLogged(logging.Handler):
    """Counts the commits pyiceberg retried by itself (it logs each one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.count += 1


def readers_beside_compaction(delta: DeltaSide, expected: int, directory: Path) -> dict[str, Any]:
    """DuckDB and polars read the Delta table again and again (each read from the log's newest
    version) while it is compacted and then vacuumed with no retention."""
    import duckdb
    import polars as pl
    from deltalake import DeltaTable

    stop = threading.Event()
    seen: list[tuple[str, int, int]] = []
    spans: list[tuple[float, float]] = []  # when each read began and ended
    failures: list[str] = []

    def read_loop() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                dataset = DeltaTable(delta.uri, storage_options=delta.options).to_pyarrow_dataset()
                con = duckdb.connect()
                con.register("p", dataset)
                n, distinct = con.sql(
                    "SELECT count(*), count(DISTINCT prediction_id) FROM p").fetchall()[0]
                seen.append(("duckdb", int(n), int(distinct)))
                frame = pl.scan_delta(delta.uri, storage_options=delta.options).select(
                    pl.len(), pl.col("prediction_id").n_unique()).collect()
                seen.append(("polars", int(frame.item(0, 0)), int(frame.item(0, 1))))
                spans.append((began, time.perf_counter()))
            except Exception as exc:  # a failed read: counted
                failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    thread = threading.Thread(target=read_loop)
    thread.start()
    while len(seen) < 2 and thread.is_alive():
        time.sleep(0.01)
    planned = DeltaTable(delta.uri, storage_options=delta.options).to_pyarrow_dataset()
    before_files = len(DeltaTable(delta.uri, storage_options=delta.options).file_uris())
    started = time.perf_counter()
    table = DeltaTable(delta.uri, storage_options=delta.options)
    compacted = table.optimize.compact()
    compact_seconds = time.perf_counter() - started
    during = len(seen)
    table = DeltaTable(delta.uri, storage_options=delta.options)
    vacuumed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    ended = time.perf_counter()
    while len(seen) < during + 4 and thread.is_alive():
        time.sleep(0.01)
    stop.set()
    thread.join()
    after_files = len(DeltaTable(delta.uri, storage_options=delta.options).file_uris())
    try:  # a read planned before the compaction, run after the vacuum deleted its files
        stale = f"read {planned.count_rows():,} rows"
    except OSError as exc:
        stale = f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:90]})"
    return {"reads": len(seen), "twice": [s for s in seen if s[1] != s[2]],
            "wrong": [s for s in seen if s[1] != expected], "failures": failures,
            "files": (before_files, after_files), "removed": compacted.get("numFilesRemoved"),
            "vacuumed": len(vacuumed), "compact_seconds": compact_seconds, "stale": stale,
            "overlapping": sum(1 for b, e in spans if b < ended and e > started)}


def glob_beside_store_compaction(store_side: StoreSide) -> tuple[int, int, int, int]:
    """Rows a plain reader of every Parquet file under the store's predictions sees right after
    hindsight compacts (the replaced files stay for their grace), rows through hindsight's own
    listing, distinct ids, and the files merged."""
    import duckdb
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from hindsight.store.partitions import Table

    store = store_side.monitor.store
    report = store_side.monitor.compact()
    root = f"{BUCKET}/store/predictions"
    files = [i.path for i in store.fs.get_file_info(pafs.FileSelector(root, recursive=True))
             if i.path.endswith(".parquet") and "/." not in i.path]
    con = duckdb.connect()
    con.register("p", ds.dataset(files, filesystem=store.fs, format="parquet"))
    n, distinct = con.sql("SELECT count(*), count(DISTINCT prediction_id) FROM p").fetchall()[0]
    listed = sum(store.footer(f.path).num_rows for f in store.files(Table.PREDICTIONS))
    return int(n), listed, int(distinct), report.files_merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6, help="batches per concurrent writer")
    parser.add_argument("--repeat", type=int, default=3, help="reads per side")
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/table_formats"))
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--writer", nargs=9, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.writer:
        kind, endpoint, directory, pool_file, index, writers, size, rounds, go = args.writer
        writer(kind, endpoint, Path(directory), Path(pool_file), int(index), int(writers),
               int(size), int(rounds), Path(go))
        return
    run(args)


@contextlib.contextmanager
def counting_bucket(directory: Path, bucket: str) -> Iterator[str]:
    """A fresh ``directory`` and the counting S3 server with ``bucket`` made; every client of
    this process pointed at it. Yields the endpoint; the server stops on leaving."""
    import shutil

    import boto3

    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    endpoint, server = start_server(directory)
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(args: argparse.Namespace) -> None:
    directory = args.dir.resolve()
    with counting_bucket(directory, BUCKET) as endpoint:
        measure(args, directory, endpoint)


def measure(args: argparse.Namespace, directory: Path, endpoint: str) -> None:
    out = print
    days = simulated(args.per_day, args.days)
    today = date.fromisoformat(days[-1]["dt"][0].as_py())
    sides: dict[str, Side] = {"store": StoreSide(endpoint, today), "delta": DeltaSide(endpoint),
                              "iceberg": IcebergSide(endpoint, directory / "catalog.db")}
    counted(endpoint)
    for name, side in sides.items():
        started = time.perf_counter()
        side.load(days[:-1])
        found = counted(endpoint)
        out(f"loaded {args.days} days x {args.per_day:,} rows into {name:7}: "
            f"{time.perf_counter() - started:6.1f} s, {requests_in(found):5} requests")

    # 1, 2: ingest of small batches, each id once
    work = batches(days[-1], args.batches, args.batch)
    seconds: dict[str, list[float]] = {n: [] for n in SIDES}
    requests: dict[str, list[Counter[str]]] = {n: [] for n in SIDES}
    inserted: dict[str, int] = dict.fromkeys(SIDES, 0)
    for batch in work:
        for name in SIDES:  # alternate, so a noisy machine hits all alike
            counted(endpoint)
            started = time.perf_counter()
            inserted[name] += sides[name].ingest(batch)
            seconds[name].append(time.perf_counter() - started)
            requests[name].append(Counter(counted(endpoint)))
    out(f"\ningest: {args.batches} batches of {args.batch} rows ({args.batch // RESENT} re-sent "
        "from the batch before), each id stored once; seconds and requests per batch:")
    for name in SIDES:
        total: Counter[str] = sum(requests[name], Counter())
        per = {k: v / args.batches for k, v in sorted(total.items()) if k != "bytes_served"}
        out(f"  {name:7}: {median_ms(seconds[name])}  first {seconds[name][0] * 1000:6.0f} ms;"
            f"  {requests_in(total) / args.batches:5.1f} requests/batch: "
            + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))
        final = requests[name][-1]
        out(f"           last batch: {requests_in(final)} requests, "
            f"{final['bytes_served'] / 1024:.0f} KiB served")

    # 1b: the same on a local disk, where the store fsyncs before it answers
    unsynced = DeltaSide(endpoint, directory / "local-delta")
    synced = DeltaSide(endpoint, directory / "local-delta", fsync=True)
    local: dict[str, Side] = {"store": StoreSide(endpoint, today, str(directory / "local-store")),
                              "delta, no fsync": unsynced, "delta + fsync": synced}
    local["store"].load(days[-2:-1])
    unsynced.load(days[-2:-1])
    synced.open()
    local_seconds: dict[str, list[float]] = {n: [] for n in local}
    for index, batch in enumerate(work):
        for name, side in local.items():  # the two delta sides take every other batch
            if name.startswith("delta") and (index % 2) != (name == "delta + fsync"):
                continue
            if isinstance(side, DeltaSide):
                side.table.update_incremental()
            started = time.perf_counter()
            side.ingest(batch)
            local_seconds[name].append(time.perf_counter() - started)
    out("on a local disk, the same batches (the two delta rows take every other batch):")
    for name, values in local_seconds.items():
        out(f"  {name:15}: {median_ms(values)}")

    # 3: the daily run's read, 21 days
    first = (today - timedelta(days=min(args.days, 21) - 1)).isoformat()
    last = today.isoformat()
    read_seconds: dict[str, list[float]] = {n: [] for n in SIDES}
    read_counts: dict[str, dict[str, int]] = {}
    ids: dict[str, set[str]] = {}
    for _ in range(args.repeat):
        for name in SIDES:
            counted(endpoint)
            started = time.perf_counter()
            rows = sides[name].read(first, last)
            read_seconds[name].append(time.perf_counter() - started)
            read_counts[name] = counted(endpoint)
            ids[name] = ids_once(rows, f"{name} read")
    expected = ids_once(pa.concat_tables(
        [d.select(["prediction_id"]) for d in days[-min(args.days, 21):-1]]
        + [b.select(["prediction_id"]) for b in work]).group_by("prediction_id").aggregate([]),
        "expected")
    for name in SIDES:
        if ids[name] != expected:
            raise AssertionError(f"{name}: read {len(ids[name]):,} ids, expected "
                                 f"{len(expected):,} ({len(ids[name] - expected)} extra, "
                                 f"{len(expected - ids[name])} missing)")
    out(f"\ndaily run's read: {len(expected):,} rows of {first}..{last} into DuckDB, median of "
        f"{args.repeat}; all three read the same ids, each once:")
    for name in SIDES:
        c = read_counts[name]
        out(f"  {name:7}: {statistics.median(read_seconds[name]):6.2f} s  "
            f"{requests_in(c):5} requests ({c.get('GET', 0)} GET, {c.get('LIST', 0)} LIST, "
            f"{c.get('HEAD', 0)} HEAD)  {c['bytes_served'] / 2**20:7.2f} MiB served")

    # 4: concurrent writers
    pool = days[-1].slice(args.batches * args.batch, args.writers * args.batch * 3)
    out(f"\nconcurrency: {args.writers} processes at once, each {args.rounds} batches of "
        f"{args.batch} rows drawn from {pool.num_rows:,} new ids (each id sent by two writers):")
    checks: list[tuple[str, Callable[[], pa.Table]]] = [
        ("store", lambda: sides["store"].read(first, last)),
        ("delta", lambda: sides["delta"].read(first, last)),
        ("iceberg", lambda: sides["iceberg"].read(first, last)),
    ]
    for kind, read in [*checks, ("iceberg-own", checks[2][1])]:
        counted(endpoint)
        done = concurrent_writers(kind, endpoint, directory, args.writers, pool, args.batch,
                                  args.rounds)
        found = counted(endpoint)
        rows = read()
        stored = rows["prediction_id"].to_pylist()
        twice = len(stored) - len(set(stored))
        lost = len(done["acked"] - set(stored))
        verdict = "exactly once" if not twice and not lost else "BROKEN"
        out(f"  {kind:11}: {done['seconds']:5.1f} s  {len(done['acked']):5} ids acknowledged, "
            f"{twice:4} stored twice, {lost:4} acknowledged and lost, {done['retries']:3} "
            f"retries, {len(done['errors'])} batches refused, "
            f"{found.get('412 precondition failed', 0)} conditional puts refused -> {verdict}")
        for error in sorted(set(done["errors"]))[:3]:
            out(f"               refused: {error}")
        for conflict, times in done["conflicts"].most_common(2):
            out(f"               conflict x{times}: {conflict}")
        if kind in ("delta", "iceberg-own") and verdict != "exactly once":
            raise AssertionError(f"{kind}: concurrent writers stored an id twice or lost one")
        if kind == "iceberg":  # the next run starts from a table without the twice-stored ids
            ice = sides["iceberg"]
            assert isinstance(ice, IcebergSide)
            ice.open()
            pool_ids = pool["prediction_id"].to_pylist()
            from pyiceberg.expressions import In, Reference

            ice.table.delete(In(term=Reference("prediction_id"), values=pool_ids))
            with ice.table.transaction() as change:  # the next run retries whole upserts
                change.set_properties({"commit.retry.num-retries": "0"})

    # 5: readers beside compaction
    delta = sides["delta"]
    assert isinstance(delta, DeltaSide)
    total_rows = delta_rows(delta)
    beside = readers_beside_compaction(delta, total_rows, directory)
    out(f"\nDelta compaction ({beside['removed']} files merged in {beside['compact_seconds']:.1f}"
        f" s) then vacuum with no retention ({beside['vacuumed']} files deleted), files "
        f"{beside['files'][0]} -> {beside['files'][1]}: {beside['reads']} reads (DuckDB and "
        f"polars through the log; {beside['overlapping']} rounds of both overlapped them), "
        f"{len(beside['twice'])} counted a row twice, "
        f"{len(beside['wrong'])} found another count than {total_rows:,}, "
        f"{len(beside['failures'])} failed")
    for failure in sorted(set(beside["failures"]))[:3]:
        out(f"  failed: {failure}")
    out(f"  a read planned before the compaction and run after the vacuum: {beside['stale']}")
    if beside["twice"] or beside["wrong"]:
        raise AssertionError(f"a reader beside Delta's compaction miscounted: {beside}")
    store = sides["store"]
    assert isinstance(store, StoreSide)
    n, listed, distinct, merged = glob_beside_store_compaction(store)
    out(f"store compaction ({merged} files merged): a plain glob of "
        f"store/predictions/**.parquet right after it reads {n:,} rows, hindsight's own listing "
        f"{listed:,} ({distinct:,} distinct ids; the store's own excess is the concurrent "
        "writers' ids stored twice)")


def delta_rows(delta: DeltaSide) -> int:
    import duckdb
    from deltalake import DeltaTable

    con = duckdb.connect()
    con.register("p", DeltaTable(delta.uri, storage_options=delta.options).to_pyarrow_dataset())
    return int(con.sql("SELECT count(*) FROM p").fetchall()[0][0])


if __name__ == "__main__":
    main()
