"""Predictions and labels read in place from tables the real libraries wrote give the same
metrics, alerts and drift as the same rows logged through hindsight's ingest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hindsight.config import parse_config
from hindsight.monitor import Monitor
from tests.sources.conftest import (
    START,
    Rows,
    assert_same_results,
    classifier_rows,
    raw_config,
    regressor_rows,
    run_days,
)

FIRST_RUN = START + timedelta(days=3)
LAST_RUN = START + timedelta(days=9)


def _day_column(table: pa.Table, column: str) -> pa.Table:
    return table.append_column("dt", pa.array([v.date().isoformat() for v in
                                               table[column].to_pylist()], pa.string()))


def write_delta(rows: Rows, root: Path) -> dict[str, Any]:
    from deltalake import write_deltalake

    cols = rows.columns
    for _day, table in rows.predictions.items():  # one commit per day, partitioned by day
        write_deltalake(str(root / "predictions"), _day_column(table, cols["timestamp"]),
                        mode="append", partition_by=["dt"])
    for table in rows.labels.values():
        write_deltalake(str(root / "labels"), table, mode="append")
    return {"predictions": {"format": "delta", "path": str(root / "predictions")},
            "labels": {"format": "delta", "path": str(root / "labels")}}


def write_iceberg(rows: Rows, root: Path) -> dict[str, Any]:
    from pyiceberg.catalog import load_catalog

    root.mkdir(parents=True)
    catalog_props = {"type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}",
                     "warehouse": f"file://{root / 'warehouse'}"}
    catalog = load_catalog("serving", **catalog_props)
    catalog.create_namespace("serving")
    tables = {}
    for name, by_day in (("predictions", rows.predictions), ("labels", rows.labels)):
        first = next(iter(by_day.values()))
        table = catalog.create_table(f"serving.{name}", schema=first.schema)
        for day_rows in by_day.values():
            table.append(day_rows)  # a snapshot a day
        tables[name] = {"format": "iceberg", "table": f"serving.{name}",
                        "catalog": {"name": "serving", **catalog_props}}
    return tables


def write_parquet_hive(rows: Rows, root: Path) -> dict[str, Any]:
    """pyarrow's partitioned writer for predictions (dt=...), pandas for labels (no
    partitions, a file a day)."""
    import pyarrow.dataset as ds

    cols = rows.columns
    for i, table in enumerate(rows.predictions.values()):
        ds.write_dataset(_day_column(table, cols["timestamp"]), root / "predictions",
                         format="parquet", partitioning=["dt"], partitioning_flavor="hive",
                         existing_data_behavior="overwrite_or_ignore",
                         basename_template=f"part-{i}-{{i}}.parquet")
    (root / "labels").mkdir(parents=True)
    for day, table in rows.labels.items():
        table.to_pandas().to_parquet(root / "labels" / f"labels-{day}.parquet")
    return {"predictions": {"format": "parquet", "path": str(root / "predictions")},
            "labels": {"format": "parquet", "path": str(root / "labels")}}


def write_jsonl(rows: Rows, root: Path) -> dict[str, Any]:
    """polars' JSON lines, a directory a day (date=...) for predictions."""
    import polars as pl

    for day, table in rows.predictions.items():
        directory = root / "predictions" / f"date={day}"
        directory.mkdir(parents=True)
        pl.from_arrow(table).write_ndjson(directory / "part-0.jsonl")
    (root / "labels").mkdir(parents=True)
    for day, table in rows.labels.items():
        pl.from_arrow(table).write_ndjson(root / "labels" / f"{day}.jsonl")
    return {"predictions": {"format": "jsonl", "path": str(root / "predictions")},
            "labels": {"format": "jsonl", "path": str(root / "labels")}}


def write_pandas_hive(rows: Rows, root: Path) -> dict[str, Any]:
    """pandas' own partitioned writer (``partition_cols``) for predictions, day after day
    into one directory, and one unpartitioned file of all labels."""
    cols = rows.columns
    for table in rows.predictions.values():
        _day_column(table, cols["timestamp"]).to_pandas().to_parquet(
            root / "predictions", partition_cols=["dt"])
    (root / "labels").mkdir(parents=True)
    rows.all_labels().to_pandas().to_parquet(root / "labels" / "labels.parquet")
    return {"predictions": {"format": "parquet", "path": str(root / "predictions")},
            "labels": {"format": "parquet", "path": str(root / "labels")}}


WRITERS: dict[str, Callable[[Rows, Path], dict[str, Any]]] = {
    "delta": write_delta, "iceberg": write_iceberg, "parquet": write_parquet_hive,
    "jsonl": write_jsonl, "pandas": write_pandas_hive}


def in_place(rows: Rows, tmp_path: Path, writer: str, **extra: Any) -> Monitor:
    sources = WRITERS[writer](rows, tmp_path / writer)
    monitor = Monitor(parse_config(raw_config(rows, tmp_path / f"store-{writer}",
                                              **sources, **extra)))
    monitor.log_reference(rows.reference)
    return monitor


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_table_read_in_place_gives_the_results_of_the_same_rows_logged(
        writer: str, tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows()
    logged = in_store(rows)
    with in_place(rows, tmp_path, writer) as lake:
        run_days(logged, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        assert_same_results(logged, lake)
        assert any(a.kind == "performance" for a in lake.alerts()), "the failure alerted"
        _day, metrics = lake.metrics(START + timedelta(days=6))
        assert metrics and metrics[0].n_labelled > 0


@pytest.mark.parametrize("writer", ["delta", "parquet"])
def test_a_regression_read_in_place_gives_the_results_of_the_same_rows_logged(
        writer: str, tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = regressor_rows()
    logged = in_store(rows)
    with in_place(rows, tmp_path, writer) as lake:
        run_days(logged, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        assert_same_results(logged, lake)
        assert any(a.kind == "performance" for a in lake.alerts())


def test_a_binary_model_read_from_a_prefix_pandas_partitioned_gives_the_results_logged(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows(classes=("approve", "reject"))
    logged = in_store(rows)
    with in_place(rows, tmp_path, "pandas") as lake:
        assert any("dt=" in p.name for p in (tmp_path / "pandas" / "predictions").iterdir())
        run_days(logged, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        assert_same_results(logged, lake)
        assert any(a.kind == "performance" for a in lake.alerts())
        _day, metrics = lake.metrics(START + timedelta(days=6))
        assert {m.metric for m in metrics} >= {"accuracy"}
