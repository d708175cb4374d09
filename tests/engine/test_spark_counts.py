"""The Spark engine counts a day's change from the day before's counts, as DuckDB does, and
keeps on the driver only what does not grow with the predictions."""

from __future__ import annotations

import random
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
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


def _drift_rows(monitor: Monitor, day: date) -> dict[tuple[str, str, str, str], Any]:
    table = pa.concat_tables(monitor.store.read(f.path)
                             for f in monitor.store.files(Table.DRIFT, day, day))
    return {(r["kind"], r["target"], r["segment"], r["method"]): r for r in table.to_pylist()}


def _config(root: Path, engine: str) -> Any:
    from hindsight.config import parse_config
    from hindsight.simulate import demo_config

    raw: dict[str, Any] = demo_config(str(root / engine))
    raw.update(label_window_days=6, min_samples=20, alerts={"baseline_days": 2},
               engine=engine, spark=SPARK)
    return parse_config(raw)


def _simulated(root: Path, engine: str, per_day: int) -> Monitor:
    from hindsight.simulate import Scenario
    from tests.conftest import log_simulation

    scenario = Scenario(per_day=per_day, days=10, failure_start=4,
                        failure_cell_per_day=per_day // 10, failure_accuracy=0.3,
                        label_delay_median_days=1.0, label_delay_p95_days=3.0,
                        benign_drift_start=7, reference_rows=3_000, seed=5)
    return log_simulation(Monitor(_config(root, engine)), scenario)


LAST = date(2026, 10, 10)  # the scenario's last day


def test_drift_on_spark_is_duckdbs_within_the_sketchs_stated_tolerance(
    tmp_path: Path,
) -> None:
    """Drift measured from the cluster's sketch (quantiles at 1,000 ranks, category counts)
    against DuckDB's from the rows: counts, missing rates, category shares and thresholds
    (noise drawn at the true sizes) alike; KS within 2/1,000, PSI within 0.01, Wasserstein
    within 1% of the reference's spread."""
    duck = _simulated(tmp_path, "duckdb", 3_000)
    shutil.copytree(tmp_path / "duckdb", tmp_path / "spark")
    spark = Monitor(_config(tmp_path, "spark"))
    with duck, spark:
        for monitor in (duck, spark):
            monitor.run(LAST)
        a, b = _drift_rows(duck, LAST), _drift_rows(spark, LAST)
        reference = duck.store.read(duck.store.files(Table.REFERENCE)[0].path)
    assert a.keys() == b.keys() and len(a) > 50
    spread = float(np.std(reference["confidence"].to_numpy()))
    worst: dict[str, float] = {}
    for key, left in a.items():
        right, method = b[key], key[3]
        assert (left["n"], left["threshold"]) == (right["n"], right["threshold"]), key
        gap = abs(left["value"] - right["value"])
        worst[method] = max(worst.get(method, 0.0), gap)
        tolerance = {"ks": 2e-3, "psi": 0.01, "wasserstein_sd": 0.01,
                     "wasserstein": 0.01 * spread}.get(method, 1e-12)
        assert gap <= tolerance, (key, left["value"], right["value"])
    print(worst)


def _store_of(make_config: Any, per_day: int, root: str) -> Monitor:
    """Predictions of 8 days with a score, a numeric and a category feature; segment CH
    goes wrong from day 6; labels arrive within two days. Few segment values and classes,
    so that every combination of them is in the data at either volume."""
    config = make_config(store=root, columns={**COLUMNS, "score": "confidence"},
                         features=["amount", "channel"], label_window_days=6,
                         alerts={"baseline_days": 2}, engine="spark", spark=SPARK)
    draw = random.Random(3)

    def rows(n: int, day: int, prefix: str) -> tuple[list[dict[str, Any]], list[str]]:
        made, truth = [], []
        for i in range(n):
            country, predicted = draw.choice(["CH", "DE", "FR"]), draw.choice("abc")
            right = draw.random() < (0.2 if country == "CH" and day >= 6 else 0.7)
            made.append({**prediction(0, day, country, predicted, draw.choice(["free", "pro"]),
                                      hour=draw.randint(0, 23)),
                         "request_id": f"{prefix}{day}-{i}", "confidence": draw.random(),
                         "amount": draw.lognormvariate(3, 1),
                         "channel": draw.choice(["web", "app", None])})
            truth.append(predicted if right else draw.choice([c for c in "abc"
                                                              if c != predicted]))
        return made, truth

    monitor = Monitor(config)
    reference, truth = rows(600, 1, "ref")
    monitor.log_reference([{**r, "actual": t} for r, t in zip(reference, truth, strict=True)])
    for day in range(1, 9):
        made, truth = rows(per_day, day, "p")
        monitor.log_predictions(made)
        monitor.log_labels([label(0, t, min(day + draw.randint(0, 2), 8)) | {
            "request_id": r["request_id"]} for r, t in zip(made, truth, strict=True)])
    return monitor


def test_no_query_of_a_spark_run_returns_rows_that_grow_with_the_predictions(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A day's run on Spark (counts, versions, drift, and the explanation of each alert it
    opens) at 1,000 and at 4,000 predictions a day: what reaches the driver is counts and
    sketches, the very same number of rows from each query at either volume, and never the
    predictions themselves."""
    from hindsight.engine.spark import SparkEngine

    returned: list[int] = []
    arrow, explained = SparkEngine._arrow, []
    sketch = SparkEngine.drift_sketch

    def counted(self: SparkEngine, sql: str, **params: Any) -> pa.Table:
        table = arrow(self, sql, **params)
        returned.append(table.num_rows)
        return table

    def refused(*_: object) -> pa.Table:
        raise AssertionError("a Spark run asked for raw predictions")

    monkeypatch.setattr(SparkEngine, "_arrow", counted)
    monkeypatch.setattr(SparkEngine, "predictions", refused)
    monkeypatch.setattr(SparkEngine, "predictions_between", refused)
    monkeypatch.setattr(SparkEngine, "drift_sketch", lambda self, *a, **k: explained.append(
        k.get("within")) or sketch(self, *a, **k))
    found = []
    for per_day in (1_000, 4_000):
        with _store_of(make_config, per_day, str(tmp_path / str(per_day))) as monitor:
            returned.clear()
            summary = monitor.run(date(2026, 1, 8))
            assert summary.count("opened") > 0
            found.append(list(returned))
    assert {"country": "CH"} in explained  # the alert's explanation, sketched
    assert found[0] == found[1] and max(found[0]) < 1_000, found


def test_a_bucket_store_without_its_connector_on_the_cluster_says_what_the_cluster_needs(
    make_config: Any,
) -> None:
    """This cluster (pyspark's own jars) has no S3 connector: reading a store's s3a:// file is
    an error naming hadoop-aws, not a ClassNotFoundException traceback."""
    from hindsight.engine.hadoop import HadoopStore
    from hindsight.engine.spark import SparkEngine
    from hindsight.errors import StoreError

    config = make_config(engine="spark", spark=SPARK)
    with Monitor(config) as monitor:
        engine = SparkEngine(monitor.store, config, monitor.lookups)
        engine._hadoop = HadoopStore.of("s3://bucket/prefix")
        with pytest.raises(StoreError, match="hadoop-aws") as raised:
            engine._frame(("bucket/prefix/predictions/dt=2026-01-01/a.parquet",))
        engine.close()
    assert "S3AFileSystem not found" in str(raised.value)
    assert "Traceback" not in str(raised.value) and len(str(raised.value)) < 400
