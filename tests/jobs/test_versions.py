from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from hindsight.config import Config
from hindsight.monitor import Monitor
from tests.conftest import COLUMNS, prediction

VERSIONED = {**COLUMNS, "model_version": "version", "provider_model": "llm"}


def logged(i: int, day: int, version: str, llm: str, hour: int = 12) -> dict[str, object]:
    return {**prediction(i, day, "CH", "a", hour=hour), "version": version, "llm": llm}


def test_an_unpinned_alias_is_flagged_on_ingest(make_config: Callable[..., Config]) -> None:
    with Monitor(make_config(columns=VERSIONED)) as m:
        report = m.log_predictions([logged(1, 1, "v-2026-01-01", "gpt-4o"),
                                    logged(2, 1, "v-2026-01-01", "gpt-4o-2024-08-06")])
    assert report.unpinned == ("llm=gpt-4o",)
    assert "Unpinned: llm=gpt-4o" in report.summary("predictions")


def test_a_pinned_list_flags_everything_else(make_config: Callable[..., Config]) -> None:
    config = make_config(columns=VERSIONED, versions={"pinned": ["v1", "gpt-4o-2024-08-06"]})
    with Monitor(config) as m:
        report = m.log_predictions([logged(1, 1, "v1", "gpt-4o-2024-08-06"),
                                    logged(2, 1, "v2", "gpt-4o-2024-08-06")])
    assert report.unpinned == ("version=v2",)


def test_a_version_change_mid_day_is_alerted_that_day_with_its_share(
    make_config: Callable[..., Config],
) -> None:
    with Monitor(make_config(columns=VERSIONED),
                 clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as m:
        m.log_predictions([logged(i, 1, "v-2025-12-01", "gpt-4o-2024-08-06") for i in range(4)])
        m.log_predictions([logged(10 + i, 2, "v-2025-12-01", "gpt-4o-2024-08-06", hour=8)
                           for i in range(3)]
                          + [logged(20, 2, "v-2026-01-02", "gpt-4o-2024-08-06", hour=14)])
        first = m.run(date(2026, 1, 1))
        second = m.run(date(2026, 1, 2))
        later = [m.run(date(2026, 1, d)) for d in (3, 4, 5)]
        day, seen = m.versions()
    assert [a for a in first.alerts if a.kind == "model_version"] == []  # nothing before it
    changed = [a for a in second.alerts if a.kind == "model_version"]
    assert [(a.segment, a.state, a.value) for a in changed] == [
        ({"version": "v-2026-01-02"}, "opened", 0.25)]
    assert "first seen 2026-01-02 14:00:00 UTC" in changed[0].message
    assert [a.state for a in later[-1].alerts if a.kind == "model_version"] == ["resolved"]
    assert day == date(2026, 1, 2)
    assert {(v.column, v.value, v.total) for v in seen} == {
        ("version", "v-2025-12-01", 7), ("version", "v-2026-01-02", 1),
        ("llm", "gpt-4o-2024-08-06", 8)}


def test_a_version_back_after_memory_days_is_new_again_while_history_keeps_it(
    make_config: Callable[..., Config],
) -> None:
    with Monitor(make_config(columns=VERSIONED, versions={"memory_days": 5}),
                 clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as m:
        m.log_predictions([logged(1, 1, "v1", "gpt-4o-2024-08-06"),
                           logged(2, 3, "v2", "gpt-4o-2024-08-06"),
                           logged(3, 7, "v2", "gpt-4o-2024-08-06"),
                           logged(4, 7, "v1", "gpt-4o-2024-08-06")])   # a rollback, 6 days on
        back = [a for a in m.run(date(2026, 1, 7)).alerts if a.kind == "model_version"]
        _, seen = m.versions()
    assert [(a.segment, a.state) for a in back] == [({"version": "v1"}, "opened")]
    # the listing keeps the whole history: v1 was first seen on day 1
    assert {(v.value, v.first_seen.day, v.total) for v in seen if v.column == "version"} == {
        ("v1", 1, 2), ("v2", 3, 2)}


def test_a_serving_variants_daily_share_is_the_escalation_rate(
    make_config: Callable[..., Config],
) -> None:
    columns = {**COLUMNS, "serving_variant": "route"}
    with Monitor(make_config(columns=columns)) as m:
        m.log_predictions([{**prediction(i, 1 + i // 10, "CH", "a"),
                            "route": "large" if i % 10 < (2 if i < 10 else 5) else "small"}
                           for i in range(20)])
        last, rows = m.version_shares(None, 2)
    escalated = {r["date"]: r["share"] for r in rows if r["value"] == "large"}
    assert last == date(2026, 1, 2) and escalated == {"2026-01-01": 0.2, "2026-01-02": 0.5}


def test_a_cache_giving_one_answer_to_differing_inputs_is_measured(
    make_config: Callable[..., Config],
) -> None:
    columns = {**COLUMNS, "serving_variant": "route", "input_hash": "input"}
    rows = [{**prediction(i, 1, "CH", "stale" if i < 6 else f"fresh-{i}"),
             "route": "cache" if i < 8 else "model", "input": f"in-{i}"} for i in range(10)]
    with Monitor(make_config(columns=columns)) as m:
        m.log_predictions(rows)
        _, shares = m.version_shares(date(2026, 1, 1), 1)
    repeated = {r["value"]: r["repeated_answers"] for r in shares}
    assert repeated == {"cache": 6 / 8, "model": 0.0}
