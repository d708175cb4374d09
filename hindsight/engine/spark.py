"""The scale-out engine: the same queries as PySpark over the same Parquet layout.

Spark does the work that grows with the rows: reading the window's predictions and labels, the
as-of join, the finest grain of the counts (``grain_sql``, the very SQL DuckDB runs), version
history, the columns drift needs. What comes back is small — one row per day, segment values,
prediction and label — and the rollup into every cell and cross is the embedded engine's
(``DuckDBEngine.rollup``), so both engines count with one implementation above the grain.
Ingest's id look-ups stay on DuckDB: they are small and need an answer in milliseconds.

pyspark is an optional extra (``pip install 'hindsight[spark]'``), imported only here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hindsight.config import Config
from hindsight.engine.base import (
    LABEL_LEAD_DAYS,
    MISSING_SEGMENT_VALUE,
    CellCounts,
    end_of_day,
    partition_days,
)
from hindsight.engine.duck import DuckDBEngine, grain_sql
from hindsight.errors import ConfigError, StoreError
from hindsight.store.identity import identity_sql
from hindsight.store.partitions import Store, Table
from hindsight.store.schema import ARRIVED_AT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Defaults for a session hindsight starts itself; the config's spark.conf overrides them.
_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.parquet.mergeSchema": "true",
}
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


def session(config: Config) -> SparkSession:
    """The process's Spark session (``getOrCreate``: one per process, shared by engines)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(f"{config.source}: engine: spark needs pyspark: "
                          "pip install 'hindsight[spark]'") from exc
    builder = SparkSession.builder.appName(f"hindsight {config.model}")
    settings = dict(_DEFAULTS)
    if config.spark.master.startswith("local"):
        settings |= _LOCAL
    settings |= {k: str(v).lower() if isinstance(v, bool) else str(v)
                 for k, v in config.spark.conf.items()}
    import os

    if not os.environ.get("SPARK_REMOTE"):
        builder = builder.master(config.spark.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkEngine:
    def __init__(self, store: Store, config: Config, embedded: DuckDBEngine) -> None:
        """``embedded``: the caller's DuckDB engine, for ingest look-ups and the rollup of the
        grain (its owner closes it)."""
        self._store = store
        self._config = config
        self._spark = session(config)
        self._duck = embedded
        self._seg = [f"s{i}" for i in range(len(config.segments))]

    def close(self) -> None:
        """Nothing to release: the session is the process's (other engines may share it) and
        the embedded engine is its owner's."""

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
        frame = self._read(Table.PREDICTIONS, *partition_days(start, stop))
        if frame is None:
            return pa.table({name: pa.array([]) for name in columns})
        ts = q(self._config.columns.timestamp)
        return self._arrow(
            f"SELECT {', '.join(q(c) for c in columns)} FROM {self._view(frame, 'p')} "
            f"WHERE {ts} >= :start AND {ts} < :stop", start=start, stop=stop)

    def version_history(self, as_of: date, columns: list[str],
                        since: date | None = None) -> pa.Table:
        frame = self._read(Table.PREDICTIONS, since, as_of)
        if frame is None or not columns:
            return self._duck.version_history(as_of, columns, since)  # the empty table's shape
        ts = q(self._config.columns.timestamp)
        view = self._view(frame, "p")
        parts = " UNION ALL ".join(
            f"SELECT {_text(c)} AS `column`, CAST({q(c)} AS STRING) AS value, {ts} AS ts "
            f"FROM {view} WHERE {q(c)} IS NOT NULL AND {ts} < :stop" for c in columns)
        return self._arrow(
            "SELECT `column`, value, min(ts) AS first_seen, max(ts) AS last_seen, "
            "count(CASE WHEN ts >= :start THEN 1 END) AS today, count(*) AS total "
            f"FROM ({parts}) v GROUP BY `column`, value ORDER BY `column`, value",
            start=end_of_day(as_of - timedelta(days=1)), stop=end_of_day(as_of))

    def daily_versions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        frame = self._read(Table.PREDICTIONS, first_day, last_day)
        if frame is None or not columns:
            return self._duck.daily_versions(first_day, last_day, columns)
        cols = self._config.columns
        ts = q(cols.timestamp)
        view = self._view(frame, "p")
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

    def cell_counts(self, as_of: date, first_day: date, last_day: date,
                    calibration: pa.Table | None = None) -> CellCounts:
        predictions = self._read(Table.PREDICTIONS, first_day, last_day)
        if predictions is None:
            return self._duck.cell_counts(as_of, first_day, last_day, calibration)  # empty
        cols = self._config.columns
        source = (
            f"SELECT CAST({q(cols.id)} AS STRING) AS id, CAST({q(cols.timestamp)} AS DATE) AS day, "
            f"{self._value(cols.prediction)} AS prediction, {self._score()} AS score"
            f"{self._segment_columns()} FROM {self._view(predictions, 'p')} "
            f"WHERE {q(cols.timestamp)} >= :start AND {q(cols.timestamp)} < :stop")
        params: dict[str, Any] = {"start": end_of_day(first_day - timedelta(days=1)),
                                  "stop": end_of_day(last_day)}
        p_correct = "CAST(NULL AS DOUBLE)"
        if calibration is not None and cols.has_score():
            lower = calibration["lower"].to_pylist()
            probability = calibration["probability"].to_pylist()
            steps = " ".join(f"WHEN score < {float(lower[i])!r}D "
                             f"THEN {float(probability[i - 1])!r}D" for i in range(1, len(lower)))
            p_correct = (f"CASE WHEN score IS NULL OR isnan(score) "
                         f"OR abs(score) = double('infinity') THEN NULL "
                         f"{steps} ELSE {float(probability[-1])!r}D END")
        source = f"SELECT *, {p_correct} AS p_correct FROM ({source}) s"
        labels = self._read(Table.LABELS, first_day - timedelta(days=LABEL_LEAD_DAYS), as_of)
        if labels is not None:
            arrived = q(ARRIVED_AT)
            label_sql = (
                f"SELECT CAST({q(cols.id)} AS STRING) AS id, "
                f"max_by({self._value(cols.label)}, {arrived}) AS label, "
                f"min({arrived}) AS first_arrived FROM {self._view(labels, 'l')} "
                f"WHERE {arrived} >= :since AND {arrived} < :as_of GROUP BY 1")
            params |= {"as_of": end_of_day(as_of),
                       "since": end_of_day(first_day - timedelta(days=LABEL_LEAD_DAYS + 1))}
        else:
            kind = "STRING" if self._config.task == "classification" else "DOUBLE"
            label_sql = (f"SELECT CAST(NULL AS STRING) AS id, CAST(NULL AS {kind}) AS label, "
                         "CAST(NULL AS TIMESTAMP) AS first_arrived WHERE false")
        joined = (
            "SELECT p.*, l.label, datediff(CAST(l.first_arrived AS DATE), p.day) AS age "
            f"FROM ({source}) p LEFT JOIN ({label_sql}) l ON p.id = l.id")
        return self._duck.rollup(self._arrow(grain_sql(joined, self._config), **params))

    def counts_change_only(self, as_of: date, first_day: date, last_day: date,
                           calibration: pa.Table | None = None) -> bool:
        return False  # the cluster counts each window anew

    def carry_counts(self) -> None:
        """Nothing to carry: the cluster counts each window anew."""

    def reference_counts(self) -> CellCounts | None:
        frame = self._read(Table.REFERENCE)
        if frame is None:
            return None
        cols = self._config.columns
        joined = (
            f"SELECT CAST(NULL AS DATE) AS day, {self._value(cols.prediction)} AS prediction, "
            f"{self._value(cols.label)} AS label, CAST(NULL AS INT) AS age, "
            f"CAST(NULL AS DOUBLE) AS p_correct{self._segment_columns()} "
            f"FROM {self._view(frame, 'r')}")
        return self._duck.rollup(self._arrow(grain_sql(joined, self._config)))

    # --- helpers ----------------------------------------------------------------------------

    def _score(self) -> str:
        """A prediction's score: its confidence, or its predicted class's probability."""
        cols = self._config.columns
        if cols.scores:
            whens = " ".join(f"WHEN {_text(name)} THEN CAST({q(column)} AS DOUBLE)"
                             for name, column in cols.scores.items())
            return f"CASE {self._value(cols.prediction)} {whens} END"
        return f"CAST({q(cols.score)} AS DOUBLE)" if cols.score else "CAST(NULL AS DOUBLE)"

    def _value(self, column: str) -> str:
        """A prediction or label as the task compares them: text, or a number."""
        if self._config.task == "classification":
            return identity_sql(q(column), "spark")
        return f"CAST({q(column)} AS DOUBLE)"

    def _segment_columns(self) -> str:
        return "".join(
            f", coalesce({identity_sql(q(name), 'spark')}, {_text(MISSING_SEGMENT_VALUE)}) "
            f"AS {alias}"
            for name, alias in zip(self._config.segments, self._seg, strict=True))

    def _read(self, table: Table, start: date | None = None,
              end: date | None = None) -> DataFrame | None:
        paths = [_hadoop_path(self._store, f.path)
                 for f in self._store.files(table, start, end)]
        if not paths:
            return None
        try:
            return self._spark.read.parquet(*paths)
        except Exception as exc:  # py4j and Spark analysis errors share no base class
            raise StoreError(f"Spark cannot read {table.value} of {self._store.root}: "
                             f"{exc}") from exc

    def _view(self, frame: DataFrame, name: str) -> str:
        view = f"hindsight_{name}_{id(frame):x}"
        frame.createOrReplaceTempView(view)
        return view

    def _arrow(self, sql: str, **params: Any) -> pa.Table:
        try:
            return self._spark.sql(sql, args=params or None).toArrow()
        except Exception as exc:  # py4j and Spark analysis errors share no base class
            raise StoreError(f"Spark query over the store {self._store.root} failed: "
                             f"{exc}") from exc


def _text(value: str) -> str:
    """A Spark SQL string literal (backslashes are escapes there).

    >>> _text("it's")
    "'it\\\\'s'"
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _hadoop_path(store: Store, path: str) -> str:
    """How Spark names a store file: a local path, or s3a:// (Hadoop's S3 connector) for s3."""
    if store.is_local:
        return path
    scheme = store.fs.type_name
    return f"s3a://{path}" if scheme == "s3" else f"{scheme}://{path}"
