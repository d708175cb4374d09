from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from hindsight.cli import cli
from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from hindsight.store.retention import RETIRING, retire
from tests.conftest import label, prediction

KEEP = {"predictions": 25, "labels": 25, "results": 10}
TODAY = date(2026, 2, 10)  # predictions of January 1..31, labels a day later


@pytest.fixture
def filled(make_config: Callable[..., Config]) -> Monitor:
    # logged as the days came: a row older than the retention keeps is refused at the entry
    monitor = Monitor(make_config(label_window_days=7, alerts={"baseline_days": 3},
                                  storage={"delete_after_days": KEEP}),
                      clock=lambda: datetime(2026, 1, 20, tzinfo=UTC))
    monitor.log_predictions([prediction(i, 1 + i % 31, "CH" if i % 2 else "DE", "a")
                             for i in range(31 * 40)])
    for day in range(2, 32):
        monitor.log_labels([label(i, "a" if i % 5 else "b", day)
                            for i in range(31 * 40) if 1 + i % 31 == day - 1])
    for day in (20, 25, 28, 31):
        monitor.run(date(2026, 1, day))
    return monitor


def test_retention_deletes_whole_old_days_and_changes_no_result_inside_the_window(
        filled: Monitor) -> None:
    before = filled.metrics(date(2026, 1, 30), date(2026, 1, 31))
    listed = filled.retention(TODAY, dry_run=True)
    assert filled.store.partitions(Table.PREDICTIONS)[0] == date(2026, 1, 1)  # dry run
    gone = filled.retention(TODAY)
    assert gone == listed
    cutoff = TODAY - timedelta(days=25)
    assert filled.store.partitions(Table.PREDICTIONS)[0] == cutoff
    assert filled.store.partitions(Table.LABELS)[0] == cutoff
    # results: keep 10 days, but never the newest run's partition
    assert filled.store.partitions(Table.ALERTS) == [date(2026, 1, 31)]
    assert {(p.table, p.dt) for p in gone} >= {("predictions", date(2026, 1, 15)),
                                                ("metrics", date(2026, 1, 28))}
    assert filled.metrics(date(2026, 1, 30), date(2026, 1, 31)) == before
    filled.run(date(2026, 1, 31))
    assert filled.metrics(date(2026, 1, 30), date(2026, 1, 31)) == before
    assert filled.check().ok


def test_a_retention_interrupted_after_its_rename_shows_nothing_and_is_finished_later(
        filled: Monitor) -> None:
    day = Path(filled.store.partition_dir(Table.PREDICTIONS, date(2026, 1, 1)))
    hidden = day.with_name(f"{RETIRING}{day.name}-crashed")
    day.rename(hidden)  # a crash right after the rename
    assert date(2026, 1, 1) not in filled.store.partitions(Table.PREDICTIONS)
    assert filled.check().ok
    retire(filled.store, filled.config.storage.delete_after_days, TODAY)
    assert not hidden.exists()


def test_a_retention_shorter_than_the_daily_run_needs_is_refused(
        make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError, match=r"storage.delete_after_days.labels is 8: the daily "
                                          r"run needs label_window_days \+ 1 = 8 days"):
        make_config(label_window_days=7, alerts={"baseline_days": 3},
                    storage={"delete_after_days": {"labels": 8}})


def test_the_retention_command_lists_then_deletes(filled: Monitor, tmp_path: Path) -> None:
    import json

    import yaml

    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump(json.loads(filled.config.model_dump_json(
        exclude_defaults=True))))
    runner = CliRunner()
    args = ["--config", str(config_file), "storage", "retention", "--as-of", str(TODAY)]
    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0 and "would delete" in dry.stdout
    done = runner.invoke(cli, args)
    assert done.exit_code == 0 and "deleted" in done.stdout
    assert filled.store.partitions(Table.PREDICTIONS)[0] == TODAY - timedelta(days=25)
