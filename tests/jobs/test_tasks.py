"""Regression, binary and multi-class models, each through the daily run day after day (with
the counts carried from one run to the next) and a backfill, well past the label window."""
from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.conftest import COLUMNS

WINDOW = 4  # label_window_days: the scenarios run for more than twice as many days
DAYS = 2 * WINDOW + 4
START = date(2026, 1, 1)
TASKS = {
    "regression": None,
    "binary": ("0", "1"),
    "multi-class": ("cat", "dog", "bird", "fish"),
}


def task_rows(task: str, days: int = DAYS, per_day: int = 60,
              seed: int = 5) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions of ``days`` days and their labels, arriving 0 to WINDOW + 2 days late (some
    never), for a regression, a binary or a multi-class model."""
    draw = random.Random(seed)
    classes = TASKS[task]
    rows, labels = [], []
    for day in range(days):
        served = START + timedelta(days=day)
        for k in range(per_day):
            i = day * per_day + k
            predicted: Any
            actual: Any
            if classes is None:
                predicted = round(draw.gauss(50, 10), 3)
                actual = round(predicted + draw.gauss(0, 3 + day), 3)
            else:
                predicted = draw.choice(classes)
                actual = predicted if draw.random() < 0.8 else draw.choice(classes)
            rows.append({"request_id": f"r{i}", "served_at": f"{served}T{k % 24:02d}:00:00Z",
                         "country": draw.choice(["CH", "DE"]),
                         "tier": draw.choice(["free", "pro"]), "predicted": predicted,
                         "amount": float(i)})
            delay = draw.choice([0, 1, 1, 2, 3, WINDOW + 2, None])
            if delay is not None:
                arrived = served + timedelta(days=delay)
                labels.append({"request_id": f"r{i}", "actual": actual,
                               "actual_at": f"{arrived}T{k % 24:02d}:30:00Z"})
    return rows, labels


def task_config(make_config: Callable[..., Config], task: str, **overrides: Any) -> Config:
    return make_config(task="regression" if task == "regression" else "classification",
                       columns=dict(COLUMNS), label_window_days=WINDOW,
                       alerts={"baseline_days": 2}, **overrides)


def _metrics(monitor: Monitor, day: date) -> list[dict[str, Any]]:
    """A run's metrics, in a stable order; a regression's float sums are summed by several
    threads, in no fixed order, so values agree to the last few bits only."""
    [part] = monitor.store.files(Table.METRICS, day, day)
    rows = monitor.store.read(part.path).to_pylist()
    for row in rows:
        if isinstance(row["value"], float):
            row["value"] = pytest.approx(row["value"], rel=1e-12)
    return sorted(rows, key=lambda r: (r["day"], r["segment"], r["metric"]))


@pytest.mark.parametrize("task", list(TASKS))
def test_each_days_run_counting_from_the_day_befores_equals_one_from_scratch(
    make_config: Callable[..., Config], task: str,
) -> None:
    """A nightly run in a process of its own each day, past twice the label window: each
    carries its counts to the next. Each day's metrics equal a run of that day with nothing
    carried; a regression model's run does not fail once its window slides."""
    config = task_config(make_config, task)
    rows, labels = task_rows(task)
    with Monitor(config) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        counts = Path(monitor.store.table_dir(Table.COUNTS))
    for offset in range(DAYS + 1):
        day = START + timedelta(days=offset)
        with Monitor(config) as nightly:
            nightly.run(day)
            carried = _metrics(nightly, day)
        aside = counts.with_name("aside")
        if counts.exists():
            counts.rename(aside)
        try:
            with Monitor(config) as scratch:
                scratch.run(day)
                assert _metrics(scratch, day) == carried, day
        finally:
            shutil.rmtree(counts, ignore_errors=True)
            if aside.exists():
                aside.rename(counts)
    assert carried


def _log_with_a_copy(config: Config, task: str, copy: Path) -> None:
    """Log the task's rows and labels, and copy the store as it then is to ``copy``."""
    rows, labels = task_rows(task)
    with Monitor(config) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
    shutil.copytree(config.store, copy)


@pytest.mark.parametrize("task", list(TASKS))
def test_a_backfill_past_twice_the_label_window_equals_each_day_run_from_scratch(
    make_config: Callable[..., Config], tmp_path: Path, task: str,
) -> None:
    config = task_config(make_config, task)
    _log_with_a_copy(config, task, tmp_path / "scratch")
    end = START + timedelta(days=DAYS)
    with Monitor(config) as monitor:
        runs = monitor.backfill(START, end)
        assert [r.as_of for r in runs][-1] == end
        with Monitor(config) as following:  # the next night's run, from the carried counts
            following.run(end + timedelta(days=1))
        backfilled = {START + timedelta(days=d): _metrics(monitor, START + timedelta(days=d))
                      for d in range(DAYS + 2)}
    scratch_config = config.model_copy(update={"store": str(tmp_path / "scratch")})
    for day, metrics in backfilled.items():
        with Monitor(scratch_config) as scratch:
            scratch.run(day)
            assert _metrics(scratch, day) == metrics, day


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_a_spark_backfill_past_twice_the_label_window_equals_duckdbs_from_scratch(
    make_config: Callable[..., Config], tmp_path: Path, task: str,
) -> None:
    spark = {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4,
                                            "spark.driver.extraJavaOptions":
                                            "-XX:TieredStopAtLevel=1"}}
    config = task_config(make_config, task, engine="spark", spark=spark)
    _log_with_a_copy(config, task, tmp_path / "scratch")
    end = START + timedelta(days=DAYS)
    with Monitor(config) as monitor:
        monitor.backfill(START, end)
        backfilled = {START + timedelta(days=d): _metrics(monitor, START + timedelta(days=d))
                      for d in range(DAYS + 1)}
    duck = config.model_copy(update={"store": str(tmp_path / "scratch"), "engine": "duckdb"})
    for day, metrics in backfilled.items():
        with Monitor(duck) as scratch:
            scratch.run(day)
            assert _metrics(scratch, day) == metrics, day
