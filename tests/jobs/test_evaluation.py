from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hindsight.alerts.model import Alert
from hindsight.errors import InputError
from hindsight.jobs.evaluation import Incident, evaluate, load_incidents


def alert(day: int, segment: dict[str, str], state: str = "opened",
          window: tuple[int, int] | None = None) -> Alert:
    start, end = window or (day - 3, day - 3)
    return Alert(date=date(2026, 1, day), kind="performance", segment=segment,
                 metric="accuracy", value=0.7, reference=0.94, n=150, message="m",
                 window_start=date(2026, 1, start), window_end=date(2026, 1, end), state=state)


INCIDENT = Incident(segment={"country": "CH", "merchant": "restaurants"},
                    start=date(2026, 1, 10))


def test_the_first_opened_alert_on_the_incident_gives_the_delay() -> None:
    found = evaluate([alert(15, {"country": "CH", "merchant": "restaurants"}),
                      alert(16, {"country": "CH", "merchant": "restaurants"}, "ongoing")],
                     [INCIDENT], runs=20)
    detection = found.detections[0]
    assert (detection.delay_days, detection.exact) == (5, True)
    assert found.false_alerts == ()


def test_an_alert_on_an_overlapping_segment_counts_but_not_as_exact() -> None:
    found = evaluate([alert(14, {"merchant": "restaurants"})], [INCIDENT], runs=20)
    assert found.detections[0].delay_days == 4 and not found.detections[0].exact


def test_alerts_elsewhere_or_on_days_before_the_incident_are_false() -> None:
    elsewhere = alert(15, {"country": "DE"})
    before = alert(8, {"country": "CH", "merchant": "restaurants"}, window=(3, 5))
    found = evaluate([elsewhere, before], [INCIDENT], runs=20)
    assert found.false_alerts == (before, elsewhere)
    assert found.detections[0].alert is None


def test_incident_files_are_checked(tmp_path: Path) -> None:
    good = tmp_path / "incidents.yaml"
    good.write_text("- segment: {country: CH}\n  start: 2026-01-10\n")
    assert load_incidents(good)[0].segment == {"country": "CH"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- segment: {country: CH}\n  start: soon\n")
    with pytest.raises(InputError, match=r"bad.yaml: incident 0.start: .*YYYY-MM-DD"):
        load_incidents(bad)
