"""A store whose predictions and labels are Delta tables (``storage.table_format: delta``):
the same results as the Parquet store, readable by Delta readers that know nothing of
hindsight, durable before the answer, and made from a Parquet store by one command that loses
nothing even when interrupted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from hindsight.config import parse_config
from hindsight.errors import ConfigError, StoreError
from hindsight.monitor import Monitor
from hindsight.store import delta
from hindsight.store.partitions import Table
from tests.sources.conftest import (
    START,
    Rows,
    assert_same_results,
    classifier_rows,
    log_into_store,
    raw_config,
    regressor_rows,
    run_days,
)

FIRST_RUN, LAST_RUN = START + timedelta(days=4), START + timedelta(days=8)


def _delta_ids(monitor: Monitor, table: Table) -> list[Any]:
    """The ids of a table as a Delta reader that knows nothing of hindsight reads them."""
    column = monitor.config.columns.id
    return pl.read_delta(str(Path(monitor.store.table_dir(table)))).get_column(column).to_list()


@pytest.mark.parametrize("make_rows", [classifier_rows, regressor_rows],
                         ids=["multi-class", "regression"])
def test_a_delta_store_gives_the_results_of_the_parquet_store(
        make_rows: Callable[[], Rows], tmp_path: Path) -> None:
    rows = make_rows()
    with log_into_store(rows, parse_config(raw_config(rows, tmp_path / "parquet"))) as plain, \
            log_into_store(rows, parse_config(raw_config(
                rows, tmp_path / "delta", storage={"table_format": "delta"}))) as lake:
        assert delta.is_delta(lake.store, Table.PREDICTIONS)
        assert not delta.is_delta(plain.store, Table.PREDICTIONS)
        # everything again: nothing new is stored
        again = log_into_store(rows, lake.config)
        assert again.log_predictions(rows.all_predictions()).stored == 0
        again.close()
        run_days(plain, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        assert_same_results(plain, lake)
        assert any(a.kind == "performance" for a in lake.alerts())
        ids = _delta_ids(lake, Table.PREDICTIONS)
        assert len(ids) == len(set(ids)) == rows.all_predictions().num_rows


def test_a_changed_prediction_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    rows = classifier_rows(days=2)
    config = parse_config(raw_config(rows, tmp_path / "s", storage={"table_format": "delta"}))
    with log_into_store(rows, config) as monitor:
        first = rows.all_predictions().slice(0, 1)
        column = rows.columns["prediction"]
        changed = first.set_column(first.schema.get_field_index(column), column,
                                   pa.array(["reject" if first[column][0].as_py() != "reject"
                                             else "approve"]))
        version = delta._open(monitor.store, Table.PREDICTIONS).version()
        with pytest.raises(Exception, match="already stored with prediction"):
            monitor.log_predictions(changed)
        assert delta._open(monitor.store, Table.PREDICTIONS).version() == version


def test_ingest_syncs_the_commit_its_files_and_their_folders_before_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = classifier_rows(days=1)
    config = parse_config(raw_config(rows, tmp_path / "s", storage={"table_format": "delta"}))
    synced: list[str] = []
    monkeypatch.setattr(delta, "fsync_path", lambda path: synced.append(str(path)))
    with Monitor(config) as monitor:
        stored = monitor.log_predictions(rows.all_predictions()).stored
        assert stored == rows.all_predictions().num_rows
        added = [f.path for f in monitor.store.files(Table.PREDICTIONS)]
        log = f"{monitor.store.table_dir(Table.PREDICTIONS)}/_delta_log"
    assert added and set(added) <= set(synced)
    assert any(p.startswith(log + "/") and p.endswith(".json") for p in synced)
    assert log in synced
    assert {p.rsplit("/", 1)[0] for p in added} <= set(synced)


def test_compaction_and_retention_of_a_delta_table_keep_every_row_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = classifier_rows(per_day=120)
    config = parse_config(raw_config(rows, tmp_path / "s", storage={
        "table_format": "delta", "delete_after_days": {"predictions": 7, "labels": 7}}))
    at_start = datetime(START.year, START.month, START.day, tzinfo=UTC)
    with Monitor(config, clock=lambda: at_start) as monitor:
        for _day, table in sorted(rows.predictions.items()):
            for start in range(0, table.num_rows, 50):  # many small files a day
                monitor.log_predictions(table.slice(start, 50))
        before = len(monitor.store.files(Table.PREDICTIONS))
        # a writer's file before its commit: no version names it, and an hour keeps it
        pending = Path(monitor.store.partition_dir(Table.PREDICTIONS, START)) / (
            "part-00000-0123abcd-0000-4000-8000-000000000000-c000.zstd.parquet")
        pending.write_bytes(b"written, not yet committed")
        report = monitor.compact(grace=timedelta(0))
        assert pending.exists()
        pending.unlink()
        monkeypatch.setattr(delta, "MIN_VACUUM_HOURS", 0)  # to see the vacuum now
        report += monitor.compact(grace=timedelta(0))
        after = monitor.store.files(Table.PREDICTIONS)
        assert report.files_merged == before - len(after) + report.files_written > 0
        assert len(after) == len(rows.predictions)
        ids = _delta_ids(monitor, Table.PREDICTIONS)
        assert len(ids) == len(set(ids)) == rows.all_predictions().num_rows
        # the merged-away files are deleted by the vacuum, not only dropped from the log
        on_disk = list(Path(monitor.store.table_dir(Table.PREDICTIONS)).glob("dt=*/*.parquet"))
        assert len(on_disk) == len(after)
        last = max(rows.predictions)
        gone = monitor.retention(last)
        assert {(g.table, g.dt) for g in gone if g.table == "predictions"} == {
            ("predictions", d) for d in rows.predictions if d < last - timedelta(days=7)}
        kept = [d for d in rows.predictions if d >= last - timedelta(days=7)]
        assert monitor.store.partitions(Table.PREDICTIONS) == sorted(kept)
        assert len(_delta_ids(monitor, Table.PREDICTIONS)) == sum(
            rows.predictions[d].num_rows for d in kept)


def test_delta_tables_are_not_tiered_and_a_parquet_table_is_not_written_as_delta(
        tmp_path: Path) -> None:
    rows = classifier_rows(days=1)
    with pytest.raises(ConfigError, match="not tiered"):
        parse_config(raw_config(rows, tmp_path / "s", storage={
            "table_format": "delta", "hot_days": 3, "cold_store": str(tmp_path / "cold")}))
    first, second = sorted(classifier_rows(days=2).predictions.items())
    with Monitor(parse_config(raw_config(rows, tmp_path / "p"))) as plain:
        plain.log_predictions(first[1])
    said_delta = parse_config(raw_config(rows, tmp_path / "p", storage={"table_format": "delta"}))
    with Monitor(said_delta) as monitor, pytest.raises(StoreError, match="storage migrate"):
        monitor.log_predictions(second[1])


def test_migrating_a_parquet_store_loses_nothing_even_when_interrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = classifier_rows()
    with log_into_store(rows, parse_config(raw_config(rows, tmp_path / "ref"))) as reference:
        run_days(reference, FIRST_RUN, LAST_RUN)
    config = parse_config(raw_config(rows, tmp_path / "s"))
    with Monitor(config) as monitor:
        monitor.log_reference(rows.reference)
        for day in sorted(set(rows.predictions) | set(rows.labels)):
            if day in rows.predictions:  # two files a day
                table = rows.predictions[day]
                monitor.log_predictions(table.slice(0, table.num_rows // 2))
                monitor.log_predictions(table.slice(table.num_rows // 2))
            if day in rows.labels:
                monitor.log_labels(rows.labels[day])
        monitor.compact(grace=timedelta(0))  # commit markers, merged files: what a store holds
        real = delta._remove_parquet
        calls = 0

        def crash_on_the_fourth_day(*args: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 4:
                raise OSError("killed")
            return real(*args)

        monkeypatch.setattr(delta, "_remove_parquet", crash_on_the_fourth_day)
        with pytest.raises(OSError, match="killed"):
            monitor.migrate()
        monkeypatch.setattr(delta, "_remove_parquet", real)
        # the service's compaction before the migration is run again: the days not migrated
        # are files no version names, and no vacuum takes them, however short its grace
        monkeypatch.setattr(delta, "MIN_VACUUM_HOURS", 0)
        stopped = monitor.compact(grace=timedelta(0))
        assert stopped.failed and "storage migrate" in stopped.failed[0]
        done = monitor.migrate()
        assert done[0].days == len(rows.predictions) - 4  # the four committed are skipped
        assert [m.days for m in monitor.migrate()] == [0, 0]
        for table in (Table.PREDICTIONS, Table.LABELS):
            assert delta.is_delta(monitor.store, table)
            named = {f.path for f in monitor.store.files(table)}
            on_disk = {str(p) for p in Path(monitor.store.table_dir(table)).glob("dt=*/*")}
            assert on_disk == named, "only the log's files are left"
        ids = _delta_ids(monitor, Table.PREDICTIONS)
        assert len(ids) == len(set(ids)) == rows.all_predictions().num_rows
        run_days(monitor, FIRST_RUN, LAST_RUN)
        assert_same_results(reference, monitor)
