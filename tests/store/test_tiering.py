from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from hindsight.config import Config
from hindsight.errors import ConfigError, StoreError
from hindsight.monitor import Monitor
from hindsight.store import tiering
from hindsight.store.partitions import Store, Table
from tests.conftest import label, prediction

TODAY = date(2026, 2, 10)
HOT_DAYS = 20  # days before 2026-01-21 go cold
LATER = datetime.now(UTC) + timedelta(hours=1)  # past any grace for files written now


@pytest.fixture
def filled(make_config: Callable[..., Config], tmp_path: Path) -> Monitor:
    monitor = Monitor(make_config(label_window_days=7, alerts={"baseline_days": 3},
                                  storage={"hot_days": HOT_DAYS,
                                           "cold_store": str(tmp_path / "cold")}))
    for half in (0, 1):  # two files a day
        monitor.log_predictions([prediction(i, 1 + i % 31, "CH" if i % 2 else "DE",
                                            "a" if i % 7 else "b")
                                 for i in range(31 * 40) if i % 2 == half])
    for day in range(2, 32):
        monitor.log_labels([label(i, "a" if i % 5 else "b", day)
                            for i in range(31 * 40) if 1 + i % 31 == day - 1])
    return monitor


def rows(store: Store, table: Table) -> list[tuple[object, ...]]:
    files = store.files(table)
    found = pa.concat_tables([store.read(f.path) for f in files], promote_options="permissive")
    return sorted(tuple(r.values()) for r in found.to_pylist())


def results(monitor: Monitor) -> tuple[object, ...]:
    summaries = monitor.backfill(date(2026, 1, 10), date(2026, 1, 31))
    return (tuple((s.as_of, s.overall, s.cells) for s in summaries),
            tuple(a.as_json()["key"] for a in monitor.alerts()),
            monitor.metrics(date(2026, 1, 12), date(2026, 1, 31)))


def cold_store(monitor: Monitor) -> Store:
    assert monitor.config.storage.cold_store is not None
    return Store.open(monitor.config.storage.cold_store)


def test_tiering_moves_old_days_and_no_count_metric_or_alert_changes(filled: Monitor) -> None:
    before = results(filled)
    predictions, labels = rows(filled.store, Table.PREDICTIONS), rows(filled.store, Table.LABELS)
    report = filled.tier(TODAY)
    assert report.partitions == 20 + 19  # predictions of Jan 1-20, labels of Jan 2-20
    assert rows(filled.store, Table.PREDICTIONS) == predictions
    assert rows(filled.store, Table.LABELS) == labels
    cold = str(cold_store(filled).root)
    old = filled.store.files(Table.PREDICTIONS, date(2026, 1, 5), date(2026, 1, 5))
    assert len(old) == 1 and old[0].path.startswith(cold)
    assert results(filled) == before
    assert filled.check().ok
    status = {s.table: s for s in filled.storage_status()}
    assert status["predictions"].cold_files == 20
    # the hot copies go once their grace is over; the view does not change
    tiering.tier(filled.store, cold_store(filled), TODAY, HOT_DAYS, now=LATER)
    assert not list(Path(filled.store.partition_dir(Table.PREDICTIONS, date(2026, 1, 5)))
                    .glob("*.parquet"))
    assert rows(filled.store, Table.PREDICTIONS) == predictions and filled.check().ok


@pytest.mark.parametrize("broken", ["commit", "read back", "finish"])
def test_a_tiering_that_fails_at_any_step_leaves_every_row_exactly_once(
        filled: Monitor, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    predictions = rows(filled.store, Table.PREDICTIONS)

    def fail(*args: object, **kwargs: object) -> None:
        raise StoreError(f"injected failure at {broken}")

    if broken == "commit":
        monkeypatch.setattr(Store, "write_commit", fail)
    elif broken == "read back":
        real_read = Store.read
        monkeypatch.setattr(Store, "read", lambda self, path, columns=None: (
            real_read(self, path, columns).slice(1) if "tiered-" in path
            else real_read(self, path, columns)))
    else:
        monkeypatch.setattr(tiering, "compact", fail)
    if broken == "finish":
        with pytest.raises(StoreError):
            filled.tier(TODAY)
    else:  # each day fails alone, named in the report; the others are tried
        report = filled.tier(TODAY)
        assert report.partitions == 0 and len(report.failed) == 20 + 19
    monkeypatch.undo()
    assert rows(filled.store, Table.PREDICTIONS) == predictions
    assert filled.check().ok
    filled.tier(TODAY)  # the next run completes the move
    tiering.tier(filled.store, cold_store(filled), TODAY, HOT_DAYS, now=LATER)
    assert rows(filled.store, Table.PREDICTIONS) == predictions and filled.check().ok
    unnamed = [p for p in Path(cold_store(filled).root).rglob("tiered-*.parquet")
               if str(p) not in {f.path for f in filled.store.files(Table.PREDICTIONS)}
               | {f.path for f in filled.store.files(Table.LABELS)}]
    assert unnamed == []  # a copy left by the failure was swept


def test_rows_that_arrive_for_a_cold_day_are_seen_and_moved_later(filled: Monitor) -> None:
    filled.tier(TODAY)
    filled.log_predictions([prediction(99_999, 5, "CH", "a")])
    day = filled.store.files(Table.PREDICTIONS, date(2026, 1, 5), date(2026, 1, 5))
    assert len(day) == 2  # the cold file and the late one
    filled.tier(TODAY)
    assert filled.log_predictions([prediction(99_999, 5, "CH", "a")]).already_stored == 1
    assert len(rows(filled.store, Table.PREDICTIONS)) == 31 * 40 + 1


def test_retention_deletes_a_cold_day_with_its_hot_marker(filled: Monitor,
                                                          make_config: Callable[..., Config]
                                                          ) -> None:
    filled.tier(TODAY)
    cold_files = list(Path(cold_store(filled).root).rglob("tiered-*.parquet"))
    keep = make_config(label_window_days=7, alerts={"baseline_days": 3},
                       storage={"delete_after_days": {"predictions": 30, "labels": 30}})
    retired = Monitor(keep).retention(TODAY)
    assert {p.dt for p in retired if p.table == "predictions"} == {
        date(2026, 1, d) for d in range(1, 11)}
    left = list(Path(cold_store(filled).root).rglob("tiered-*.parquet"))
    assert len(left) == len(cold_files) - len(retired)
    assert filled.check().ok


def test_two_stores_sharing_a_cold_store_keep_every_row_of_each_other(
        filled: Monitor, make_config: Callable[..., Config], tmp_path: Path) -> None:
    """The README's cold store names no model: one store's sweep deleted the other's cold
    files as unnamed, and its next compaction the hot copies, 100 of 100 rows lost."""
    other = Monitor(make_config(store=str(tmp_path / "other"), label_window_days=7,
                                alerts={"baseline_days": 3},
                                storage={"hot_days": HOT_DAYS,
                                         "cold_store": str(tmp_path / "cold")}))
    other.log_predictions([prediction(10_000 + i, 1 + i % 31, "DE", "b") for i in range(100)])
    mine, theirs = rows(filled.store, Table.PREDICTIONS), rows(other.store, Table.PREDICTIONS)
    filled.tier(TODAY)
    other.tier(TODAY)
    for monitor in (filled, other, filled):  # sweeps and compactions past every grace
        tiering.tier(monitor.store, cold_store(monitor), TODAY, HOT_DAYS, now=LATER)
    assert rows(filled.store, Table.PREDICTIONS) == mine
    assert rows(other.store, Table.PREDICTIONS) == theirs
    assert filled.check().ok and other.check().ok
    parts = sorted(p.name for p in (tmp_path / "cold").iterdir())
    assert parts == sorted([filled.store.identity(), other.store.identity()])


def test_a_copy_of_a_store_is_refused_the_cold_part_of_its_original(
        filled: Monitor, tmp_path: Path) -> None:
    import shutil

    filled.tier(TODAY)
    copy = Store.open(tmp_path / "copy")
    shutil.copytree(filled.store.root, copy.root)
    with pytest.raises(ConfigError, match=r"it is a copy of that store.*remove its store.json"):
        tiering.tier(copy, cold_store(filled), TODAY, HOT_DAYS)
    (Path(copy.root) / "store.json").unlink()
    assert tiering.tier(copy, cold_store(filled), TODAY, HOT_DAYS).partitions == 0
    assert copy.identity() != filled.store.identity()


@pytest.mark.parametrize("where", ["the store", "inside the store", "holding the store"])
def test_a_cold_store_that_is_the_store_inside_it_or_holding_it_is_refused(
        make_config: Callable[..., Config], tmp_path: Path, where: str) -> None:
    store = tmp_path / "store"
    cold = {"the store": store, "inside the store": store / "cold",
            "holding the store": tmp_path}[where]
    with pytest.raises(ConfigError, match=r"is the store .*, inside it or holds it"):
        make_config(storage={"hot_days": 5, "cold_store": str(cold)})


def test_a_cold_store_that_is_another_stores_root_is_refused(
        filled: Monitor, make_config: Callable[..., Config], tmp_path: Path) -> None:
    other = Monitor(make_config(store=str(tmp_path / "other"), label_window_days=7,
                                alerts={"baseline_days": 3},
                                storage={"hot_days": HOT_DAYS, "cold_store": filled.store.root}))
    other.log_predictions([prediction(10_000 + i, 1 + i % 31, "DE", "b") for i in range(100)])
    filled.run(date(2026, 1, 31))
    with pytest.raises(ConfigError, match="is a hindsight store itself"):
        other.tier(TODAY)


def test_a_day_removed_after_tiering_listed_it_is_skipped_and_said(
        filled: Monitor, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    listed = tiering.due(filled.store, TODAY, HOT_DAYS)
    # retention, in a bucket where no lock keeps it apart
    shutil.rmtree(filled.store.partition_dir(Table.PREDICTIONS, date(2026, 1, 1)))
    monkeypatch.setattr(tiering, "due", lambda *args: listed)
    report = filled.tier(TODAY)
    assert report.gone == 1 and report.partitions == len(listed) - 1
    assert "1 partitions due were gone when reached" in report.summary()


def test_a_day_whose_files_disagree_stays_hot_and_every_other_day_moves(
        filled: Monitor) -> None:
    poisoned = date(2026, 1, 3)
    filled.store.write(Table.PREDICTIONS, pa.table({"request_id": ["odd"], "amount": ["abc"]}),
                       dt=poisoned)
    report = filled.tier(TODAY)
    assert report.partitions == 20 + 19 - 1 and len(report.failed) == 1
    assert "dt=2026-01-03" in report.failed[0] and "left hot" in report.summary()
    assert not any(f.cold for f in filled.store.files(Table.PREDICTIONS, poisoned, poisoned))
