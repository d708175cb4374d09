"""The scale-out engine: the same queries as PySpark over the same Parquet layout.

Spark does the work that grows with the rows: reading the window's predictions and labels, the
as-of join, the finest grain of the counts (``grain_sql``, the very SQL DuckDB runs) of a
window or of a day's change from the day before's counts, version history, and the drift
sketch (``engine.sketch``). What comes back is bounded by the segment values, classes and
columns, never by the predictions. The rollup into every cell and cross, and the counts
carried from day to day, are an embedded DuckDB engine's (``GrainSource``), so both engines
count with one implementation above the grain. Ingest's id look-ups stay on DuckDB: they are
small and need an answer in milliseconds. Predictions and labels read in place from a lake's
table are planned on the driver and read by Spark (``engine.spark_sources``).

pyspark is an optional extra (``pip install 'hindsight[spark]'``), imported only here and in
``engine.spark_sources``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from hindsight.config import Config
from hindsight.engine import sketch
from hindsight.engine.base import (
    MISSING_SEGMENT_VALUE,
    SKETCH_CATEGORIES,
    SKETCH_COLUMNS,
    CellCounts,
    DriftSketch,
    end_of_day,
    partition_days,
)
from hindsight.engine.duck import EXACT, DuckDBEngine, Reads, grain_sql, label_since
from hindsight.engine.hadoop import HadoopStore
from hindsight.engine.spark_sources import SparkSources
from hindsight.errors import ConfigError, StoreError
from hindsight.store.identity import identity_sql
from hindsight.store.partitions import Store, Table
from hindsight.store.schema import ARRIVED_AT
from hindsight.store.scores import PREDICTED_PROBABILITY

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from hindsight.engine.hadoop import HadoopStore
from hindsight.engine.duck import CountWindow

# Defaults for a session hindsight starts itself; the config's spark.conf overrides them.
_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.parquet.mergeSchema": "true",
}
# what the Spark Connect client imports beyond pyspark itself (pyspark[connect])
CONNECT_MODULES = ("grpc", "grpc_status", "google.rpc")
_LOCAL = {  # a local master stays on loopback
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def q(name: str) -> str:
    """A Spark SQL identifier.

    >>> q('a`b')
    '`a``b`'
    """
    return "`" + name.replace("`", "``") + "`"


def settings(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings of a session hindsight starts: its defaults, a local master's loopback,
    what the store and an S3 table read in place need from the environment
    (``HadoopStore.settings``), then the config's ``spark.conf`` over all of them. A Spark
    Connect session (``SPARK_REMOTE``) is the server's: it gets only the config's own and the
    query settings, which a client may set."""
    given = {k: str(v).lower() if isinstance(v, bool) else str(v)
             for k, v in config.spark.conf.items()}
    if environ.get("SPARK_REMOTE"):
        return {k: v for k, v in _DEFAULTS.items() if k.startswith("spark.sql.")} | given
    found = dict(_DEFAULTS)
    if config.spark.master.startswith("local"):
        found |= _LOCAL
    for spec in (config.predictions, config.labels):  # an S3 table read in place
        if spec is not None and str(spec.path).startswith(("s3://", "s3a://")):
            found |= HadoopStore.of(str(spec.path)).settings(environ)
    return found | HadoopStore.of(config.store).settings(environ) | given


def session(config: Config, environ: Mapping[str, str] | None = None) -> SparkSession:
    """The process's Spark session (``getOrCreate``: one per process, shared by engines):
    Spark Connect's at ``SPARK_REMOTE`` if set, else one on ``spark.master``."""
    environ = os.environ if environ is None else environ
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(f"{config.source}: engine: spark needs pyspark: "
                          "pip install 'hindsight[spark]'") from exc
    builder = SparkSession.builder.appName(f"hindsight {config.model}")
    remote = environ.get("SPARK_REMOTE")
    if remote:
        missing = [m for m in CONNECT_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"SPARK_REMOTE={remote} asks for a Spark Connect session, whose client needs "
                f"{', '.join(missing)}: pip install 'hindsight[connect]'")
        builder = builder.remote(remote)
    else:
        builder = builder.master(config.spark.master)
    for key, value in settings(config, environ).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine:
    def __init__(self, store: Store, config: Config, embedded: DuckDBEngine) -> None:
        """``embedded``: the caller's DuckDB engine, for ingest look-ups and the rollup of the
        grain (its owner closes it)."""
        self._store = store
        self._config = config
        self._hadoop = HadoopStore.of(config.store)
        self._spark = session(config)
        self._duck = embedded
        # the counts' rollup and what is carried from day to day; the grain is counted here
        self._counts = DuckDBEngine(store, config, grains=self)
        self._in_place = SparkSources(self._spark, config, {
            table: source for table in (Table.PREDICTIONS, Table.LABELS)
            if (source := self._counts.source(table)) is not None}, self._counts)
        self._seg = [f"s{i}" for i in range(len(config.segments))]

    def close(self) -> None:
        """Release the counts' embedded engine; the session is the process's (other engines
        may share it) and the look-ups' engine is its owner's."""
        self._counts.close()

    # --- ingest look-ups: small, on the embedded engine -----------------------------------

    def stored_predictions(self, ids: pa.Array, first_day: date | None = None,
                           last_day: date | None = None) -> pa.Table:
        return self._duck.stored_predictions(ids, first_day, last_day)

    def stored_labels(self, ids: pa.Array, first_day: date | None = None,
                      last_day: date | None = None) -> pa.Table:
        return self._duck.stored_labels(ids, first_day, last_day)

    def remember(self, table: Table, path: str, rows: pa.Table) -> None:
        self._duck.remember(table, path, rows)

    # --- the daily job ---------------------------------------------------------------------

    def predictions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        return self.predictions_between(end_of_day(first_day - timedelta(days=1)),
                                        end_of_day(last_day), columns)

    def predictions_between(self, start: datetime, stop: datetime,
                            columns: list[str]) -> pa.Table:
        ts = q(self._config.columns.timestamp)
        rows = self._rows(Table.PREDICTIONS, *partition_days(start, stop),
                          where=f"{ts} >= :start AND {ts} < :stop")
        if rows is None:
            return pa.table({name: pa.array([]) for name in columns})
        return self._arrow(f"SELECT {', '.join(q(c) for c in columns)} FROM {rows} p",
                           start=start, stop=stop)

    def version_history(self, as_of: date, columns: list[str],
                        since: date | None = None) -> pa.Table:
        # each file's rows, copies too, as DuckDB's version sums count them
        view = self._rows(Table.PREDICTIONS, since, as_of, once=False)
        if view is None or not columns:
            return self._duck.version_history(as_of, columns, since)  # the empty table's shape
        ts = q(self._config.columns.timestamp)
        parts = " UNION ALL ".join(
            f"SELECT {_text(c)} AS `column`, CAST({q(c)} AS STRING) AS value, {ts} AS ts "
            f"FROM {view} WHERE {q(c)} IS NOT NULL AND {ts} < :stop" for c in columns)
        return self._arrow(
            "SELECT `column`, value, min(ts) AS first_seen, max(ts) AS last_seen, "
            "count(CASE WHEN ts >= :start THEN 1 END) AS today, count(*) AS total "
            f"FROM ({parts}) v GROUP BY `column`, value ORDER BY `column`, value",
            start=end_of_day(as_of - timedelta(days=1)), stop=end_of_day(as_of))

    def daily_versions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        cols = self._config.columns
        ts = q(cols.timestamp)
        view = self._rows(Table.PREDICTIONS, first_day, last_day,
                          where=f"{ts} >= :start AND {ts} < :stop")
        if view is None or not columns:
            return self._duck.daily_versions(first_day, last_day, columns)
        inputs = f"CAST({q(cols.input_hash)} AS STRING)" if cols.input_hash else "NULL"
        parts = " UNION ALL ".join(
            f"SELECT CAST({ts} AS DATE) AS day, {_text(c)} AS `column`, "
            f"CAST({q(c)} AS STRING) AS value, CAST({q(cols.prediction)} AS STRING) AS answer, "
            f"{inputs} AS input FROM {view} WHERE {ts} >= :start AND {ts} < :stop"
            for c in columns)
        return self._arrow(
            f"WITH a AS (SELECT day, `column`, value, answer, count(*) AS n, "
            f"count(DISTINCT input) AS inputs FROM ({parts}) v "
            "GROUP BY day, `column`, value, answer) "
            "SELECT day, `column`, value, sum(n) AS n, "
            "sum(CASE WHEN inputs > 1 THEN n END) AS repeated FROM a "
            "GROUP BY day, `column`, value ORDER BY day, `column`, value",
            start=end_of_day(first_day - timedelta(days=1)), stop=end_of_day(last_day))

    def drift_sketch(self, first_day: date, last_day: date, segments: list[str],
                     numeric: list[str], categorical: list[str],
                     within: dict[str, str] | None = None) -> DriftSketch | None:
        """Counted and sketched on the executors (``engine.sketch``): the driver receives a
        few rows per cell and column, however many predictions the window holds."""
        ts = q(self._config.columns.timestamp)
        rows = self._rows(Table.PREDICTIONS, first_day, last_day,
                          where=f"{ts} >= :start AND {ts} < :stop")
        if rows is None or not numeric + categorical:
            return DriftSketch(SKETCH_COLUMNS.empty_table(), SKETCH_CATEGORIES.empty_table())
        cells = [(_text(name), f"g{i}") for i, name in enumerate(segments)]
        chosen = [f"{self._segment_value(name)} AS g{i}" for i, name in enumerate(segments)]
        chosen += [f"{self._drift_value(name)} AS c{j}"
                   for j, name in enumerate([*numeric, *categorical])]
        params: dict[str, Any] = {"start": end_of_day(first_day - timedelta(days=1)),
                                  "stop": end_of_day(last_day)}
        where = [f"{ts} >= :start", f"{ts} < :stop"]
        for i, (column, value) in enumerate((within or {}).items()):
            where.append(f"{self._segment_value(column)} = :w{i}")
            params[f"w{i}"] = value
        source = (f"SELECT {', '.join(chosen)} FROM {rows} p "
                  f"WHERE {' AND '.join(where)}")
        named = [(_text(name), f"c{j}") for j, name in enumerate([*numeric, *categorical])]
        columns = self._arrow(sketch.columns_sql(source, cells, named[:len(numeric)],
                                                 named[len(numeric):]), **params)
        categories = (self._arrow(sketch.categories_sql(source, cells, named[len(numeric):]),
                                  **params)
                      if categorical else SKETCH_CATEGORIES.empty_table())
        return DriftSketch(columns.cast(SKETCH_COLUMNS), categories.cast(SKETCH_CATEGORIES))

    def _segment_value(self, column: str) -> str:
        return f"coalesce({identity_sql(q(column), 'spark')}, {_text(MISSING_SEGMENT_VALUE)})"

    def _drift_value(self, column: str) -> str:
        """A column as drift reads it: the class of a prediction, the predicted class's
        probability for the score column, else as stored."""
        if column == PREDICTED_PROBABILITY:
            return self._score()
        if column == self._config.columns.prediction:
            return self._value(column)
        return q(column)

    def cell_counts(self, as_of: date, first_day: date, last_day: date,
                    calibration: pa.Table | None = None) -> CellCounts:
        """Counted as DuckDB counts, from the day before's counts where they hold, with the
        grain (``window_grain``, ``change_grain``) counted on the cluster."""
        return self._counts.cell_counts(as_of, first_day, last_day, calibration)

    def counts_change_only(self, as_of: date, first_day: date, last_day: date,
                           calibration: pa.Table | None = None) -> bool:
        return self._counts.counts_change_only(as_of, first_day, last_day, calibration)

    def carry_counts(self) -> None:
        self._counts.carry_counts()

    def daily_rows(self, table: Table, first: date, last: date) -> dict[date, int] | None:
        """Rows per day of a table read in place, carried as DuckDB carries them
        (``DuckDBEngine.daily_rows``), the days not carried counted on the cluster
        (``day_rows``); None for the store's own."""
        return self._counts.daily_rows(table, first, last)

    def latest_day(self, table: Table) -> date | None:
        """The latest day a table read in place has rows of (``DuckDBEngine.latest_day``)."""
        return self._counts.latest_day(table)

    # --- the grain of the counts, on the cluster (see duck.GrainSource) ---------------------

    def window_grain(self, window: CountWindow, reads: Reads,
                     calibration: pa.Table | None) -> pa.Table:
        params: dict[str, Any] = {"start": end_of_day(window.first_day - timedelta(days=1)),
                                  "stop": end_of_day(window.last_day)}
        source = self._predictions_sql(self._window_rows(reads[0]), calibration)
        labels = self._files(Table.LABELS, reads[1])
        if labels is None:
            return self._arrow(grain_sql(self._joined_sql(source, None), self._config),
                               **params)
        params |= {"since": label_since(window), "as_of": end_of_day(window.as_of)}
        rows = self._label_rows_sql(labels)
        return self._arrow(grain_sql(self._joined_sql(source, rows), self._config), **params)

    def change_grain(self, before: CountWindow, now: CountWindow, reads: Reads,
                     changes: tuple[str, ...], calibration: pa.Table | None) -> pa.Table:
        params: dict[str, Any] = {
            "start": end_of_day(before.first_day), "stop": end_of_day(now.last_day),
            "old_stop": end_of_day(before.last_day)}
        every = self._predictions_sql(self._window_rows(reads[0]), calibration)
        changed = self._files(Table.LABELS, changes)
        if changed is None:
            chosen = f"SELECT * FROM ({every}) a WHERE a.day >= CAST(:old_stop AS DATE)"
        else:
            arrived = q(ARRIVED_AT)
            ids = (f"SELECT DISTINCT CAST({q(self._config.columns.id)} AS STRING) AS id "
                   f"FROM {changed} c "
                   f"WHERE ({arrived} >= :gone_from AND {arrived} < :gone_to) "
                   f"OR ({arrived} >= :came_from AND {arrived} < :came_to)")
            chosen = (f"SELECT a.* FROM ({every}) a LEFT JOIN ({ids}) c ON a.id = c.id "
                      "WHERE c.id IS NOT NULL OR a.day >= CAST(:old_stop AS DATE)")
            params |= {"gone_from": label_since(before), "gone_to": label_since(now),
                       "came_from": end_of_day(before.as_of), "came_to": end_of_day(now.as_of)}
        older = "SELECT * FROM chosen WHERE day < CAST(:old_stop AS DATE)"
        labels = self._files(Table.LABELS, reads[1])
        if labels is None:
            new, old, shared = (self._joined_sql("SELECT * FROM chosen", None),
                                self._joined_sql(older, None), f"chosen AS ({chosen})")
        else:
            rows = self._label_rows_sql(labels,
                                        "LEFT SEMI JOIN chosen ON CAST(l."
                                        f"{q(self._config.columns.id)} AS STRING) = chosen.id")
            shared = f"chosen AS ({chosen}), rows AS ({rows})"
            new = self._joined_sql("SELECT * FROM chosen",
                                   "SELECT * FROM rows WHERE arrived_at >= :new_since")
            old = self._joined_sql(older, "SELECT * FROM rows WHERE arrived_at < :old_as_of")
            params |= {"since": label_since(before), "as_of": end_of_day(now.as_of),
                       "new_since": label_since(now), "old_as_of": end_of_day(before.as_of)}
        seg = "".join(f"{s}, " for s in self._seg)
        return self._arrow(
            f"WITH {shared} SELECT * FROM ({grain_sql(new, self._config)}) a UNION ALL "
            f"SELECT day, {seg}prediction, label, age, hit, -n AS n, -expected AS expected, "
            f"-scored AS scored, cell_row FROM ({grain_sql(old, self._config)}) b", **params)

    def day_rows(self, table: Table, files: tuple[str, ...], start: datetime,
                 stop: datetime) -> pa.Table:
        """Rows per day of a table read in place, counted on the cluster: predictions by the
        day made, each id once a day; labels by the day arrived, one sent again that day
        once (as ``DuckDBEngine.daily_rows``)."""
        cols = self._config.columns
        column = q(cols.timestamp if table == Table.PREDICTIONS else ARRIVED_AT)
        rows = self._files(table, files, f"{column} >= :start AND {column} < :stop")
        distinct = ("" if table == Table.PREDICTIONS
                    else f"DISTINCT {q(cols.id)}, {q(cols.label)}, ")
        return self._arrow(f"SELECT day, count(*) AS n FROM (SELECT {distinct}CAST({column} "
                           f"AS DATE) AS day FROM {rows} r) d GROUP BY day",
                           start=start, stop=stop)

    def _predictions_sql(self, view: str, calibration: pa.Table | None) -> str:
        """The predictions of ``view`` made in ``[:start, :stop)`` with the columns the grain
        counts: id, day, prediction, score, s0.., and p_correct, the calibrated chance of
        being right of a scored one as the very decimal DuckDB sums (``exact_steps``)."""
        cols = self._config.columns
        source = (
            f"SELECT CAST({q(cols.id)} AS STRING) AS id, CAST({q(cols.timestamp)} AS DATE) AS day, "
            f"{self._value(cols.prediction)} AS prediction, {self._score()} AS score"
            f"{self._segment_columns()} FROM {view} p "
            f"WHERE {q(cols.timestamp)} >= :start AND {q(cols.timestamp)} < :stop")
        p_correct = f"CAST(NULL AS {EXACT})"
        if calibration is not None and cols.has_score():
            lower = [float(x) for x in calibration["lower"].to_pylist()]
            probability = exact_steps([float(x) for x in calibration["probability"].to_pylist()])
            steps = " ".join(f"WHEN score < {lower[i]!r}D "
                             f"THEN CAST('{probability[i - 1]}' AS {EXACT})"
                             for i in range(1, len(lower)))
            p_correct = (f"CASE WHEN score IS NULL OR isnan(score) "
                         f"OR abs(score) = double('infinity') THEN NULL "
                         f"{steps} ELSE CAST('{probability[-1]}' AS {EXACT}) END")
        return f"SELECT *, {p_correct} AS p_correct FROM ({source}) s"

    def _label_rows_sql(self, view: str, only: str = "") -> str:
        """Label rows of ``view`` (aliased ``l``) that arrived in ``[:since, :as_of)``."""
        cols, arrived = self._config.columns, q(ARRIVED_AT)
        return (f"SELECT CAST(l.{q(cols.id)} AS STRING) AS id, "
                f"{self._value(cols.label, 'l.')} AS label, l.{arrived} AS arrived_at "
                f"FROM {view} l {only} WHERE l.{arrived} >= :since AND l.{arrived} < :as_of")

    def _joined_sql(self, predictions: str, label_rows: str | None) -> str:
        """Each prediction with the label in force (the latest arrival wins) and its age."""
        if label_rows is None:
            kind = "STRING" if self._config.task == "classification" else "DOUBLE"
            return (f"SELECT *, CAST(NULL AS {kind}) AS label, CAST(NULL AS BIGINT) AS age "
                    f"FROM ({predictions}) p")
        return (
            "SELECT p.*, l.label, "
            "CAST(datediff(CAST(l.first_arrived AS DATE), p.day) AS BIGINT) AS age "
            f"FROM ({predictions}) p LEFT JOIN (SELECT id, max_by(label, arrived_at) AS label, "
            f"min(arrived_at) AS first_arrived FROM ({label_rows}) r GROUP BY id) l "
            "ON p.id = l.id")

    def reference_counts(self) -> CellCounts | None:
        reference = self._frame(tuple(f.path for f in self._store.files(Table.REFERENCE)))
        if reference is None:
            return None
        cols = self._config.columns
        joined = (
            f"SELECT CAST(NULL AS DATE) AS day, {self._value(cols.prediction)} AS prediction, "
            f"{self._value(cols.label)} AS label, CAST(NULL AS INT) AS age, "
            f"CAST(NULL AS DOUBLE) AS p_correct{self._segment_columns()} "
            f"FROM {self._view(reference, 'r')}")
        return self._counts.rollup(self._arrow(grain_sql(joined, self._config)))

    # --- helpers ----------------------------------------------------------------------------

    def _score(self) -> str:
        """A prediction's score: its confidence, or its predicted class's probability."""
        cols = self._config.columns
        if cols.scores:
            whens = " ".join(f"WHEN {_text(name)} THEN CAST({q(column)} AS DOUBLE)"
                             for name, column in cols.scores.items())
            return f"CASE {self._value(cols.prediction)} {whens} END"
        return f"CAST({q(cols.score)} AS DOUBLE)" if cols.score else "CAST(NULL AS DOUBLE)"

    def _value(self, column: str, prefix: str = "") -> str:
        """A prediction or label as the task compares them: text, or a number."""
        if self._config.task == "classification":
            return identity_sql(prefix + q(column), "spark")
        return f"CAST({prefix}{q(column)} AS DOUBLE)"

    def _segment_columns(self) -> str:
        return "".join(
            f", {self._segment_value(name)} AS {alias}"
            for name, alias in zip(self._config.segments, self._seg, strict=True))

    def _rows(self, table: Table, start: date | None = None, end: date | None = None,
              where: str = "TRUE", once: bool = True) -> str | None:
        """A subquery of the rows of ``table``'s files of days ``start..end`` that ``where``
        keeps (see ``_files``), None without files."""
        if table in self._in_place:
            paths = tuple(self._counts.listed(table, start, end))
        else:
            paths = tuple(f.path for f in self._store.files(table, start, end))
        return self._files(table, paths, where, once)

    def _window_rows(self, paths: tuple[str, ...]) -> str:
        """The predictions of a count's files made in ``[:start, :stop)``."""
        ts = q(self._config.columns.timestamp)
        rows = self._files(Table.PREDICTIONS, paths, f"{ts} >= :start AND {ts} < :stop")
        assert rows is not None  # DuckDB counts a window without predictions itself
        return rows

    def _files(self, table: Table, paths: tuple[str, ...], where: str = "TRUE",
               once: bool = True) -> str | None:
        """A subquery of the rows of ``paths`` (as DuckDB lists them) that ``where`` keeps:
        the store's files as they are, a table read in place's as DuckDB reads it
        (``spark_sources``; copies of a prediction once, unless not ``once``)."""
        if not paths:
            return None
        if table in self._in_place:
            return self._in_place.relation(table, paths, where, once)
        frame = self._frame(paths)
        assert frame is not None
        return f"(SELECT * FROM {self._view(frame, table.value)} WHERE {where})"

    def _frame(self, paths: tuple[str, ...]) -> DataFrame | None:
        """The files a count listed (as DuckDB names them), read by Spark."""
        if not paths:
            return None
        from hindsight.engine.remote import StoreFileSystem

        named = [self._hadoop.path(p.removeprefix(StoreFileSystem.prefix)) for p in paths]
        try:
            return self._spark.read.parquet(*named)
        except Exception as exc:  # py4j and Spark analysis errors share no base class
            raise self._failure("cannot read the store", exc) from exc

    def _view(self, frame: DataFrame, name: str) -> str:
        view = f"hindsight_{name}_{id(frame):x}"
        frame.createOrReplaceTempView(view)
        return view

    def _arrow(self, sql: str, **params: Any) -> pa.Table:
        try:
            return self._spark.sql(sql, args=params or None).toArrow()
        except Exception as exc:  # py4j and Spark analysis errors share no base class
            raise self._failure("query over the store failed", exc) from exc

    def _failure(self, what: str, exc: Exception) -> StoreError:
        """A clear error for what the cluster lacks (a store's connector), else Spark's."""
        missing = self._hadoop.missing_connector(str(exc))
        if missing is not None:
            return StoreError(missing)
        return StoreError(f"Spark {what} {self._config.store}: {exc}")


def exact_steps(probabilities: list[float]) -> list[str]:
    """Each probability as DuckDB sums it (a double cast to ``DECIMAL(38, 18)``), as text:
    both engines then sum the very same decimals, and counts carried by either are exact.

    >>> exact_steps([0.5, 0.55])
    ['0.500000000000000000', '0.550000000000000064']
    """
    with duckdb.connect() as con:
        return [str(con.execute(f"SELECT CAST(CAST(? AS DOUBLE) AS {EXACT})::VARCHAR",
                                [p]).fetchone()[0])  # type: ignore[index]
                for p in probabilities]


def _text(value: str) -> str:
    """A Spark SQL string literal (backslashes are escapes there).

    >>> _text("it's")
    "'it\\\\'s'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
