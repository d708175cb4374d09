from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hindsight.engine.sql import ident
from hindsight.monitor import Monitor
from hindsight.store.partitions import PartitionFile, Store, Table
from tests.conftest import COLUMNS, label, prediction

DAY = date(2026, 1, 1)


def cells_by_segment(table: pa.Table) -> dict[str, dict[str, object]]:
    return {row["segment"]: row for row in table.to_pylist()}


def seed(monitor: Monitor) -> None:
    #  id country tier  predicted actual  (label arrives on day 2, except r4 on day 3)
    monitor.log_predictions([
        prediction(1, 1, "CH", "a", "free"), prediction(2, 1, "CH", "b", "pro"),
        prediction(3, 1, "DE", "a", "free"), prediction(4, 1, "DE", "a", "free"),
        prediction(5, 1, "DE", "b", "pro"),
    ])
    monitor.log_labels([label(1, "a", 2), label(2, "a", 2), label(3, "a", 2),
                        label(5, "b", 2), label(4, "b", 3)])


def test_cell_counts_match_a_hand_computed_example(monitor: Monitor) -> None:
    seed(monitor)
    counts = monitor.engine.cell_counts(date(2026, 1, 3), DAY, DAY)
    cells = cells_by_segment(counts.cells)
    assert {k: (v["n_predictions"], v["n_labelled"], v["n_correct"]) for k, v in cells.items()
            if k in ('{}', '{"country":"CH"}', '{"country":"DE","tier":"free"}')} == {
        "{}": (5, 5, 3),
        '{"country":"CH"}': (2, 2, 1),
        '{"country":"DE","tier":"free"}': (2, 2, 1),
    }
    # every segment value and every cross: 1 + 2 countries + 2 tiers + 4 crosses
    assert len(cells) == 9
    assert {json.loads(k).keys().__len__() for k in cells} == {0, 1, 2}


def test_a_label_arriving_the_next_day_is_invisible_to_the_run_of_today(
    monitor: Monitor,
) -> None:
    seed(monitor)
    as_of_2 = cells_by_segment(monitor.engine.cell_counts(date(2026, 1, 2), DAY, DAY).cells)
    as_of_3 = cells_by_segment(monitor.engine.cell_counts(date(2026, 1, 3), DAY, DAY).cells)
    assert as_of_2["{}"]["n_labelled"] == 4
    assert as_of_3["{}"]["n_labelled"] == 5


def test_the_latest_label_per_id_wins_as_of_each_date(monitor: Monitor) -> None:
    seed(monitor)
    monitor.log_labels([label(2, "b", 4)])  # r2 corrected to match its prediction on day 4
    before = cells_by_segment(monitor.engine.cell_counts(date(2026, 1, 3), DAY, DAY).cells)
    after = cells_by_segment(monitor.engine.cell_counts(date(2026, 1, 4), DAY, DAY).cells)
    assert (before["{}"]["n_correct"], after["{}"]["n_correct"]) == (3, 4)


def test_per_class_counts_for_macro_f1(monitor: Monitor) -> None:
    seed(monitor)
    classes = monitor.engine.cell_counts(date(2026, 1, 3), DAY, DAY).classes
    assert classes is not None
    overall = {r["class"]: (r["tp"], r["n_predicted"], r["n_true"])
               for r in classes.to_pylist() if r["segment"] == "{}"}
    assert overall == {"a": (2, 3, 3), "b": (1, 2, 2)}


def test_the_label_free_estimate_counts_only_predictions_that_carry_a_score(
    make_config: Any,
) -> None:
    """A score is optional: a prediction without one is not scored, nor credited with the top
    step's probability. Each scored one counts its step's probability (numpy's searchsorted
    over the same steps is the oracle), on every edge and in between."""
    import numpy as np

    config = make_config(columns={**COLUMNS, "score": "confidence"})
    calibration = pa.table({"lower": [-np.inf, 0.4, 0.7, 0.9],
                            "probability": [0.31, 0.55, 0.8, 0.97]})
    scores = [None, 0.0, 0.39, 0.4, 0.5, None, 0.7, 0.89, 0.9, 1.0, None]
    with Monitor(config) as monitor:
        monitor.log_predictions([
            {**prediction(i, 1, "CH" if i % 2 else "DE", "a"), "confidence": score}
            for i, score in enumerate(scores)])
        cells = cells_by_segment(monitor.engine.cell_counts(DAY, DAY, DAY, calibration).cells)
    for segment, rows in (("{}", range(len(scores))),
                          ('{"country":"CH"}', range(1, len(scores), 2))):
        given = np.array([s for i, s in enumerate(scores) if i in rows and s is not None])
        steps = np.searchsorted(calibration["lower"].to_numpy()[1:], given, side="right")
        expected = calibration["probability"].to_numpy()[steps].sum()
        assert cells[segment]["n_scored"] == given.size, segment
        assert cells[segment]["expected_correct"] == pytest.approx(expected, abs=1e-12), segment


def test_column_names_with_quotes_are_quoted_not_injected(make_config: object) -> None:
    columns = {"id": 'id"; DROP TABLE x; --', "timestamp": "t", "prediction": "p",
               "label": "y"}
    config = make_config(columns=columns, segments=["it's"])  # type: ignore[operator]
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as m:
        m.log_predictions([{'id"; DROP TABLE x; --': "1", "t": "2026-01-01T00:00:00",
                            "p": "a", "it's": "x"}])
        m.log_labels([{'id"; DROP TABLE x; --': "1", "y": "a"}])
        cells = cells_by_segment(m.engine.cell_counts(date(2026, 3, 1), DAY, DAY).cells)
    assert cells['{"it\'s":"x"}']["n_correct"] == 1
    assert ident('a"b') == '"a""b"'


def test_no_predictions_in_the_window_gives_empty_counts(monitor: Monitor) -> None:
    counts = monitor.engine.cell_counts(DAY, DAY, DAY)
    assert counts.cells.num_rows == 0


def test_labels_are_read_from_the_window_and_a_day_before_it_only(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's label scan follows its window, not the store's age: a label stamped a day
    before its prediction's day (a clock a little off) is joined; one stamped two days before
    is not. Each table is listed once, for the window and the one a day before it (whose
    counts a daily run may start from), and the partitions before that never."""
    monitor.log_predictions([prediction(1, 10, "CH", "a"), prediction(2, 10, "CH", "a"),
                             prediction(3, 10, "CH", "a")])
    monitor.log_labels([label(1, "a", 8), label(2, "a", 9), label(3, "a", 11)])
    monitor.log_labels([label(9, "a", d) for d in range(1, 8)])  # older history, other ids
    listed: list[tuple[Table, date | None, date | None]] = []
    files = Store.files

    def spy(self: Store, table: Table, start: date | None = None,
            end: date | None = None) -> list[PartitionFile]:
        listed.append((table, start, end))
        return files(self, table, start, end)

    monkeypatch.setattr(Store, "files", spy)
    counts = monitor.engine.cell_counts(date(2026, 1, 12), date(2026, 1, 10),
                                        date(2026, 1, 10))
    whole = cells_by_segment(counts.cells)["{}"]
    assert (whole["n_predictions"], whole["n_labelled"]) == (3, 2)  # r1's label: too early
    assert listed == [(Table.PREDICTIONS, date(2026, 1, 9), date(2026, 1, 10)),
                      (Table.LABELS, date(2026, 1, 8), date(2026, 1, 12))]


def test_a_day_counted_from_the_day_before_lists_each_table_once(
    monitor: Monitor, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The change path cuts both days' files from one listing of each table: on a bucket each
    listing is a request (and a page per thousand keys)."""
    for day in range(1, 6):
        monitor.log_predictions([prediction(10 * day + k, day, "CH", "a") for k in range(3)])
        monitor.log_labels([label(10 * day + k, "a", day + 1) for k in range(2)])
    engine = monitor.engine
    engine.cell_counts(date(2026, 1, 4), DAY, date(2026, 1, 4))
    listed: list[Table] = []
    files, change = Store.files, type(engine)._count_change
    changes: list[object] = []

    def spy(self: Store, table: Table, start: date | None = None,
            end: date | None = None) -> list[PartitionFile]:
        listed.append(table)
        return files(self, table, start, end)

    monkeypatch.setattr(Store, "files", spy)
    monkeypatch.setattr(type(engine), "_count_change",
                        lambda self, *a: changes.append(a) or change(self, *a))
    counts = engine.cell_counts(date(2026, 1, 5), date(2026, 1, 2), date(2026, 1, 5))
    assert changes and sorted(listed) == [Table.LABELS, Table.PREDICTIONS]
    # days 2-5: 3 predictions a day, 2 labelled by the next day (day 5's not yet)
    whole = counts.cells.filter(pc.equal(counts.cells["segment"], "{}"))
    assert sum(whole["n_labelled"].to_pylist()) == 6


@pytest.mark.parametrize("carried", [False, True], ids=["one-engine", "carried"])
def test_a_window_counted_from_the_day_before_equals_one_counted_from_scratch(
    make_config: Any, monkeypatch: pytest.MonkeyPatch, carried: bool,
) -> None:
    """Day after day each window is counted from the one before (only what a day's labels
    changed, and the two edge days): by one engine, or (``carried``) by a new engine each day
    starting from what the day before's stored, as separate processes do. A fresh engine
    with nothing carried counts it anew. The tables must be identical — not close: labels
    corrected later, labels stamped days before their prediction (which fall out of reach as
    the window moves), labels that never come, a prediction logged late into a day already
    counted, and a compaction on the way (with its replaced files already deleted)."""
    import random

    from hindsight.engine.duck import DuckDBEngine

    config = make_config(columns={**COLUMNS, "score": "confidence"}, label_window_days=5,
                         alerts={"baseline_days": 2})
    calibration = pa.table({"lower": [0.0, 0.4, 0.7, 0.9],
                            "probability": [0.31, 0.55, 0.8, 0.97]})
    draw = random.Random(7)
    rows, labels = [], []
    for i in range(1, 1_200):
        day = draw.randint(1, 14)
        row = prediction(i, day, draw.choice(["CH", "DE", "FR"]), draw.choice("abc"),
                         draw.choice(["free", "pro"]), hour=draw.randint(0, 23))
        rows.append({**row, "confidence": draw.random()})
        delay = draw.choice([-3, -1, 0, 0, 1, 1, 2, 3, 4, 6, 9, None])
        if delay is not None and 1 <= day + delay <= 16:
            labels.append(label(i, draw.choice("abc"), day + delay, hour=draw.randint(0, 23)))
            if draw.random() < 0.2 and day + delay + 2 <= 16:  # a correction, later
                labels.append(label(i, draw.choice("abc"), day + delay + 2))
    with Monitor(config) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        changes = []
        original = DuckDBEngine._count_change
        monkeypatch.setattr(DuckDBEngine, "_count_change",
                            lambda self, *a: changes.append(a) or original(self, *a))
        carried_dir = Path(monitor.store.table_dir(Table.COUNTS))
        engine = DuckDBEngine(monitor.store, config)
        for as_of in range(3, 17):
            if as_of == 9:  # a late prediction for a day the window already counted
                monitor.log_predictions([{**prediction(5_000, 7, "CH", "a"), "confidence": 0.5}])
                monitor.log_labels([label(5_000, "a", 9)])
            if as_of == 12:
                monitor.compact(grace=timedelta(0))
                monitor.compact(grace=timedelta(0))  # deletes the files the first replaced
            day = date(2026, 1, as_of)
            first = day - timedelta(days=4)
            if carried:
                engine.close()
                engine = DuckDBEngine(monitor.store, config)
            kept = engine.cell_counts(day, first, day, calibration)
            if carried:
                engine.carry_counts()
                assert len(list(carried_dir.iterdir())) <= 3  # only the newest days' stay
            aside = carried_dir.rename(carried_dir.with_name("aside")) if carried else None
            fresh = DuckDBEngine(monitor.store, config)
            scratch = fresh.cell_counts(day, first, day, calibration)
            fresh.close()
            if aside is not None:
                aside.rename(carried_dir)
            assert kept.cells.num_rows > 0
            for name in ("cells", "classes", "label_ages"):
                assert getattr(kept, name).equals(getattr(scratch, name)), (day, name)
        engine.close()
    # from scratch on the first day and after the late prediction; a compaction moves rows
    # between files without changing them, so the day after it counts from the day before's
    assert len(changes) == 14 - 2


def test_counts_carried_by_a_run_are_used_only_where_they_fit(
    make_config: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run stores its window's counts; the next day's run in another process starts from
    them. Counts of another configuration, or a manifest or table that is damaged or gone,
    are not used: that run counts from scratch, with the same result, and says nothing."""
    from hindsight.engine.duck import COUNTS_MANIFEST, DuckDBEngine

    window = {"label_window_days": 5, "alerts": {"baseline_days": 2}}
    config = make_config(**window)
    with Monitor(config) as monitor:
        monitor.log_predictions([prediction(i, 1 + i % 9, ["CH", "DE"][i % 2], "ab"[i % 3 % 2])
                                 for i in range(300)])
        monitor.log_labels([label(i, "ab"[i % 5 % 2], 2 + i % 9) for i in range(0, 300, 2)])
        store = monitor.store
    changes: list[object] = []
    original = DuckDBEngine._count_change
    monkeypatch.setattr(DuckDBEngine, "_count_change",
                        lambda self, *a: changes.append(a) or original(self, *a))

    def run(day: int, config: Any = config) -> Any:
        with Monitor(config) as monitor:  # a process of its own
            monitor.run(date(2026, 1, day))
            return monitor.store.read(
                monitor.store.files(Table.METRICS, date(2026, 1, day))[0].path)

    def scratch(day: int, config: Any = config) -> Any:
        counts = Path(store.table_dir(Table.COUNTS))
        aside = counts.rename(counts.with_name("aside"))
        try:
            return run(day, config)
        finally:
            shutil.rmtree(counts, ignore_errors=True)
            aside.rename(counts)

    run(5)
    assert (run(6), len(changes)) == (scratch(6), 1)  # from day 5's counts
    other = make_config(**window, segments=["tier", "country"])
    assert (run(7, other), len(changes)) == (scratch(7, other), 1)  # another configuration
    manifest = Path(store.partition_dir(Table.COUNTS, date(2026, 1, 7))) / COUNTS_MANIFEST
    manifest.write_text(manifest.read_text()[:-9])
    assert (run(8, other), len(changes)) == (scratch(8, other), 1)
    (cells,) = Path(store.table_dir(Table.COUNTS)).glob("dt=2026-01-08/*-cells.parquet")
    cells.unlink()
    assert (run(9, other), len(changes)) == (scratch(9, other), 1)
    assert (run(10, other), len(changes)) == (scratch(10, other), 2)  # day 9's fit again


@pytest.mark.parametrize("carried", [False, True], ids=["one-engine", "carried"])
def test_version_history_reads_each_file_once_and_equals_a_count_of_the_rows(
    make_config: Any, monkeypatch: pytest.MonkeyPatch, carried: bool,
) -> None:
    """One engine asked day after day (a backfill, the service's checks) reads only the files
    new since it last asked, and still answers what the rows say: first and last seen, the
    day's and all predictions per value, from ``since`` to the end of the day — with a
    prediction logged late into a past day, a value missing on some rows, a second version
    column and a compaction on the way. ``carried``: each day a run in a process of its own
    counts and carries (summing the files new since the day before's run carried its sums),
    and another engine then answers without reading a file."""
    import random

    from hindsight.engine.duck import DuckDBEngine

    config = make_config(columns={**COLUMNS, "model_version": "version",
                                  "provider_model": "llm"}, versions={"memory_days": 3})
    draw = random.Random(3)
    logged: list[dict[str, Any]] = []
    read: list[list[str]] = []
    query = DuckDBEngine._query

    def spy(self: DuckDBEngine, sql: str, **params: Any) -> pa.Table:
        if "files" in params and "filename" in sql:
            read.append(list(params["files"]))
        return query(self, sql, **params)

    monkeypatch.setattr(DuckDBEngine, "_query", spy)

    def expected(as_of: int, since: int) -> list[tuple[str, str, datetime, datetime, int, int]]:
        found: dict[tuple[str, str], list[Any]] = {}
        for row in logged:
            day = int(row["served_at"][8:10])
            if not since <= day <= as_of:
                continue
            at = datetime.fromisoformat(row["served_at"])
            for column in ("version", "llm"):
                if row[column] is None:
                    continue
                seen = found.setdefault((column, row[column]), [at, at, 0, 0])
                seen[0], seen[1] = min(seen[0], at), max(seen[1], at)
                seen[2] += day == as_of
                seen[3] += 1
        return [(c, v, *seen) for (c, v), seen in sorted(found.items())]

    with Monitor(config) as monitor:
        engine = monitor.engine
        for day in range(1, 9):
            batch = [{**prediction(100 * day + k, day, "CH", "a", hour=draw.randint(0, 23)),
                      "version": draw.choice(["v1", "v2", None] if day > 3 else ["v1"]),
                      "llm": draw.choice(["gpt-x-2026-01-01", "gpt-x"])} for k in range(6)]
            monitor.log_predictions(batch)
            logged += batch
            if day == 5:  # late into day 4, which earlier answers read
                late = {**prediction(999, 4, "DE", "b"), "version": "v0", "llm": "gpt-x"}
                monitor.log_predictions([late])
                logged.append(late)
            if day == 7:
                monitor.compact(grace=timedelta(0))
                monitor.compact(grace=timedelta(0))
            read.clear()
            since = max(day - 3, 1)
            if carried:
                run = DuckDBEngine(monitor.store, config)
                run.cell_counts(date(2026, 1, day), date(2026, 1, since), date(2026, 1, day))
                run.carry_counts()
                run.close()
                summed = list(read)
                engine = DuckDBEngine(monitor.store, config)
            history = engine.version_history(date(2026, 1, day), ["version", "llm"],
                                             since=date(2026, 1, since))
            if carried:
                engine.close()
                assert read == summed, day  # the run's sums, carried: no file read again
            got = list(zip(*(history[c].to_pylist() for c in history.column_names),
                           strict=True))
            assert got == expected(day, since), day
            listed = {f.path for f in monitor.store.files(Table.PREDICTIONS,
                                                          date(2026, 1, since),
                                                          date(2026, 1, day))}
            new = {f.path for f in monitor.store.files(Table.PREDICTIONS, date(2026, 1, day),
                                                       date(2026, 1, day))}
            if day in (5, 7):  # and the late file, or the files the compaction wrote
                assert len(read) == 1 and new < set(read[0]) <= listed, day
            else:  # only the day's own file is read
                assert [set(r) for r in read] == [new], day


def test_version_history_reads_files_from_before_the_version_column_was_configured(
    make_config: Any,
) -> None:
    """Files stored before a version column was configured lack it. Read on their own (new
    files where a compaction merged old ones) they are read with the files that have it, as a
    whole window is, and count no version."""
    with Monitor(make_config()) as monitor:
        monitor.log_predictions([prediction(1, 1, "CH", "a")])
        monitor.log_predictions([prediction(2, 1, "CH", "a")])
    config = make_config(columns={**COLUMNS, "model_version": "version"})
    with Monitor(config) as monitor:
        monitor.log_predictions([{**prediction(3, 2, "CH", "a"), "version": "v1"}])
        first = monitor.engine.version_history(date(2026, 1, 2), ["version"])
        before = {f.path for f in monitor.store.files(Table.PREDICTIONS)}
        monitor.compact(grace=timedelta(0))
        monitor.compact(grace=timedelta(0))
        assert {f.path for f in monitor.store.files(Table.PREDICTIONS)} != before
        again = monitor.engine.version_history(date(2026, 1, 2), ["version"])
    assert first.num_rows == 1 and first["total"].to_pylist() == [1] and again.equals(first)
