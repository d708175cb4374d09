from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pytest

from hindsight.alerts.rules import DropRule, RuleResult, RunWindow

FIRST = date(2026, 1, 1)
WINDOW = RunWindow(as_of=FIRST + timedelta(days=20), first_day=FIRST)
Row = tuple[int | None, str, int, int, int]  # day offset, segment, labelled, correct, predicted


def rule(**changes: object) -> DropRule:
    settings: dict[str, object] = {"task": "classification", "min_samples": 100,
                                   "min_effect": 0.05, "alpha": 0.01,
                                   "baseline_days": 7}
    settings.update(changes)
    return DropRule(**settings)  # type: ignore[arg-type]


def cells(rows: list[Row], population: bool = True) -> pa.Table:
    """A cell table as the engine returns it; adds the population cell of each day."""
    if population:
        days = sorted({r[0] for r in rows if r[0] is not None})
        rows = rows + [(d, "{}", 10_000, 9_400, 10_000) for d in days]
    return pa.table({
        "day": pa.array([None if r[0] is None else FIRST + timedelta(days=r[0]) for r in rows],
                        pa.date32()),
        "segment": [r[1] for r in rows],
        "depth": [0 if r[1] == "{}" else 1 for r in rows],
        "n_predictions": [r[4] for r in rows],
        "n_labelled": [r[2] for r in rows],
        "n_correct": [r[3] for r in rows],
    })


def days_of(segment: str, n: int, accuracy: float, seed: int, drop_from: int | None = None,
            dropped: float = 0.71) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [(d, segment, n, int(rng.binomial(n, dropped if drop_from is not None
                                             and d >= drop_from else accuracy)), n)
            for d in range(21)]


def run(rows: list[Row], reference: pa.Table | None = None, **changes: object) -> RuleResult:
    return rule(**changes).evaluate(WINDOW, cells(rows), reference)


def test_a_collapsing_segment_alerts_on_its_latest_day_with_the_aggregate_beside_it() -> None:
    result = run(days_of('{"country":"CH"}', 250, 0.94, 1, drop_from=15))
    assert [a.segment for a in result.alerts] == [{"country": "CH"}]
    alert = result.alerts[0]
    assert alert.window_start == alert.window_end == FIRST + timedelta(days=20)
    assert alert.n == 250 and alert.value < 0.8 and alert.aggregate == 0.94
    assert "aggregate 94.0% on the same days" in alert.message
    assert result.tested == frozenset({'{"country":"CH"}', "{}"})


def test_healthy_noise_across_many_segments_raises_nothing() -> None:
    rows = [r for i in range(300) for r in days_of(f'{{"m":"m{i}"}}', 150, 0.94, seed=i)]
    result = run(rows)
    assert result.alerts == () and len(result.tested) == 301


def test_a_significant_but_small_drop_stays_quiet_under_min_effect() -> None:
    rows = days_of("{}", 50_000, 0.94, 2, drop_from=10, dropped=0.92)
    result = rule().evaluate(WINDOW, cells(rows, population=False), None)
    assert result.alerts == ()
    loose = rule(min_effect=0.01).evaluate(WINDOW, cells(rows, population=False), None)
    assert len(loose.alerts) == 1


def test_a_small_segment_pools_recent_days_and_says_which() -> None:
    result = run(days_of('{"tier":"gold"}', 30, 0.94, 3, drop_from=10, dropped=0.5))
    alert = result.alerts[0]
    assert (alert.window_start, alert.window_end) == (FIRST + timedelta(days=17),
                                                      FIRST + timedelta(days=20))
    assert alert.n == 120 and "(4 days pooled)" in alert.message


def test_a_segment_too_small_even_when_pooled_is_skipped_and_counted() -> None:
    result = run(days_of('{"tier":"tiny"}', 5, 0.94, 4, drop_from=7, dropped=0.0),
                 pool_days=14)
    assert result.alerts == () and result.skipped == 1


def test_days_with_immature_labels_are_not_tested() -> None:
    rows = days_of('{"country":"CH"}', 250, 0.94, 5)
    rows = [(d, s, n, int(n * 0.6), n) if d is not None and d >= 18 else (d, s, n, k, p)
            for d, s, n, k, p in rows]
    table = cells(rows)
    # the last three days: only 10% of the day's predictions are labelled yet
    immature = pa.array([r["segment"] == "{}" and r["day"] >= FIRST + timedelta(days=18)
                         for r in table.to_pylist()])
    table = table.set_column(3, "n_predictions", pa.array(np.where(
        immature.to_numpy(zero_copy_only=False), 100_000, table["n_predictions"].to_numpy())))
    assert rule().evaluate(WINDOW, table, None).alerts == ()
    assert len(rule(min_label_coverage=0.05).evaluate(WINDOW, table, None).alerts) == 1


def test_the_reference_set_is_used_when_it_has_enough_rows() -> None:
    rows: list[Row] = [(d, '{"country":"CH"}', 200, 140, 200) for d in range(21)]  # 70% always
    assert run(rows).alerts == ()  # the trailing baseline is itself broken
    reference = cells([(None, '{"country":"CH"}', 2000, 1880, 2000)], population=False)
    found = run(rows, reference).alerts
    assert len(found) == 1 and "reference set" in found[0].message
    assert found[0].reference == pytest.approx(0.94)


def test_the_most_specific_failing_segment_gets_the_alert() -> None:
    child = days_of('{"country":"CH","merchant":"restaurants"}', 250, 0.94, 6, drop_from=12)
    healthy_rest = days_of('{"country":"DE","merchant":"restaurants"}', 250, 0.94, 7)
    parent = [(d, '{"merchant":"restaurants"}', n1 + n2, k1 + k2, n1 + n2)
              for (d, _, n1, k1, _), (_, _, n2, k2, _) in zip(child, healthy_rest, strict=True)]
    result = run(child + healthy_rest + parent)
    assert [a.segment for a in result.alerts] == [{"country": "CH", "merchant": "restaurants"}]
    assert "Also explains: merchant=restaurants" in result.alerts[0].message
    assert '{"merchant":"restaurants"}' in result.failing


def test_a_broad_failure_alerts_on_the_broad_segment_not_each_part() -> None:
    parts = [days_of(f'{{"country":"CH","merchant":"m{i}"}}', 200, 0.94, 10 + i, drop_from=12)
             for i in range(3)]
    whole = [(d, '{"country":"CH"}', sum(p[d][2] for p in parts), sum(p[d][3] for p in parts),
              sum(p[d][2] for p in parts)) for d in range(21)]
    result = run([r for p in parts for r in p] + whole)
    assert [a.segment for a in result.alerts] == [{"country": "CH"}]


def test_regression_alerts_on_a_material_rise_in_mean_absolute_error() -> None:
    rng = np.random.default_rng(4)
    sums = []
    for d in range(21):
        errors = np.abs(rng.normal(0, 1.0 if d < 14 else 1.5, 300))
        sums.append((errors.sum(), (errors**2).sum()))
    table = pa.table({
        "day": pa.array([FIRST + timedelta(days=d) for d in range(21)], pa.date32()),
        "segment": ["{}"] * 21, "depth": [0] * 21, "n_predictions": [300] * 21,
        "n_labelled": [300] * 21, "sum_abs_error": [s[0] for s in sums],
        "sum_sq_error": [s[1] for s in sums],
    })
    found = rule(task="regression").evaluate(WINDOW, table, None).alerts
    assert len(found) == 1 and found[0].metric == "mae"


def test_young_days_flattered_by_early_approvals_are_corrected() -> None:
    # Days 0-15 healthy at 94%; days 16-20 really collapsed, but as their corrections are
    # still to come they show 88%. On mature days, approvals all came the same day and half
    # the corrections too, the other half after 10 days: early labels double the odds.
    rows: list[Row] = [(d, '{"country":"CH"}', 250, 235 if d < 16 else 220, 250)
                       for d in range(21)]
    # the population stays at 94%, which its young days show as 96.9%
    rows += [(d, "{}", 10_000, 9_400 if d < 16 else 9_690, 10_000) for d in range(21)]
    ages = pa.table({
        "day": pa.array([FIRST + timedelta(days=d) for d in range(7) for _ in range(2)],
                        pa.date32()),
        "age": [0, 10] * 7,
        "n_correct": [9400, 0] * 7,
        "n_wrong": [300, 300] * 7,
    })
    table = cells(rows, population=False)
    strict = rule(alpha=1e-6)
    assert strict.evaluate(WINDOW, table, None).alerts == ()
    found = strict.evaluate(WINDOW, table, None, label_ages=ages).alerts
    assert [a.segment for a in found] == [{"country": "CH"}]
    assert found[0].value == pytest.approx(220 / (220 + 2 * 30), rel=1e-6)
    assert found[0].n == 250 and "n=250 labelled" in found[0].message
    off = rule(alpha=1e-6, correct_label_delay=False)
    assert off.evaluate(WINDOW, table, None, label_ages=ages).alerts == ()


def test_a_reference_set_that_agrees_with_the_trailing_days_is_pooled_with_them() -> None:
    rows = days_of('{"country":"CH"}', 250, 0.94, 8, drop_from=15, dropped=0.85)
    reference = cells([(None, '{"country":"CH"}', 150, 141, 150)], population=False)
    found = run(rows, reference).alerts
    assert len(found) == 1
    assert "reference set + trailing days 2026-01-01..2026-01-07" in found[0].message


def test_an_alert_covering_many_segments_names_the_largest_and_keeps_them_all() -> None:
    sizes = [200, 260, 220, 300, 240, 210]
    parts = [days_of(f'{{"country":"CH","merchant":"m{i}"}}', n, 0.94, 20 + i, drop_from=12)
             for i, n in enumerate(sizes)]
    whole = [(d, '{"country":"CH"}', sum(p[d][2] for p in parts), sum(p[d][3] for p in parts),
              sum(p[d][2] for p in parts)) for d in range(21)]
    alert = run([r for p in parts for r in p] + whole).alerts[0]
    assert alert.segment == {"country": "CH"}
    assert len(alert.explains) == len(sizes)
    assert list(alert.explains[:3]) == ["country=CH × merchant=m3", "country=CH × merchant=m1",
                                       "country=CH × merchant=m4"]
    assert ("Also explains 6 failing segments, the largest: country=CH × merchant=m3; "
            "country=CH × merchant=m1; country=CH × merchant=m4 (all in the alert's details)"
            ) in alert.message
    assert "merchant=m0" not in alert.message


def test_skipped_segments_are_counted_by_reason_not_lumped_together() -> None:
    rows = (days_of('{"tier":"tiny"}', 5, 0.94, 4)  # too few labels, even pooled
            + [r for r in days_of('{"tier":"new"}', 200, 0.94, 5) if r[0] >= 10]  # no baseline
            + days_of('{"tier":"big"}', 200, 0.94, 6))
    result = run(rows, pool_days=14)
    assert result.skipped == 2
    assert result.skipped_by == {"too few labels": 1, "no reference": 1}


def test_segments_whose_labels_mature_only_beyond_the_window_are_skipped_for_label_delay(
) -> None:
    table = cells(days_of('{"country":"CH"}', 250, 0.94, 7))
    # the population's days after the trailing baseline are 10% labelled: never mature
    young = pa.array([r["segment"] == "{}" and r["day"] >= FIRST + timedelta(days=7)
                      for r in table.to_pylist()])
    table = table.set_column(3, "n_predictions", pa.array(np.where(
        young.to_numpy(zero_copy_only=False), 100_000, table["n_predictions"].to_numpy())))
    result = rule().evaluate(WINDOW, table, None)
    assert result.tested == frozenset()
    assert result.skipped_by == {"label delay beyond the window": 2}
