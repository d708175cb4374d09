from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hindsight.cli import cli
from hindsight.config import load_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config
from hindsight.store.compaction import compact
from hindsight.store.partitions import Table

PER_DAY = 20_000


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of the seed scenario, logged in two requests a day and compacted."""
    folder = tmp_path_factory.mktemp("storage")
    (folder / "hindsight.yaml").write_text(yaml.safe_dump(demo_config("store")))
    with Monitor(load_config(folder / "hindsight.yaml")) as monitor:
        for day in Simulator(Scenario(per_day=PER_DAY, days=10, failure_start=None)).days():
            half = day.predictions.num_rows // 2
            monitor.log_predictions(day.predictions.slice(0, half))
            monitor.log_predictions(day.predictions.slice(half))
            if day.labels.num_rows:
                monitor.log_labels(day.labels)
        compact(monitor.store, grace=timedelta(0))
        compact(monitor.store, grace=timedelta(0))  # removes the files the first one replaced
    return folder


def stored_bytes(folder: Path, table: str) -> int:
    return sum(p.stat().st_size for p in (folder / "store" / table).rglob("*.parquet"))


def test_the_estimate_of_a_store_matches_its_real_size_within_ten_percent(
        simulated: Path) -> None:
    with Monitor.from_config(simulated / "hindsight.yaml") as monitor:
        found = monitor.storage_estimate(PER_DAY, days=10, hot_days=90, price_hot=0.023,
                                         price_cold=0.004)
    real = stored_bytes(simulated, "predictions") + stored_bytes(simulated, "labels")
    assert found.sample == "the store's newest rows"
    assert found.total_bytes == pytest.approx(real, rel=0.10)
    assert found.cold_bytes == 0 and found.hot_bytes == found.total_bytes
    assert found.monthly_cost == pytest.approx(found.total_bytes / 1e9 * 0.023)


def test_an_empty_store_is_estimated_from_a_sample_file_or_made_up_rows(
        simulated: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    day = next(Simulator(Scenario(per_day=PER_DAY, days=1, failure_start=None)).days())
    pq.write_table(day.predictions, tmp_path / "sample.parquet")
    (tmp_path / "hindsight.yaml").write_text(yaml.safe_dump(demo_config("empty")))
    with Monitor.from_config(tmp_path / "hindsight.yaml") as monitor:
        from_file = monitor.storage_estimate(PER_DAY, 365, 90, 0.023, 0.004,
                                             sample=tmp_path / "sample.parquet")
        made_up = monitor.storage_estimate(PER_DAY, 365, 90, 0.023, 0.004)
    with Monitor.from_config(simulated / "hindsight.yaml") as monitor:
        measured = monitor.storage_estimate(PER_DAY, 365, 90, 0.023, 0.004)
    assert from_file.sample == "the sample file"
    assert made_up.sample == "rows made up from the config"
    assert from_file.bytes_per_prediction == pytest.approx(measured.bytes_per_prediction,
                                                           rel=0.10)
    assert made_up.bytes_per_prediction > 0
    assert from_file.cold_bytes == pytest.approx(from_file.hot_bytes * (365 - 90) / 90)


def test_status_counts_what_each_table_holds(simulated: Path) -> None:
    with Monitor.from_config(simulated / "hindsight.yaml") as monitor:
        found = {s.table: s for s in monitor.storage_status()}
        predictions = monitor.store.files(Table.PREDICTIONS)
    assert found["predictions"].rows == 10 * PER_DAY
    assert found["predictions"].files == len(predictions) == 10  # one merged file a day
    assert found["predictions"].bytes == stored_bytes(simulated, "predictions")
    assert str(found["predictions"].oldest) == "2026-10-01"
    assert found["predictions"].small_files == 0 and found["predictions"].debris == 0


def test_the_storage_commands_print_tables_and_json(simulated: Path) -> None:
    runner = CliRunner()
    config = str(simulated / "hindsight.yaml")
    status = runner.invoke(cli, ["--config", config, "storage", "status"])
    assert status.exit_code == 0 and "predictions" in status.stdout
    estimate = runner.invoke(cli, ["--config", config, "storage", "estimate",
                                   "--rows-per-day", "500000", "--format", "json"])
    assert estimate.exit_code == 0
    assert set(json.loads(estimate.stdout)) >= {"bytes_per_prediction", "bytes_per_label",
                                                "total_bytes", "hot_bytes", "cold_bytes",
                                                "monthly_cost"}
