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


def test_a_whole_population_incident_is_written_with_an_empty_segment_or_none(
    tmp_path: Path,
) -> None:
    file = tmp_path / "incidents.yaml"
    file.write_text("- segment: {}\n  start: 2026-01-10\n- start: 2026-01-20\n"
                    "- segment:\n  start: 2026-01-25\n")
    incidents = load_incidents(file)
    assert [i.segment for i in incidents] == [{}, {}, {}]
    assert incidents[0].label == "all predictions"
    found = evaluate([alert(14, {}), alert(15, {"country": "CH"})], incidents[:1], runs=20)
    assert [d.delay_days for d in found.detections] == [4]
    assert found.false_alerts == ()  # every segment shares rows with the whole population


def test_incident_segment_values_are_read_under_the_value_identity_rule(tmp_path: Path) -> None:
    file = tmp_path / "incidents.yaml"
    file.write_text("- segment: {is_customer: True, plan: 2.0, code: '007'}\n"
                    "  start: 2026-01-10\n")
    assert load_incidents(file)[0].segment == {"is_customer": "true", "plan": "2",
                                               "code": "007"}
