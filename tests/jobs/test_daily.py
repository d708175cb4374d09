from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.conftest import COLUMNS, label, log_simulation, prediction


def seed_collapse(monitor: Monitor) -> None:
    """Segment CH is right 19 of 20 times on days 1-7, then 10 of 20."""
    i = 0
    for day in range(1, 15):
        rows, labels = [], []
        for country in ("CH", "DE"):
            for k in range(40):
                i += 1
                wrong = k < (2 if day <= 7 or country == "DE" else 20)
                rows.append(prediction(i, day, country, "a"))
                labels.append(label(i, "b" if wrong else "a", day + 1))
        monitor.log_predictions(rows)
        monitor.log_labels(labels)


def test_a_run_writes_its_metrics_and_alerts_partitions(monitor: Monitor) -> None:
    seed_collapse(monitor)
    summary = monitor.run(date(2026, 1, 15))
    assert monitor.store.partitions(Table.METRICS) == [date(2026, 1, 15)]
    assert monitor.store.partitions(Table.ALERTS) == [date(2026, 1, 15)]
    flagged = [a.segment for a in summary.alerts]
    assert {"country": "CH"} in flagged
    assert all(segment.get("country") != "DE" for segment in flagged)
    assert summary.overall == pytest.approx((7 * 38 + 7 * 20 + 14 * 38) / (14 * 80))


def test_rerunning_a_date_after_later_labels_replays_the_same_result(monitor: Monitor) -> None:
    seed_collapse(monitor)
    first = monitor.run(date(2026, 1, 10))
    _, metrics_before = monitor.metrics(date(2026, 1, 9), date(2026, 1, 10))
    monitor.log_labels([label(1, "b", 20)])  # a correction arriving later
    again = monitor.run(date(2026, 1, 10))
    _, metrics_after = monitor.metrics(date(2026, 1, 9), date(2026, 1, 10))
    assert replace(first, seconds=0) == replace(again, seconds=0)
    assert metrics_before == metrics_after


def test_backfill_runs_each_date_as_of_itself_and_alerts_after_onset(monitor: Monitor) -> None:
    seed_collapse(monitor)
    runs = monitor.backfill(date(2026, 1, 1), date(2026, 1, 15))
    assert [r.as_of for r in runs] == [date(2026, 1, d) for d in range(1, 16)]
    fired = sorted({a.date for a in monitor.alerts()})
    assert fired and fired[0] > date(2026, 1, 8)  # labels of day 8 arrive on day 9
    assert monitor.alerts(start=date(2026, 1, 15)) == list(runs[-1].alerts)


def test_metrics_can_be_filtered_to_a_segment_and_its_crosses(monitor: Monitor) -> None:
    seed_collapse(monitor)
    monitor.run(date(2026, 1, 15))
    as_of, rows = monitor.metrics(date(2026, 1, 10), segment={"country": "CH"})
    assert as_of == date(2026, 1, 15)
    assert {tuple(sorted(r.segment)) for r in rows} == {("country",), ("country", "tier")}
    accuracy = next(r for r in rows if r.metric == "accuracy" and len(r.segment) == 1)
    assert (accuracy.value, accuracy.n_labelled) == (0.5, 40)


def test_a_backfill_sharing_the_reference_equals_each_day_run_from_scratch(
    tmp_path: Path,
) -> None:
    """The backfill derives the reference's rows, calibration, counts and detectors once;
    every result must equal a run of that day by a fresh monitor (which derives them anew)."""
    import shutil

    from hindsight.config import parse_config
    from hindsight.simulate import Scenario, demo_config
    from hindsight.store.partitions import Table

    scenario = Scenario(per_day=1_500, days=12, failure_start=5, failure_cell_per_day=150,
                        failure_accuracy=0.3, reference_rows=3_000, seed=31)
    raw = {**demo_config(str(tmp_path / "shared")), "label_window_days": 6, "min_samples": 20,
           "alerts": {"baseline_days": 2}, "drift": {"min_samples": 200}}
    shared = log_simulation(Monitor(parse_config(raw)), scenario)
    shutil.copytree(tmp_path / "shared", tmp_path / "scratch")
    start = scenario.start + timedelta(days=3)
    shared.backfill(start, scenario.end)
    for offset in range((scenario.end - start).days + 1):
        with Monitor(parse_config({**raw, "store": str(tmp_path / "scratch")})) as fresh:
            fresh.run(start + timedelta(days=offset))
    with Monitor(parse_config({**raw, "store": str(tmp_path / "scratch")})) as scratch:
        for table in (Table.METRICS, Table.ALERTS, Table.DRIFT):
            for day in shared.store.partitions(table):
                [a] = shared.store.files(table, day, day)
                [b] = scratch.store.files(table, day, day)
                _same(shared.store.read(a.path), scratch.store.read(b.path), f"{table} {day}")
        assert any(a.kind == "prediction_drift" for a in scratch.alerts()) or any(
            a.kind == "performance" for a in scratch.alerts())
    shared.close()


def test_the_drift_is_measured_beside_a_count_of_the_change_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run counting its window anew measures the drift after the count (the count takes
    both cores and the run's peak memory); one counting only the change from the day before's
    counts measures it beside, on an engine of its own. Both store the same drift."""
    import threading

    import pyarrow as pa

    from hindsight.config import parse_config
    from hindsight.jobs import daily
    from hindsight.simulate import Scenario, demo_config

    scenario = Scenario(per_day=1_500, days=8, failure_start=None, reference_rows=3_000,
                        seed=5)
    raw = {**demo_config(str(tmp_path / "store")), "label_window_days": 4,
           "alerts": {"baseline_days": 2}, "drift": {"min_samples": 200}}
    log_simulation(Monitor(parse_config(raw)), scenario).close()
    measured = daily._drift
    beside: list[bool] = []
    monkeypatch.setattr(daily, "_drift", lambda *a: beside.append(
        threading.current_thread() is not threading.main_thread()) or measured(*a))

    def drift_of(day: date) -> pa.Table:
        with Monitor(parse_config(raw)) as monitor:  # a process of its own
            monitor.run(day)
            [found] = monitor.store.files(Table.DRIFT, day, day)
            return monitor.store.read(found.path)

    last = scenario.end
    drift_of(last - timedelta(days=1))  # nothing carried: counted anew
    carried = drift_of(last)  # from the counts the run before carried
    assert beside == [False, True] and carried.num_rows > 0
    shutil.rmtree(tmp_path / "store" / "counts")
    assert drift_of(last) == carried and beside[-1] is False


def _same(a: object, b: object, what: str) -> None:
    """Equal tables; floats within 1e-12 (DuckDB sums floats in parallel, in no fixed order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    assert isinstance(a, pa.Table) and isinstance(b, pa.Table)
    assert a.schema == b.schema and a.num_rows == b.num_rows, what
    for name in a.column_names:
        if pa.types.is_floating(a.schema.field(name).type):
            gap = pc.max(pc.abs(pc.subtract(pc.fill_null(a[name], 0.0),
                                            pc.fill_null(b[name], 0.0)))).as_py()
            assert (gap or 0.0) <= 1e-12, (what, name, gap)
            assert pc.is_null(a[name]).equals(pc.is_null(b[name])), (what, name)
        else:
            assert a[name].equals(b[name]), (what, name)


def test_a_backfill_stops_at_the_day_it_cannot_count_with_the_days_before_stored(
    monitor: Monitor,
) -> None:
    """The next day is counted while this one is judged: a day that cannot be counted fails
    the backfill when its turn comes, after every day before it is stored, as in order."""
    from hindsight.errors import StoreError

    seed_collapse(monitor)
    [broken] = monitor.store.files(Table.PREDICTIONS, date(2026, 1, 12), date(2026, 1, 12))
    Path(broken.path).write_bytes(b"not parquet")
    done: list[date] = []
    with pytest.raises(StoreError, match="dt=2026-01-12"):
        monitor.backfill(date(2026, 1, 3), date(2026, 1, 14), progress=lambda s: done.append(
            s.as_of))
    assert done == [date(2026, 1, d) for d in range(3, 12)]
    assert monitor.store.partitions(Table.RUNS)[-1] == date(2026, 1, 11)


def test_an_alert_no_longer_tested_goes_stale_then_resolves_when_its_evidence_left_the_window(
    make_config: Callable[..., Config],
) -> None:
    with Monitor(make_config(label_window_days=5,
                             alerts={"baseline_days": 2})) as monitor:
        monitor.log_reference([{**prediction(-k - 1000 * c, 1, country, "a"),
                                "actual": "b" if k % 20 == 0 else "a"}
                               for k in range(1, 401) for c, country in enumerate(("CH", "DE"))])
        seed_collapse(monitor)  # predictions end on day 14
        monitor.backfill(date(2026, 1, 1), date(2026, 1, 31))
        ch = [a for a in monitor.alerts() if a.kind == "performance"
              and a.segment == {"country": "CH"}]
    assert ch and ch[0].state == "opened"
    states = [a.state for a in ch]
    assert "stale" in states and states[-1] == "resolved"
    assert states.index("stale") < len(states) - 1
    assert "no longer tested" in ch[-1].message
    assert ch[-1].date <= date(2026, 1, 14 + 5 + 2)


def test_a_reference_without_timestamps_or_versions_is_all_a_run_and_a_gate_need(
    make_config: Callable[..., Config],
) -> None:
    columns = {**COLUMNS, "model_version": "version", "score": "confidence"}
    with Monitor(make_config(columns=columns)) as monitor:
        reference = [{"request_id": f"v{k}-{c}", "country": country, "tier": "free",
                      "predicted": "a", "actual": "b" if k % 20 == 0 else "a",
                      "confidence": 0.9, "amount": float(k)}
                     for k in range(400) for c, country in enumerate(("CH", "DE"))]
        assert monitor.log_reference(reference).stored == 800
        i = 0
        for day in range(1, 15):
            rows = []
            for country in ("CH", "DE"):
                for _ in range(40):
                    i += 1
                    rows.append({**prediction(i, day, country, "a"), "version": "v1",
                                 "confidence": 0.9})
            monitor.log_predictions(rows)
        summary = monitor.run(date(2026, 1, 14))
        drifted = monitor.drift(date(2026, 1, 14), date(2026, 1, 14))
        gate = monitor.validate([{"request_id": r["request_id"], "predicted": "a"}
                                 for r in reference])
    assert summary.cells > 0 and {d.feature for d in drifted} == {"amount"}
    assert gate.agreement == 1.0


def _low_volume(tmp_path: Path, **drift: object) -> Monitor:
    """A model of 500 predictions a day, with the default drift.min_samples (1,000)."""
    from hindsight.config import parse_config
    from hindsight.simulate import Scenario, demo_config

    scenario = Scenario(per_day=500, days=6, failure_start=None, reference_rows=3_000, seed=3)
    raw = {**demo_config(str(tmp_path / "store")), "label_window_days": 4,
           "alerts": {"baseline_days": 2}, "drift": dict(drift)}
    return log_simulation(Monitor(parse_config(raw)), scenario)


def test_a_day_under_drift_min_samples_widens_the_drift_window_and_says_so(
    tmp_path: Path,
) -> None:
    with _low_volume(tmp_path) as monitor:
        summary = monitor.run(date(2026, 10, 6))
        [found] = monitor.store.files(Table.DRIFT, date(2026, 10, 6), date(2026, 10, 6))
        rows = monitor.store.read(found.path).to_pylist()
    whole = [r for r in rows if r["kind"] == "prediction" and r["segment"] == "{}"]
    assert whole and whole[0]["n"] >= 1_000
    [note] = [n for n in summary.notes if "prediction drift" in n]
    assert "over 2 days (2026-10-05..2026-10-06" in note
    assert "drift.min_samples to at most" in note


def test_a_drift_window_that_may_not_widen_says_why_nothing_was_computed_and_what_to_set(
    tmp_path: Path,
) -> None:
    with _low_volume(tmp_path, max_window_days=1) as monitor:
        summary = monitor.run(date(2026, 10, 6))
        [found] = monitor.store.files(Table.DRIFT, date(2026, 10, 6), date(2026, 10, 6))
        rows = monitor.store.read(found.path).to_pylist()
    assert not [r for r in rows if r["kind"] == "prediction"]
    [note] = [n for n in summary.notes if "prediction drift" in n]
    assert note.startswith("prediction drift not computed: ")
    assert "fewer than drift.min_samples (1,000); set drift.min_samples to at most" in note
    assert "or drift.max_window_days to at least 2" in note


def test_the_run_counts_skipped_segments_by_reason_in_its_summary_and_its_row(
    make_config: Callable[..., Config],
) -> None:
    # 40 labelled rows a day per country, 80 in all: only the population reaches 60 a day
    monitor = Monitor(make_config(min_samples=60, alerts={"pool_days": 1}))
    seed_collapse(monitor)
    summary = monitor.run(date(2026, 1, 15))
    monitor.close()
    assert summary.skipped_by == {"too few labels": summary.segments_skipped}
    assert summary.segments_skipped > 0
    [found] = monitor.store.files(Table.RUNS, date(2026, 1, 15), date(2026, 1, 15))
    [row] = monitor.store.read(found.path).to_pylist()
    assert (row["skipped_few_labels"] + row["skipped_no_reference"]
            + row["skipped_label_delay"]) == summary.segments_skipped
    assert row["skipped_few_labels"] == summary.skipped_by.get("too few labels", 0)


def test_labels_slower_than_the_window_are_named_with_the_window_that_would_work(
    tmp_path: Path,
) -> None:
    from hindsight.config import parse_config
    from hindsight.simulate import Scenario, demo_config

    scenario = Scenario(per_day=400, days=12, failure_start=None, reference_rows=1_000,
                        label_delay_median_days=8, label_delay_p95_days=20, seed=9)
    raw = {**demo_config(str(tmp_path / "store")), "label_window_days": 8,
           "alerts": {"baseline_days": 3}}
    with log_simulation(Monitor(parse_config(raw)), scenario) as monitor:
        summary = monitor.run(scenario.end)
    assert summary.segments_tested == 0
    assert summary.skipped_by == {"label delay beyond the window": summary.segments_skipped}
    [note] = [n for n in summary.notes if "label_window_days" in n]
    assert "set label_window_days to" in note


def test_a_segment_column_of_almost_unique_values_is_named(
    make_config: Callable[..., Config],
) -> None:
    with Monitor(make_config(segments=["country", "tier"])) as monitor:
        rows = [prediction(i, 5, "CH", "a", tier=f"t{i}") for i in range(200)]
        monitor.log_predictions(rows)
        summary = monitor.run(date(2026, 1, 5))
    [note] = [n for n in summary.notes if "segment column" in n]
    assert "'tier' has 200 distinct values in 200 predictions" in note
