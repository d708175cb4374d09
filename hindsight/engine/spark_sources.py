"""Tables read in place (``hindsight.sources``), read by Spark as DuckDB reads them.

The driver plans the files: the source lists them (Delta's log, Iceberg's manifests, a
prefix's listing, pruned by day) through the counts' DuckDB engine, which also keeps when
each arrived. Spark reads exactly those files, with its own Parquet or JSON reader: nothing
needs a table format's JVM package. Rows get what ``DuckDBEngine._scan`` gives them: the id as
text, the times as UTC instants, Hive-style partition values of the paths under the table's
directory as columns, a label its arrival (its ``label_timestamp``, else its file's), and
copies of a prediction id on one day counted once, the earliest (then the file sorting
first). Only the file list, one row per file, goes from the driver to the executors.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.fs as pafs

from hindsight.config import Config
from hindsight.errors import StoreError
from hindsight.sources import Source, table_root
from hindsight.store.partitions import Table
from hindsight.store.schema import ARRIVED_AT

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FILE_KEY = "_hindsight_file"  # a row's file, as the file list names it
RANK = "_hindsight_rank"  # a file's place among the files read, in path order
ONCE = "_hindsight_once"


class Listing(Protocol):
    """The counts' DuckDB engine: the files of a source as it lists and names them."""

    def listed(self, table: Table, start: Any = None, end: Any = None) -> list[str]: ...

    def arrival(self, path: str) -> datetime: ...


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkSources:
    """The predictions and labels tables read in place, as Spark relations."""

    def __init__(self, spark: SparkSession, config: Config, sources: dict[Table, Source],
                 listing: Listing) -> None:
        self._spark, self._config, self._sources = spark, config, sources
        self._listing = listing
        self._json_schemas: dict[tuple[Table, str], Any] = {}

    def __contains__(self, table: Table) -> bool:
        return table in self._sources

    def relation(self, table: Table, paths: tuple[str, ...], where: str = "TRUE",
                 once: bool = True) -> str:
        """A subquery of the rows of ``paths`` (as the listing names them) that ``where``
        keeps; predictions' copies once unless ``once`` is False (version sums count each
        file's rows, as DuckDB's do)."""
        source, cols = self._sources[table], self._config.columns
        frame = self._read(table, source, paths)
        view = f"hindsight_source_{table.value}_{id(frame):x}"
        frame.createOrReplaceTempView(view)
        chosen = ", ".join(_q(c) for c in frame.columns if c not in (FILE_KEY, RANK))
        if table != Table.PREDICTIONS or not once:
            return f"(SELECT {chosen} FROM {view} WHERE {where})"
        key, ts = _q(cols.id), _q(cols.timestamp)
        return (f"(SELECT {chosen} FROM (SELECT *, row_number() OVER (PARTITION BY {key}, "
                f"CAST({ts} AS DATE) ORDER BY {ts}, {RANK}) AS {ONCE} FROM {view} "
                f"WHERE {where}) o WHERE {ONCE} = 1)")

    def _read(self, table: Table, source: Source, paths: tuple[str, ...]) -> DataFrame:
        from pyspark.sql import functions as F

        cols = self._config.columns
        urls = {path: self._url(source, path) for path in paths}
        reader = self._spark.read
        root = table_root(source.spec)
        if root is not None:  # partition values from the directories under the table's
            reader = reader.option("basePath", self._url(source, root))
        try:
            if source.read_as == "jsonl":
                # the file sorting last, as DuckDB checks the mapped columns of
                frame = reader.schema(self._json_schema(table, urls[max(paths)])).json(
                    list(urls.values()))
            else:
                frame = reader.parquet(*urls.values())
        except Exception as exc:  # py4j and Spark analysis errors share no base class
            raise StoreError(f"Spark cannot read {table.value}: {source.spec.describe()}: "
                             f"{exc}") from exc
        # Spark names a file by its URI (percent-encoded, '+' kept): decoded to match
        named = F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), r"\+", "%2B"))
        frame = frame.withColumn(FILE_KEY, named)
        frame = frame.withColumn(cols.id, F.col(cols.id).cast("string"))
        times = [cols.timestamp] if table == Table.PREDICTIONS else [cols.label_timestamp]
        for column in (c for c in times if c):
            frame = frame.withColumn(column, F.col(column).cast("timestamp"))
        files = self._files(table, paths, urls)
        # a row of a file Spark names otherwise than the list would be lost silently: refused
        joined = frame.join(F.broadcast(files), FILE_KEY, "left").where(
            F.when(F.col(RANK).isNull(), F.raise_error(F.concat(
                F.lit(f"{source.spec.describe()}: Spark read a file not in the listing, "
                      "or named it otherwise: "), F.col(FILE_KEY)))).otherwise(F.lit(True)))
        if table == Table.LABELS:
            stamped = (F.col(cols.label_timestamp) if cols.label_timestamp
                       else F.lit(None).cast("timestamp"))
            joined = joined.withColumn(ARRIVED_AT, F.coalesce(stamped, F.col("_arrived")))
        return joined.drop("_arrived")

    def _files(self, table: Table, paths: tuple[str, ...], urls: dict[str, str]) -> DataFrame:
        """One row per file: its name as Spark's rows carry it, its rank, its arrival."""
        ordered = sorted(paths)
        arrived = ([self._listing.arrival(p) for p in ordered] if table == Table.LABELS
                   else [None] * len(ordered))
        return self._spark.createDataFrame(pa.table({
            FILE_KEY: pa.array([_spark_name(urls[p]) for p in ordered], pa.string()),
            RANK: pa.array(range(len(ordered)), pa.int64()),
            "_arrived": pa.array(arrived, pa.timestamp("us", "UTC"))}))

    def _json_schema(self, table: Table, newest: str) -> Any:
        """The schema JSON lines are read with: Spark's reading of the newest file, numbers
        as doubles (another file's 1.5 in a column of whole numbers is still read), the id
        and times as text (cast afterwards, as DuckDB's reader takes any ISO spelling)."""
        key = (table, newest)
        if key not in self._json_schemas:
            from pyspark.sql import types as T

            cols = self._config.columns
            text = {cols.id, cols.timestamp, cols.label_timestamp}
            try:
                found = self._spark.read.json(newest).schema
            except Exception as exc:  # py4j and Spark analysis errors share no base class
                raise StoreError(f"Spark cannot read {newest}: {exc}") from exc
            fields = []
            for field in found.fields:
                kind = field.dataType
                if field.name in text:
                    kind = T.StringType()
                elif isinstance(kind, T.LongType):
                    kind = T.DoubleType()
                fields.append(T.StructField(field.name, kind, True))
            self._json_schemas[key] = T.StructType(fields)
        return self._json_schemas[key]

    @staticmethod
    def _url(source: Source, path: str) -> str:
        """Hadoop's URL of a file of ``source`` as the listing names it."""
        if isinstance(source.fs, pafs.LocalFileSystem):
            return path
        plain = path.split("://", 1)[-1]
        if isinstance(source.fs, pafs.S3FileSystem):
            return f"s3a://{plain}"
        if isinstance(source.fs, pafs.GcsFileSystem):
            return f"gs://{plain}"
        raise StoreError(f"{source.spec.describe()}: engine: spark reads tables in place on "
                         "local paths, s3:// and gs://; set engine: duckdb for this one")


def _spark_name(url: str) -> str:
    """A file as ``_metadata.file_path`` names it, once decoded.

    >>> _spark_name("/data/t/dt=2026-01-01/a b.parquet")
    'file:/data/t/dt=2026-01-01/a b.parquet'
    >>> _spark_name("s3a://bucket/t/a.parquet")
    's3a://bucket/t/a.parquet'
    """
    return url if "://" in url else f"file:{os.path.normpath(url)}"
