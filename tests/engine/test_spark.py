"""Parity: the Spark engine (local[2]) and DuckDB on the same simulated store give the same
counts, metrics and alerts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from hindsight.store.partitions import Table
from tests.conftest import log_simulation

pytestmark = pytest.mark.slow

SCENARIO = Scenario(per_day=1_500, days=14, failure_start=6, failure_cell_per_day=150,
                    failure_accuracy=0.3, reference_rows=3_000, seed=23)
SPARK = {"master": "local[2]", "conf": {
    "spark.sql.shuffle.partitions": 4,
    # a short-lived JVM: the client compiler starts faster and is enough here
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}}


def config(store: Path, engine: str) -> Config:
    raw: dict[str, Any] = demo_config(str(store))
    raw.update(label_window_days=8, min_samples=20, alerts={"baseline_days": 3},
               engine=engine, spark=SPARK)
    return parse_config(raw)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitor, Monitor]]:
    root = tmp_path_factory.mktemp("parity")
    clock = lambda: datetime(2026, 12, 1, tzinfo=UTC)  # noqa: E731
    duck = log_simulation(Monitor(config(root / "duck", "duckdb"), clock=clock), SCENARIO)
    # a score is optional: some of the last day's predictions come without one
    last = duck.store.read(duck.store.files(Table.PREDICTIONS, SCENARIO.end, SCENARIO.end)[0].path)
    unscored = last.slice(0, 200)
    duck.log_predictions(unscored.set_column(
        0, "prediction_id", pc.binary_join_element_wise("unscored-", unscored["prediction_id"], ""))
        .set_column(unscored.schema.get_field_index("confidence"), "confidence",
                    pa.nulls(200, pa.float64())))
    shutil.copytree(root / "duck", root / "spark")
    spark = Monitor(config(root / "spark", "spark"), clock=clock)
    yield duck, spark
    duck.close()
    spark.close()


def same(a: pa.Table, b: pa.Table, what: str) -> None:
    """Equal row for row: keys and counts exactly, floats within 1e-9."""
    assert a.column_names == b.column_names, what
    keys = [(c, "ascending") for c in a.column_names
            if not pa.types.is_floating(a.schema.field(c).type)]
    a, b = a.sort_by(keys), b.sort_by(keys)
    assert a.num_rows == b.num_rows > 0, what
    for name in a.column_names:
        left, right = a[name], b[name]
        if pa.types.is_floating(left.type):
            gap = pc.max(pc.abs(pc.subtract(pc.fill_null(left, 0.0),
                                            pc.fill_null(pc.cast(right, left.type), 0.0))))
            assert (gap.as_py() or 0.0) <= 1e-9, (what, name, gap)
            assert pc.is_null(left).equals(pc.is_null(right)), (what, name)
        else:
            assert left.to_pylist() == pc.cast(right, left.type).to_pylist(), (what, name)


def test_cell_counts_are_identical(stores: tuple[Monitor, Monitor]) -> None:
    duck, spark = stores
    assert type(spark.engine).__name__ == "SparkEngine"
    as_of, first = SCENARIO.end, SCENARIO.end - timedelta(days=7)
    from hindsight.jobs.drift import calibration_table, read_reference

    steps = calibration_table(read_reference(duck.store, duck.config), duck.config)
    assert steps is not None
    for with_calibration in (None, steps):
        a = duck.engine.cell_counts(as_of, first, as_of, with_calibration)
        b = spark.engine.cell_counts(as_of, first, as_of, with_calibration)
        same(a.cells, b.cells, "cells")
        assert a.classes is not None and b.classes is not None
        same(a.classes, b.classes, "classes")
        assert a.label_ages is not None and b.label_ages is not None
        same(a.label_ages, b.label_ages, "label ages")
    last_day = [r for r in b.cells.to_pylist() if r["day"] == as_of and r["segment"] == "{}"]
    assert last_day[0]["n_scored"] == last_day[0]["n_predictions"] - 200  # the unscored
    ref_a, ref_b = duck.engine.reference_counts(), spark.engine.reference_counts()
    assert ref_a is not None and ref_b is not None
    same(ref_a.cells, ref_b.cells, "reference cells")


def test_versions_and_drift_columns_are_identical(stores: tuple[Monitor, Monitor]) -> None:
    duck, spark = stores
    columns = duck.config.columns.versions()
    same(duck.engine.version_history(SCENARIO.end, columns),
         spark.engine.version_history(SCENARIO.end, columns), "version history")
    same(duck.engine.daily_versions(SCENARIO.start, SCENARIO.end, columns),
         spark.engine.daily_versions(SCENARIO.start, SCENARIO.end, columns), "daily versions")
    wanted = ["prediction_id", "confidence", "amount", "country"]
    same(duck.engine.predictions(SCENARIO.end, SCENARIO.end, wanted),
         spark.engine.predictions(SCENARIO.end, SCENARIO.end, wanted), "predictions")


def test_the_daily_job_gives_the_same_metrics_and_alerts(
    stores: tuple[Monitor, Monitor],
) -> None:
    duck, spark = stores
    start = SCENARIO.end - timedelta(days=3)
    runs = [m.backfill(start, SCENARIO.end) for m in (duck, spark)]
    assert [(s.as_of, s.cells, s.segments_failing) for s in runs[0]] == [
        (s.as_of, s.cells, s.segments_failing) for s in runs[1]]
    alerts = [sorted((a.kind, a.state, str(a.segment), a.date, a.n) for a in m.alerts())
              for m in (duck, spark)]
    assert alerts[0] and alerts[0] == alerts[1]
    for day in (start, SCENARIO.end):
        rows = [m.metrics(day, SCENARIO.end)[1] for m in (duck, spark)]
        assert [(r.segment, r.metric, r.n_labelled) for r in rows[0]] == [
            (r.segment, r.metric, r.n_labelled) for r in rows[1]]
        assert [r.value for r in rows[1]] == pytest.approx([r.value for r in rows[0]],
                                                          abs=1e-9, nan_ok=True)


def test_the_command_line_runs_on_spark_with_the_same_answer(
    stores: tuple[Monitor, Monitor], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    import yaml

    from hindsight.cli import main

    printed = []
    for monitor, engine in zip(stores, ("duckdb", "spark"), strict=True):
        raw = {**demo_config(monitor.config.store), "label_window_days": 8, "min_samples": 20,
               "alerts": {"baseline_days": 3}, "spark": SPARK}
        (tmp_path / f"{engine}.yaml").write_text(yaml.safe_dump(raw))
        day = (SCENARIO.end + timedelta(days=1)).isoformat()  # a run neither store has yet
        assert main(["--config", str(tmp_path / f"{engine}.yaml"), "run", "--date", day,
                     "--engine", engine]) == 0
        capsys.readouterr()
        assert main(["--config", str(tmp_path / f"{engine}.yaml"), "metrics", "--date",
                     SCENARIO.end.isoformat(), "--as-of", day, "--format", "json"]) == 0
        printed.append(json.loads(capsys.readouterr().out))
    assert len(printed[0]) == len(printed[1]) > 0
    for a, b in zip(printed[0], printed[1], strict=True):
        assert {**a, "value": None} == {**b, "value": None}
        assert a["value"] == pytest.approx(b["value"], abs=1e-9, nan_ok=True)


def test_a_directory_spark_wrote_is_logged_as_the_same_rows(
    stores: tuple[Monitor, Monitor], tmp_path: Path,
) -> None:
    """What Spark writes (part files partitioned by a segment, ``_SUCCESS``, checksums, its
    own timestamp encoding) logs the same rows as the same table handed over in memory."""
    duck, spark = stores
    rows = duck.store.read(duck.store.files(Table.PREDICTIONS, SCENARIO.end,
                                            SCENARIO.end)[0].path).slice(0, 400)
    session = spark.engine._spark  # type: ignore[attr-defined]
    written = tmp_path / "spark-out"
    session.createDataFrame(rows).repartition(3).write.partitionBy("country").parquet(
        str(written))
    assert (written / "_SUCCESS").exists() and any(written.glob("country=*/.*.crc"))
    stored = []
    for name, log in (("from-spark", lambda m: m.log_prediction_files([written])),
                      ("in-memory", lambda m: m.log_predictions(rows))):
        with Monitor(config(tmp_path / name, "duckdb")) as monitor:
            assert log(monitor).stored == rows.num_rows
            table = pa.concat_tables(monitor.store.read(f.path)
                                     for f in monitor.store.files(Table.PREDICTIONS))
            stored.append(table.select(sorted(table.column_names)).sort_by("prediction_id"))
    assert stored[0].equals(stored[1])
