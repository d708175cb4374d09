"""Tiering: move old prediction and label partitions to a cold store.

Tiering is a compaction whose merged file is written to the cold store, and it commits the same
way, so readers never count a row twice or miss one:

1. the partition's files are merged and written to the cold store (``tiered-<id>.parquet``;
   invisible: nothing names it yet);
2. the written file is read back and must equal what was merged, row for row (else it is
   removed and the partition stays hot);
3. a commit marker in the hot partition names the cold file and the hot files it replaces (one
   atomic write: a rename on disk, one upload in a bucket): from here on, every listing shows
   the cold file instead of them;
4. the replaced hot files are deleted after the compaction grace, by the next compaction or
   tiering, so a query that listed them before the commit still reads them.

A crash before 3 leaves a cold file nothing names: invisible, and removed by a later tiering
once older than the grace. Readers find the cold files through the markers: the hot partition
keeps its marker (a few hundred bytes a day). The cold store is reached the way the store is:
another disk or mount for a local store, another bucket or prefix for one in a bucket.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from hindsight.errors import StoreError
from hindsight.store.compaction import GRACE, compact
from hindsight.store.partitions import (
    COMMIT_PREFIX,
    MAINTENANCE_LOCK,
    TIERED_PREFIX,
    Store,
    Table,
)

TIERED = (Table.PREDICTIONS, Table.LABELS)


@dataclass(frozen=True, slots=True)
class TieringReport:
    partitions: int = 0
    rows: int = 0
    bytes: int = 0
    swept: int = 0  # cold files no commit names (a tiering interrupted before its commit)

    def __add__(self, other: TieringReport) -> TieringReport:
        return TieringReport(self.partitions + other.partitions, self.rows + other.rows,
                             self.bytes + other.bytes, self.swept + other.swept)

    def summary(self) -> str:
        return (f"moved {self.partitions} partitions ({self.rows:,} rows, {self.bytes:,} bytes) "
                f"to the cold store; removed {self.swept} unnamed cold files")


def due(store: Store, today: date, hot_days: int) -> list[tuple[Table, date]]:
    """Partitions older than ``hot_days`` that still hold files in the hot store."""
    cutoff = today - timedelta(days=hot_days)
    found = []
    for table in TIERED:
        for dt in store.partitions(table):
            if dt >= cutoff:
                break
            if _hot_files(store, table, dt):
                found.append((table, dt))
    return found


def tier(store: Store, cold: Store, today: date, hot_days: int, *,
         now: datetime | None = None, grace: timedelta = GRACE) -> TieringReport:
    """Move every partition that is due; then finish what earlier runs left (replaced hot
    files past the grace, unnamed cold files past the grace)."""
    if type(cold.fs) is not type(store.fs):
        raise StoreError(f"cold store {cold.root!r}: it must be reachable the same way as the "
                         f"store {store.root!r} (both local, or both on the same object store)")
    report = TieringReport()
    with store.lock(MAINTENANCE_LOCK):  # one tiering or compaction of a partition at a time
        for table, dt in due(store, today, hot_days):
            report += _move(store, cold, table, dt)
    compact(store, TIERED, now=now, grace=grace)  # deletes replaced hot files past the grace
    with store.lock(MAINTENANCE_LOCK):
        swept = _sweep(store, cold, now or datetime.now(UTC), grace)
    return report + TieringReport(swept=swept)


def _hot_files(store: Store, table: Table, dt: date) -> list[str]:
    return [f.path for f in store.files(table, dt, dt) if not f.cold]


def _move(store: Store, cold: Store, table: Table, dt: date) -> TieringReport:
    paths = _hot_files(store, table, dt)
    merged = pa.concat_tables([store.read(p) for p in paths], promote_options="permissive")
    written = cold.write(table, merged, dt=dt, name=f"{TIERED_PREFIX}{uuid.uuid4().hex}.parquet")
    back = cold.read(written)
    if back.num_rows != merged.num_rows or not back.equals(merged):
        cold.fs.delete_file(written)
        raise StoreError(f"{written}: the copy of {store.partition_dir(table, dt)} read back "
                         "differs from the original; the partition stays hot. Check the cold "
                         "store's disk")
    directory = store.partition_dir(table, dt)
    store.write_commit(directory, written.rsplit("/", 1)[1],
                       [p.rsplit("/", 1)[1] for p in paths], merged_at=written)
    size = cold.fs.get_file_info(written).size or 0
    return TieringReport(1, merged.num_rows, size)


def _sweep(store: Store, cold: Store, now: datetime, grace: timedelta) -> int:
    """Remove cold files that no commit names, older than the grace."""
    named: set[str] = set()
    for table in TIERED:
        for info in store.listing(table):
            if info.base_name.startswith(COMMIT_PREFIX):
                named.add(store.read_commit(info.path)[0])
    swept = 0
    for table in TIERED:
        for info in cold.listing(table):
            old = info.mtime is not None and now - info.mtime > grace
            if info.path not in named and old and (info.base_name.startswith(TIERED_PREFIX)
                                                   or info.base_name.startswith(".tmp-")):
                cold.fs.delete_file(info.path)
                swept += 1
    return swept

