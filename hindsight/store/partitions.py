"""The on-disk contract: one Parquet table per kind, Hive-partitioned by ``dt=YYYY-MM-DD``.

Files are zstd-compressed and written atomically, so a reader never sees half a file and a crash
leaves no visible debris. On a local disk: to a hidden temporary name in the target directory
(readers skip hidden files), fsynced, renamed, and the directory fsynced, so a write that
returned survives a power cut, not only a killed process. On an object store, which has no
rename: under its final name in one upload, which is visible whole or not at all and durable
once it returns.

Writers that must check the store before they write (ingest's idempotency) hold ``Store.lock``,
an advisory lock file shared by every process on the store's machine.

Compaction (``store.compaction``) merges a partition's small files into one without a reader
ever counting a row twice or missing one: the merged file is named ``compacted-*`` and is
invisible until a commit marker (``_commit-*.json``, written atomically) names it and the files
it replaces; from that instant, listings show the merged file instead of those files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hindsight.errors import StoreError

PARTITION_KEY = "dt"
COMPACTED_PREFIX = "compacted-"  # visible only once a commit marker names it
TIERED_PREFIX = "tiered-"  # a cold copy: likewise
_UNNAMED_PREFIXES = (COMPACTED_PREFIX, TIERED_PREFIX)
COMMIT_PREFIX = "_commit-"
LOCK_DIR = ".locks"
IDENTITY_FILE = "store.json"
# Held by every step that removes or replaces files (compaction, tiering, retention): one at a
# time per store. A step that removes a day's files also holds that table's writer lock.
MAINTENANCE_LOCK = "maintenance"


class Table(StrEnum):
    """The tables of a store. Labels are partitioned by the date they *arrived*."""

    PREDICTIONS = "predictions"
    LABELS = "labels"
    REFERENCE = "reference"
    METRICS = "metrics"
    ALERTS = "alerts"
    RUNS = "runs"
    DRIFT = "drift"
    CHECKS = "checks"  # the intra-day prediction drift checks: one file per check
    VALIDATIONS = "validations"
    OUTBOX = "outbox"
    COUNTS = "counts"  # a cache: a daily run's counts, for the next day's run to start from


@dataclass(frozen=True, slots=True)
class PartitionFile:
    path: str
    dt: date | None
    cold: bool = False  # kept in another store (tiering), visible through its partition's commit
    size: int | None = None  # bytes, as listed (None: not listed, a cold file)


# HDFS is read through Hadoop's own client library, even where Spark does the heavy reads
_HDFS_CLIENT = (
    "store {!r}: this process lists and writes the store through Hadoop's client library, "
    "which it cannot load: set JAVA_HOME to a JDK (with lib/server/libjvm.so), "
    "ARROW_LIBHDFS_DIR to the directory of libhdfs.so (in a Hadoop distribution's lib/native) "
    "and CLASSPATH to the output of 'hadoop classpath --glob'")


@dataclass(frozen=True, slots=True)
class Store:
    """A store rooted at a local directory or a URL that pyarrow understands (s3://, gs://...)."""

    fs: pafs.FileSystem
    root: str

    @classmethod
    def open(cls, location: str | Path) -> Store:
        text = str(location)
        if "://" in text:
            try:
                fs, root = pafs.FileSystem.from_uri(text)
            except (pa.ArrowInvalid, OSError) as exc:
                if text.startswith(("hdfs://", "viewfs://")) and ("libjvm" in str(exc)
                                                               or "libhdfs" in str(exc)):
                    raise StoreError(_HDFS_CLIENT.format(text)) from None
                raise StoreError(f"store {text!r}: cannot open it: {exc}") from exc
            return cls(fs, root.rstrip("/"))
        return cls(pafs.LocalFileSystem(), str(Path(text).resolve()))

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def table_dir(self, table: Table) -> str:
        return f"{self.root}/{table.value}"

    def partition_dir(self, table: Table, dt: date) -> str:
        return f"{self.table_dir(table)}/{PARTITION_KEY}={dt.isoformat()}"

    def files(
        self, table: Table, start: date | None = None, end: date | None = None
    ) -> list[PartitionFile]:
        """Visible Parquet files of a table, optionally only partitions with start <= dt <= end:
        committed compactions applied (merged files in, the files they replace out); of a
        Delta table, the files its log names."""
        from hindsight.store import delta
        if delta.is_delta(self, table):
            return delta.files(self, table, start, end)
        return self.parquet_files(table, start, end)

    def parquet_files(self, table: Table, start: date | None = None,
                      end: date | None = None) -> list[PartitionFile]:
        """``files`` as the Parquet store's commit markers make them, Delta log or not."""
        listing = self.listing(table, start, end)
        parquet: list[PartitionFile] = []
        commits: list[str] = []
        for info in listing:
            name = info.base_name
            if name.startswith(COMMIT_PREFIX) and name.endswith(".json"):
                commits.append(info.path)
            elif not name.startswith(".") and name.endswith(".parquet"):
                parquet.append(PartitionFile(info.path, partition_date(info.path),
                                             size=info.size))
        merged: dict[str, date | None] = {}
        replaced: set[str] = set()
        vanished: set[date | None] = set()
        for commit in commits:
            read = self.read_listed_commit(commit)
            if read is None:
                vanished.add(partition_date(commit))
                continue
            merged[read[0]] = partition_date(commit)
            replaced.update(read[1])
        visible = [f for f in parquet if f.path not in replaced and (
            f.path in merged or not _base_name(f.path).startswith(_UNNAMED_PREFIXES))]
        # merged files kept in another tier (storage tiering) are visible through their commit
        listed = {f.path for f in parquet}
        visible += [PartitionFile(path, dt, cold=True) for path, dt in merged.items()
                    if path not in listed and path not in replaced]
        if vanished:
            visible = self._still_there(table, visible, vanished)
        return sorted(visible, key=lambda f: f.path)

    def read_listed_commit(self, path: str) -> tuple[str, list[str]] | None:
        """A listed commit marker, or None where a compaction removed it since the listing."""
        try:
            return self.read_commit(path)
        except StoreError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise

    def _still_there(self, table: Table, visible: list[PartitionFile],
                     days: set[date | None]) -> list[PartitionFile]:
        """A commit marker that vanished after the listing was spent: compaction removes one
        only after its merged file and every file it replaced are gone. So the view without it
        is exact once the files gone since the listing are dropped, which one more listing of
        those partitions tells (no loop: a marker removed meanwhile changes nothing more)."""
        present: set[str] = set()
        for dt in days:
            present.update(i.path for i in self.listing(table, dt, dt))
        return [f for f in visible if f.cold or f.dt not in days or f.path in present]

    def listing(self, table: Table, start: date | None = None,
                end: date | None = None) -> list[pafs.FileInfo]:
        """Every file under a table, hidden and uncommitted ones included; of the date
        partitions only those with start <= dt <= end are listed at all (a day's look-up
        does not walk a year of directories). Hidden directories (a partition being retired)
        and a Delta table's ``_delta_log`` are not partitions and are not listed. On an object
        store, where each listing is a request and keys are listed a thousand at a time, the
        whole table is listed in one go and filtered here."""
        if not self.is_local:
            return [i for i in self.fs.get_file_info(pafs.FileSelector(
                        self.table_dir(table), recursive=True, allow_not_found=True))
                    if i.type == pafs.FileType.File and _listed(i.path, self.table_dir(table),
                                                                 start, end)]
        top = self.fs.get_file_info(pafs.FileSelector(self.table_dir(table),
                                                      allow_not_found=True))
        found = [i for i in top if i.type == pafs.FileType.File]
        for info in top:
            if info.type != pafs.FileType.Directory or info.base_name.startswith((".", "_")):
                continue  # a partition being retired, a Delta table's log
            dt = partition_date(f"{info.path}/")
            if dt is not None and ((start is not None and dt < start)
                                   or (end is not None and dt > end)):
                continue
            # a day retention removed since the top listing has no files, not an error
            inside = pafs.FileSelector(info.path, recursive=True, allow_not_found=True)
            found += [i for i in self.fs.get_file_info(inside) if i.type == pafs.FileType.File]
        return found

    def read_commit(self, path: str) -> tuple[str, list[str]]:
        """A commit marker: (the merged file, the files it replaces), as full paths."""
        directory = path.rsplit("/", 1)[0]
        try:
            with self.fs.open_input_stream(path) as stream:
                commit = json.loads(stream.read())
        except FileNotFoundError as exc:
            raise StoreError(f"the compaction commit {path} is gone (removed by a "
                             "compaction once spent); list the partition again") from exc
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"cannot read the compaction commit {path}: {exc}. It is written whole or not "
                "at all, so it was changed outside hindsight: restore it from a backup (it "
                "names the merged file and the files that file replaces)") from exc
        return (commit.get("merged_at") or f"{directory}/{commit['merged']}",
                [f"{directory}/{name}" for name in commit["replaces"]])

    def write_commit(self, directory: str, merged: str, replaces: list[str],
                     merged_at: str | None = None) -> str:
        """Commit a compaction atomically: from the moment it is written, readers see
        ``merged`` instead of ``replaces`` (file names inside ``directory``). ``merged_at``:
        the merged file's full path when it lives elsewhere (a cold tier)."""
        commit: dict[str, object] = {"merged": merged, "replaces": sorted(replaces)}
        if merged_at is not None:
            commit["merged_at"] = merged_at
        return self._write_json(f"{directory}/{COMMIT_PREFIX}{uuid.uuid4().hex}.json", commit,
                                "the compaction commit ")

    def write(self, table: Table, data: pa.Table, dt: date | None = None,
              name: str | None = None) -> str:
        """Write one file atomically. A fixed ``name`` replaces that file; default: a new part."""
        directory = self.partition_dir(table, dt) if dt is not None else self.table_dir(table)
        final = f"{directory}/{name or f'part-{uuid.uuid4().hex}.parquet'}"
        try:
            self._write_whole(final, lambda path: pq.write_table(
                data, path, filesystem=self.fs, compression="zstd",
                use_dictionary=_dictionary_columns(data)))
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot write {final}: {exc}") from exc
        return final

    def write_json(self, table: Table, dt: date, name: str, body: object) -> str:
        """Write one JSON file atomically, replacing any of that ``name``."""
        return self._write_json(f"{self.partition_dir(table, dt)}/{name}", body)

    def _write_json(self, final: str, body: object, what: str = "") -> str:
        encoded = json.dumps(body).encode()
        try:
            self._write_whole(final, lambda path: _write_bytes(self.fs, path, encoded))
        except OSError as exc:
            raise StoreError(f"cannot write {what}{final}: {exc}") from exc
        return final

    def read_json(self, path: str) -> object:
        try:
            with self.fs.open_input_stream(path) as stream:
                return json.loads(stream.read())
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path} as JSON: {exc}") from exc

    def _write_whole(self, final: str, write: Callable[[str], None]) -> None:
        """Make ``final`` appear whole or not at all. An object store's upload already does
        (its object is created when the upload completes); a local file is written under a
        hidden name and renamed."""
        if not self.is_local:
            write(final)
            return
        directory = final.rsplit("/", 1)[0]
        temp = f"{directory}/.tmp-{uuid.uuid4().hex}{Path(final).suffix}"
        try:
            self.fs.create_dir(directory, recursive=True)
            write(temp)
            self._publish(temp, final)
        except BaseException:
            _remove_quietly(self.fs, temp)
            raise

    def _publish(self, temp: str, final: str) -> None:
        """Rename a written temporary file into place durably: the file's bytes reach the
        disk before its name, and the name before we return."""
        fsync_path(temp)
        self.fs.move(temp, final)
        # the new name, and each directory this write may have created: up to the store's
        # root, and the root's own entry in its parent (the first write into a new store)
        directory = final.rsplit("/", 1)[0]
        while directory.startswith(self.root):
            fsync_path(directory)
            directory = directory.rsplit("/", 1)[0]
        fsync_path(directory or "/")

    def identity(self) -> str:
        """This store's id: made once, kept in ``store.json`` at its root. It names the
        store's part of a cold store (a copy of a store carries it, and tiering tells the two
        apart by the root the cold part was claimed for)."""
        path = f"{self.root}/{IDENTITY_FILE}"
        if not self.exists(path):
            body = json.dumps({"id": uuid.uuid4().hex}).encode()
            try:
                self.create_once(path, body)
            except OSError as exc:
                raise StoreError(f"cannot write {path}: {exc}") from exc
        found = self.read_json(path)
        if not isinstance(found, dict) or not isinstance(found.get("id"), str) or not (
                found["id"].isalnum()):
            raise StoreError(f"{path}: not a store identity ({found!r}); it was changed outside "
                             "hindsight: restore it from a backup")
        return str(found["id"])

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    def create_once(self, final: str, body: bytes) -> None:
        """Write ``final`` unless it exists: on a local disk exactly one of several writers
        racing wins (a hard link never replaces); on an object store the last upload does."""
        if not self.is_local:
            _write_bytes(self.fs, final, body)
            return
        directory = final.rsplit("/", 1)[0]
        temp = f"{directory}/.tmp-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(directory, recursive=True)
            _write_bytes(self.fs, temp, body)
            fsync_path(temp)
            with contextlib.suppress(FileExistsError):
                os.link(temp, final)
            fsync_path(directory)
            fsync_path(directory.rsplit("/", 1)[0] or "/")
        finally:
            _remove_quietly(self.fs, temp)

    def rename_durably(self, source: str, target: str) -> None:
        """Rename a local file or directory, the new name on disk before this returns."""
        self.fs.move(source, target)
        fsync_path(target.rsplit("/", 1)[0])
        if source.rsplit("/", 1)[0] != target.rsplit("/", 1)[0]:
            fsync_path(source.rsplit("/", 1)[0])

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the store's lock ``name`` against every other process and thread that asks
        for it (an ``flock`` on a file under ``.locks/``). On an object store there is no such
        lock: it is a no-op, and docs/concepts/guarantees.md says what that means for writers."""
        if not self.is_local:
            yield
            return
        directory = Path(self.root) / LOCK_DIR
        directory.mkdir(parents=True, exist_ok=True)
        # open per call: flock excludes other open files, so threads exclude each other too
        with open(directory / f"{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def footer(self, path: str) -> pq.FileMetaData:
        """One file's Parquet metadata (row count, schema) without reading its data."""
        try:
            with self.fs.open_input_file(path) as handle:
                return pq.read_metadata(handle)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot read {path} as Parquet: {exc}") from exc

    def read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One file; ``columns`` that it lacks are left out, not an error."""
        try:
            # one file, so no dataset discovery (importing pyarrow.dataset alone takes 0.2 s)
            with self.fs.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                if columns is not None:
                    present = set(parquet.schema_arrow.names)
                    columns = [c for c in columns if c in present]
                table = parquet.read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        plain = plain_schema(table.schema)
        return table if plain == table.schema else table.cast(plain)

    def newest_files(self, table: Table) -> list[PartitionFile]:
        """The visible files of the newest day of a table that has any: on a disk, from a look
        at the day directories, not a listing of every file of every day."""
        from hindsight.store import delta
        if not self.is_local or delta.is_delta(self, table):  # one listing of the table either way
            files = self.files(table)
            newest = max((f.dt for f in files if f.dt is not None), default=None)
            return [f for f in files if f.dt == newest and newest is not None]
        top = self.fs.get_file_info(pafs.FileSelector(self.table_dir(table),
                                                      allow_not_found=True))
        days = {partition_date(f"{i.path}/") for i in top
                if i.type == pafs.FileType.Directory and not i.base_name.startswith(".")}
        for dt in sorted((d for d in days if d is not None), reverse=True):
            found = self.files(table, dt, dt)
            if found:
                return found
        return []

    def partitions(self, table: Table) -> list[date]:
        """The dates that have at least one file, ascending."""
        return sorted({f.dt for f in self.files(table) if f.dt is not None})


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with view types as their plain kind: delta-rs writes text as
    ``string_view``, which the store's joins and casts take as ``string``."""
    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    if not any(f.type in views for f in schema):
        return schema
    return pa.schema([f.with_type(views.get(f.type, f.type)) for f in schema],
                     metadata=schema.metadata)


def _base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _listed(path: str, table_dir: str, start: date | None, end: date | None) -> bool:
    """Whether a key under a table belongs in a listing of partitions ``start..end``."""
    inside = path[len(table_dir) + 1:].split("/")
    if len(inside) > 1 and inside[0].startswith((".", "_")):
        return False  # a hidden prefix (a partition being retired), or a Delta table's log
    dt = partition_date(path) if len(inside) > 1 else None
    return dt is None or not ((start is not None and dt < start)
                              or (end is not None and dt > end))


def partition_date(path: str) -> date | None:
    for part in reversed(path.split("/")[:-1]):
        key, sep, value = part.partition("=")
        if sep and key == PARTITION_KEY:
            try:
                return date.fromisoformat(value)
            except ValueError:
                return None
    return None


def fsync_path(path: str | Path) -> None:
    """Make a file's bytes, or a directory's names, durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dictionary_columns(data: pa.Table, sample: int = 10_000) -> bool | list[str]:
    """The columns worth a dictionary in Parquet: all (True) but floating-point ones whose
    values rarely repeat (most of a sample distinct). Parquet writers try a dictionary for every
    column and drop it once it overflows: for measurements that is hashing for nothing, a third
    of a wide table's write and a slower read."""
    chosen = []
    for field in data.schema:
        if pa.types.is_floating(field.type):
            head = data[field.name].slice(0, sample)
            if pc.count_distinct(head).as_py() * 2 > len(head):
                continue
        chosen.append(field.name)
    return True if len(chosen) == data.num_columns else chosen


def _write_bytes(fs: pafs.FileSystem, path: str, body: bytes) -> None:
    with fs.open_output_stream(path) as stream:
        stream.write(body)


def _remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):  # the temp file may never have been created
        fs.delete_file(path)
