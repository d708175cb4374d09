"""Predictions and labels kept as Delta Lake tables (``storage.table_format: delta``).

A Delta table's log (``<table>/_delta_log/``) names the files that make up each version, so any
engine that reads Delta (Spark, DuckDB, polars, Trino, delta-rs) sees exactly what is committed:
a compaction swaps its files in one commit, never both sets, never neither. Commits are created
only if absent (``If-None-Match`` in a bucket, a rename that never replaces on a disk), so
writers on many machines share one table with no lock server.

Ingest stores a row only where the table has no row with its key in the row's own day: a
MERGE that inserts what does not match. Two writers racing on the same id both try to
commit; delta-rs refuses the one whose read the other's commit changed, and that one runs its
MERGE again on the new version, where the id is found. So an id is stored once however many
writers send it at once. On a local disk delta-rs does not fsync: the commit, the files it
added and their directories are fsynced here before the caller hears back.

Files are written by delta-rs under the same ``dt=YYYY-MM-DD`` directories as the Parquet
store's, zstd-compressed; hindsight's readers take the file list from the log.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from hindsight.errors import ConfigError, StoreError
from hindsight.store.partitions import (
    PARTITION_KEY,
    PartitionFile,
    Store,
    Table,
    fsync_path,
    plain_schema,
)

DELTA_TABLES = (Table.PREDICTIONS, Table.LABELS)
LOG_DIR = "_delta_log"
# a MERGE that lost a race runs again on the newer version; this many times at most
MAX_ATTEMPTS = 50
MIN_VACUUM_HOURS = 1
# the data files delta-rs writes; any other Parquet file under a Delta table is the Parquet
# store's, left by a migration not finished
_DELTA_FILE = re.compile(r"part-\d{5}-[0-9a-f-]{36}-c\d{3}(\.\w+)?\.parquet")
_FOUND: set[str] = set()  # table URLs known to be Delta tables: a table never stops being one
_SNAPSHOTS: dict[str, Any] = {}  # table URL: the DeltaTable read last, for ``files``
_SNAPSHOTS_LOCK = threading.Lock()  # one delta-rs table object is not shared by threads at once


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError:
        raise ConfigError("a store whose tables are Delta tables (storage.table_format: delta) "
                          "needs the deltalake package: pip install 'hindsight[lake]'") from None
    return deltalake


def url(store: Store, table: Table) -> str:
    """The table's location as delta-rs names it: a local path, or the bucket's URL."""
    if store.is_local:
        return store.table_dir(table)
    scheme = {"s3": "s3", "gcs": "gs", "abfs": "abfs"}.get(store.fs.type_name)
    if scheme is None:
        raise StoreError(f"store {store.root!r}: Delta tables are kept on a local disk or in "
                         f"S3, GCS or Azure, not on {store.fs.type_name}")
    return f"{scheme}://{store.table_dir(table)}"


def storage_options(store: Store) -> dict[str, str] | None:
    """What delta-rs needs beyond its own reading of the environment (AWS_*, GOOGLE_*...): an
    endpoint on plain HTTP (a test server, a private gateway) must be allowed explicitly."""
    if store.is_local:
        return None
    options = http_endpoint()
    if store.fs.type_name == "s3" and "AWS_REGION" not in os.environ:
        options["AWS_REGION"] = getattr(store.fs, "region", "") or "us-east-1"
    return options or None


def http_endpoint() -> dict[str, str]:
    """delta-rs refuses a plain-HTTP endpoint (a test server, a private gateway) unless told."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    return {"AWS_ALLOW_HTTP": "true"} if endpoint.startswith("http://") else {}


def is_delta(store: Store, table: Table) -> bool:
    """Whether ``table`` is a Delta table: its log's first commit or checkpoint exists."""
    if table not in DELTA_TABLES:
        return False
    location = url(store, table)
    if location in _FOUND:
        return True
    log = f"{store.table_dir(table)}/{LOG_DIR}"
    found = store.fs.get_file_info([f"{log}/{0:020d}.json", f"{log}/_last_checkpoint"])
    if any(i.type == pafs.FileType.File for i in found):
        _FOUND.add(location)
        return True
    return False


def _open(store: Store, table: Table) -> Any:
    try:
        return _deltalake().DeltaTable(url(store, table),
                                       storage_options=storage_options(store))
    except ConfigError:
        raise
    except Exception as exc:  # delta-rs raises its own kinds, and OSError
        raise StoreError(f"cannot read the Delta log of {store.table_dir(table)}: {exc}") from exc


def _actions(store: Store, table: Table) -> pa.Table:
    """The add actions of the table's newest version. The table opened before is brought
    up to date by reading only the commits since (a bucket: one listing and a read a
    commit, not the whole log again)."""
    location = url(store, table)
    with _SNAPSHOTS_LOCK:
        snapshot = _SNAPSHOTS.get(location)
        try:
            if snapshot is None:
                snapshot = _SNAPSHOTS[location] = _open(store, table)
            else:
                snapshot.update_incremental()
            return pa.table(snapshot.get_add_actions(flatten=True))
        except StoreError:
            raise
        except Exception as exc:  # delta-rs raises its own kinds, and OSError
            _SNAPSHOTS.pop(location, None)
            raise StoreError(f"cannot read the Delta log of {store.table_dir(table)}: "
                             f"{exc}") from exc


def files(store: Store, table: Table, start: date | None = None,
          end: date | None = None) -> list[PartitionFile]:
    """The files of the table's current version, of the days ``start..end``."""
    actions = _actions(store, table)
    found = []
    column = f"partition.{PARTITION_KEY}"
    days = actions[column].to_pylist() if column in actions.column_names else []
    for path, size, day in zip(actions["path"].to_pylist(),
                               actions["size_bytes"].to_pylist(), days, strict=True):
        dt = day if isinstance(day, date) else date.fromisoformat(str(day)) if day else None
        if (start is not None and (dt is None or dt < start)) or (
                end is not None and (dt is None or dt > end)):
            continue
        found.append(PartitionFile(f"{store.table_dir(table)}/{urllib.parse.unquote(path)}",
                                   dt, size=int(size)))
    return sorted(found, key=lambda f: f.path)


def insert_absent(store: Store, table: Table, rows: pa.Table, days: pa.Array,
                  keys: list[str]) -> int:
    """Store the ``rows`` (made or arrived on ``days``) whose ``keys`` no stored row of their
    day has; returns how many were stored. Safe against any number of writers: a row sent
    again keeps its day (a prediction its timestamp, a label its arrival), so racing writers
    meet in the same day's files. (Ingest's look-up before, over ``storage.lookup_days``,
    finds a row re-sent under another day.)"""
    if not rows.num_rows:
        return 0
    deltalake = _deltalake()
    data = rows.append_column(PARTITION_KEY, pa.array(days, pa.date32()))
    location, options = url(store, table), storage_options(store)
    listed = ", ".join(f"'{d.isoformat()}'" for d in sorted(set(days.to_pylist())))
    predicate = " AND ".join([f"t.{PARTITION_KEY} IN ({listed})",
                              *(f"t.{_quoted(k)} = s.{_quoted(k)}" for k in keys)])
    properties = deltalake.WriterProperties(compression="ZSTD")
    for _ in range(MAX_ATTEMPTS):
        try:
            if not is_delta(store, table):
                deltalake.DeltaTable.create(location, schema=data.schema,
                                            partition_by=[PARTITION_KEY], mode="ignore",
                                            storage_options=options)
            delta = deltalake.DeltaTable(location, storage_options=options)
            before = delta.version()
            merged = delta.merge(data, predicate, source_alias="s", target_alias="t",
                                 merge_schema=True, writer_properties=properties,
                                 ).when_not_matched_insert_all().execute()
        except deltalake.exceptions.CommitFailedError:
            continue  # another writer committed first: look again on its version
        except (deltalake.exceptions.DeltaError, OSError) as exc:
            raise StoreError(f"cannot write to the Delta table {location}: {exc}") from exc
        if store.is_local and delta.version() != before:
            _sync(store, table, delta.version())
        return int(merged["num_target_rows_inserted"])
    raise StoreError(f"{location}: {MAX_ATTEMPTS} commits in a row lost to other writers; "
                     "nothing of this batch was stored: send it again")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sync(store: Store, table: Table, version: int) -> None:
    """The commit ``version``, the files it added, and their directories, on the disk."""
    base = store.table_dir(table)
    commit = f"{base}/{LOG_DIR}/{version:020d}.json"
    paths = [commit]
    with open(commit, encoding="utf-8") as handle:
        for line in handle:
            added = json.loads(line).get("add")
            if added:
                paths.append(f"{base}/{urllib.parse.unquote(added['path'])}")
    for path in [*paths, *{p.rsplit("/", 1)[0] for p in paths}, base, store.root]:
        fsync_path(path)


def compact(store: Store, table: Table, dt: date, target_bytes: int) -> tuple[int, int]:
    """Merge the day's small files into files of about ``target_bytes``, in one commit that
    removes what it merged (left on disk for readers until ``vacuum``). Returns (files
    written, files merged)."""
    deltalake = _deltalake()
    delta = _open(store, table)
    try:
        done = delta.optimize.compact(
            partition_filters=[(PARTITION_KEY, "=", dt.isoformat())],
            target_size=target_bytes,
            writer_properties=deltalake.WriterProperties(compression="ZSTD"))
    except deltalake.exceptions.CommitFailedError:
        return 0, 0  # a writer's commit removed what it read: the next compaction merges
    except (deltalake.exceptions.DeltaError, OSError) as exc:
        raise StoreError(f"{store.table_dir(table)}, {dt}: cannot compact: {exc}") from exc
    if store.is_local and done.get("numFilesAdded"):
        _sync(store, table, delta.version())
    return int(done.get("numFilesAdded", 0)), int(done.get("numFilesRemoved", 0))


def remove_day(store: Store, table: Table, dt: date) -> None:
    """Remove a day from the table's current version in one commit; its files go at the
    next ``vacuum`` past the grace."""
    delta = _open(store, table)
    deltalake = _deltalake()
    for _ in range(MAX_ATTEMPTS):
        try:
            delta.delete(f"{PARTITION_KEY} = '{dt.isoformat()}'")
        except deltalake.exceptions.CommitFailedError:
            delta = _open(store, table)
            continue
        except (deltalake.exceptions.DeltaError, OSError) as exc:
            raise StoreError(f"{store.table_dir(table)}, {dt}: cannot remove the day: "
                             f"{exc}") from exc
        if store.is_local:
            fsync_path(f"{store.table_dir(table)}/{LOG_DIR}")
        return
    raise StoreError(f"{store.table_dir(table)}, {dt}: the removal lost {MAX_ATTEMPTS} commits "
                     "in a row to other writers; run retention again")


def vacuum(store: Store, table: Table, grace: timedelta) -> int:
    """Delete the files no version newer than ``grace`` ago names: what compaction merged and
    retention removed, once no reader that listed them can still be reading them. A file no
    version names at all is deleted too once older than the grace, so the grace is never
    under ``MIN_VACUUM_HOURS``: a writer's file before its commit is such a file."""
    hours = max(MIN_VACUUM_HOURS, math.ceil(grace.total_seconds() / 3600))  # whole hours
    delta = _open(store, table)
    try:
        # full: also the files of MERGEs that lost their commit to another writer
        gone = delta.vacuum(retention_hours=hours, dry_run=False,
                            enforce_retention_duration=False, full=True)
    except (_deltalake().exceptions.DeltaError, OSError) as exc:
        raise StoreError(f"{store.table_dir(table)}: cannot delete old files: {exc}") from exc
    return len(gone)


def unmigrated(store: Store, table: Table) -> list[str]:
    """The Parquet store's files still under a Delta table: a migration was interrupted, and
    only ``migrate`` may delete them (a vacuum would take their rows with them)."""
    return [i.path for i in store.listing(table)
            if (i.base_name.endswith(".parquet") and not _DELTA_FILE.fullmatch(i.base_name))
            or i.base_name.startswith("_commit-")]


@dataclass(frozen=True, slots=True)
class Migrated:
    table: str
    days: int  # days committed to the Delta table by this migration
    rows: int
    repeats: int  # rows whose key was stored twice, kept once
    removed: int  # Parquet files and commit markers deleted once their day was committed


def migrate(store: Store, keys: dict[Table, list[str]],
            progress: Callable[[Table, date], None] | None = None) -> list[Migrated]:
    """Make the store's predictions and labels Delta tables, day by day: a day's visible rows
    (one per key of ``keys``) are committed in one Delta commit tagged with the day, so a
    migration run again skips the days it committed; their count is read back from the log
    and compared, and only then are the day's Parquet files, commit markers and cold copies
    deleted. Nothing may write or run meanwhile: the days not yet committed are not in the
    table readers see."""
    deltalake = _deltalake()
    return [_migrate_table(store, table, keys[table], deltalake, progress)
            for table in DELTA_TABLES]


def _migrate_table(store: Store, table: Table, keys: list[str], deltalake: Any,
                   progress: Callable[[Table, date], None] | None) -> Migrated:
    from hindsight.store.compaction import concat

    app = f"hindsight-migrate-{table.value}"
    location, options = url(store, table), storage_options(store)
    committed: set[str] = set()
    last_done = -1
    if is_delta(store, table):
        committed = {f.path for f in files(store, table)}
        last_done = _open(store, table).transaction_version(app) or -1
    by_day: dict[date, list[PartitionFile]] = {}
    for f in store.parquet_files(table):
        if f.dt is not None and f.path not in committed:
            by_day.setdefault(f.dt, []).append(f)
    days = rows = repeats = removed = 0
    for dt, day_files in sorted(by_day.items()):
        if dt.toordinal() > last_done:
            data = concat(store, day_files)
            unique = _first_of_each(data.cast(plain_schema(data.schema)), keys)
            repeats += data.num_rows - unique.num_rows
            data = unique.append_column(PARTITION_KEY,
                                        pa.array([dt] * unique.num_rows, pa.date32()))
            try:
                deltalake.write_deltalake(
                    location, data, mode="append", partition_by=[PARTITION_KEY],
                    schema_mode="merge", storage_options=options,
                    writer_properties=deltalake.WriterProperties(compression="ZSTD"),
                    commit_properties=deltalake.CommitProperties(
                        app_transactions=[deltalake.Transaction(app, dt.toordinal())]))
            except (deltalake.exceptions.DeltaError, OSError) as exc:
                raise StoreError(f"{location}, {dt}: cannot commit the day to the Delta table "
                                 f"({exc}); nothing of the day was deleted: run the "
                                 "migration again") from exc
            _FOUND.add(location)
            if store.is_local:
                _sync(store, table, _open(store, table).version())
            stored = sum(int(store.footer(f.path).num_rows) for f in files(store, table, dt, dt))
            if stored != unique.num_rows:
                raise StoreError(f"{location}, {dt}: the Delta table holds {stored} rows of the "
                                 f"day, not the {unique.num_rows} migrated; nothing of the day "
                                 "was deleted: restore the table's log from a backup")
            days += 1
            rows += unique.num_rows
        removed += _remove_parquet(store, table, dt, day_files)
        if progress is not None:
            progress(table, dt)
    return Migrated(table.value, days, rows, repeats, removed)


def _first_of_each(data: pa.Table, keys: list[str]) -> pa.Table:
    """The first row of each key, in the table's order."""
    numbered = data.append_column("_hindsight_row", pa.array(range(data.num_rows), pa.int64()))
    first = numbered.group_by(keys, use_threads=False).aggregate([("_hindsight_row", "min")])
    if first.num_rows == data.num_rows:
        return data
    rows = first["_hindsight_row_min"]
    return data.take(pc.take(rows, pc.array_sort_indices(rows)))


def _remove_parquet(store: Store, table: Table, dt: date, old: list[PartitionFile]) -> int:
    """The day's Parquet files once its rows are committed: every file of the day the log
    does not name (commit markers and merged-away files too) and the day's cold copies."""
    named = {f.path for f in files(store, table, dt, dt)}
    gone = [f.path for f in old if f.cold]
    gone += [i.path for i in store.listing(table, dt, dt) if i.path not in named]
    for path in gone:
        with contextlib.suppress(FileNotFoundError):
            store.fs.delete_file(path)
    return len(gone)
