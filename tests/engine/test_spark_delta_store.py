"""Spark on a store whose predictions and labels are Delta tables: the driver plans the files
from the tables' logs (no Delta connector in the JVM), and the results equal DuckDB's."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from hindsight.config import parse_config
from hindsight.monitor import Monitor
from hindsight.store import delta
from hindsight.store.partitions import Table
from tests.engine.test_spark import SPARK
from tests.sources.conftest import (
    START,
    classifier_rows,
    log_into_store,
    raw_config,
    run_days,
    stored,
)

pytestmark = pytest.mark.slow


def test_spark_on_a_delta_store_gives_duckdbs_results(tmp_path: Path) -> None:
    rows = classifier_rows()
    delta_store = {"table_format": "delta"}
    with log_into_store(rows, parse_config(raw_config(rows, tmp_path / "duck",
                                                      storage=delta_store))) as duck:
        # compacted: the files the log names are not every file on the disk
        column = rows.columns["id"]
        for day, table in rows.predictions.items():
            extra = table.slice(0, 10)
            duck.log_predictions(extra.set_column(
                extra.schema.get_field_index(column), column,
                pa.array([f"extra-{day}-{i}" for i in range(10)])))
        duck.compact()
        assert delta.is_delta(duck.store, Table.PREDICTIONS)
        shutil.copytree(tmp_path / "duck", tmp_path / "spark")
        with Monitor(parse_config(raw_config(rows, tmp_path / "spark", storage=delta_store,
                                             engine="spark", spark=SPARK))) as spark:
            first, last = START + timedelta(days=4), START + timedelta(days=8)
            run_days(duck, first, last)
            run_days(spark, first, last)
            for table in (Table.METRICS, Table.ALERTS):  # drift: sketches on Spark
                assert stored(duck, table) == stored(spark, table), table
            assert any(a.kind == "performance" for a in spark.alerts())
