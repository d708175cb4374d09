"""Retention: delete whole date partitions older than a table's ``delete_after_days``.

A partition goes in two steps, so that no reader ever sees part of a day: on a local store
its directory is renamed to a hidden name (one atomic rename; listings skip hidden
directories), then removed. A crash between the two leaves a hidden directory that the next
retention removes. On an object store the files are deleted one by one: a reader listing
meanwhile may see part of a day that no run's window reaches any more.

Never deleted: the reference set, validations, the outbox, and the newest partition of each
table (the latest run's alerts are what is open going into the next run).
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow.fs as pafs

from hindsight.config import RetentionDays
from hindsight.store import delta
from hindsight.store.partitions import MAINTENANCE_LOCK, Store, Table

RETIRING = ".retiring-"
WRITTEN = (Table.PREDICTIONS, Table.LABELS)  # by ingest, under the table's lock
RESULTS = (Table.METRICS, Table.ALERTS, Table.RUNS, Table.DRIFT, Table.CHECKS)


@dataclass(frozen=True, slots=True)
class Retired:
    table: str
    dt: date
    files: int
    bytes: int


def policy(keep: RetentionDays) -> dict[Table, int]:
    """Days to keep per table, for the tables that have a limit."""
    days = {Table.PREDICTIONS: keep.predictions, Table.LABELS: keep.labels}
    days |= {table: keep.results for table in RESULTS}
    return {table: n for table, n in days.items() if n is not None}


def expired(store: Store, keep: RetentionDays, today: date) -> list[Retired]:
    """The partitions a retention run as of ``today`` would delete."""
    found = []
    for table, days in policy(keep).items():
        dates = store.partitions(table)
        cutoff = today - timedelta(days=days)
        for dt in dates[:-1]:  # never the newest
            if dt >= cutoff:
                break
            files = store.listing(table, dt, dt)
            found.append(Retired(table.value, dt, len(files), sum(i.size or 0 for i in files)))
    return found


def retire(store: Store, keep: RetentionDays, today: date) -> list[Retired]:
    """Delete what ``expired`` lists, and what an interrupted retention left. Holds the store's
    maintenance lock, so no compaction or tiering works on a day while it goes, and for each
    day of predictions or labels that table's writer lock, so no ingest looks it up
    meanwhile."""
    with store.lock(MAINTENANCE_LOCK):
        gone = expired(store, keep, today)
        for partition in gone:
            table = Table(partition.table)
            with store.lock(table.value) if table in WRITTEN else contextlib.nullcontext():
                _remove(store, table, partition.dt)
        for table in Table:
            _sweep(store, table)
    return gone


def _remove(store: Store, table: Table, dt: date) -> None:
    if delta.is_delta(store, table):  # one commit; the files go at compaction's vacuum
        delta.remove_day(store, table, dt)
        return
    directory = store.partition_dir(table, dt)
    tiered = [f.path for f in store.files(table, dt, dt) if f.cold]
    if store.is_local:
        parent, name = directory.rsplit("/", 1)
        hidden = f"{parent}/{RETIRING}{name}-{uuid.uuid4().hex}"
        store.rename_durably(directory, hidden)  # from here on, no listing shows the day
        store.fs.delete_dir(hidden)
    else:
        with contextlib.suppress(FileNotFoundError):  # removed by another retention
            store.fs.delete_dir(directory)
    for path in tiered:  # a crash before this leaves them unnamed: tiering sweeps them
        with contextlib.suppress(FileNotFoundError):
            store.fs.delete_file(path)


def _sweep(store: Store, table: Table) -> None:
    top = store.fs.get_file_info(pafs.FileSelector(store.table_dir(table),
                                                   allow_not_found=True))
    for info in top:
        if info.type == pafs.FileType.Directory and info.base_name.startswith(RETIRING):
            store.fs.delete_dir(info.path)
