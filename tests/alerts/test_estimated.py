from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from hindsight.alerts.model import Alert
from hindsight.config import Config
from hindsight.monitor import Monitor
from tests.conftest import COLUMNS, label, prediction

ONSET = 12


def seed(monitor: Monitor, scores_fall: bool, accuracy_falls: bool) -> None:
    """A calibrated score: on the reference, 0.95 is right 95% of the time, 0.55 about 55%.
    In production CH and DE get 60 predictions a day at 0.95, right 57 times; from day
    ``ONSET`` on, CH's scores fall to 0.55 and (or not) its accuracy with them. Labels arrive
    three days after their predictions."""
    reference = []
    for c, country in enumerate(("CH", "DE")):
        for k in range(600):
            high = k % 5 != 0  # four in five
            wrong = k % 20 == 1 if high else k % 100 < 45
            reference.append({**prediction(-1 - k - 1000 * c, 1, country, "a"),
                              "actual": "b" if wrong else "a",
                              "confidence": 0.95 if high else 0.55})
    monitor.log_reference(reference)
    i = 0
    for day in range(1, 21):
        rows, labels = [], []
        for country in ("CH", "DE"):
            late = country == "CH" and day >= ONSET
            for k in range(60):
                i += 1
                wrong = k < (27 if late and accuracy_falls else 3)
                rows.append({**prediction(i, day, country, "a"),
                             "confidence": 0.55 if late and scores_fall else 0.95})
                if day + 3 <= 20:
                    labels.append(label(i, "b" if wrong else "a", day + 3))
        monitor.log_predictions(rows)
        if labels:
            monitor.log_labels(labels)


def runs(make_config: Callable[..., Config], tmp_path: Path, scores_fall: bool,
         accuracy_falls: bool) -> tuple[list[Alert], list[dict[str, object]]]:
    log = tmp_path / "pages.jsonl"
    config = make_config(columns={**COLUMNS, "score": "confidence"}, label_window_days=14,
                         sinks=[{"name": "log", "type": "log", "path": str(log)}])
    found: list[Alert] = []
    with Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as monitor:
        seed(monitor, scores_fall, accuracy_falls)
        for day in range(9, 20):
            found += monitor.run(date(2026, 1, day)).alerts
        monitor.deliver(backoff_seconds=0)
    pages = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return [a for a in found if a.kind in ("estimated", "performance")], pages


def test_a_degrading_segment_is_warned_about_the_day_its_scores_fall_and_labels_confirm_it(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    found, pages = runs(make_config, tmp_path, scores_fall=True, accuracy_falls=True)
    opened = [a for a in found if a.state == "opened"]
    warning, labelled = opened[0], next(a for a in opened if a.kind == "performance")
    assert (warning.kind, warning.date, warning.segment) == ("estimated", date(2026, 1, ONSET),
                                                              {"country": "CH"})
    assert warning.as_json()["estimated"] is True and labelled.as_json()["estimated"] is False
    assert labelled.date > warning.date and labelled.incident == warning.incident
    closed = next(a for a in found if a.kind == "estimated" and a.state == "resolved")
    assert closed.date == labelled.date and closed.message.startswith("confirmed by labels")
    assert [(p["kind"], p["state"]) for p in pages] == [("estimated", "opened")]


def test_a_warning_the_labels_do_not_bear_out_is_withdrawn(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    found, _ = runs(make_config, tmp_path, scores_fall=True, accuracy_falls=False)
    assert not [a for a in found if a.kind == "performance"]
    warnings = [a for a in found if a.kind == "estimated"]
    assert warnings[0].state == "opened" and warnings[0].date == date(2026, 1, ONSET)
    withdrawn = next(a for a in warnings if a.state == "resolved")
    assert withdrawn.message.startswith("withdrawn: labels up to")


def test_steady_scores_and_accuracy_open_no_warning(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    found, pages = runs(make_config, tmp_path, scores_fall=False, accuracy_falls=False)
    assert [a for a in found if a.state == "opened"] == [] and pages == []
