"""The Spark engine counts a day's change from the day before's counts, as DuckDB does, and
keeps on the driver only what does not grow with the predictions."""

from __future__ import annotations

import random
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hindsight.engine.duck import DuckDBEngine
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.conftest import COLUMNS, label, prediction

pytestmark = pytest.mark.slow

SPARK = {"master": "local[2]", "conf": {
    "spark.sql.shuffle.partitions": 2,
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}}


def _history(draw: random.Random, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions over 14 days with labels early, late, corrected and never."""
    rows, labels = [], []
    for i in range(1, n):
        day = draw.randint(1, 14)
        row = prediction(i, day, draw.choice(["CH", "DE", "FR"]), draw.choice("abc"),
                         draw.choice(["free", "pro"]), hour=draw.randint(0, 23))
        rows.append({**row, "confidence": draw.choice([draw.random(), 0.55, None])})
        delay = draw.choice([-3, -1, 0, 0, 1, 1, 2, 3, 4, 6, 9, None])
        if delay is not None and 1 <= day + delay <= 16:
            labels.append(label(i, draw.choice("abc"), day + delay, hour=draw.randint(0, 23)))
            if draw.random() < 0.2 and day + delay + 2 <= 16:  # a correction, later
                labels.append(label(i, draw.choice("abc"), day + delay + 2))
    return rows, labels


def test_spark_carried_counts_equal_duckdbs_counted_from_scratch_to_the_bit(
    make_config: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backfill of 14 days over a 5-day label window: each day Spark counts only the change
    from the day before's counts (kept by the engine, or carried in the store and read by a
    new engine, as the next night's process does), with a late prediction and a compaction on
    the way. Every table equals DuckDB's counted from scratch with nothing carried: integers
    and the calibrated expectation's decimals alike, not within a tolerance."""
    config = make_config(columns={**COLUMNS, "score": "confidence"}, label_window_days=5,
                         alerts={"baseline_days": 2}, engine="spark", spark=SPARK)
    calibration = pa.table({"lower": [0.0, 0.4, 0.7, 0.9],
                            "probability": [0.31, 0.55, 0.8, 0.97]})
    rows, labels = _history(random.Random(11), 900)
    changes: list[object] = []
    original = DuckDBEngine._count_change
    monkeypatch.setattr(DuckDBEngine, "_count_change",
                        lambda self, *a: changes.append(a) or original(self, *a))
    with Monitor(config) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        from hindsight.engine.spark import SparkEngine

        carried_dir = Path(monitor.store.table_dir(Table.COUNTS))
        engine = SparkEngine(monitor.store, config, monitor.lookups)
        for as_of in range(3, 17):
            if as_of == 9:  # a late prediction for a day the window already counted
                monitor.log_predictions([{**prediction(5_000, 7, "CH", "a"), "confidence": 0.5}])
                monitor.log_labels([label(5_000, "a", 9)])
            if as_of == 12:
                monitor.compact(grace=timedelta(0))
                monitor.compact(grace=timedelta(0))
            day = date(2026, 1, as_of)
            first = day - timedelta(days=4)
            if as_of % 2:  # a new process: from the counts the day before's run carried
                engine.close()
                engine = SparkEngine(monitor.store, config, monitor.lookups)
            change_only = engine.counts_change_only(day, first, day, calibration)
            kept = engine.cell_counts(day, first, day, calibration)
            engine.carry_counts()
            aside = carried_dir.rename(carried_dir.with_name("aside"))
            fresh = DuckDBEngine(monitor.store, config)
            scratch = fresh.cell_counts(day, first, day, calibration)
            fresh.close()
            shutil.move(aside, carried_dir)
            assert change_only == (as_of not in (3, 9)), day
            assert kept.cells.num_rows > 0
            for name in ("cells", "classes", "label_ages"):
                assert getattr(kept, name).equals(getattr(scratch, name)), (day, name)
        engine.close()
    # from scratch on the first day and after the late prediction only
    assert len(changes) == 14 - 2
