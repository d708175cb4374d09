from __future__ import annotations

from dataclasses import replace
from datetime import date

from hindsight.alerts.lifecycle import advance
from hindsight.alerts.model import Alert
from hindsight.alerts.rules import RuleResult

DAY = date(2026, 1, 10)
CH = '{"country":"CH"}'


def alert(day: date = DAY) -> Alert:
    return Alert(date=day, kind="performance", segment={"country": "CH"}, metric="accuracy",
                 value=0.7, reference=0.94, n=200, message="CH dropped", window_start=day,
                 window_end=day)


def result(*alerts: Alert, tested: set[str] | None = None,
           failing: set[str] | None = None) -> RuleResult:
    """A rule result where every tested segment that is not failing is healthy."""
    tested_set, failing_set = frozenset(tested or set()), frozenset(failing or set())
    return RuleResult(alerts, tested_set, failing_set, tested_set - failing_set, 0)


def test_a_new_condition_is_opened_then_ongoing_with_a_stable_key() -> None:
    first = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    assert [(a.state, a.opened_on) for a in first] == [("opened", DAY)]
    nxt = date(2026, 1, 11)
    second = advance(first, result(alert(nxt), tested={CH}, failing={CH}), nxt)
    assert [(a.state, a.opened_on) for a in second] == [("ongoing", DAY)]
    assert first[0].key == second[0].key


def test_an_alert_resolves_after_consecutive_runs_that_test_it_and_find_it_fine() -> None:
    rows = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    states = []
    for day in (11, 12, 13):
        rows = advance(rows, result(tested={CH}), date(2026, 1, day), resolve_after=3)
        states.append((rows[0].state, rows[0].passing_runs))
    assert states == [("ongoing", 1), ("ongoing", 2), ("resolved", 0)]
    assert rows[0].message.startswith("resolved:") and rows[0].date == date(2026, 1, 13)
    assert advance(rows, result(tested={CH}), date(2026, 1, 14)) == []


def test_a_failing_run_resets_the_count_towards_resolution() -> None:
    rows = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    rows = advance(rows, result(tested={CH}), date(2026, 1, 11), resolve_after=2)
    rows = advance(rows, result(alert(date(2026, 1, 12)), tested={CH}, failing={CH}),
                   date(2026, 1, 12), resolve_after=2)
    rows = advance(rows, result(tested={CH}), date(2026, 1, 13), resolve_after=2)
    assert (rows[0].state, rows[0].passing_runs, rows[0].opened_on) == ("ongoing", 1, DAY)


def test_an_untested_or_covered_segment_stays_open() -> None:
    opened = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    untested = advance(opened, result(tested=set()), date(2026, 1, 11))
    covered = advance(opened, result(tested={CH}, failing={CH}), date(2026, 1, 11))
    assert [a.state for a in untested] == [a.state for a in covered] == ["ongoing"]
    assert replace(untested[0], date=DAY, state="opened") == opened[0]


def test_a_tested_segment_that_is_not_clearly_healthy_keeps_the_alert_open() -> None:
    opened = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    borderline = RuleResult((), frozenset({CH}), frozenset(), frozenset(), 0)
    rows = advance(opened, borderline, date(2026, 1, 11), resolve_after=1)
    assert (rows[0].state, rows[0].passing_runs) == ("ongoing", 0)


def test_an_untested_alert_goes_stale_then_resolves_once_its_evidence_left_the_window() -> None:
    rows = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    states = []
    for day, first in ((11, date(2026, 1, 5)), (12, date(2026, 1, 10)),
                       (13, date(2026, 1, 11))):
        rows = advance(rows, result(tested=set()), date(2026, 1, day), window_start=first)
        states.append(rows[0].state)
    assert states == ["stale", "stale", "resolved"]
    assert rows[0].message.startswith("resolved: no longer tested")
    assert "left the window" in rows[0].message and rows[0].message.endswith("CH dropped")
    assert advance(rows, result(tested=set()), date(2026, 1, 14),
                   window_start=date(2026, 1, 12)) == []


def test_a_stale_alert_tested_again_counts_towards_resolution_from_zero() -> None:
    rows = advance([], result(alert(), tested={CH}, failing={CH}), DAY)
    rows = advance(rows, result(tested={CH}), date(2026, 1, 11), window_start=DAY)
    rows = advance(rows, result(tested=set()), date(2026, 1, 12), window_start=DAY)
    assert (rows[0].state, rows[0].passing_runs) == ("stale", 0)
    rows = advance(rows, result(tested={CH}), date(2026, 1, 13), window_start=DAY)
    assert (rows[0].state, rows[0].passing_runs) == ("ongoing", 1)
