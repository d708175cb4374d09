"""The Spark engine (local[2]) reads tables in place as DuckDB does: for each format the real
writers produce, the metrics and alerts of a run on Spark equal DuckDB's on the same table and
those of the same rows logged into the store."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hindsight.config import parse_config
from hindsight.engine.spark import SparkEngine
from hindsight.jobs import volume
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.sources.conftest import (
    START,
    Rows,
    arriving_today_unstamped,
    assert_same_results,
    classifier_rows,
    raw_config,
    regressor_rows,
    run_days,
    stored,
)
from tests.sources.test_rules import _copies, _whole
from tests.sources.test_tables import FIRST_RUN, LAST_RUN, WRITERS

pytestmark = pytest.mark.slow

SPARK = {"master": "local[2]", "conf": {
    "spark.sql.shuffle.partitions": 4,
    # a short-lived JVM: the client compiler starts faster and is enough here
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}}
# a drift alert's value on Spark comes from a sketch (quantiles within 1e-4 of their rank):
# a regression's (a distance between numbers) is near DuckDB's, not equal
DRIFT_KINDS = {"prediction_drift"}
DRIFT_KEYS = ("date", "kind", "segment", "metric", "n", "state", "window_start", "window_end",
              "opened_on", "passing_runs")


def assert_same_counts(a: Monitor, b: Monitor) -> None:
    """The same metrics; the same alerts, a drift alert's value within 2% (the rest of it
    that quotes the value left out)."""
    assert_same_results(a, b, (Table.METRICS,))
    left, right = stored(a, Table.ALERTS), stored(b, Table.ALERTS)
    assert left.keys() == right.keys()
    for day in left:
        drifts = [pc.is_in(t["kind"], pa.array(sorted(DRIFT_KINDS))) for t in (left[day],
                                                                               right[day])]
        x, y = (t.filter(pc.invert(d)) for t, d in zip((left[day], right[day]), drifts,
                                                       strict=True))
        assert x.num_rows == y.num_rows, day
        for name in x.column_names:
            if pa.types.is_floating(x.schema.field(name).type):
                assert x[name].to_pylist() == pytest.approx(y[name].to_pylist(), abs=1e-9,
                                                            nan_ok=True), (day, name)
            else:
                assert x[name].equals(y[name]), (day, name)
        x, y = (t.filter(d) for t, d in zip((left[day], right[day]), drifts, strict=True))
        assert x.select(DRIFT_KEYS).equals(y.select(DRIFT_KEYS)), day
        assert y["value"].to_pylist() == pytest.approx(x["value"].to_pylist(), rel=0.02), day


@contextmanager
def lakes(rows: Rows, tmp_path: Path, sources: dict[str, Any]) -> Iterator[tuple[Monitor,
                                                                                Monitor]]:
    """A monitor on DuckDB and one on Spark, each with its own store, reading ``sources``."""
    made = []
    for engine in ("duckdb", "spark"):
        extra = {"engine": engine, "spark": SPARK} if engine == "spark" else {}
        monitor = Monitor(parse_config(raw_config(rows, tmp_path / f"store-{engine}",
                                                  **sources, **extra)))
        monitor.log_reference(rows.reference)
        made.append(monitor)
    assert isinstance(made[1].engine, SparkEngine)
    try:
        yield made[0], made[1]
    finally:
        for monitor in made:
            monitor.close()


@pytest.mark.parametrize("writer", list(WRITERS))
def test_spark_reads_each_format_in_place_as_duckdb_and_as_the_rows_logged(
        writer: str, tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows()  # three classes
    logged = in_store(rows)
    sources = WRITERS[writer](rows, tmp_path / writer)
    with lakes(rows, tmp_path, sources) as (duck, spark):
        for monitor in (logged, duck, spark):
            run_days(monitor, FIRST_RUN, LAST_RUN)
        assert_same_counts(duck, spark)
        assert_same_counts(logged, spark)
        assert any(a.kind == "performance" for a in spark.alerts()), "the failure alerted"
        _day, metrics = spark.metrics(START + timedelta(days=6))
        assert {m.metric for m in metrics} >= {"accuracy"} and metrics[0].n_labelled > 0


@pytest.mark.parametrize("writer", ["delta", "jsonl"])
def test_spark_reads_a_regression_in_place_as_duckdb_and_as_the_rows_logged(
        writer: str, tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = regressor_rows()
    logged = in_store(rows)
    with lakes(rows, tmp_path, WRITERS[writer](rows, tmp_path / writer)) as (duck, spark):
        for monitor in (logged, duck, spark):
            run_days(monitor, FIRST_RUN, LAST_RUN)
        assert_same_counts(duck, spark)
        assert_same_counts(logged, spark)
        assert any(a.kind == "performance" for a in spark.alerts())


def test_on_spark_a_segment_kept_only_in_the_partition_directories_is_read_from_them(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    """A Delta table partitioned by a segment: its data files lack the column, Hive-style
    directories under the table hold it."""
    from deltalake import write_deltalake

    rows = classifier_rows()
    logged = in_store(rows)
    root = tmp_path / "by-region"
    for table in rows.predictions.values():
        write_deltalake(str(root / "predictions"), table, mode="append",
                        partition_by=["region"])
    write_deltalake(str(root / "labels"), rows.all_labels(), mode="append")
    first = next((root / "predictions").glob("region=*/*.parquet"))
    assert "region" not in pq.read_schema(first).names
    sources = {name: {"format": "delta", "path": str(root / name)}
               for name in ("predictions", "labels")}
    with lakes(rows, tmp_path, sources) as (duck, spark):
        for monitor in (logged, duck, spark):
            run_days(monitor, FIRST_RUN, LAST_RUN)
        assert_same_counts(duck, spark)
        assert_same_counts(logged, spark)
        _day, metrics = spark.metrics(START + timedelta(days=6))
        assert {"region": "eu"} in [m.segment for m in metrics]


def test_on_spark_copies_of_an_id_count_once_the_earliest_wins(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows()
    logged = in_store(rows)
    root = tmp_path / "resent"
    for day, table in rows.predictions.items():  # a directory a day, resends beside
        directory = root / "predictions" / f"dt={day}"
        directory.mkdir(parents=True)
        pl.from_arrow(pa.concat_tables([table, table.slice(0, 7)])).write_parquet(
            directory / "a.parquet")
        pl.from_arrow(_copies(table, 9)).write_parquet(directory / "b.parquet")
        # copies of the same instant, in a file sorting after the original's: they lose
        same_time = _copies(table, 11).set_column(
            table.schema.get_field_index("scored_at"), "scored_at",
            table.take(pa.array(range(0, table.num_rows, 11)))["scored_at"])
        pl.from_arrow(same_time).write_parquet(directory / "c.parquet")
    (root / "labels").mkdir()
    for day, table in rows.labels.items():  # a label sent twice is one label
        pl.from_arrow(pa.concat_tables([table, table])).write_parquet(
            root / "labels" / f"{day}.parquet")
    sources = {name: {"format": "parquet", "path": str(root / name)}
               for name in ("predictions", "labels")}
    with lakes(rows, tmp_path, sources) as (duck, spark):
        for monitor in (logged, duck, spark):
            run_days(monitor, FIRST_RUN, LAST_RUN)
        assert_same_counts(duck, spark)
        assert_same_counts(logged, spark)
        day = START + timedelta(days=4)
        _, metrics = spark.metrics(day, LAST_RUN)
        assert _whole(metrics).n_predictions == rows.predictions[day].num_rows
        spark_engine = spark.engine
        assert isinstance(spark_engine, SparkEngine)
        for table in (Table.PREDICTIONS, Table.LABELS):
            assert spark_engine.daily_rows(table, START, LAST_RUN) == volume.daily_counts(
                logged.store, table, START, LAST_RUN), table
        assert spark.versions(LAST_RUN) == duck.versions(LAST_RUN)


@pytest.mark.parametrize("writer", ["delta", "jsonl"])
def test_on_spark_a_label_without_a_timestamp_arrived_when_its_file_was_added(
        writer: str, tmp_path: Path) -> None:
    unstamped = arriving_today_unstamped()
    (today,) = unstamped.labels  # every label arrives today
    sources = WRITERS[writer](unstamped, tmp_path / writer)
    with lakes(unstamped, tmp_path, sources) as (duck, spark):
        day = today - timedelta(days=2)
        _, yesterday = spark.metrics(day, today - timedelta(days=1))
        _, now = spark.metrics(day, today)
        assert _whole(yesterday).n_labelled == 0  # written today: not arrived yesterday
        assert _whole(now).n_labelled == unstamped.predictions[day].num_rows
        assert now == duck.metrics(day, today)[1]


def test_on_spark_a_label_file_of_a_prefix_arrived_at_its_modification_time(
        tmp_path: Path) -> None:
    """Labels without a timestamp in a file a day, each file last modified at noon of its
    day: a label counts from the day its file arrived, as on DuckDB."""
    today = datetime.now(UTC).date()
    rows = classifier_rows(per_day=60, days=4, start=today - timedelta(days=6))
    columns = {k: v for k, v in rows.columns.items() if k != "label_timestamp"}
    root = tmp_path / "prefix"
    sources = WRITERS["jsonl"](Rows(rows.predictions, {}, rows.reference, columns, rows.task),
                               root)
    for day, table in rows.labels.items():
        path = root / "labels" / f"{day}.jsonl"
        pl.from_arrow(table.drop_columns(["truth_at"])).write_ndjson(path)
        noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
        os.utime(path, (noon.timestamp(), noon.timestamp()))
    unstamped = Rows(rows.predictions, rows.labels, rows.reference, columns, rows.task)
    day = today - timedelta(days=5)
    made = set(rows.predictions[day]["txn"].to_pylist())
    with lakes(unstamped, tmp_path, sources) as (duck, spark):
        for as_of in (day, day + timedelta(days=1), day + timedelta(days=3)):
            arrived = sum(len(made & set(t["txn"].to_pylist()))
                          for d, t in rows.labels.items() if d <= as_of)
            _, metrics = spark.metrics(day, as_of)
            assert _whole(metrics).n_labelled == arrived > 0, as_of
            assert metrics == duck.metrics(day, as_of)[1]
