from __future__ import annotations

from datetime import UTC, date, datetime

from hindsight.alerts.model import (
    Alert,
    alert_from_json,
    alerts_from_table,
    alerts_to_table,
)


def an_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = dict(
        date=date(2026, 11, 30), kind="prediction_drift", segment={"country": "CH"},
        metric="score_wasserstein", value=0.3, reference=0.1, n=1200, message="moved",
        window_start=date(2026, 11, 30), window_end=date(2026, 11, 30))
    fields.update(overrides)
    return Alert(**fields)  # type: ignore[arg-type]


def test_a_daily_runs_alert_is_at_the_end_of_its_date() -> None:
    row = an_alert().as_json()
    assert row["at"] == "2026-12-01T00:00:00+00:00"
    assert alert_from_json(row).at == datetime(2026, 12, 1, tzinfo=UTC)


def test_an_alerts_instant_survives_the_store_and_json() -> None:
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    alert = an_alert(at=at)
    [back] = alerts_from_table(alerts_to_table([alert]))
    assert back.at == at and back == alert
    assert alert_from_json(alert.as_json()) == alert


def test_alerts_stored_before_the_instant_existed_read_as_their_end_of_day() -> None:
    table = alerts_to_table([an_alert()]).drop_columns(["at"])
    [back] = alerts_from_table(table)
    assert back.at == datetime(2026, 12, 1, tzinfo=UTC)
