from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hindsight.cli import cli
from hindsight.config import Config
from hindsight.errors import StoreError
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import COMPACTED_PREFIX, Store, Table
from tests.conftest import label, prediction

DAY = date(2026, 1, 5)
LATER = datetime.now(UTC) + timedelta(hours=1)  # past any grace for files written now


def _rows(store: Store, table: Table = Table.PREDICTIONS) -> list[tuple[object, ...]]:
    """Every visible row, sorted: what any reader of the store counts."""
    files = store.files(table)
    if not files:
        return []
    rows = pa.concat_tables([store.read(f.path) for f in files],
                            promote_options="permissive").to_pylist()
    return sorted(tuple(sorted(r.items())) for r in rows)


def _log_in_small_requests(monitor: Monitor, requests: int, per_request: int = 3) -> None:
    for r in range(requests):
        batch = [prediction(r * per_request + i, 5, "CH" if i % 2 else "DE", "a")
                 for i in range(per_request)]
        monitor.log_predictions(batch)


def test_small_files_become_one_and_every_reader_counts_the_same_rows(
        make_config: Callable[..., Config]) -> None:
    with Monitor(make_config()) as monitor:
        _log_in_small_requests(monitor, 12)
        store = monitor.store
        before = _rows(store)
        listed_before = store.files(Table.PREDICTIONS)  # a reader mid-query
        assert len(listed_before) == 12

        report = compact(store, grace=timedelta(minutes=10))

        assert (report.partitions, report.files_merged, report.files_written) == (1, 12, 1)
        after = store.files(Table.PREDICTIONS)
        assert len(after) == 1 and Path(after[0].path).name.startswith(COMPACTED_PREFIX)
        assert _rows(store) == before
        # the reader that listed before the commit still reads every one of its files
        old = pa.concat_tables([store.read(f.path) for f in listed_before])
        assert old.num_rows == len(before)
        # the engine and idempotent ingest see the same store
        assert monitor.log_predictions([prediction(0, 5, "DE", "a")]).stored == 0
        assert monitor.engine.stored_predictions(pa.array(["r0", "r35"])).num_rows == 2


def test_a_file_a_writer_adds_while_compaction_lists_waits_for_the_next_compaction(
        make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction lists sizes, then the visible files: a batch logged between the two is
    left alone this time and merged the next, with no row lost or doubled."""
    with Monitor(make_config()) as monitor:
        _log_in_small_requests(monitor, 4)
        store = monitor.store
        listing = Store.listing

        def listing_then_a_writer(self: Store, *args: object, **kwargs: object) -> object:
            infos = listing(self, *args, **kwargs)
            if sys._getframe(1).f_code.co_name != "_merge":  # the size listing of a merge
                return infos
            monkeypatch.setattr(Store, "listing", listing)
            monitor.log_predictions([prediction(1000, 5, "DE", "a")])
            return infos

        monkeypatch.setattr(Store, "listing", listing_then_a_writer)
        first = compact(store, grace=timedelta(minutes=10))
        assert (first.files_merged, first.files_written) == (4, 1)
        assert len(store.files(Table.PREDICTIONS)) == 2
        second = compact(store, grace=timedelta(minutes=10))
        assert (second.files_merged, second.files_written) == (2, 1)
        assert len(_rows(store)) == 13


def test_replaced_files_go_only_after_the_grace_and_the_view_never_changes(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    for i in range(4):
        store.write(Table.LABELS, pa.table({"id": [f"a{i}"], "v": [i]}), dt=DAY)
    before = _rows(store, Table.LABELS)
    compact(store, grace=timedelta(minutes=10))
    on_disk = sorted(p.name for p in (tmp_path / "labels" / f"dt={DAY}").iterdir())
    assert sum(name.startswith("part-") for name in on_disk) == 4  # still there for readers

    # a second compaction merges the merged file with a newer small file
    store.write(Table.LABELS, pa.table({"id": ["b"], "v": [9]}), dt=DAY)
    compact(store, grace=timedelta(minutes=10))
    assert len(store.files(Table.LABELS)) == 1
    assert _rows(store, Table.LABELS) == sorted(
        [*before, (("id", "b"), ("v", 9))])

    report = compact(store, grace=timedelta(minutes=10), now=LATER)
    left = sorted(p.name for p in (tmp_path / "labels" / f"dt={DAY}").iterdir())
    assert report.files_removed == 6  # four parts, the first merged file, the newer part
    assert len(left) == 2 and left[0].startswith("_commit-") and left[1].startswith(
        COMPACTED_PREFIX)  # the first commit named nothing left, and went too
    assert _rows(store, Table.LABELS) == sorted([*before, (("id", "b"), ("v", 9))])


def test_a_crash_before_the_commit_leaves_nothing_visible_and_is_swept_later(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.write(Table.PREDICTIONS, pa.table({"x": [1]}), dt=DAY)
    directory = tmp_path / "predictions" / f"dt={DAY}"
    pq.write_table(pa.table({"x": [1, 1]}), directory / f"{COMPACTED_PREFIX}orphan.parquet")
    (directory / ".tmp-orphan.parquet").write_bytes(b"half a file")
    assert _rows(store) == [(("x", 1),)]

    assert compact(store, grace=timedelta(minutes=10)).files_removed == 0  # maybe in flight
    assert compact(store, grace=timedelta(minutes=10), now=LATER).files_removed == 2
    assert sorted(p.name for p in directory.iterdir())[0].startswith("part-")
    assert _rows(store) == [(("x", 1),)]


def test_a_partition_whose_files_disagree_is_left_as_it_was_and_the_others_are_compacted(
        tmp_path: Path) -> None:
    """A poison batch (a feature sent as 1.5, then as "abc" the same day) once stopped every
    compaction of the store: healthy days and every label partition were never merged."""
    store = Store.open(tmp_path)
    store.write(Table.PREDICTIONS, pa.table({"x": [1]}), dt=DAY)
    store.write(Table.PREDICTIONS, pa.table({"x": ["one"]}), dt=DAY)
    for day in (DAY + timedelta(days=1), DAY + timedelta(days=2)):
        for i in range(3):
            store.write(Table.PREDICTIONS, pa.table({"x": [i]}), dt=day)
            store.write(Table.LABELS, pa.table({"x": [i]}), dt=day)
    poisoned = store.files(Table.PREDICTIONS, DAY, DAY)
    report = compact(store)
    assert (report.partitions, report.files_merged) == (4, 12)
    assert len(report.failed) == 1
    assert str(report.failed[0]).count("dt=2026-01-05/part-") == 2  # both files, and the fix
    assert "Rewrite the odd file" in report.failed[0]
    assert "1 partitions left as they were (the others went on)" in report.summary()
    assert store.files(Table.PREDICTIONS, DAY, DAY) == poisoned
    assert len(store.files(Table.LABELS)) == 2


def test_the_daily_job_reads_the_same_numbers_after_compaction(
        make_config: Callable[..., Config]) -> None:
    clock = datetime(2026, 1, 20, tzinfo=UTC)
    with Monitor(make_config(), clock=lambda: clock) as monitor:
        _log_in_small_requests(monitor, 10)
        for start in range(0, 30, 6):
            monitor.log_labels([label(i, "a" if i % 3 else "b", 6) for i in range(start,
                                                                                  start + 6)])
        for i in range(5):
            monitor.log_labels([label(i, "b", 6, hour=20)])  # corrections, later that day
        first = monitor.run(DAY + timedelta(days=3))
        report = compact(monitor.store)
        second = monitor.run(DAY + timedelta(days=3))
    assert report.files_merged == 10 + 5 + 3  # ids 0 and 3 were "b" already: not re-stored
    assert first.overall is not None and first.overall < 1
    assert (first.overall, first.label_coverage) == (second.overall, second.label_coverage)


def test_the_compact_command_reports_what_it_did(make_config: Callable[..., Config],
                                                 tmp_path: Path) -> None:
    import yaml

    config = make_config()
    with Monitor(config) as monitor:
        _log_in_small_requests(monitor, 5)
    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    done = CliRunner().invoke(cli, ["--config", str(config_file), "compact"])
    assert done.exit_code == 0, done.output
    assert "compacted 1 partitions: 5 small files into 1" in done.output
    store = Store.open(config.store)
    store.write(Table.PREDICTIONS, pa.table({"amount": ["abc"]}), dt=DAY)
    store.write(Table.PREDICTIONS, pa.table({"amount": [1.5]}), dt=DAY)
    poisoned = CliRunner().invoke(cli, ["--config", str(config_file), "compact"])
    assert poisoned.exit_code == 4, poisoned.output
    assert "1 partitions left as they were" in poisoned.output


def test_a_reader_that_listed_a_marker_compaction_then_removed_lists_again(
        make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction removes a spent commit marker (its merged file merged again, all it replaced
    gone). A reader that listed the marker just before reads a consistent view, not an error
    telling the user to restore a backup."""
    with Monitor(make_config()) as monitor:
        store = monitor.store
        _log_in_small_requests(monitor, 3)
        compact(store, grace=timedelta(0))
        _log_in_small_requests(monitor, 2)  # ids differ: requests 0..1 again would be skipped
        monitor.log_predictions([prediction(100 + i, 5, "CH", "a") for i in range(3)])
        compact(store, grace=timedelta(0))  # merges the first merged file again
        expected = _rows(store)
        listing = Store.listing
        raced = []

        def listing_then_cleanup(self: Store, table: Table, start: date | None = None,
                                 end: date | None = None) -> list[object]:
            found = listing(self, table, start, end)
            if not raced:
                raced.append(True)
                compact(store, now=LATER, grace=timedelta(0))  # removes the spent marker
            return found

        monkeypatch.setattr(Store, "listing", listing_then_cleanup)
        assert _rows(store) == expected
        assert raced


def test_a_commit_marker_that_cannot_be_parsed_is_still_an_error(
        make_config: Callable[..., Config]) -> None:
    with Monitor(make_config()) as monitor:
        _log_in_small_requests(monitor, 3)
        compact(monitor.store, grace=timedelta(minutes=10))
        marker = next(Path(monitor.store.root).rglob("_commit-*.json"))
        marker.write_text("{not json")
        with pytest.raises(StoreError, match="changed outside hindsight"):
            monitor.store.files(Table.PREDICTIONS)


def test_a_reader_racing_the_removal_of_every_spent_marker_counts_each_row_once(
        make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction removes spent markers one by one, after the files they name. A reader that
    listed them all just before meets one vanished marker after another (a service soak saw a
    run of five answer ingest with 500): each is spent, so the view stays exact, no retry."""
    with Monitor(make_config()) as monitor:
        store = monitor.store
        for round_ in range(7):  # each compaction merges the last merged file again
            monitor.log_predictions([prediction(10 * round_ + i, 5, "CH", "a")
                                     for i in range(2)])
            monitor.log_predictions([prediction(10 * round_ + 5, 5, "DE", "a")])
            compact(store, grace=timedelta(minutes=10))
        expected = _rows(store)
        markers = sorted(Path(store.root).rglob("_commit-*.json"), key=lambda p: p.stat().st_mtime)
        spent = [str(m) for m in markers[:-1]]
        assert len(spent) == 6
        read_commit = Store.read_commit
        cleaned: list[str] = []

        def read_after_a_cleanup_step(self: Store, path: str) -> tuple[str, list[str]]:
            if path in spent and path not in cleaned:
                if not cleaned:  # a compaction's clean-up: first the files past the grace ...
                    keep = read_commit(self, str(markers[-1]))[0]
                    for part in Path(store.partition_dir(Table.PREDICTIONS, DAY)).glob(
                            "*.parquet"):
                        if str(part) != keep:
                            part.unlink()
                Path(path).unlink()  # ... then the markers, one at a time
                cleaned.append(path)
            return read_commit(self, path)

        monkeypatch.setattr(Store, "read_commit", read_after_a_cleanup_step)
        assert _rows(store) == expected
        assert len(cleaned) == 6
