"""Compaction: merge a partition's small files into one, safely for readers running meanwhile.

Every ingest call writes its own file per day (durable before the caller hears back), so a
service taking many small requests leaves thousands of small files a day, and every query
pays per file. Compaction rewrites them as one file:

1. the merged rows are written as ``compacted-<id>.parquet``: invisible, as no commit names it;
2. a commit marker names the merged file and the files it replaces, written whole (a rename
   on disk, one upload in a bucket): from here on, a listing shows the merged file instead
   of them, never both, never neither. The marker is the partition's manifest of changes:
   a reader lists the partition (it must, to find the day's files) and reads the few markers
   there, once per query;
3. the replaced files are deleted only ``grace`` after the commit, so a reader that listed them
   before the commit can still read them. Merged files that no commit names (a crash between
   1 and 2) and temporary files older than ``grace`` are removed the same way.

Two compactions of the same partition at once would both commit the same files; the store's
maintenance lock keeps compactions, tierings and retentions of a local store apart. On an object
store, run one of them at a time (the service runs them in one thread).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs

from hindsight.errors import StoreError
from hindsight.store import delta
from hindsight.store.partitions import (
    COMMIT_PREFIX,
    COMPACTED_PREFIX,
    MAINTENANCE_LOCK,
    TIERED_PREFIX,
    PartitionFile,
    Store,
    Table,
)

COMPACTED_TABLES = (Table.PREDICTIONS, Table.LABELS)
SMALL_FILE_BYTES = 32 * 1024 * 1024
TARGET_FILE_BYTES = 256 * 1024 * 1024
GRACE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class CompactionReport:
    partitions: int = 0  # partitions rewritten
    files_merged: int = 0  # small files replaced by merged ones
    files_written: int = 0
    files_removed: int = 0  # replaced files past their grace, and crash debris
    failed: tuple[str, ...] = ()  # partitions left as they were, each with why and the fix

    def __add__(self, other: CompactionReport) -> CompactionReport:
        return CompactionReport(self.partitions + other.partitions,
                                self.files_merged + other.files_merged,
                                self.files_written + other.files_written,
                                self.files_removed + other.files_removed,
                                self.failed + other.failed)

    def summary(self) -> str:
        text = (f"compacted {self.partitions} partitions: {self.files_merged} small files into "
                f"{self.files_written}; removed {self.files_removed} files past their grace")
        if self.failed:
            text += (f"; {len(self.failed)} partitions left as they were (the others went on):"
                     + "".join(f"\n  {reason}" for reason in self.failed))
        return text


def compact(store: Store, tables: tuple[Table, ...] = COMPACTED_TABLES, *,
            now: datetime | None = None, grace: timedelta = GRACE,
            small_bytes: int = SMALL_FILE_BYTES, target_bytes: int = TARGET_FILE_BYTES,
            progress: Callable[[Table, date], None] | None = None) -> CompactionReport:
    """Compact every partition of ``tables`` with two or more small files, and finish what
    earlier compactions left (files past their grace). A partition that cannot be compacted
    (files whose types disagree, a file that does not read) is left as it was and named in
    the report; the others go on."""
    moment = now or datetime.now(UTC)
    report = CompactionReport()
    with store.lock(MAINTENANCE_LOCK):
        for table in tables:
            if delta.is_delta(store, table):
                report += _compact_delta(store, table, grace, small_bytes, target_bytes,
                                         progress)
                continue
            for dt in store.partitions(table):
                try:
                    report += _finish(store, table, dt, moment, grace)
                    report += _merge(store, table, dt, small_bytes, target_bytes)
                except StoreError as exc:  # one bad partition does not stop the store's upkeep
                    report += CompactionReport(failed=(str(exc),))
                if progress is not None:
                    progress(table, dt)
    return report


def _compact_delta(store: Store, table: Table, grace: timedelta, small_bytes: int,
                   target_bytes: int,
                   progress: Callable[[Table, date], None] | None) -> CompactionReport:
    """A Delta table's days: each with two or more small files is rewritten in one commit
    (readers of the log see one set or the other); files no version within ``grace`` names
    are deleted."""
    report = CompactionReport()
    small: dict[date, int] = {}
    for f in store.files(table):
        if f.dt is not None and (f.size or 0) < small_bytes:
            small[f.dt] = small.get(f.dt, 0) + 1
    for dt, count in sorted(small.items()):
        if count >= 2:
            try:
                written, merged = delta.compact(store, table, dt, target_bytes)
            except StoreError as exc:
                report += CompactionReport(failed=(str(exc),))
            else:
                report += CompactionReport(int(merged > 0), merged, written, 0)
        if progress is not None:
            progress(table, dt)
    left = delta.unmigrated(store, table)
    if left:
        return report + CompactionReport(failed=(
            f"{store.table_dir(table)}: {len(left)} files of the Parquet store are still there "
            f"(such as {left[0]}): a migration to Delta was interrupted, and no file is deleted "
            "until it ends; run 'hindsight storage migrate' again",))
    return report + CompactionReport(files_removed=delta.vacuum(store, table, grace))


def _merge(store: Store, table: Table, dt: date, small_bytes: int,
           target_bytes: int) -> CompactionReport:
    sizes = {i.path: i.size or 0 for i in store.listing(table, dt, dt)}
    # A file a writer added after the size listing waits for the next compaction; a cold file
    # is never merged back.
    small = [f for f in store.files(table, dt, dt)
             if not f.cold and f.path in sizes and sizes[f.path] < small_bytes]
    report = CompactionReport()
    for group in _groups(small, sizes, target_bytes):
        if len(group) < 2:
            continue
        merged = concat(store, group)
        written = store.write(table, merged, dt=dt,
                              name=f"{COMPACTED_PREFIX}{uuid.uuid4().hex}.parquet")
        directory, merged_name = written.rsplit("/", 1)
        store.write_commit(directory, merged_name, [f.path.rsplit("/", 1)[1] for f in group])
        report += CompactionReport(1, len(group), 1, 0)
    return report


def concat(store: Store, files: list[PartitionFile]) -> pa.Table:
    tables = [store.read(f.path) for f in files]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        odd = next((f for f, t in zip(files, tables, strict=True)
                    if not _unifies(tables[0], t)), files[-1])
        raise StoreError(
            f"cannot merge {odd.path} with {files[0].path}: they disagree on column types "
            f"({exc}); nothing was changed. Rewrite the odd file with the types of the others "
            "(or log its rows again after moving it out of the store)") from exc


def _unifies(first: pa.Table, other: pa.Table) -> bool:
    try:
        pa.unify_schemas([first.schema, other.schema], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _groups(files: list[PartitionFile], sizes: dict[str, int],
            target_bytes: int) -> Iterator[list[PartitionFile]]:
    """Consecutive runs of files of at most ``target_bytes`` together."""
    group: list[PartitionFile] = []
    total = 0
    for f in files:
        if group and total + sizes[f.path] > target_bytes:
            yield group
            group, total = [], 0
        group.append(f)
        total += sizes[f.path]
    if group:
        yield group


def _finish(store: Store, table: Table, dt: date, now: datetime,
            grace: timedelta) -> CompactionReport:
    """Delete what no reader can still be reading: files replaced by a commit older than
    ``grace``, merged files no commit names and temporary files, both older than ``grace``;
    then commits that name nothing left."""
    listing = store.listing(table, dt, dt)
    existing = {i.path for i in listing}
    old = {i.path for i in listing if i.mtime is not None and now - i.mtime > grace}
    commits = {}
    for info in listing:
        if info.base_name.startswith(COMMIT_PREFIX):
            read = store.read_listed_commit(info.path)
            if read is not None:  # else removed since the listing (spent): nothing to finish
                commits[info.path] = read
    doomed: set[str] = set()
    for commit, (_, replaced) in commits.items():
        if commit in old:
            doomed.update(p for p in replaced if p in existing)
    doomed.update(p for p in debris(store, listing, commits) if p in old)
    for path in sorted(doomed):
        with contextlib.suppress(FileNotFoundError):
            store.fs.delete_file(path)
    remaining = existing - doomed
    directory = store.partition_dir(table, dt)
    for commit, (merged, replaced) in commits.items():  # its merged file replaced, and gone
        elsewhere = not merged.startswith(f"{directory}/")  # in a cold tier: the commit is
        if not elsewhere and merged not in remaining and not any(  # what makes it visible
                p in remaining for p in replaced):
            with contextlib.suppress(FileNotFoundError):  # another clean-up was first
                store.fs.delete_file(commit)
    return CompactionReport(files_removed=len(doomed))


def debris(store: Store, listing: list[pafs.FileInfo],
           commits: dict[str, tuple[str, list[str]]] | None = None) -> list[str]:
    """Files of a listing no reader ever sees: temporary files of interrupted writes, and
    merged or tiered files that no commit names (a compaction or tiering interrupted before
    its commit)."""
    if commits is None:
        commits = {}
        for info in listing:
            if info.base_name.startswith(COMMIT_PREFIX):
                with contextlib.suppress(StoreError):  # an unreadable marker: check reports it
                    commits[info.path] = store.read_commit(info.path)
    named = {merged for merged, _ in commits.values()}
    return [i.path for i in listing if i.base_name.startswith(".tmp-") or (
        i.base_name.startswith((COMPACTED_PREFIX, TIERED_PREFIX)) and i.path not in named)]
