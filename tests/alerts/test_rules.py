from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from hindsight.alerts.rules import DropRule, RunWindow

FIRST = date(2026, 1, 1)
WINDOW = RunWindow(as_of=FIRST + timedelta(days=20), first_day=FIRST)


def rule(**changes: object) -> DropRule:
    settings: dict[str, object] = {"task": "classification", "min_samples": 100,
                                   "min_effect": 0.05, "false_discovery_rate": 0.01,
                                   "baseline_days": 7}
    settings.update(changes)
    return DropRule(**settings)  # type: ignore[arg-type]


def cells(rows: list[tuple[int | None, str, int, int]]) -> pa.Table:
    """(day offset, segment, n_labelled, n_correct) -> a cell table as the engine returns it."""
    return pa.table({
        "day": pa.array([None if d is None else FIRST + timedelta(days=d) for d, *_ in rows],
                        pa.date32()),
        "segment": [s for _, s, _, _ in rows],
        "depth": [0 if s == "{}" else 1 for _, s, _, _ in rows],
        "n_predictions": [n for _, _, n, _ in rows],
        "n_labelled": [n for _, _, n, _ in rows],
        "n_correct": [k for _, _, _, k in rows],
    })


def healthy_days(segment: str, n: int, accuracy: float, seed: int) -> list[
        tuple[int | None, str, int, int]]:
    rng = np.random.default_rng(seed)
    return [(d, segment, n, int(rng.binomial(n, accuracy))) for d in range(21)]


def test_a_collapsing_segment_alerts_once_naming_its_latest_failing_day() -> None:
    rows = healthy_days('{"country":"CH"}', 250, 0.94, 1)
    rows = [(d, s, n, int(n * 0.71)) if d is not None and d >= 15 else (d, s, n, k)
            for d, s, n, k in rows]
    found = rule().evaluate(WINDOW, cells(rows), None)
    assert len(found) == 1
    alert = found[0]
    assert alert.segment == {"country": "CH"}
    assert alert.window_end == FIRST + timedelta(days=20)
    assert alert.window_start == FIRST + timedelta(days=15)
    assert alert.value == int(250 * 0.71) / 250
    assert "trailing days" in alert.message and "6 of 14 tested days worse" in alert.message


def test_healthy_noise_across_many_segments_raises_nothing() -> None:
    rows = []
    for i in range(300):
        rows += healthy_days(f'{{"merchant":"m{i}"}}', 150, 0.94, seed=i)
    assert rule().evaluate(WINDOW, cells(rows), None) == []


def test_a_significant_but_small_drop_stays_quiet_under_min_effect() -> None:
    rows = healthy_days("{}", 50_000, 0.94, 2)
    rows = [(d, s, n, int(n * 0.92)) if d is not None and d >= 10 else (d, s, n, k)
            for d, s, n, k in rows]
    assert rule().evaluate(WINDOW, cells(rows), None) == []
    assert len(rule(min_effect=0.01).evaluate(WINDOW, cells(rows), None)) == 1


def test_cells_below_min_samples_are_never_tested() -> None:
    rows = healthy_days('{"country":"CH"}', 99, 0.94, 3)
    rows = [(d, s, n, 40) if d is not None and d >= 10 else (d, s, n, k) for d, s, n, k in rows]
    assert rule().evaluate(WINDOW, cells(rows), None) == []


def test_the_reference_set_is_used_when_it_has_enough_rows_and_tests_every_day() -> None:
    rows = [(d, '{"country":"CH"}', 200, 140) for d in range(21)]  # 70% all along
    # the trailing baseline is itself broken: nothing looks worse than it
    assert rule().evaluate(WINDOW, cells(rows), None) == []
    reference = cells([(None, '{"country":"CH"}', 2000, 1880)])
    found = rule().evaluate(WINDOW, cells(rows), reference)
    assert len(found) == 1 and "reference set" in found[0].message
    assert found[0].window_start == FIRST
    assert found[0].reference == 0.94


def test_regression_alerts_on_a_material_rise_in_mean_absolute_error() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for d in range(21):
        errors = np.abs(rng.normal(0, 1.0 if d < 14 else 1.5, 300))
        rows.append((FIRST + timedelta(days=d), errors.sum(), (errors**2).sum()))
    table = pa.table({
        "day": pa.array([r[0] for r in rows], pa.date32()), "segment": ["{}"] * 21,
        "depth": [0] * 21, "n_predictions": [300] * 21, "n_labelled": [300] * 21,
        "sum_abs_error": [r[1] for r in rows], "sum_sq_error": [r[2] for r in rows],
    })
    found = rule(task="regression").evaluate(WINDOW, table, None)
    assert len(found) == 1 and found[0].metric == "mae"
    assert found[0].window_start == FIRST + timedelta(days=14)
