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

A cold store may be shared by several stores (one per model): each writes and sweeps only its
own part, ``<cold store>/<store id>/``, claimed by an ``owner.json`` that names the store's root
(the id is the store's, kept in its ``store.json``). A store never deletes a cold file it did not
write; files of another layout in the cold store are left alone.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from hindsight.errors import ConfigError, StoreError
from hindsight.store import delta
from hindsight.store.compaction import GRACE, compact, concat
from hindsight.store.partitions import (
    COMMIT_PREFIX,
    IDENTITY_FILE,
    MAINTENANCE_LOCK,
    TIERED_PREFIX,
    PartitionFile,
    Store,
    Table,
)

TIERED = (Table.PREDICTIONS, Table.LABELS)
OWNER_FILE = "owner.json"


@dataclass(frozen=True, slots=True)
class TieringReport:
    partitions: int = 0
    rows: int = 0
    bytes: int = 0
    swept: int = 0  # cold files no commit names (a tiering interrupted before its commit)
    gone: int = 0  # partitions due whose files were gone when reached (removed meanwhile)
    failed: tuple[str, ...] = ()  # partitions left hot, each with why and the fix

    def __add__(self, other: TieringReport) -> TieringReport:
        return TieringReport(self.partitions + other.partitions, self.rows + other.rows,
                             self.bytes + other.bytes, self.swept + other.swept,
                             self.gone + other.gone, self.failed + other.failed)

    def summary(self) -> str:
        text = (f"moved {self.partitions} partitions ({self.rows:,} rows, {self.bytes:,} bytes) "
                f"to the cold store; removed {self.swept} unnamed cold files")
        if self.gone:
            text += (f"; {self.gone} partitions due were gone when reached (removed meanwhile, "
                     "by retention): nothing to move")
        if self.failed:
            text += (f"; {len(self.failed)} partitions left hot (the others went on):"
                     + "".join(f"\n  {reason}" for reason in self.failed))
        return text


def due(store: Store, today: date, hot_days: int) -> list[tuple[Table, date]]:
    """Partitions older than ``hot_days`` that still hold files in the hot store."""
    cutoff = today - timedelta(days=hot_days)
    found = []
    for table in TIERED:
        if delta.is_delta(store, table):
            continue  # a Delta table's days stay in it (storage.table_format says why)
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
    with store.lock(MAINTENANCE_LOCK):  # one tiering, compaction or retention at a time
        own = claim(store, cold)
        for table, dt in due(store, today, hot_days):
            try:
                report += _move(store, own, table, dt)
            except StoreError as exc:  # one bad partition does not stop the others
                report += TieringReport(failed=(str(exc),))
    compact(store, TIERED, now=now, grace=grace)  # deletes replaced hot files past the grace
    with store.lock(MAINTENANCE_LOCK):
        swept = _sweep(store, own, now or datetime.now(UTC), grace)
    return report + TieringReport(swept=swept)


def claim(store: Store, cold: Store) -> Store:
    """The part of ``cold`` that is ``store``'s: ``<cold>/<store id>``, claimed for the store's
    root by an owner file the first time. Refuses a cold store that is a hindsight store, and a
    part claimed for another root (the store is a copy of another)."""
    if cold.exists(f"{cold.root}/{IDENTITY_FILE}") or any(
            cold.listing(table) for table in (Table.RUNS, Table.REFERENCE, Table.METRICS)):
        raise ConfigError(f"cold store {cold.root!r} is a hindsight store itself: tiering "
                          "would write among its files. Name a location of its own for "
                          "storage.cold_store")
    own = Store(cold.fs, f"{cold.root}/{store.identity()}")
    owner = f"{own.root}/{OWNER_FILE}"
    if not own.exists(owner):
        own.create_once(owner, json.dumps({"store": store.root}).encode())
    claimed = own.read_json(owner)
    if not isinstance(claimed, dict) or claimed.get("store") != store.root:
        other = claimed.get("store") if isinstance(claimed, dict) else claimed
        raise ConfigError(
            f"{owner}: this part of the cold store belongs to the store at {other!r}, and the "
            f"store at {store.root!r} has the same identity ({IDENTITY_FILE}): it is a copy "
            f"of that store, or that store moved. A copy: remove its {IDENTITY_FILE} (the next "
            f"tiering gives it its own part). A move: write {{\"store\": {store.root!r}}} "
            f"into {owner}")
    return own


def _hot_files(store: Store, table: Table, dt: date) -> list[str]:
    return [f.path for f in store.files(table, dt, dt) if not f.cold]


def _move(store: Store, cold: Store, table: Table, dt: date) -> TieringReport:
    paths = _hot_files(store, table, dt)
    if not paths:  # removed since ``due`` listed it (retention, in a bucket without locks)
        return TieringReport(gone=1)
    merged = concat(store, [PartitionFile(p, dt) for p in paths])
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


def _sweep(store: Store, own: Store, now: datetime, grace: timedelta) -> int:
    """Remove the store's own cold files that no commit names, older than the grace."""
    named: set[str] = set()
    for table in TIERED:
        for info in store.listing(table):
            if info.base_name.startswith(COMMIT_PREFIX):
                named.add(store.read_commit(info.path)[0])
    swept = 0
    for table in TIERED:
        for info in own.listing(table):
            old = info.mtime is not None and now - info.mtime > grace
            if info.path not in named and old and (info.base_name.startswith(TIERED_PREFIX)
                                                   or info.base_name.startswith(".tmp-")):
                own.fs.delete_file(info.path)
                swept += 1
    return swept

