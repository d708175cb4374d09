"""The embedded engine: DuckDB over the store's Parquet files.

One scan joins predictions with the labels in force and counts them at the finest grain
(day x every segment x prediction x label); every coarser cell is a rollup of that small table.

An object store is read through the store's own pyarrow filesystem, registered with DuckDB as
an fsspec filesystem: the credentials and endpoint are the ones the store was opened with, and
nothing depends on DuckDB's httpfs extension (which cannot be installed offline).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import combinations
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import Config
from hindsight.engine.base import (
    LABEL_LEAD_DAYS,
    MISSING_SEGMENT_VALUE,
    CellCounts,
    DriftSketch,
    end_of_day,
    partition_days,
)
from hindsight.engine.lookups import SmallFileRows
from hindsight.engine.sql import ident, literal
from hindsight.errors import StoreError
from hindsight.store.identity import identity_sql, value_identities
from hindsight.store.partitions import Store, Table, partition_date
from hindsight.store.schema import ARRIVED_AT

if TYPE_CHECKING:
    from hindsight.engine.remote import StoreFileSystem
    from hindsight.sources import Source, SourceFile


# Counts are kept in DuckDB as these tables; the latest window's as kept_*, a day's change to
# them as change_*. The calibrated expectation is summed as a decimal: exact, so a window
# counted from the day before's by adding and subtracting is the very same as one counted anew.
COUNT_TABLES = ("cells", "classes", "label_ages")
KEPT, CHANGE = "kept", "change"
EXACT = "DECIMAL(38, 18)"
# Carried counts (the store's ``counts`` table): what a window's are counts of, and the few
# newest days kept. COUNTS_FORMAT changes whenever what the count tables hold does, so that
# counts carried by an earlier release are not taken for this one's.
COUNTS_FORMAT = 2  # 2: a prediction without a score is not scored
COUNTS_MANIFEST = "counts.json"
CARRIED_DAYS = 2
FILE_COLUMN = "_hindsight_file"  # the file a row was read from, where a query asks
CARRIED_VERSIONS = "versions.parquet"  # each prediction file's version sums, beside the counts
CARRIED_ROWS = "source-rows"  # a table read in place: its rows per day (see daily_rows)


# the prediction files and the label files a count reads, as listed when it ran
Reads = tuple[tuple[str, ...], tuple[str, ...]]
# the days each file of a table read in place spans, by path as handed to DuckDB (see sources)
Spans = dict[str, tuple[date | None, date | None]]
ARRIVALS = "source_arrivals"  # each label file of a source and when it arrived


@dataclass(frozen=True, slots=True)
class _Window:
    """What one count of cells covers: prediction days, the labels' cut-off, the calibration."""

    as_of: date
    first_day: date
    last_day: date
    calibration: tuple[tuple[float, ...], tuple[float, ...]] | None

    def next_day(self) -> _Window | None:
        """The window a day later, if this one is a daily run's (it ends on its ``as_of``)."""
        if self.last_day != self.as_of:
            return None
        one = timedelta(days=1)
        return _Window(self.as_of + one, self.first_day + one, self.last_day + one,
                       self.calibration)

    def day_before(self) -> _Window | None:
        """The daily run's window a day earlier, if this one is a daily run's."""
        if self.last_day != self.as_of:
            return None
        one = timedelta(days=1)
        return _Window(self.as_of - one, self.first_day - one, self.last_day - one,
                       self.calibration)


CountWindow = _Window

# rows per partition (ISO date) of the prediction and of the label files a count read
Rows = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class _Listing:
    """The prediction and label files of a window and of the window a day before it, from
    one listing of each table: the files each of them reads are cut from it (on a bucket a
    listing is a request, a page per thousand keys)."""

    predictions: tuple[str, ...]
    labels: tuple[str, ...]
    spans: Spans  # of the files of tables read in place

    def reads(self, window: _Window) -> Reads:
        """The prediction and label files the counts of ``window`` read."""
        return (_within(self.predictions, window.first_day, window.last_day, self.spans),
                _within(self.labels, window.first_day - timedelta(days=LABEL_LEAD_DAYS),
                        window.as_of, self.spans))

    def labels_of(self, day: date) -> tuple[str, ...]:
        """The label files that arrived on ``day``."""
        return _within(self.labels, day, day, self.spans)


def _within(paths: tuple[str, ...], first: date, last: date, spans: Spans) -> tuple[str, ...]:
    """The files of partitions ``first..last``, and those outside any, as a listing of those
    days gives them; a file of a table read in place by the days it spans."""
    found = []
    for path in paths:
        if path in spans:
            low, high = spans[path]
            if low is None or high is None or (low <= last and high >= first):
                found.append(path)
        elif (day := partition_date(path)) is None or first <= day <= last:
            found.append(path)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Kept:
    window: _Window
    reads: Reads  # the files its counts came from, as listed now
    rows: Rows  # what they hold: the same rows per partition, the same counts


class GrainSource(Protocol):
    """Where the finest grain of the counts (``grain_sql``'s rows) is computed, when not in
    DuckDB itself: the Spark engine counts on its executors and hands back only the grain,
    which DuckDB rolls up and carries from day to day."""

    def window_grain(self, window: _Window, reads: Reads,
                     calibration: pa.Table | None) -> pa.Table:
        """The grain of ``window`` counted from scratch over the files ``reads``."""
        ...

    def change_grain(self, before: _Window, now: _Window, reads: Reads,
                     changes: tuple[str, ...], calibration: pa.Table | None) -> pa.Table:
        """The grain of what changed from ``before`` to ``now`` (the day before): that of
        ``now``'s predictions whose label in force may have changed (their ids in the label
        files ``changes`` arrived in either edge span) or made on its last day, with the
        labels ``now`` joins, plus the negated grain of those of them ``before`` counted,
        with the labels it joined. ``reads``: ``now``'s prediction files and the label files
        of both windows."""
        ...

    def day_rows(self, table: Table, files: tuple[str, ...], start: datetime,
                 stop: datetime) -> pa.Table:
        """(day, n): rows per day in ``[start, stop)`` of the files of a table read in place,
        counted as ``DuckDBEngine.daily_rows`` counts them."""
        ...


def label_since(window: _Window) -> datetime:
    """The earliest arrival a window joins: labels read from the partitions of the days
    they arrived, from ``LABEL_LEAD_DAYS`` before its first prediction day."""
    return end_of_day(window.first_day - timedelta(days=LABEL_LEAD_DAYS + 1))


def _calibration_key(calibration: pa.Table | None) -> tuple[tuple[float, ...],
                                                             tuple[float, ...]] | None:
    if calibration is None:
        return None
    return (tuple(calibration["lower"].to_pylist()),
            tuple(calibration["probability"].to_pylist()))


def grain_sql(joined: str, config: Config) -> str:
    """The finest grain of a run's counts from ``joined`` (day, s0.., prediction, label,
    age, p_correct): plain SQL that DuckDB and Spark both run, so the engines count alike.
    Classification: one scan, two groupings: the cells' finest grain (cell_row 1), and labels
    by age per day (cell_row 0)."""
    seg = "".join(f", s{i}" for i in range(len(config.segments)))
    if config.task == "classification":
        return (
            f"SELECT day{seg}, prediction, label, age, hit, count(*) AS n, "
            f"sum(CAST(p_correct AS {EXACT})) AS expected, count(p_correct) AS scored, "
            f"GROUPING(age) AS cell_row FROM (SELECT *, prediction = label AS hit "
            f"FROM ({joined}) j) g GROUP BY GROUPING SETS ((day{seg}, prediction, label), "
            "(day, age, hit))"
        )
    return (
        f"SELECT day{seg}, count(*) AS n, count(label) AS n_lab, "
        "sum(abs(prediction - label)) AS sae, "
        "sum((prediction - label) * (prediction - label)) AS sse "
        f"FROM ({joined}) j GROUP BY day{seg}"
    )


def _by_file(table: pa.Table) -> dict[str, pa.Table]:
    """``table``, sorted by ``FILE_COLUMN``, cut into each file's rows (without that column)."""
    names = table[FILE_COLUMN].to_pylist()
    rows = table.drop_columns([FILE_COLUMN])
    cut, start = {}, 0
    while start < len(names):
        stop = bisect.bisect_right(names, names[start], lo=start)
        cut[names[start]] = rows.slice(start, stop - start)
        start = stop
    return cut


class DuckDBEngine:
    def __init__(self, store: Store, config: Config, grains: GrainSource | None = None) -> None:
        """``grains``: where a window's grain is counted (default: here, in DuckDB)."""
        self._store = store
        self._grains = grains
        self._config = config
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        self._scheme = ""
        self._remote: StoreFileSystem | None = None
        if not store.is_local:
            from hindsight.engine.remote import StoreFileSystem

            self._remote = StoreFileSystem(store.fs)
            self._con.register_filesystem(self._remote)
            self._scheme = StoreFileSystem.prefix
        self._seg = [f"s{i}" for i in range(len(config.segments))]
        self._kept: _Kept | None = None  # the counts of the latest window, for the next day's
        # a count started by counts_change_only, for the cell_counts of its window
        self._ready: tuple[_Window, tuple[_Listing, Reads, _Kept | None]] | None = None
        self._file_rows: dict[str, int] = {}  # rows of the files read, by path: carried counts'
        # each prediction file's versions by day, by path (see version_history)
        self._version_files: dict[str, tuple[tuple[str, ...], pa.Table]] = {}
        self._carried_versions_read = False
        self._small_files = SmallFileRows()  # for ingest's look-ups (see engine.lookups)
        # tables read in place (config predictions:/labels:), and what their files are
        self._sources: dict[Table, Source] = {}
        self._source_schemes: dict[Table, str] = {}
        self._filesystems: list[StoreFileSystem] = [self._remote] if self._remote else []
        self._spans: Spans = {}
        self._source_sizes: dict[str, int] = {}
        self._arrivals: dict[str, datetime] = {}
        self._rows_carried: dict[Table, dict[str, dict[str, Any]]] = {}  # see daily_rows
        self._columns_checked: set[Table] = set()  # sources found to have the mapped columns
        for table, spec in ((Table.PREDICTIONS, config.predictions),
                            (Table.LABELS, config.labels)):
            if spec is not None:
                from hindsight.sources import open_source

                self._sources[table] = open_source(spec, "predictions" if table
                                                   == Table.PREDICTIONS else "labels", config)

    def close(self) -> None:
        self._con.close()

    # --- ingest look-ups ---------------------------------------------------------------

    def stored_predictions(self, ids: pa.Array, first_day: date | None = None,
                           last_day: date | None = None) -> pa.Table:
        cols = self._config.columns
        return self._lookup(
            Table.PREDICTIONS, ids, first_day, last_day,
            f"{ident(cols.id)} AS id, {self._value(cols.prediction)} AS prediction, "
            f"{ident(cols.timestamp)} AS at",
            empty={"id": pa.string(), "prediction": pa.null(),
                   "at": pa.timestamp("us", "UTC")},
        )

    def stored_labels(self, ids: pa.Array, first_day: date | None = None,
                      last_day: date | None = None) -> pa.Table:
        cols = self._config.columns
        return self._lookup(
            Table.LABELS, ids, first_day, last_day,
            f"{ident(cols.id)} AS id, {self._value(cols.label)} AS label, "
            f"{ident(ARRIVED_AT)} AS arrived_at",
            empty={"id": pa.string(), "label": pa.null(), "arrived_at": pa.timestamp("us", "UTC")},
        )

    def remember(self, table: Table, path: str, rows: pa.Table) -> None:
        """Rows this process just wrote to ``path``: later look-ups need not read the file."""
        columns = self._lookup_columns(table)
        if all(c in rows.column_names for c in columns):
            self._small_files.keep(path, rows.select(columns))

    def _lookup_columns(self, table: Table) -> list[str]:
        cols = self._config.columns
        return ([cols.id, cols.prediction, cols.timestamp] if table == Table.PREDICTIONS
                else [cols.id, cols.label, ARRIVED_AT])

    def _lookup(self, table: Table, ids: pa.Array, first_day: date | None,
                last_day: date | None, select: str, empty: dict[str, pa.DataType]) -> pa.Table:
        if table in self._sources:
            return self._source_lookup(table, ids, first_day, last_day, select, empty)
        files = self._store.files(table, first_day, last_day)
        if not files:
            return pa.schema(list(empty.items())).empty_table()
        columns = ", ".join(ident(c) for c in self._lookup_columns(table))
        kept, unseen, others = self._small_files.split(files)
        if unseen:  # read once, in one query, and kept by file
            read = self._query(f"SELECT {columns}, {FILE_COLUMN} FROM read_parquet($files, "
                               f"union_by_name = true, filename = '{FILE_COLUMN}') "
                               f"ORDER BY {FILE_COLUMN}",
                               files=[self._scheme + path for path in unseen])
            for path, rows in _by_file(read).items():
                self._small_files.keep(path.removeprefix(self._scheme), rows)
                kept.append(rows)
        try:
            known = pa.concat_tables(kept, promote_options="permissive") if kept else None
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # types that differ by file: read them
            known, others = None, [f.path for f in files]
        sources = [f"SELECT {columns} FROM read_parquet($files, union_by_name = true)"
                   ] if others else []
        if known is not None:
            self._con.register("kept_rows", known)
            sources.append(f"SELECT {columns} FROM kept_rows")
        self._con.register("batch_ids", pa.table({"id": ids}))
        try:
            return self._query(
                f"SELECT {select} FROM ({' UNION ALL BY NAME '.join(sources)}) "
                f"WHERE {ident(self._config.columns.id)} IN (SELECT id FROM batch_ids)",
                **({"files": [self._scheme + path for path in others]} if others else {}))
        finally:
            self._con.unregister("batch_ids")
            if known is not None:
                self._con.unregister("kept_rows")

    def _source_lookup(self, table: Table, ids: pa.Array, first_day: date | None,
                       last_day: date | None, select: str,
                       empty: dict[str, pa.DataType]) -> pa.Table:
        """A look-up in a table read in place (its files read each time: no ingest writes it,
        only the other table's looks it up)."""
        files = self._files(table, first_day, last_day)
        if not files:
            return pa.schema(list(empty.items())).empty_table()
        self._con.register("batch_ids", pa.table({"id": ids}))
        try:
            return self._query(
                f"SELECT {select} FROM "
                + self._scan(table, "$files", f"{ident(self._config.columns.id)} "
                                              "IN (SELECT id FROM batch_ids)"), files=files)
        finally:
            self._con.unregister("batch_ids")

    def _scan(self, table: Table, files: str, where: str = "TRUE",
              with_file: bool = False, times_only: bool = False) -> str:
        """A subquery of the rows of the predictions or labels files ``files`` (a parameter)
        that ``where`` keeps, with ``FILE_COLUMN`` if asked. The store's files are read as
        they are. A table read in place is read as its format asks, its id as text, its times
        as UTC instants; each label gets the time it arrived (``ARRIVED_AT``: its
        ``label_timestamp``, else its file's arrival); a prediction's copies (an id written
        more than once on one prediction day, by an at-least-once writer) count once: the
        earliest. ``times_only``: of a table read in place, only the id and the time columns
        (what counting rows by day needs; the other columns' bytes are not read)."""
        if table not in self._sources:
            named = f", filename = '{FILE_COLUMN}'" if with_file else ""
            return (f"(SELECT * FROM read_parquet({files}, union_by_name = true{named}) "
                    f"WHERE {where})")
        source, cols = self._sources[table], self._config.columns
        reader = ("read_json({}, format = 'newline_delimited', union_by_name = true, "
                  f"filename = '{FILE_COLUMN}')" if source.read_as == "jsonl" else
                  "read_parquet({}, union_by_name = true, hive_partitioning = true, "
                  f"filename = '{FILE_COLUMN}')").format(files)
        keep = "" if with_file else f" EXCLUDE ({FILE_COLUMN})"
        key = ident(cols.id)
        if times_only:
            times = [ident(c) for c in ((cols.timestamp,) if table == Table.PREDICTIONS
                                        else (cols.label, cols.label_timestamp)) if c]
            reader = f"(SELECT {', '.join([key, *times, FILE_COLUMN])} FROM {reader})"
        if table == Table.PREDICTIONS:
            ts = ident(cols.timestamp)
            # summed file by file (with_file: version sums), copies are each file's rows
            once = "" if with_file else (
                f" QUALIFY row_number() OVER (PARTITION BY {key}, CAST({ts} AS DATE) "
                f"ORDER BY {ts}, {FILE_COLUMN}) = 1")
            return (f"(SELECT *{keep} FROM (SELECT * REPLACE ({key}::VARCHAR AS {key}, "
                    f"{ts}::TIMESTAMPTZ AS {ts}) FROM {reader}) WHERE {where}{once})")
        stamped = (f"s.{ident(cols.label_timestamp)}::TIMESTAMPTZ"
                   if cols.label_timestamp else "NULL::TIMESTAMPTZ")
        return (f"(SELECT *{keep} FROM (SELECT s.* REPLACE ({key}::VARCHAR AS {key}), "
                f"coalesce({stamped}, a.arrived) AS {ident(ARRIVED_AT)} FROM {reader} s "
                f"JOIN {ARRIVALS} a ON s.{FILE_COLUMN} = a.path) WHERE {where})")

    # --- the daily job -------------------------------------------------------------------

    def predictions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        """The given columns of the predictions made on ``first_day..last_day``."""
        return self.predictions_between(end_of_day(first_day - timedelta(days=1)),
                                        end_of_day(last_day), columns)

    def predictions_between(self, start: datetime, stop: datetime,
                            columns: list[str]) -> pa.Table:
        """The given columns of the predictions made in ``[start, stop)``."""
        files = self._files(Table.PREDICTIONS, *partition_days(start, stop))
        if not files:
            return pa.table({name: pa.array([]) for name in columns})
        timestamp = ident(self._config.columns.timestamp)
        return value_identities(self._query(
            f"SELECT {', '.join(ident(c) for c in columns)} FROM "
            + self._scan(Table.PREDICTIONS, "$files",
                         f"{timestamp} >= $start AND {timestamp} < $stop"),
            files=files, start=start, stop=stop), self._config)

    def version_history(self, as_of: date, columns: list[str],
                        since: date | None = None) -> pa.Table:
        """Per version column and value, from ``since`` (default: the first day stored) to
        the end of ``as_of``: first and last seen, predictions on ``as_of`` (today) and in all
        (total). Each file is summed once per engine (per value and day; a stored file never
        changes, a compaction makes new ones): a backfill's days and the service's checks
        read only the files new since."""
        files = self._files(Table.PREDICTIONS, since, as_of)
        if not files or not columns:
            return pa.table({"column": pa.array([], pa.string()),
                             "value": pa.array([], pa.string()),
                             "first_seen": pa.array([], pa.timestamp("us", "UTC")),
                             "last_seen": pa.array([], pa.timestamp("us", "UTC")),
                             "today": pa.array([], pa.int64()),
                             "total": pa.array([], pa.int64())})
        by_file = self._versions_by_file(files, tuple(columns))
        summed = pa.concat_tables([by_file[f] for f in files], promote_options="permissive")
        self._con.register("version_days", summed)
        try:
            return self._query(
                'SELECT "column", value, min(first_seen) AS first_seen, '
                "max(last_seen) AS last_seen, "
                "coalesce(sum(n) FILTER (day = $as_of), 0)::BIGINT AS today, "
                "sum(n)::BIGINT AS total FROM version_days WHERE day <= $as_of "
                "GROUP BY ALL ORDER BY ALL", as_of=as_of)
        finally:
            self._con.unregister("version_days")

    def _versions_by_file(self, files: list[str], columns: tuple[str, ...]
                          ) -> dict[str, pa.Table]:
        """Per file of ``files``, value of ``columns`` and prediction day: first and last
        seen, predictions (n); the files not summed before are read, in one query. Only the
        files asked for stay kept, so what is kept follows the listing."""
        if not self._carried_versions_read and any(f not in self._version_files for f in files):
            self._read_carried_versions(columns)
        kept = {f: self._version_files[f] for f in files
                if f in self._version_files and self._version_files[f][0] == columns}
        missing = [f for f in files if f not in kept]
        if missing:
            try:
                kept |= self._sum_versions(missing, columns)
            except StoreError:
                if len(missing) == len(files):
                    raise
                # files written before a version column was configured lack it: read with
                # the others, which have it, as a whole window is
                kept = self._sum_versions(files, columns)
        self._version_files = kept
        return {path: summed for path, (_, summed) in kept.items()}

    def _sum_versions(self, files: list[str], columns: tuple[str, ...]
                      ) -> dict[str, tuple[tuple[str, ...], pa.Table]]:
        """The version sums of each of ``files``, read in one query."""
        ts = ident(self._config.columns.timestamp)
        parts = " UNION ALL ".join(
            f'SELECT {FILE_COLUMN}, {literal(c)} AS "column", {ident(c)}::VARCHAR AS value, '
            f"{ts} AS ts FROM p WHERE {ident(c)} IS NOT NULL AND {ts} IS NOT NULL"
            for c in columns)
        needed = ", ".join(ident(c) for c in dict.fromkeys([self._config.columns.timestamp,
                                                           *columns]))
        found = self._query(
            f"WITH p AS (SELECT {FILE_COLUMN}, {needed} FROM "
            f"{self._scan(Table.PREDICTIONS, '$files', with_file=True)}) "
            f'SELECT {FILE_COLUMN}, "column", value, CAST(ts AS DATE) AS day, '
            "min(ts) AS first_seen, max(ts) AS last_seen, count(*)::BIGINT AS n "
            f"FROM ({parts}) GROUP BY ALL ORDER BY {FILE_COLUMN}", files=files)
        by_file = _by_file(found)
        if not set(by_file) <= set(files):
            raise StoreError(
                f"DuckDB {duckdb.__version__} named the files it read otherwise than listed "
                f"({sorted(set(by_file) - set(files))[:3]}); hindsight is tested with DuckDB "
                "2.0: pip install 'duckdb~=2.0'")
        empty = found.slice(0, 0).drop_columns([FILE_COLUMN])
        return {path: (columns, by_file.get(path, empty)) for path in files}

    def daily_versions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        """Predictions per day, version column and value: a cascade's escalation rate or a
        cache's hit rate is a serving variant's daily share."""
        files = self._files(Table.PREDICTIONS, first_day, last_day)
        if not files or not columns:
            return pa.table({"day": pa.array([], pa.date32()),
                             "column": pa.array([], pa.string()),
                             "value": pa.array([], pa.string()),
                             "n": pa.array([], pa.int64()),
                             "repeated": pa.array([], pa.int64())})
        cols = self._config.columns
        ts = ident(cols.timestamp)
        # repeated: predictions whose answer that day was also given to a different input
        answer = f"{ident(cols.prediction)}::VARCHAR"
        inputs = f"{ident(cols.input_hash)}::VARCHAR" if cols.input_hash else "NULL::VARCHAR"
        parts = " UNION ALL ".join(
            f"SELECT CAST({ts} AS DATE) AS day, {literal(c)} AS \"column\", "
            f"{ident(c)}::VARCHAR AS value, {answer} AS answer, {inputs} AS input FROM p"
            for c in columns)
        needed = ", ".join(ident(c) for c in dict.fromkeys(
            [cols.timestamp, cols.prediction, *columns,
             *([cols.input_hash] if cols.input_hash else [])]))
        return self._query(
            f"WITH p AS (SELECT {needed} FROM "
            f"{self._scan(Table.PREDICTIONS, '$files', f'{ts} >= $start AND {ts} < $stop')}), "
            f"v AS ({parts}), "
            'a AS (SELECT day, "column", value, answer, count(*) AS n, '
            "count(DISTINCT input) AS inputs FROM v GROUP BY ALL) "
            'SELECT day, "column", value, sum(n)::BIGINT AS n, '
            "sum(n) FILTER (inputs > 1)::BIGINT AS repeated FROM a "
            "GROUP BY ALL ORDER BY ALL",
            files=files, start=end_of_day(first_day - timedelta(days=1)), stop=end_of_day(last_day),
        )

    def drift_sketch(self, first_day: date, last_day: date, segments: list[str],
                     numeric: list[str], categorical: list[str],
                     within: dict[str, str] | None = None) -> DriftSketch | None:
        """None: the rows are in this process anyway, and the statistics are exact on them."""
        return None

    def cell_counts(self, as_of: date, first_day: date, last_day: date,
                    calibration: pa.Table | None = None) -> CellCounts:
        window = _Window(as_of, first_day, last_day, _calibration_key(calibration))
        ready, self._ready = self._ready, None
        listing, reads, kept = (ready[1] if ready is not None and ready[0] == window
                                else self._start(window))
        if not reads[0]:
            return self._empty_counts()
        if kept is not None:
            self._count_change(kept, window, reads, calibration, listing)
        else:
            self._count_window(window, reads, calibration)
        # only a daily run's window has a next day to count from it; a regression's sums
        # are floats, never counted from the day before's (so neither kept nor carried)
        keep = window.next_day() is not None and self._config.task == "classification"
        rows = self._partition_rows(reads) if keep else None
        self._kept = _Kept(window, reads, rows) if rows is not None else None
        return self._present(KEPT, keep=keep)

    def counts_change_only(self, as_of: date, first_day: date, last_day: date,
                           calibration: pa.Table | None = None) -> bool:
        window = _Window(as_of, first_day, last_day, _calibration_key(calibration))
        started = self._start(window)
        self._ready = (window, started)  # for the cell_counts of this window that follows
        return started[2] is not None

    def _start(self, window: _Window) -> tuple[_Listing, Reads, _Kept | None]:
        """The files a count of ``window`` reads, and the counts of the day before it
        count from (kept by this engine or carried in the store, loaded), if any hold."""
        listing = self._listing(window)
        reads = listing.reads(window)
        kept, self._kept = self._kept, None
        if not reads[0] or self._config.task != "classification":
            return listing, reads, None  # regression sums are floats: no exact change
        if kept is not None and kept.window.next_day() == window:
            kept = self._still(kept.window, kept.rows, listing)
        else:
            kept = None
        return listing, reads, kept or self._carried(window, listing)

    def _still(self, window: _Window, rows: Rows, listing: _Listing) -> _Kept | None:
        """Counts of ``window`` that read ``rows``, over its files as listed now, if those
        hold the same rows. Rows are only ever added to a partition (ingest), moved between
        files (compaction, tiering) or dropped with the whole partition (retention): the same
        number of rows in each partition is the same rows, so a compaction changes nothing."""
        reads = listing.reads(window)
        return _Kept(window, reads, rows) if self._partition_rows(reads) == rows else None

    def carry_counts(self) -> None:
        """Store the latest daily window's counts in the store's ``counts`` table, for the next
        day's run in any process to count only the change from them, as one engine does from
        day to day. The tables go first, under new names, then the manifest that names them
        and says what they are the counts of (window, calibration, configuration, the rows
        read); a run takes them only if all of it still holds, and otherwise counts from
        scratch: they are a cache, nothing depends on them. The newest days' are kept."""
        kept = self._kept
        if kept is None:
            return
        day, token = kept.window.as_of, uuid.uuid4().hex
        files = {name: f"{token}-{name}.parquet" for name in COUNT_TABLES}
        for name, file in files.items():
            self._store.write(Table.COUNTS, self._query(
                f"SELECT * FROM {KEPT}_{name} ORDER BY rowid"), dt=day, name=file)
        self._store.write_json(Table.COUNTS, day, COUNTS_MANIFEST, {
            "of": self._carried_key(kept.window), "rows": kept.rows, "files": files,
            "file_rows": {path: self._file_rows[path] for path in (*kept.reads[0],
                                                                    *kept.reads[1])
                          if path in self._file_rows}})
        self._carry_versions(day)
        self._prune_carried(day, {*files.values(), CARRIED_VERSIONS})

    def _carry_versions(self, day: date) -> None:
        """Store the version sums of each prediction file the run of ``day`` looks back over
        (``versions.memory_days``), for runs in other processes to read only the files new
        since. Summed now, the run's version history then reads nothing more."""
        columns = tuple(self._config.columns.versions())
        since = day - timedelta(days=self._config.versions.memory_days)
        files = self._files(Table.PREDICTIONS, since, day)
        if not columns or not files:
            return
        by_file = self._versions_by_file(files, columns)
        parts = []
        for path in files:
            summed = by_file[path]
            if summed.num_rows == 0:  # summed, and nothing in it: one row saying so
                summed = pa.Table.from_pylist([{}], schema=summed.schema)
            parts.append(summed.add_column(0, FILE_COLUMN, pa.array([path] * summed.num_rows,
                                                                   pa.string())))
        table = pa.concat_tables(parts, promote_options="permissive")
        self._store.write(Table.COUNTS, table.replace_schema_metadata(
            {"of": json.dumps(self._versions_key(columns))}), dt=day, name=CARRIED_VERSIONS)

    def _versions_key(self, columns: tuple[str, ...]) -> list[Any]:
        """What carried version sums are sums of."""
        return [COUNTS_FORMAT, self._config.columns.timestamp, *columns]

    def _read_carried_versions(self, columns: tuple[str, ...]) -> None:
        """The version sums runs carried (any day's: a file's sums never change), for the
        files not summed yet. Missing or damaged ones are read again from the files."""
        self._carried_versions_read = True
        wanted = json.dumps(self._versions_key(columns))
        for day in reversed(self._store.partitions(Table.COUNTS)):
            path = f"{self._store.partition_dir(Table.COUNTS, day)}/{CARRIED_VERSIONS}"
            try:
                table = self._store.read(path)
                if (table.schema.metadata or {}).get(b"of", b"").decode() != wanted:
                    continue
                by_file = _by_file(table.sort_by(FILE_COLUMN))
            except (StoreError, KeyError, pa.ArrowException):
                continue  # none that day, pruned meanwhile, or damaged
            for path, rows in by_file.items():
                if path not in self._version_files:  # less the row saying "nothing in it"
                    self._version_files[path] = (columns,
                                                 rows.filter(pc.is_valid(rows["column"])))

    def _carried(self, window: _Window, listing: _Listing) -> _Kept | None:
        """The counts the run of the day before ``window`` carried, loaded as the kept tables,
        if they are counts of exactly that window over the same rows (see ``_still``)."""
        before = window.day_before()
        if before is None:
            return None
        directory = self._store.partition_dir(Table.COUNTS, before.as_of)
        try:
            manifest = self._store.read_json(f"{directory}/{COUNTS_MANIFEST}")
            if not isinstance(manifest, dict) or manifest.get("of") != self._carried_key(before):
                return None
            for path, rows in dict(manifest.get("file_rows", {})).items():
                self._file_rows.setdefault(str(path), int(rows))
            rows = manifest.get("rows")
            kept = self._still(before, rows, listing) if isinstance(rows, dict) else None
        except (StoreError, TypeError, ValueError):
            return None  # none carried, or damaged: count from scratch
        if kept is None:
            return None
        try:
            for name in COUNT_TABLES:
                order = " ORDER BY day, segment" if name == "cells" else ""
                self._execute(
                    f"CREATE OR REPLACE TEMP TABLE {KEPT}_{name} AS SELECT * "
                    f"FROM read_parquet($file){order}",
                    {"file": f"{self._scheme}{directory}/{manifest['files'][name]}"})
        except (StoreError, KeyError, TypeError):
            return None  # pruned by a newer run meanwhile, or damaged: count from scratch
        return kept

    def _carried_key(self, window: _Window) -> dict[str, Any]:
        """What carried counts are counts of, as JSON (with the rows they read)."""
        cols, calibration = self._config.columns, window.calibration
        return {
            "format": COUNTS_FORMAT, "task": self._config.task,
            "columns": [cols.id, cols.timestamp, cols.prediction, cols.label, cols.score,
                        *([cols.scores] if cols.scores else [])],
            "segments": list(self._config.segments),
            "crosses": [list(combo) for combo in self._crosses()],
            "window": [d.isoformat() for d in (window.as_of, window.first_day,
                                               window.last_day)],
            "calibration": None if calibration is None else [list(c) for c in calibration],
        }

    def _partition_rows(self, reads: Reads) -> Rows | None:
        """Rows per partition of the prediction and the label files ``reads``, from the
        files' footers (each read once: the rows of a file never change); None when a file
        is gone since it was listed (a compaction's grace ended)."""
        found: Rows = {}
        for table, files in zip((Table.PREDICTIONS, Table.LABELS), reads, strict=True):
            rows = found.setdefault(table.value, {})
            for path in files:
                if path in self._source_sizes:  # a file read in place, by its size now
                    rows[path] = self._source_sizes[path]
                    continue
                if path not in self._file_rows:
                    try:
                        footer = self._store.footer(path.removeprefix(self._scheme))
                    except StoreError:
                        return None
                    self._file_rows[path] = footer.num_rows
                day = partition_date(path)
                key = day.isoformat() if day else ""
                rows[key] = rows.get(key, 0) + self._file_rows[path]
        return found

    def _prune_carried(self, day: date, current: set[str]) -> None:
        """Drop carried counts no run will start from: all but the newest days' and ``day``'s,
        and ``day``'s earlier ones. A run reading what is dropped counts from scratch."""
        store = self._store
        days = store.partitions(Table.COUNTS)
        keep = {day, *days[-CARRIED_DAYS:]}
        with contextlib.suppress(OSError):  # another run pruned first
            for old in days:
                if old not in keep:
                    store.fs.delete_dir(store.partition_dir(Table.COUNTS, old))
            for info in store.listing(Table.COUNTS, day, day):
                name = info.base_name  # a hidden one is another run's write in progress
                if name.endswith(".parquet") and not name.startswith(".") \
                        and name not in current:
                    store.fs.delete_file(info.path)

    def _predictions_sql(self, calibration: pa.Table | None,
                         only: str = "TRUE") -> tuple[str, dict[str, Any]]:
        """The predictions of ``$predictions`` made in ``[$start, $stop)`` that ``only`` keeps,
        with the columns the grain counts: id, day, prediction, score, s0.., p_correct."""
        cols = self._config.columns
        source = (
            f"SELECT {ident(cols.id)} AS id, CAST({ident(cols.timestamp)} AS DATE) AS day, "
            f"{self._value(cols.prediction)} AS prediction, {self._score()} AS score"
            f"{self._segment_columns()} FROM "
            + self._scan(Table.PREDICTIONS, "$predictions",
                         f"{ident(cols.timestamp)} >= $start AND {ident(cols.timestamp)} "
                         "< $stop") + f" WHERE {only}"
        )
        if calibration is None or not cols.has_score():
            return f"SELECT *, NULL::DOUBLE AS p_correct FROM ({source})", {}
        # The label-free estimate: each prediction's calibrated chance of being right, a
        # step function of its score (a CASE: a join would sort millions of rows).
        lower = calibration["lower"].to_pylist()
        probability = calibration["probability"].to_pylist()
        steps = " ".join(f"WHEN score < $edge{i} THEN $p{i - 1}" for i in range(1, len(lower)))
        params = {f"edge{i}": float(lower[i]) for i in range(1, len(lower))}
        params |= {f"p{i}": float(p) for i, p in enumerate(probability)}
        # a missing score is no score, nor is a non-finite one (stored before ingest refused
        # them): a NULL would otherwise fail every step and fall to the top one
        return (f"SELECT *, CASE WHEN score IS NULL OR NOT isfinite(score) THEN NULL {steps} "
                f"ELSE $p{len(lower) - 1} END::DOUBLE AS p_correct FROM ({source})"), params

    def _label_rows_sql(self, only: str = "TRUE") -> str:
        """Label rows of ``$labels`` that arrived in ``[$since, $as_of)``, that ``only`` keeps."""
        cols, arrived = self._config.columns, ident(ARRIVED_AT)
        return (f"SELECT {ident(cols.id)} AS id, {self._value(cols.label)} AS label, "
                f"{arrived} AS arrived_at FROM "
                + self._scan(Table.LABELS, "$labels", f"{arrived} >= $since AND {arrived} "
                             "< $as_of") + f" WHERE {only}")

    @staticmethod
    def _joined_sql(predictions: str, label_rows: str | None) -> str:
        """Each prediction with the label in force (the latest arrival wins) and its age: days
        from the prediction day to the day its first label arrived."""
        if label_rows is None:
            return f"SELECT *, NULL AS label, NULL::BIGINT AS age FROM ({predictions})"
        return (
            "SELECT p.*, l.label, date_diff('day', p.day, CAST(l.first_arrived AS DATE)) AS age "
            f"FROM ({predictions}) p LEFT JOIN (SELECT id, arg_max(label, arrived_at) AS label, "
            f"min(arrived_at) AS first_arrived FROM ({label_rows}) GROUP BY id) l USING (id)"
        )

    @staticmethod
    def _window_params(window: _Window, reads: Reads) -> dict[str, Any]:
        prediction_files, label_files = reads
        return {"predictions": list(prediction_files), "labels": list(label_files),
                "start": end_of_day(window.first_day - timedelta(days=1)),
                "stop": end_of_day(window.last_day), "since": label_since(window),
                "as_of": end_of_day(window.as_of)}

    def _listing(self, window: _Window) -> _Listing:
        """The files ``window`` and the window a day before it read, listed once."""
        day = timedelta(days=1)
        return _Listing(
            tuple(self._files(Table.PREDICTIONS, window.first_day - day, window.last_day)),
            tuple(self._files(Table.LABELS,
                              window.first_day - day * (LABEL_LEAD_DAYS + 1), window.as_of)),
            dict(self._spans))

    def _count_window(self, window: _Window, reads: Reads,
                      calibration: pa.Table | None) -> None:
        if self._grains is not None:
            self._given_grain(self._grains.window_grain(window, reads, calibration))
            try:
                self._rollup_grain("grain", KEPT)
            finally:
                self._execute("DROP TABLE grain")
            return
        predictions, params = self._predictions_sql(calibration)
        params |= self._window_params(window, reads)
        if not params["labels"]:
            del params["labels"], params["since"], params["as_of"]
        joined = self._joined_sql(predictions,
                                  self._label_rows_sql() if "labels" in params else None)
        self._rollup(joined, params, KEPT)

    def _count_change(self, kept: _Kept, now: _Window, reads: Reads,
                      calibration: pa.Table | None, listing: _Listing) -> None:
        """The counts of ``now`` from those ``kept`` of the window the day before, when none of
        the files that window read has changed since. Every count is per prediction day: the
        day that left the window is its kept rows, dropped; the day that entered it is counted;
        the predictions in between whose label in force changed (a label arrived that day, or
        one fell out of the window's reach) are counted again, once as they were (and
        subtracted) and once as they are (and added). Every count is a sum of integers or of
        decimals, so the result is exactly what counting ``now`` from scratch gives (a test
        holds it to that). ``reads``: the files ``now`` reads."""
        before = kept.window
        gone_from = label_since(before)
        changes = (*listing.labels_of(gone_from.date()), *listing.labels_of(now.as_of))
        if self._grains is not None:
            self._given_grain(self._grains.change_grain(
                before, now, (reads[0], tuple(sorted(set(kept.reads[1]) | set(reads[1])))),
                changes, calibration))
        else:
            self._change_grain(kept, now, reads, calibration, changes)
        try:
            self._rollup_grain("grain", CHANGE)
        finally:
            self._execute("DROP TABLE grain")
        merges = {
            "cells": ("day, segment, depth", "sum(n_predictions) <> 0",
                      "n_predictions n_labelled n_correct n_scored", "expected_correct"),
            "classes": ("day, segment, depth, class", "sum(n_predicted) <> 0 OR sum(n_true) <> 0",
                        "tp n_predicted n_true", ""),
            "label_ages": ("day, age", "sum(n_correct) <> 0 OR sum(n_wrong) <> 0",
                           "n_correct n_wrong", ""),
        }
        for name, (keys, present, counts, decimals) in merges.items():
            sums = ", ".join([f"sum({c})::BIGINT AS {c}" for c in counts.split()]
                             + [f"sum({c}) AS {c}" for c in decimals.split()])
            # a cell or class that no prediction is in any longer is no row, as from scratch
            self._execute(
                f"CREATE TEMP TABLE merged AS SELECT {keys}, {sums} FROM (SELECT * FROM "
                f"{KEPT}_{name} WHERE day >= $first UNION ALL BY NAME "
                f"SELECT * FROM {CHANGE}_{name}) GROUP BY {keys} HAVING {present}"
                + (" ORDER BY day, segment" if name == "cells" else ""), {"first": now.first_day})
            self._execute(f"DROP TABLE {KEPT}_{name}")
            self._execute(f"DROP TABLE {CHANGE}_{name}")
            self._execute(f"ALTER TABLE merged RENAME TO {KEPT}_{name}")

    def _change_grain(self, kept: _Kept, now: _Window, reads: Reads,
                      calibration: pa.Table | None, changes: tuple[str, ...]) -> None:
        """The table ``grain``: the grain of what changed from ``kept``'s window to ``now``
        (see ``GrainSource.change_grain``), counted here."""
        before = kept.window
        cols = self._config.columns
        arrived = ident(ARRIVED_AT)
        gone_from, gone_to = label_since(before), label_since(now)
        files = list(changes)
        self._execute("DROP TABLE IF EXISTS changed")
        self._execute("CREATE TEMP TABLE changed (id VARCHAR)")
        if files:
            self._execute(
                f"INSERT INTO changed SELECT DISTINCT {ident(cols.id)}::VARCHAR FROM "
                + self._scan(Table.LABELS, "$files",
                             f"({arrived} >= $gone_from AND {arrived} < $gone_to) "
                             f"OR ({arrived} >= $came_from AND {arrived} < $came_to)"),
                {"files": files, "gone_from": gone_from, "gone_to": gone_to,
                 "came_from": end_of_day(before.as_of), "came_to": end_of_day(now.as_of)})
        # the predictions of `now`; the labels either window joins
        both = _Window(now.as_of, before.first_day, now.last_day, now.calibration)
        predictions, params = self._predictions_sql(
            calibration, f"({ident(cols.id)} IN (SELECT id FROM changed) "
                         f"OR {ident(cols.timestamp)} >= $old_stop)")
        params |= self._window_params(both, (
            reads[0], tuple(sorted(set(kept.reads[1]) | set(reads[1]))))) | {
            "start": end_of_day(before.first_day), "since": label_since(before),
            "old_stop": end_of_day(before.last_day), "new_since": label_since(now),
            "old_as_of": end_of_day(before.as_of)}
        new_labels: str | None
        old_labels: str | None
        if params["labels"]:
            label_rows = self._label_rows_sql("id IN (SELECT id FROM p)")
            new_labels = "SELECT * FROM l WHERE arrived_at >= $new_since"
            old_labels = "SELECT * FROM l WHERE arrived_at < $old_as_of"
            shared = f"p AS MATERIALIZED ({predictions}), l AS MATERIALIZED ({label_rows})"
        else:
            del params["labels"], params["since"], params["as_of"], params["new_since"], \
                params["old_as_of"]
            new_labels = old_labels = None
            shared = f"p AS MATERIALIZED ({predictions})"
        new = self._joined_sql("SELECT * FROM p", new_labels)
        old = self._joined_sql("SELECT * FROM p WHERE day < CAST($old_stop AS DATE)",
                               old_labels)
        self._make_grain(
            f"WITH {shared} {grain_sql(new, self._config)} UNION ALL BY NAME "
            "SELECT * REPLACE (-n AS n, -expected AS expected, -scored AS scored) "
            f"FROM ({grain_sql(old, self._config)})", params)
        self._execute("DROP TABLE changed")

    def _given_grain(self, grain: pa.Table) -> None:
        """The table ``grain``: a grain counted elsewhere."""
        self._con.register("given_grain", grain)
        try:
            self._execute("DROP TABLE IF EXISTS grain")
            self._execute("CREATE TEMP TABLE grain AS SELECT * FROM given_grain")
        finally:
            self._con.unregister("given_grain")

    def rollup(self, grain: pa.Table) -> CellCounts:
        """Every cell and cross from a grain another engine computed (``grain_sql``)."""
        self._con.register("given_grain", grain)
        try:
            self._rollup_grain("given_grain", "given")
        finally:
            self._con.unregister("given_grain")
        return self._present("given", keep=False)

    def reference_counts(self) -> CellCounts | None:
        files = self._files(Table.REFERENCE)
        if not files:
            return None
        cols = self._config.columns
        joined = (
            f"SELECT CAST(NULL AS DATE) AS day, {self._value(cols.prediction)} AS prediction, "
            f"{self._value(cols.label)} AS label, NULL::BIGINT AS age, NULL::DOUBLE AS p_correct"
            f"{self._segment_columns()} "
            "FROM read_parquet($reference, union_by_name = true)"
        )
        self._rollup(joined, {"reference": files}, "reference")
        return self._present("reference", keep=False)

    def _score(self) -> str:
        """A prediction's score: its confidence, or its predicted class's probability."""
        cols = self._config.columns
        if cols.scores:
            whens = " ".join(f"WHEN {literal(name)} THEN {ident(column)}::DOUBLE"
                             for name, column in cols.scores.items())
            return f"CASE {self._value(cols.prediction)} {whens} END"
        return f"{ident(cols.score)}::DOUBLE" if cols.score else "NULL::DOUBLE"

    def _value(self, column: str) -> str:
        """A stored class (its identity, however it was spelled when stored), or a regression
        value."""
        if self._config.task == "classification":
            return identity_sql(ident(column))
        return ident(column)

    def _segment_columns(self) -> str:
        """``, coalesce("country", '(missing)') AS s0, ...``: a null value is its own cell."""
        return "".join(
            f", coalesce({identity_sql(ident(name))}, {literal(MISSING_SEGMENT_VALUE)}) "
            f"AS {alias}"
            for name, alias in zip(self._config.segments, self._seg, strict=True)
        )

    def _rollup(self, joined: str, params: dict[str, Any], into: str) -> None:
        self._make_grain(grain_sql(joined, self._config), params)
        try:
            self._rollup_grain("grain", into)
        finally:
            self._execute("DROP TABLE grain")

    def _make_grain(self, sql: str, params: dict[str, Any]) -> None:
        self._execute("DROP TABLE IF EXISTS grain")
        self._execute(f"CREATE TEMP TABLE grain AS {sql}", params)

    def _rollup_grain(self, grain: str, into: str) -> None:
        """Every cell and cross of ``grain`` into the tables ``{into}_cells``, ``_classes`` and
        ``_label_ages``. The calibrated expectation stays a decimal until ``_present``."""
        seg = "".join(f", {s}" for s in self._seg)
        classification = self._config.task == "classification"
        if classification:
            measures = (
                "sum(n)::BIGINT AS n_predictions, "
                "coalesce(sum(n) FILTER (label IS NOT NULL), 0)::BIGINT AS n_labelled, "
                "coalesce(sum(n) FILTER (prediction = label), 0)::BIGINT AS n_correct, "
                f"coalesce(sum(expected), 0)::{EXACT} AS expected_correct, "
                "coalesce(sum(scored), 0)::BIGINT AS n_scored"
            )
        else:
            measures = (
                "sum(n)::BIGINT AS n_predictions, sum(n_lab)::BIGINT AS n_labelled, "
                "coalesce(sum(sae), 0)::DOUBLE AS sum_abs_error, "
                "coalesce(sum(sse), 0)::DOUBLE AS sum_sq_error"
            )
        rows = f"(SELECT * FROM {grain} WHERE cell_row = 1)" if classification else grain
        for name in COUNT_TABLES:
            self._execute(f"DROP TABLE IF EXISTS {into}_{name}")
        self._execute(
            f"CREATE TEMP TABLE {into}_cells AS SELECT {self._cell_columns()}, {measures} "
            f"FROM {rows} GROUP BY GROUPING SETS ({self._grouping_sets()}) "
            "ORDER BY day, segment"
        )
        if not classification:
            return
        self._execute(
            f"CREATE TEMP TABLE {into}_label_ages AS SELECT day, age, "
            "coalesce(sum(n) FILTER (hit), 0)::BIGINT AS n_correct, "
            f"coalesce(sum(n) FILTER (NOT hit), 0)::BIGINT AS n_wrong FROM {grain} "
            "WHERE cell_row = 0 AND age IS NOT NULL GROUP BY ALL"
        )
        self._execute(
            f"CREATE TEMP TABLE {into}_classes AS WITH c AS ("
            f"SELECT day{seg}, prediction AS class, n AS n_predicted, 0 AS n_true, "
            f"CASE WHEN prediction = label THEN n ELSE 0 END AS tp "
            f"FROM {rows} WHERE label IS NOT NULL UNION ALL "
            f"SELECT day{seg}, label, 0, n, 0 FROM {rows} WHERE label IS NOT NULL) "
            f"SELECT {self._cell_columns()}, class, sum(tp)::BIGINT AS tp, "
            "sum(n_predicted)::BIGINT AS n_predicted, sum(n_true)::BIGINT AS n_true FROM c "
            f"GROUP BY GROUPING SETS ({self._grouping_sets(extra=', class')})"
        )

    def _present(self, name: str, keep: bool = True) -> CellCounts:
        """The count tables ``name`` as the jobs read them, in a stable order."""
        if self._config.task == "classification":
            # cells are stored in order (day, segment): a cell's row is its rowid
            cells = self._query(
                "SELECT day, segment, depth, n_predictions, n_labelled, n_correct, "
                "expected_correct::DOUBLE AS expected_correct, n_scored "
                f"FROM {name}_cells ORDER BY rowid")
            # ordered by each class's rank among the few classes: a sort on two integers,
            # in the order ``ORDER BY cell, class`` gives (a text key sorts slower)
            classes = self._query(
                "WITH r AS (SELECT class AS ranked, row_number() OVER (ORDER BY class) AS rank "
                f"FROM (SELECT DISTINCT class FROM {name}_classes)) "
                "SELECT c.day, c.segment, c.depth, class, tp, n_predicted, n_true, "
                f"k.rowid AS cell FROM {name}_classes c JOIN {name}_cells k "
                "ON c.day IS NOT DISTINCT FROM k.day AND c.segment = k.segment "
                "JOIN r ON c.class IS NOT DISTINCT FROM r.ranked ORDER BY cell, rank")
            label_ages = self._query(
                f"SELECT day, age, n_correct, n_wrong FROM {name}_label_ages ORDER BY ALL")
            counts = CellCounts(cells, classes, label_ages)
        else:
            counts = CellCounts(self._query(f"SELECT * FROM {name}_cells ORDER BY rowid"), None)
        if not keep:
            for table in COUNT_TABLES:
                self._execute(f"DROP TABLE IF EXISTS {name}_{table}")
        return counts

    def _crosses(self) -> list[tuple[int, ...]]:
        depth = self._config.effective_cross_depth
        return [
            combo
            for k in range(0, depth + 1)
            for combo in combinations(range(len(self._seg)), k)
        ]

    def _grouping_sets(self, extra: str = "") -> str:
        return ", ".join(
            "(day" + "".join(f", {self._seg[i]}" for i in combo) + extra + ")"
            for combo in self._crosses()
        )

    def _cell_columns(self) -> str:
        """day, the segment key as canonical JSON, and the number of segments crossed."""
        names = self._config.segments
        if not names:
            return "day, '{}' AS segment, 0 AS depth"
        grouping = f"GROUPING({', '.join(self._seg)})"
        width = len(self._seg)
        keys, depths = [], []
        for combo in self._crosses():
            mask = sum(1 << (width - 1 - i) for i in range(width) if i not in combo)
            ordered = sorted(combo, key=lambda i: names[i])
            pairs = ", ".join(f"{literal(names[i])}, {self._seg[i]}" for i in ordered)
            keys.append(f"WHEN {mask} THEN json_object({pairs})::VARCHAR")
            depths.append(f"WHEN {mask} THEN {len(combo)}")
        return (
            f"day, CASE {grouping} {' '.join(keys)} END AS segment, "
            f"CASE {grouping} {' '.join(depths)} END AS depth"
        )

    def _empty_counts(self) -> CellCounts:
        kind = "VARCHAR" if self._config.task == "classification" else "DOUBLE"
        self._rollup(
            f"SELECT NULL::DATE AS day, NULL::{kind} AS prediction, NULL::{kind} AS label, "
            "NULL::BIGINT AS age, NULL::DOUBLE AS p_correct"
            + "".join(f", NULL::VARCHAR AS {s}" for s in self._seg)
            + " WHERE false",
            {}, "empty",
        )
        return self._present("empty", keep=False)

    def _files(self, table: Table, start: date | None = None,
               end: date | None = None) -> list[str]:
        source = self._sources.get(table)
        if source is None:
            return [self._scheme + f.path for f in self._store.files(table, start, end)]
        listed = source.files(start, end)
        scheme = self._source_scheme(table, source)
        for file in listed:
            path = scheme + file.path
            self._spans[path] = (file.first_day, file.last_day)
            self._source_sizes[path] = file.size
            self._arrivals[path] = file.arrived
        if table == Table.LABELS:
            self._register_arrivals(listed, scheme)
        if listed and table not in self._columns_checked:
            self._check_columns(table, source, scheme + listed[-1].path)
        return [scheme + f.path for f in listed]

    def listed(self, table: Table, start: date | None = None,
               end: date | None = None) -> list[str]:
        """The files of ``table`` of days ``start..end`` as this engine names them (what a
        ``GrainSource`` is handed to read); a table read in place's with their ``arrival``."""
        return self._files(table, start, end)

    def source(self, table: Table) -> Source | None:
        """The table ``table`` is read in place from, if it is."""
        return self._sources.get(table)

    def arrival(self, path: str) -> datetime:
        """When a listed file of a table read in place arrived."""
        return self._arrivals[path]

    def _check_columns(self, table: Table, source: Source, path: str) -> None:
        """Refuse a source without a mapped column, naming it and the fix, before any
        count's query fails on it (its newest file's columns: one footer read)."""
        from hindsight.sources import missing_columns

        reader = ("read_json([$file], format = 'newline_delimited')" if source.read_as
                  == "jsonl" else "read_parquet([$file], hive_partitioning = true)")
        present = self._query(f"SELECT column_name FROM (DESCRIBE SELECT * FROM {reader})",
                              file=path)["column_name"].to_pylist()
        error = missing_columns(source.spec, source.role, self._config,
                                path.removeprefix(self._source_scheme(table, source)), present)
        if error is not None:
            raise error
        self._columns_checked.add(table)

    def _source_scheme(self, table: Table, source: Source) -> str:
        """How DuckDB names the files of a table read in place: plain local paths, or through
        its filesystem registered under a scheme of its own."""
        if table in self._source_schemes:
            return self._source_schemes[table]
        import pyarrow.fs as pafs

        scheme = ""
        if not isinstance(source.fs, pafs.LocalFileSystem):
            from hindsight.engine.remote import store_filesystem

            kind = store_filesystem(f"hindsight-{table.value}")
            fs = kind(source.fs)
            self._con.register_filesystem(fs)
            self._filesystems.append(fs)
            scheme = kind.prefix
        self._source_schemes[table] = scheme
        return scheme

    def _register_arrivals(self, listed: list[SourceFile], scheme: str) -> None:
        """The arrival of every label file of the source, for ``_scan`` to join."""
        with contextlib.suppress(duckdb.Error):
            self._con.unregister(ARRIVALS)
        known = {scheme + f.path: f.arrived for f in listed} | self._arrivals
        self._con.register(ARRIVALS, pa.table({
            "path": pa.array(list(known), pa.string()),
            "arrived": pa.array(list(known.values()), pa.timestamp("us", "UTC"))}))

    def daily_rows(self, table: Table, first: date, last: date) -> dict[date, int] | None:
        """Rows per day from ``first`` to ``last`` of a table read in place (predictions by
        the day made, each id once; labels by the day arrived), or None for the store's own
        (counted from its footers, see ``jobs.volume``). As there, a day before the table's
        first has no entry and a day without rows after it counts 0; a label sent again on
        the day it arrived counts once.

        A day's count depends only on the files whose rows span it, so each day's is carried
        in the store's ``counts`` table with a digest of those files (path, size, arrival):
        a later run, in any process, reads only the days whose files changed (the new days,
        as a rule), and of those files only the id and time columns."""
        if table not in self._sources:
            return None
        listed = tuple(self._files(table, None, last))
        if not listed:
            return {}
        known = [low for path in listed if (low := self._spans[path][0]) is not None]
        start = max(first, min(known)) if known else first
        days = [start + timedelta(days=d) for d in range((last - start).days + 1)]
        digests = {day: self._files_digest(_within(listed, day, day, self._spans))
                   for day in days}
        carried = self._carried_rows(table, last)
        counts = {day: int(carried[day.isoformat()]["n"]) for day in days
                  if carried.get(day.isoformat(), {}).get("files") == digests[day]}
        todo = [day for day in days if day not in counts]
        if todo:
            files = sorted({path for day in todo
                            for path in _within(listed, day, day, self._spans)})
            counts |= dict.fromkeys(todo, 0)
            column = ident(self._config.columns.timestamp if table == Table.PREDICTIONS
                           else ARRIVED_AT)
            # a label sent again the same day is one label (ingest skips a label that
            # changes nothing)
            rows = ("" if table == Table.PREDICTIONS else
                    f"DISTINCT {ident(self._config.columns.id)}, "
                    f"{ident(self._config.columns.label)}, ")
            start, stop = end_of_day(min(todo) - timedelta(days=1)), end_of_day(max(todo))
            if files and self._grains is not None:  # counted where the grain is
                counted = self._grains.day_rows(table, tuple(files), start, stop)
            else:
                counted = self._query(
                    f"SELECT day, count(*) AS n FROM (SELECT {rows}CAST({column} AS DATE) AS day "
                    "FROM " + self._scan(table, "$files", f"{column} >= $start AND {column} "
                                         "< $stop", times_only=True)
                    + ") GROUP BY ALL", files=files, start=start, stop=stop
                ) if files else pa.table({"day": [], "n": []})
            for day, n in zip(counted["day"].to_pylist(), counted["n"].to_pylist(), strict=True):
                if day in counts and day in todo:
                    counts[day] = int(n)
            self._carry_rows(table, last, {day.isoformat(): {"files": digests[day],
                                                             "n": counts[day]} for day in days})
        return dict(sorted(counts.items()))

    def latest_day(self, table: Table) -> date | None:
        """The latest day a table read in place has rows of (predictions by the day made,
        labels by the day arrived), from its files' statistics where they tell, else read;
        None for the store's own or an empty table."""
        if table not in self._sources:
            return None
        listed = self._files(table)
        known = [high for path in listed if (high := self._spans[path][1]) is not None]
        unknown = [path for path in listed if self._spans[path][1] is None]
        if unknown:  # no statistics (JSON lines without a date partition): read their times
            column = ident(self._config.columns.timestamp if table == Table.PREDICTIONS
                           else ARRIVED_AT)
            found = self._query(f"SELECT max(CAST({column} AS DATE)) AS day FROM "
                                + self._scan(table, "$files", times_only=True),
                                files=unknown)["day"][0].as_py()
            known += [found] if found is not None else []
        return max(known, default=None)

    def _files_digest(self, paths: tuple[str, ...]) -> str:
        """What a day's count of a table read in place was counted from."""
        named = sorted(f"{p}\t{self._source_sizes[p]}\t{self._arrivals[p].isoformat()}"
                       for p in paths)
        return hashlib.sha256("\n".join(named).encode()).hexdigest()

    def _rows_key(self, table: Table) -> list[Any]:
        """What carried daily rows are counts of."""
        cols = self._config.columns
        return [COUNTS_FORMAT, table.value, cols.id, cols.timestamp, cols.label_timestamp]

    def _carried_rows(self, table: Table, last: date) -> dict[str, dict[str, Any]]:
        """The daily rows of ``table`` the newest run up to ``last`` carried, by ISO day;
        none (count them all) if missing, damaged or counted otherwise."""
        if table in self._rows_carried:
            return self._rows_carried[table]
        name = f"{CARRIED_ROWS}-{table.value}.json"
        for day in reversed([d for d in self._store.partitions(Table.COUNTS) if d <= last]):
            try:
                body = self._store.read_json(f"{self._store.partition_dir(Table.COUNTS, day)}"
                                             f"/{name}")
            except StoreError:
                continue  # none that day, or pruned meanwhile
            if isinstance(body, dict) and body.get("of") == self._rows_key(table) \
                    and isinstance(body.get("days"), dict):
                return {str(k): v for k, v in body["days"].items() if isinstance(v, dict)}
            return {}
        return {}

    def _carry_rows(self, table: Table, day: date, counts: dict[str, dict[str, Any]]) -> None:
        """Keep the daily rows just counted, here and in the store for runs elsewhere."""
        self._rows_carried[table] = counts
        self._store.write_json(Table.COUNTS, day, f"{CARRIED_ROWS}-{table.value}.json",
                               {"of": self._rows_key(table), "days": counts})

    def bytes_read(self) -> dict[str, int]:
        """Bytes each file read through a registered filesystem gave DuckDB so far (object
        stores and tables in buckets), by path: what a run cost in reads."""
        return {path: n for fs in self._filesystems for path, n in fs.bytes_read.items()}

    def _execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        for fs in self._filesystems:
            fs.forget()
        try:
            self._con.execute(sql, params or None)
        except duckdb.Error as exc:
            raise StoreError(f"query over the store {self._store.root} failed: {exc}") from exc

    def _query(self, sql: str, **params: Any) -> pa.Table:
        for fs in self._filesystems:
            fs.forget()
        try:
            return self._con.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query over the store {self._store.root} failed: {exc}") from exc
