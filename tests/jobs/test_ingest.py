from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.config import Config
from hindsight.errors import InputError, StoreError
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.conftest import COLUMNS, label, prediction


def stored_rows(monitor: Monitor, table: Table) -> list[tuple[object, ...]]:
    files = [f.path for f in monitor.store.files(table)]
    if not files:
        return []
    return duckdb.sql(f"SELECT * FROM read_parquet({files!r}) ORDER BY ALL").fetchall()


def test_predictions_are_partitioned_by_their_utc_day(monitor: Monitor) -> None:
    monitor.log_predictions([prediction(1, 1, "CH", "a", hour=23), prediction(2, 2, "CH", "a")])
    assert monitor.store.partitions(Table.PREDICTIONS) == [
        __import__("datetime").date(2026, 1, d) for d in (1, 2)]


def test_relogging_the_same_batch_changes_no_count(monitor: Monitor) -> None:
    batch = [prediction(i, 1, "CH", "a") for i in range(5)]
    first = monitor.log_predictions(batch)
    again = monitor.log_predictions(batch)
    assert (first.stored, again.stored, again.already_stored) == (5, 0, 5)
    assert len(stored_rows(monitor, Table.PREDICTIONS)) == 5


def test_a_changed_prediction_for_a_stored_id_is_refused_and_nothing_is_stored(
    monitor: Monitor,
) -> None:
    monitor.log_predictions([prediction(1, 1, "CH", "a")])
    before = stored_rows(monitor, Table.PREDICTIONS)
    with pytest.raises(InputError, match="id 'r1' is already stored with prediction 'a', not 'b'"):
        monitor.log_predictions([prediction(2, 1, "CH", "a"), prediction(1, 1, "CH", "b")])
    assert stored_rows(monitor, Table.PREDICTIONS) == before


def test_a_duplicate_id_with_two_predictions_in_one_batch_names_both_rows(
    monitor: Monitor,
) -> None:
    with pytest.raises(InputError, match=r"row 1 and .*row 3: the same id 'r1' has two different"):
        monitor.log_predictions([prediction(1, 1, "CH", "a"), prediction(2, 1, "CH", "a"),
                                 prediction(1, 1, "CH", "b")])
    assert stored_rows(monitor, Table.PREDICTIONS) == []


def test_one_bad_file_among_several_stores_nothing(monitor: Monitor, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("request_id,served_at,predicted,country,tier\nr1,2026-01-01T00:00:00,a,CH,x\n")
    bad.write_text("request_id,served_at,predicted,country,tier\nr2,not-a-time,a,CH,x\n")
    with pytest.raises(InputError, match=r"bad.csv: row 1 \(line 2\): column 'served_at'"):
        monitor.log_prediction_files([good, bad])
    assert stored_rows(monitor, Table.PREDICTIONS) == []


def test_labels_are_partitioned_by_arrival_and_corrections_are_kept(monitor: Monitor) -> None:
    monitor.log_predictions([prediction(1, 1, "CH", "a")])
    monitor.log_labels([label(1, "b", day=3)])
    report = monitor.log_labels([label(1, "a", day=5)])
    assert report.stored == 1
    assert {(r[1], r[2].day) for r in stored_rows(monitor, Table.LABELS)} == {("b", 3), ("a", 5)}
    assert [f.dt.day for f in monitor.store.files(Table.LABELS)] == [3, 5]


def test_resending_labels_changes_nothing(monitor: Monitor) -> None:
    monitor.log_predictions([prediction(1, 1, "CH", "a")])
    monitor.log_labels([label(1, "b", day=3)])
    again = monitor.log_labels([label(1, "b", day=3)])
    assert (again.stored, again.already_stored) == (0, 1)


def test_resending_labels_without_label_timestamps_changes_nothing(
    make_config: object, tmp_path: Path,
) -> None:
    from tests.conftest import COLUMNS

    columns = {k: v for k, v in COLUMNS.items() if k != "label_timestamp"}
    with Monitor(make_config(columns=columns)) as m:  # type: ignore[operator]
        m.log_predictions([prediction(1, 1, "CH", "a")])
        first = m.log_labels([{"request_id": "r1", "actual": "b"}])
        again = m.log_labels([{"request_id": "r1", "actual": "b"}])
    assert (first.stored, again.stored) == (1, 0)


def test_a_different_label_at_the_same_instant_is_refused(monitor: Monitor) -> None:
    monitor.log_labels([label(1, "b", day=3)])
    with pytest.raises(InputError, match="a correction needs a later label timestamp"):
        monitor.log_labels([label(1, "c", day=3)])


def test_labels_for_unknown_ids_are_kept_and_counted_as_orphans(monitor: Monitor) -> None:
    monitor.log_predictions([prediction(1, 1, "CH", "a")])
    report = monitor.log_labels([label(1, "a", day=2), label(99, "a", day=2)])
    assert (report.stored, report.orphans) == (2, 1)
    assert "1 for ids with no prediction stored within" in report.summary("labels")


def _unreadable_partition(monitor: Monitor, table: Table, day: int) -> None:
    """A partition that fails any query that reads it: proof that a look-up stayed away."""
    directory = Path(monitor.store.partition_dir(table, __import__("datetime").date(2026, 1, day)))
    directory.mkdir(parents=True)
    (directory / "part-broken.parquet").write_bytes(b"not parquet")


def test_the_ingest_look_up_reads_only_days_within_lookup_days(
    make_config: Any,
) -> None:
    with Monitor(make_config(storage={"lookup_days": 3})) as m:
        m.log_predictions([prediction(1, 20, "CH", "a")])
        m.log_labels([label(1, "a", day=21)])
        _unreadable_partition(m, Table.PREDICTIONS, 2)
        _unreadable_partition(m, Table.LABELS, 2)
        # days 17..23 are read, day 2 is not: these succeed
        again = m.log_predictions([prediction(1, 20, "CH", "a"), prediction(2, 21, "CH", "a")])
        labels = m.log_labels([label(1, "a", day=22), label(2, "b", day=22)])
        assert (again.stored, again.already_stored) == (1, 1)
        assert (labels.stored, labels.already_stored, labels.orphans) == (1, 1, 0)
        with pytest.raises(StoreError, match="part-broken"):
            m.log_predictions([prediction(3, 5, "CH", "a")])  # day 5 reaches back to day 2


def test_an_id_resent_within_lookup_days_with_another_timestamp_is_recognised(
    make_config: Any,
) -> None:
    with Monitor(make_config(storage={"lookup_days": 3})) as m:
        m.log_predictions([prediction(1, 10, "CH", "a")])
        near = m.log_predictions([prediction(1, 13, "CH", "a")])
        with pytest.raises(InputError, match="already stored with prediction 'a', not 'b'"):
            m.log_predictions([prediction(1, 7, "CH", "b")])
        far = m.log_predictions([prediction(1, 14, "CH", "a")])  # beyond the reach: stored again
        assert (near.stored, far.stored) == (0, 1)
        from hindsight.store.check import check_store

        report = check_store(m.store, m.config)
        assert any("r1" in f.problem for f in report.problems), report.problems


def test_lookup_days_null_reads_the_whole_store(make_config: Any) -> None:
    with Monitor(make_config(storage={"lookup_days": None})) as m:
        m.log_predictions([prediction(1, 1, "CH", "a")])
        late = m.log_predictions([prediction(1, 28, "CH", "a")])
        assert (late.stored, late.already_stored) == (0, 1)


def _log_in_a_process(config_file: str, rows: list[dict[str, object]], start: Any) -> int:
    from hindsight.monitor import Monitor as InChild

    with InChild.from_config(config_file) as monitor:
        start.wait()  # every process checks the store at the same moment
        return monitor.log_predictions(rows).stored


def test_idempotency_holds_across_processes(tmp_path: Path) -> None:
    """Four processes log the same 5,000 rows at once: each row is stored once."""
    import multiprocessing

    import yaml

    from tests.conftest import COLUMNS

    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": "m", "store": str(tmp_path / "store"), "columns": COLUMNS,
        "segments": ["country", "tier"]}))
    rows = [prediction(i, 1 + i % 3, "CH", "a") for i in range(5000)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        start = manager.Barrier(4)
        stored = pool.starmap(_log_in_a_process, [(str(config_file), rows, start)] * 4)
    assert sum(stored) == 5000
    with Monitor.from_config(config_file) as monitor:
        ids = [r[0] for r in stored_rows(monitor, Table.PREDICTIONS)]
    assert len(ids) == len(set(ids)) == 5000


def test_labels_stamped_days_before_their_prediction_are_kept_and_reported(
        monitor: Monitor) -> None:
    monitor.log_predictions([prediction(1, 10, "CH", "a"), prediction(2, 10, "CH", "a")])
    report = monitor.log_labels([label(1, "a", 7), label(2, "a", 9)])
    assert (report.stored, report.early) == (2, 1)
    assert "1 stamped more than 1 day before their prediction's day" in report.summary("labels")


@settings(deadline=None, max_examples=15,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from("ab"), st.integers(3, 6)),
                min_size=1, max_size=60),
       st.lists(st.tuples(st.integers(0, 30), st.sampled_from("ab"), st.integers(3, 6)),
                min_size=1, max_size=60))
def test_a_label_batch_stores_exactly_what_changes_the_label_in_force(
        make_config: Callable[..., Config], tmp_path_factory: pytest.TempPathFactory,
        first: list[tuple[int, str, int]], second: list[tuple[int, str, int]]) -> None:
    """Against a plain model of the rule: a row is stored unless the same id and instant is
    stored (with the same label), or the label in force (latest arrival; ties: the greatest
    label) already says it and the row arrives later. The same instant with another label is
    refused, and nothing of its batch is stored."""
    def one_label_per_instant(rows: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
        chosen: dict[tuple[int, int], tuple[int, str, int]] = {}
        for key, value, day in rows:  # within a batch, two labels at one instant are refused
            chosen.setdefault((key, day), (key, value, day))
        return list(chosen.values())

    store = tmp_path_factory.mktemp("labels") / "store"
    with Monitor(make_config(store=str(store))) as monitor:
        kept: dict[tuple[int, int], str] = {}
        for batch in (one_label_per_instant(first), one_label_per_instant(second)):
            fresh, refused = [], False
            for key, value, day in batch:
                if (key, day) in kept:
                    refused |= kept[(key, day)] != value
                    continue
                mine = [(d, v) for (k, d), v in kept.items() if k == key]
                if mine and max(mine)[1] == value and day > max(mine)[0]:
                    continue
                fresh.append((key, value, day))
            rows = [label(k, v, d) for k, v, d in batch]
            if refused:
                with pytest.raises(InputError, match="a correction needs a later"):
                    monitor.log_labels(rows)
                continue
            assert monitor.log_labels(rows).stored == len(fresh)
            kept |= {(k, d): v for k, v, d in fresh}


def test_a_batch_whose_feature_cannot_be_read_as_the_stored_type_is_refused_before_writing(
    monitor: Monitor, tmp_path: Path,
) -> None:
    first = tmp_path / "first.csv"
    first.write_text("request_id,served_at,country,tier,predicted,amount\n"
                     "r1,2026-01-01T12:00:00Z,CH,free,a,12.5\n")
    monitor.log_prediction_files([first])
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("request_id,served_at,country,tier,predicted,amount\n"
                     "r2,2026-01-02T12:00:00Z,CH,free,a,3\n"
                     "r3,2026-01-02T12:00:00Z,CH,free,a,twelve\n")
    with pytest.raises(InputError) as refused:
        monitor.log_prediction_files([mixed])
    message = str(refused.value)
    assert "mixed.csv: row 2 (line 3)" in message and "'amount'" in message
    assert "'twelve'" in message and "double" in message and "string" in message
    assert monitor.store.partitions(Table.PREDICTIONS) == [date(2026, 1, 1)]
    whole = tmp_path / "whole.csv"  # whole numbers where the store holds floats: read as such
    whole.write_text("request_id,served_at,country,tier,predicted,amount\n"
                     "r4,2026-01-03T12:00:00Z,CH,free,a,3\n")
    monitor.log_prediction_files([whole])
    monitor.run(date(2026, 1, 3))  # the store's files agree: the run reads them


def test_labels_whose_values_are_never_among_the_predicted_classes_are_a_warning(
    monitor: Monitor,
) -> None:
    monitor.log_predictions([prediction(i, 1, "CH", str(i % 2)) for i in range(10)])
    report = monitor.log_labels([label(i, ["false", "true"][i % 2], 2) for i in range(10)])
    text = report.summary("labels")
    assert report.disjoint == (("false", "true"), ("0", "1"))
    assert "labels say 'false', 'true'" in text and "predictions say '0', '1'" in text
    fine = monitor.log_labels([label(i, str(i % 2), 3) for i in range(10)])
    assert fine.disjoint is None and "say" not in fine.summary("labels")


def test_historic_labels_without_an_arrival_column_are_no_orphans_and_say_what_to_map(
    make_config: Callable[..., Config],
) -> None:
    columns = {k: v for k, v in COLUMNS.items() if k != "label_timestamp"}
    clock = datetime(2026, 3, 1, tzinfo=UTC)  # two months after the predictions
    with Monitor(make_config(columns=columns), clock=lambda: clock) as monitor:
        monitor.log_predictions([prediction(i, 1 + i % 14, "CH", "a") for i in range(56)])
        report = monitor.log_labels([{"request_id": f"r{i}", "actual": "a"}
                                     for i in range(56)])
    assert (report.stored, report.orphans) == (56, 0)
    text = report.summary("labels")
    assert "orphan" not in text
    assert "columns.label_timestamp is not mapped" in text
    assert "56 are for predictions made before" in text and "2026-01-01" in text


def test_labels_without_an_arrival_column_for_recent_predictions_need_no_note(
    make_config: Callable[..., Config],
) -> None:
    columns = {k: v for k, v in COLUMNS.items() if k != "label_timestamp"}
    clock = datetime(2026, 1, 15, tzinfo=UTC)
    with Monitor(make_config(columns=columns), clock=lambda: clock) as monitor:
        monitor.log_predictions([prediction(i, 1 + i % 14, "CH", "a") for i in range(56)])
        report = monitor.log_labels([{"request_id": f"r{i}", "actual": "a"}
                                     for i in range(56)])
    assert report.orphans == 0 and "label_timestamp" not in report.summary("labels")
