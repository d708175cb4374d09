from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from hindsight.cli import cli
from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import MAINTENANCE_LOCK, Store, Table
from hindsight.store.retention import RETIRING, retire
from tests.conftest import label, prediction
from tests.store.races import Beside

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


def _small_files(monitor: Monitor, day: int, files: int) -> None:
    for f in range(files):
        monitor.log_predictions([prediction(5000 + 10 * f + i, day, "CH", "a")
                                 for i in range(3)])


def test_a_retention_waits_for_a_compaction_that_listed_its_day_and_no_day_comes_back(
        filled: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction reads a day's small files; retention removes that day before the merged
    file is written. Without a shared lock the merged file and its marker re-created the day,
    and rows re-sent for it were then refused as stored, or stored twice."""
    _small_files(filled, 3, 4)
    store, keep = filled.store, filled.config.storage.delete_after_days
    write = Store.write
    raced: list[Beside] = []

    def a_retention_then_write(self: Store, *args: object, **kwargs: object) -> str:
        if not raced and sys._getframe(1).f_code.co_name == "_merge":
            raced.append(Beside(lambda: retire(store, keep, TODAY), MAINTENANCE_LOCK,
                                monkeypatch))
            raced[0].start()  # the merged rows are read; the day may go before they are written
        return write(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "write", a_retention_then_write)
    compact(store)
    raced[0].join()
    day = Path(store.partition_dir(Table.PREDICTIONS, date(2026, 1, 3)))
    assert not day.exists()
    again = [prediction(5000 + i, 3, "CH", "a") for i in range(3)]
    assert filled.log_predictions(again).stored == 3
    assert len(store.files(Table.PREDICTIONS, date(2026, 1, 3), date(2026, 1, 3))) == 1
    assert filled.check().ok
    assert raced[0].waited


def test_a_retention_waits_for_an_ingest_looking_up_the_day_it_removes(
        filled: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest looks up what a batch may repeat, then writes; a retention removing a day that
    look-up reads waits for the write (ingest once answered 500 reading a file just removed)."""
    store, keep = filled.store, filled.config.storage.delete_after_days
    lookup = filled.engine.stored_predictions
    raced: list[Beside] = []

    def lookup_beside_a_retention(*args: object) -> object:
        if not raced:
            raced.append(Beside(lambda: retire(store, keep, TODAY), Table.PREDICTIONS.value,
                                monkeypatch))
            raced[0].start()
        return lookup(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(filled.engine, "stored_predictions", lookup_beside_a_retention)
    report = filled.log_predictions([prediction(i, 1 + i % 31, "DE", "a") for i in range(62)])
    raced[0].join()
    assert report.stored == 0
    assert filled.store.partitions(Table.PREDICTIONS)[0] == TODAY - timedelta(days=25)
    assert filled.check().ok
    assert raced[0].waited


def test_a_retired_day_is_gone_from_its_table_on_disk_before_its_files_are_deleted(
        filled: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename that hides a day is made durable (the table's directory fsynced) before the
    files go: a power cut cannot bring back half a day."""
    import os

    import hindsight.store.partitions as partitions

    table = Path(filled.store.table_dir(Table.PREDICTIONS))
    day = table / "dt=2026-01-01"
    synced: list[tuple[str, bool]] = []  # what was fsynced, and whether the day was listed then
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), day.exists()))
        real_fsync(fd)

    monkeypatch.setattr(partitions.os, "fsync", fsync)
    retire(filled.store, filled.config.storage.delete_after_days, TODAY)
    assert (str(table), False) in synced
    assert not day.exists() and not list(table.glob(f"{RETIRING}*"))
