"""Tables read in place: the predictions or labels where the serving side already writes them.

A source answers one question for the engine: which data files hold the rows of days
``first..last``, and, per file, the days it spans, its size, its rows and when it arrived. The
engine reads those files as it reads the store's own (DuckDB; Spark with its own Parquet and
JSON readers, ``engine.spark_sources``), so everything the store's tables feed (counts,
drift, versions, intra-day checks) works on a source alike.

Which days a file spans:

- predictions: the prediction days (UTC) of its rows, from the table's file statistics (the
  minimum and maximum of ``columns.timestamp`` in the Delta log, the Iceberg manifests or a
  Parquet footer), else from a Hive-style date partition in its path (``dt=``, ``date=`` or
  ``day=``, taken as the UTC day), else unknown: then it is read by every run;
- labels: the days they arrived: with ``columns.label_timestamp`` mapped, as predictions from
  that column's statistics; without it every label of a file arrived when the file did (the
  time its Delta log entry records, the commit time of the Iceberg snapshot that added it, or
  its modification time under a plain prefix).

Copies (at-least-once writers): a prediction id written more than once on one prediction day
(UTC, by ``columns.timestamp``) counts once, as the copy with the earliest timestamp (between
copies of the same instant, the one in the file whose path sorts first); the same id on two
days is two predictions, as the store keeps it. Labels are taken as the store takes them: the
latest to arrive is the id's label, and its age counts from the first.

What a run reads: a count reads the files whose days (above) meet its window (prediction days,
and the labels that arrived since the window's first day); the rows per day of the data alerts
are carried in the store by the files of each day, so a later run reads only the days whose
files changed; Delta and Iceberg list their files from the log or the manifests (pruned by
their statistics), a plain prefix by one listing and the footers of files not seen before.

Rows a source deletes without rewriting files (Delta deletion vectors, Iceberg delete files)
are refused with what to run: counting the deleted rows would be wrong, silently.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hindsight.config import Config, TableSource
from hindsight.errors import ConfigError, StoreError
from hindsight.store.delta import http_endpoint

Role = Literal["predictions", "labels"]
ReadAs = Literal["parquet", "jsonl"]
DAY_PARTITIONS = ("dt", "date", "day")  # Hive-style partition keys taken as a UTC day
_DATA_SUFFIXES = {"parquet": (".parquet",), "jsonl": (".jsonl", ".json", ".ndjson")}


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One data file of a source. ``path`` as the source's filesystem names it (a local
    path, or ``bucket/key``); ``first_day``/``last_day``: the days its rows span (None:
    unknown, read by every run); ``rows``: None where only reading tells (JSON lines)."""

    path: str
    size: int
    rows: int | None
    first_day: date | None
    last_day: date | None
    arrived: datetime

    def within(self, first: date | None, last: date | None) -> bool:
        """Whether the file may hold rows of days ``first..last`` (unbounded ends)."""
        if self.first_day is None or self.last_day is None:
            return True
        return ((first is None or self.last_day >= first)
                and (last is None or self.first_day <= last))


class Source(Protocol):
    """Where a table's files are listed."""

    spec: TableSource
    role: Role
    fs: pafs.FileSystem
    read_as: ReadAs

    def files(self, first: date | None, last: date | None) -> list[SourceFile]:
        """The table's current data files that may hold rows of days ``first..last``."""
        ...


def open_source(spec: TableSource, role: Role, config: Config) -> Source:
    """The source ``spec`` names, for ``role``'s rows (which time column places them)."""
    column = (config.columns.timestamp if role == "predictions"
              else config.columns.label_timestamp)
    if spec.format == "delta":
        return DeltaSource(spec, role, column)
    if spec.format == "iceberg":
        return IcebergSource(spec, role, column)
    return PrefixSource(spec, role, column)


def _named(spec: TableSource, role: Role) -> str:
    """A source as messages name it: the config key and the table."""
    return f"{role}: {spec.describe()}"


def mapped_columns(config: Config, role: Role) -> dict[str, str]:
    """The columns a source of ``role``'s rows must have, each with the config key that
    maps it (as ingest requires them of a file logged)."""
    cols = config.columns
    if role == "labels":
        return {cols.id: "columns.id", cols.label: "columns.label",
                **({cols.label_timestamp: "columns.label_timestamp"}
                   if cols.label_timestamp else {})}
    found = {cols.id: "columns.id", cols.timestamp: "columns.timestamp",
             cols.prediction: "columns.prediction"}
    found |= {cols.score: "columns.score"} if cols.score else {}
    found |= {column: "columns.scores" for column in (cols.scores or {}).values()}
    found |= {column: "columns (a version column)" for column in cols.versions()}
    found |= {cols.input_hash: "columns.input_hash"} if cols.input_hash else {}
    found |= {column: "segments" for column in config.segments}
    found |= {column: "features" for column in config.features or ()}
    return found


def missing_columns(spec: TableSource, role: Role, config: Config, file: str,
                    present: list[str]) -> ConfigError | None:
    """The error naming a mapped column the source's file ``file`` lacks, if one does."""
    for column, key in mapped_columns(config, role).items():
        if column not in present:
            return ConfigError(
                f"{_named(spec, role)}: no column {column!r} (mapped by {key} in "
                f"{config.source}) in {file}, which has {', '.join(present)}; map {key} to "
                "one of those or write the column")
    return None


def _lake_package(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        raise ConfigError(f"reading a {name} table needs the {name} package: "
                          "pip install 'hindsight[lake]'") from None


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path on it of a local path or URL (``file://`` too)."""
    if url.startswith("file://"):
        return pafs.LocalFileSystem(), urllib.parse.unquote(urllib.parse.urlparse(url).path)
    if "://" not in url:
        return pafs.LocalFileSystem(), url
    try:
        fs, path = pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(f"{url}: cannot open it: {exc}") from exc
    return fs, path


def _on(fs: pafs.FileSystem, url: str) -> str:
    """A file URL of a table as a path on the table's filesystem ``fs``."""
    if isinstance(fs, pafs.LocalFileSystem):
        return _filesystem(url)[1]
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.netloc}{urllib.parse.unquote(parsed.path)}"


def _day(value: Any) -> date | None:
    """The UTC day of a statistic (a timestamp, naive ones taken as UTC, or a date)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return None


def _partition_day(values: dict[str, Any]) -> date | None:
    """The day of a Hive-style date partition (``dt=2026-01-31``) among ``values``."""
    for key in DAY_PARTITIONS:
        value = values.get(key)
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def table_root(spec: TableSource) -> str | None:
    """The directory a Delta table or a prefix's files are under, as its filesystem names
    it (Hive-style partitions are the directories below it); None for Iceberg, whose data
    files are wherever its manifests say.

    >>> table_root(TableSource(format="parquet", path="s3://lake/serving/preds/"))
    'lake/serving/preds'
    """
    if spec.format == "iceberg":
        return None
    url = str(spec.path)
    if "://" not in url or url.startswith("file://"):
        return _filesystem(url)[1].rstrip("/")
    parsed = urllib.parse.urlparse(url)
    return f"{parsed.netloc}{urllib.parse.unquote(parsed.path)}".rstrip("/")


def _path_partitions(path: str) -> dict[str, str]:
    return {key: value for part in path.split("/")[:-1]
            for key, sep, value in [part.partition("=")] if sep}


class DeltaSource:
    """A Delta Lake table, its files listed from its log by delta-rs."""

    read_as: ReadAs = "parquet"

    def __init__(self, spec: TableSource, role: Role, column: str | None) -> None:
        self.spec, self.role, self._column = spec, role, column
        self.fs, self._root = _filesystem(str(spec.path))

    def files(self, first: date | None, last: date | None) -> list[SourceFile]:
        deltalake = _lake_package("deltalake")
        uri = str(self.spec.path)
        try:
            table = deltalake.DeltaTable(uri, storage_options={**http_endpoint(),
                                                               **self.spec.options} or None)
            if table.protocol().reader_features and "deletionVectors" in (
                    table.protocol().reader_features or []) and pa.table(
                    table.deletion_vectors()).num_rows:
                raise StoreError(
                    f"{_named(self.spec, self.role)}: has rows deleted by deletion vectors, which "
                    "hindsight does not read; rewrite the files without them (Databricks: "
                    "REORG TABLE ... APPLY (PURGE)) or turn them off "
                    "(delta.enableDeletionVectors = false)")
            actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
        except StoreError:
            raise
        except Exception as exc:  # delta-rs raises its own kinds, and OSError
            raise StoreError(
                f"{_named(self.spec, self.role)}: cannot read its log ({exc}); path must be "
                "the table's directory, the one holding _delta_log (files without a log: "
                "format: parquet or jsonl)") from exc
        base = uri.rstrip("/")
        found = []
        for action in actions:
            arrived = datetime.fromtimestamp(action["modification_time"] / 1000, UTC)
            span = self._span(action, arrived)
            path = _on(self.fs, f"{base}/{action['path']}") if "://" not in action["path"] \
                else _on(self.fs, action["path"])
            file = SourceFile(path, int(action["size_bytes"]), action.get("num_records"),
                              *span, arrived)
            if file.within(first, last):
                found.append(file)
        return sorted(found, key=lambda f: f.path)

    def _span(self, action: dict[str, Any], arrived: datetime) -> tuple[date | None,
                                                                        date | None]:
        if self._column is None:
            return arrived.date(), arrived.date()
        low, high = (_day(action.get(f"min.{self._column}")),
                     _day(action.get(f"max.{self._column}")))
        if low is not None and high is not None:
            return low, high
        if self.role == "predictions":
            day = _partition_day({k.removeprefix("partition."): v for k, v in action.items()
                                  if k.startswith("partition.")})
            return day, day
        return None, None


class IcebergSource:
    """An Iceberg table, its files planned by pyiceberg from the catalog's current snapshot."""

    read_as: ReadAs = "parquet"

    def __init__(self, spec: TableSource, role: Role, column: str | None) -> None:
        self.spec, self.role, self._column = spec, role, column
        self.fs: pafs.FileSystem = pafs.LocalFileSystem()
        self._remote: bool | None = None

    def files(self, first: date | None, last: date | None) -> list[SourceFile]:
        _lake_package("pyiceberg")
        from pyiceberg import expressions
        from pyiceberg.catalog import load_catalog
        from pyiceberg.conversions import from_bytes

        ice: Any = expressions  # its pydantic constructors are beyond mypy's reading

        try:
            properties = {**dict(self.spec.catalog or {}), **self.spec.options}
            # a SQL catalog keeps its tables under the catalog's name
            catalog = load_catalog(properties.pop("name", "default"), **properties)
            table = catalog.load_table(str(self.spec.table))
        except Exception as exc:  # pyiceberg raises its own kinds, and SQLAlchemy's
            raise StoreError(f"{_named(self.spec, self.role)}: cannot load it from its catalog "
                             f"({exc}); check table (namespace.name) and the catalog's "
                             "properties") from exc
        self._filesystem(table.location())
        snapshot = table.current_snapshot()
        if snapshot is None:
            return []
        row_filter: Any = ice.AlwaysTrue()
        if self._column is not None:  # pruned by the manifests' bounds
            if first is not None:
                row_filter = ice.And(row_filter, ice.GreaterThanOrEqual(
                    self._column, f"{first.isoformat()}T00:00:00+00:00"))
            if last is not None:
                after = date.fromordinal(last.toordinal() + 1)
                row_filter = ice.And(row_filter, ice.LessThan(
                    self._column, f"{after.isoformat()}T00:00:00+00:00"))
        try:
            tasks = list(table.scan(row_filter=row_filter).plan_files())
        except Exception as exc:
            raise StoreError(f"{_named(self.spec, self.role)}: cannot plan its files: "
                             f"{exc}") from exc
        if any(task.delete_files for task in tasks):
            raise StoreError(
                f"{_named(self.spec, self.role)}: has delete files (rows deleted without rewriting "
                "their data files), which hindsight does not read; rewrite them away "
                "(Spark: CALL system.rewrite_data_files with delete-file-threshold 1) or "
                "write the table copy-on-write")
        added = self._added(table) if self._column is None else {}
        field = (table.schema().find_field(self._column) if self._column is not None
                 else None)
        found = []
        for task in tasks:
            data = task.file
            arrived = added.get(data.file_path, datetime.fromtimestamp(
                snapshot.timestamp_ms / 1000, UTC))
            span: tuple[date | None, date | None] = (arrived.date(), arrived.date())
            if field is not None:
                low = (data.lower_bounds or {}).get(field.field_id)
                high = (data.upper_bounds or {}).get(field.field_id)
                span = (None, None)
                if low is not None and high is not None:
                    kind: Any = field.field_type  # a primitive: it has bounds
                    span = (_micros_day(from_bytes(kind, low)),
                            _micros_day(from_bytes(kind, high)))
            file = SourceFile(_on(self.fs, data.file_path), int(data.file_size_in_bytes),
                              int(data.record_count), *span, arrived)
            if file.within(first, last):
                found.append(file)
        return sorted(found, key=lambda f: f.path)

    def _filesystem(self, location: str) -> None:
        if self._remote is None:
            self.fs = _filesystem(location)[0]
            self._remote = not isinstance(self.fs, pafs.LocalFileSystem)

    @staticmethod
    def _added(table: Any) -> dict[str, datetime]:
        """When each live data file was added: the commit time of its snapshot."""
        times = {s.snapshot_id: s.timestamp_ms for s in table.snapshots()}
        entries = table.inspect.entries()
        found = {}
        for snapshot_id, data in zip(entries.column("snapshot_id").to_pylist(),
                                     entries.column("data_file").to_pylist(), strict=True):
            if snapshot_id in times:
                found[data["file_path"]] = datetime.fromtimestamp(times[snapshot_id] / 1000, UTC)
        return found


def _micros_day(value: Any) -> date | None:
    """The UTC day of an Iceberg bound: micro- (or nano-) seconds, or days for a date."""
    if isinstance(value, int):
        if abs(value) > 10**17:  # nanoseconds
            value //= 1000
        if abs(value) < 10**7:  # a date column: days since the epoch
            return date.fromordinal(date(1970, 1, 1).toordinal() + value)
        return datetime.fromtimestamp(value / 1e6, UTC).date()
    return _day(value)


class PrefixSource:
    """Parquet or JSON-lines files under a prefix, written by anything (Spark, pandas,
    polars, pyarrow, a stream's sink): every file listed, hidden ones (``_``, ``.``) left out."""

    def __init__(self, spec: TableSource, role: Role, column: str | None) -> None:
        self.spec, self.role, self._column = spec, role, column
        self.read_as: ReadAs = "jsonl" if spec.format == "jsonl" else "parquet"
        self.fs, self._root = _filesystem(str(spec.path))
        self._root = self._root.rstrip("/")
        # footers read, by (path, size, mtime): a file rewritten in place is read again
        self._footers: dict[tuple[str, int, int], tuple[int, date | None, date | None]] = {}

    def files(self, first: date | None, last: date | None) -> list[SourceFile]:
        try:
            listed = self.fs.get_file_info(pafs.FileSelector(self._root, recursive=True,
                                                             allow_not_found=True))
        except OSError as exc:
            raise StoreError(f"{_named(self.spec, self.role)}: cannot list it: {exc}") from exc
        if not listed and self.fs.get_file_info(self._root).type == pafs.FileType.NotFound:
            raise StoreError(f"{_named(self.spec, self.role)}: {self._root} does not exist; "
                             "check path (the directory or prefix the files are written under)")
        suffixes = _DATA_SUFFIXES[self.read_as]
        found = []
        others: dict[str, int] = {}  # data files of the other format, for the message
        seen = False  # any data file of the format, of any day
        for info in listed:
            relative = info.path[len(self._root):].lstrip("/")
            self._refuse_table(relative)
            if info.type != pafs.FileType.File or any(
                    part.startswith(("_", ".")) for part in relative.split("/")):
                continue
            if not relative.endswith(suffixes):
                for kind, ends in _DATA_SUFFIXES.items():
                    if kind != self.read_as and relative.endswith(ends):
                        others[kind] = others.get(kind, 0) + 1
                continue
            mtime = info.mtime or datetime.now(UTC)
            arrived = mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)
            file = self._file(info, relative, arrived)
            if file.within(first, last):
                found.append(file)
            seen = True
        if not seen and others:
            kind, count = max(others.items(), key=lambda item: item[1])
            raise StoreError(f"{_named(self.spec, self.role)}: holds no {self.read_as} files "
                             f"but {count} {kind} file(s); set format: {kind}")
        return sorted(found, key=lambda f: f.path)

    def _refuse_table(self, relative: str) -> None:
        """A Delta or Iceberg table read as plain files would count the rows of files its
        log has removed: refused, with the format to name."""
        top = relative.split("/", 1)[0]
        if top == "_delta_log":
            raise StoreError(f"{_named(self.spec, self.role)}: is a Delta table (it has a "
                             "_delta_log); set format: delta")
        if top == "metadata" and relative.endswith(".metadata.json"):
            raise StoreError(f"{_named(self.spec, self.role)}: is an Iceberg table (it has "
                             "metadata/*.metadata.json); set format: iceberg and name its "
                             "table and catalog")

    def _file(self, info: pafs.FileInfo, relative: str, arrived: datetime) -> SourceFile:
        size = int(info.size or 0)
        if self._column is None:
            return SourceFile(info.path, size, None, arrived.date(), arrived.date(), arrived)
        day = _partition_day(_path_partitions(relative)) if self.role == "predictions" \
            else None
        if day is not None:
            return SourceFile(info.path, size, None, day, day, arrived)
        if self.read_as != "parquet":
            return SourceFile(info.path, size, None, None, None, arrived)
        key = (info.path, size, info.mtime_ns or 0)
        if key not in self._footers:
            self._footers[key] = self._footer_span(info.path)
        rows, low, high = self._footers[key]
        return SourceFile(info.path, size, rows, low, high, arrived)

    def _footer_span(self, path: str) -> tuple[int, date | None, date | None]:
        """Rows, and the days of the time column's statistics, from a Parquet footer."""
        try:
            with self.fs.open_input_file(path) as stream:
                meta = pq.ParquetFile(stream).metadata
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{_named(self.spec, self.role)}: {path}: not a readable Parquet "
                             f"file: {exc}") from exc
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if self._column not in names:
            return meta.num_rows, None, None
        index = names.index(self._column)
        lows, highs = [], []
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                return meta.num_rows, None, None
            lows.append(_day(stats.min))
            highs.append(_day(stats.max))
        if not lows or None in lows or None in highs:
            return meta.num_rows, None, None
        return meta.num_rows, min(d for d in lows if d), max(d for d in highs if d)
