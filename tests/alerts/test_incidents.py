from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hindsight.alerts.incidents import assign, pages
from hindsight.alerts.model import Alert, alerts_from_table, alerts_to_table
from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.service.views import overview
from tests.conftest import label, prediction

DAY = date(2026, 1, 9)
COUNTRIES = ("CH", "DE", "AT", "FR", "IT", "ES")


def alert(segment: dict[str, str], state: str = "opened", kind: str = "performance",
          **fields: Any) -> Alert:
    return Alert(date=fields.pop("date", DAY), kind=kind, segment=segment, metric="accuracy",
                 value=0.5, reference=0.95, n=40, message="dropped", window_start=DAY,
                 window_end=DAY,
                 state=state, opened_on=fields.pop("opened_on", DAY), **fields)


def seed_drops(monitor: Monitor, drops: dict[tuple[str, str], int | tuple[int, int]],
               days: int = 20) -> None:
    """Six countries × two tiers, 30 predictions a cell a day, one wrong in 30; a cell in
    ``drops`` is wrong half of the time from the given day on (to the second day given, if
    any). Labels arrive the next day."""
    i = 0
    for day in range(1, days + 1):
        rows, labels = [], []
        for country in COUNTRIES:
            for tier in ("free", "gold"):
                onset, end = _span(drops.get((country, tier)))
                for k in range(30):
                    i += 1
                    wrong = k < (15 if onset <= day <= end else 1)
                    rows.append(prediction(i, day, country, "a", tier))
                    labels.append(label(i, "b" if wrong else "a", day + 1))
        monitor.log_predictions(rows)
        monitor.log_labels(labels)


def _span(drop: int | tuple[int, int] | None) -> tuple[int, int]:
    if drop is None:
        return 10**6, 0
    return drop if isinstance(drop, tuple) else (drop, 10**6)


def run_days(monitor: Monitor, first: int, last: int) -> list[Alert]:
    found: list[Alert] = []
    for day in range(first, last + 1):
        found += monitor.run(date(2026, 1, day)).alerts
    return [a for a in found if a.kind == "performance"]


def opened_monitor(make_config: Callable[..., Config], **settings: Any) -> Monitor:
    config = make_config(label_window_days=14, **settings)
    return Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))


def test_alerts_that_open_together_and_overlap_are_one_incident_with_one_headline() -> None:
    rows = assign([alert({"country": "CH", "tier": "free"}), alert({"country": "CH"}),
                   alert({"tier": "free", "merchant": "food"}), alert({"country": "DE"})], [])
    ch_free, ch, food, de = rows
    assert ch.incident == ch_free.incident == food.incident != de.incident
    assert [a.headline for a in (ch, ch_free, food, de)] == [True, False, False, True]


def test_an_alert_opening_later_joins_the_open_incident_it_overlaps_and_is_not_paged() -> None:
    [first] = assign([alert({"country": "CH", "tier": "gold"})], [])
    later = date(2026, 1, 11)
    rows = assign([replace(first, state="ongoing", date=later),
                   alert({"country": "CH"}, date=later, opened_on=later)], [first])
    assert {a.incident for a in rows} == {first.incident}
    assert pages(rows) == []


def test_an_incident_sends_one_resolution_when_its_last_alert_resolves() -> None:
    head, member = assign([alert({"country": "CH"}), alert({"country": "CH", "tier": "b"})], [])
    partly = [replace(head, state="resolved"), replace(member, state="ongoing")]
    assert pages(partly) == []
    assert pages([replace(member, state="resolved")]) == [replace(member, state="resolved")]
    both = [replace(head, state="resolved"), replace(member, state="resolved")]
    assert pages(both) == [both[0]]


def test_alerts_of_other_kinds_on_overlapping_segments_are_separate_incidents() -> None:
    rows = assign([alert({"country": "CH"}), alert({"country": "CH"}, kind="feature_drift")],
                  [])
    assert rows[0].incident != rows[1].incident and all(a.headline for a in rows)


def test_incidents_are_stored_with_the_alerts_and_read_back() -> None:
    rows = assign([alert({"country": "CH"}), alert({"country": "CH", "tier": "b"})], [])
    assert [(a.incident, a.headline) for a in alerts_from_table(alerts_to_table(rows))] == [
        (a.incident, a.headline) for a in rows]
    legacy = alerts_to_table(rows).drop_columns(["incident", "headline"])
    assert [a.incident for a in alerts_from_table(legacy)] == [None, None]


def test_a_drop_in_one_value_across_its_crosses_opens_one_incident_named_by_that_value(
    make_config: Callable[..., Config],
) -> None:
    with opened_monitor(make_config) as monitor:
        seed_drops(monitor, {("CH", "free"): 8, ("CH", "gold"): 8})
        found = run_days(monitor, 9, 12)
    opened = [a for a in found if a.state == "opened"]
    assert len({a.incident for a in found}) == 1
    [head] = [a for a in opened if a.headline]
    assert head.segment == {"country": "CH"}
    assert json.loads(json.dumps(head.as_json()))["headline"] is True
    assert all(a.as_json()["incident"] == head.incident for a in found)


def test_two_unrelated_drops_on_the_same_run_are_two_incidents(
    make_config: Callable[..., Config],
) -> None:
    with opened_monitor(make_config, alerts={"min_effect": 0.1}) as monitor:
        seed_drops(monitor, {("CH", "free"): 8, ("DE", "gold"): 8})
        found = run_days(monitor, 9, 9)
    heads = sorted((a for a in found if a.headline), key=lambda a: a.key)
    assert [a.segment for a in heads] == [{"country": "CH", "tier": "free"},
                                          {"country": "DE", "tier": "gold"}]
    assert heads[0].incident != heads[1].incident


def test_a_later_opening_of_a_known_incident_is_not_delivered_again(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    log = tmp_path / "pages.jsonl"
    with opened_monitor(make_config,
                        sinks=[{"name": "log", "type": "log", "path": str(log)}]) as monitor:
        seed_drops(monitor, {("CH", "gold"): 8, ("CH", "free"): 10})
        found = run_days(monitor, 9, 15)
        monitor.deliver(backoff_seconds=0)
        page = overview(monitor)
    opened = [a for a in found if a.state == "opened"]
    assert len(opened) >= 2 and len({a.incident for a in opened}) == 1
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(p["state"], p["headline"]) for p in sent] == [("opened", True)]
    assert sent[0]["incident"] == opened[0].incident
    [entry] = page.open_alerts  # the overview: one entry per incident, its headline
    assert entry.headline and page.sizes[entry.key] == len(opened)


def test_healthy_traffic_opens_no_incident_and_pages_nothing(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    log = tmp_path / "pages.jsonl"
    with opened_monitor(make_config,
                        sinks=[{"name": "log", "type": "log", "path": str(log)}]) as monitor:
        seed_drops(monitor, {})
        found = run_days(monitor, 9, 15)
        monitor.deliver(backoff_seconds=0)
    assert [a for a in found if a.state == "opened"] == [] and not log.exists()


def test_an_opening_within_the_span_after_an_incident_resolved_joins_it(
    make_config: Callable[..., Config],
) -> None:
    def incidents(**settings: Any) -> list[str | None]:
        with opened_monitor(make_config, **settings) as monitor:
            seed_drops(monitor, {("CH", "gold"): (8, 10), ("CH", "free"): 18}, days=22)
            found = run_days(monitor, 9, 22)
        assert [a.state for a in found if a.segment == {"country": "CH", "tier": "gold"}
                ][-1] == "resolved"
        return [a.incident for a in found if a.state == "opened"]

    apart = incidents()
    joined = incidents(alerts={"incident_span_days": 14})
    assert len(apart) == len(joined) >= 2
    assert len(set(apart)) >= 2 and len(set(joined)) == 1
