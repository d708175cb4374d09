from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from hindsight.alerts.model import Alert
from hindsight.monitor import Monitor

START = date(2026, 1, 5)  # a Monday


def feed(monitor: Monitor, days: int, *, stop: int | None = None, labels_stop: int | None = None,
         holiday: int | None = None, seed: int = 0) -> None:
    """Predictions with a weekly cycle (weekdays ~120, weekends ~40, a holiday ~45% of its
    weekday), each labelled the day after unless labels stopped."""
    rng = np.random.default_rng(seed)
    i = 0
    for d in range(days):
        day = START + timedelta(days=d)
        n = int(rng.poisson(120 if day.weekday() < 5 else 40))
        if d == holiday:
            n = int(n * 0.45)
        if d == stop:
            n = 0
        rows: list[dict[str, Any]] = []
        for k in range(n):
            i += 1
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=k)
            rows.append({"request_id": f"r{i}", "served_at": at.isoformat(), "country": "CH",
                         "tier": "free", "predicted": "a", "amount": float(k)})
        if rows:
            monitor.log_predictions(rows)
            if labels_stop is None or d + 1 < labels_stop:
                arrived = (day + timedelta(days=1)).isoformat() + "T06:00:00Z"
                monitor.log_labels([{"request_id": r["request_id"], "actual": "a",
                                     "actual_at": arrived} for r in rows])


def data_alerts(monitor: Monitor, days: int) -> list[Alert]:
    monitor.backfill(START, START + timedelta(days=days - 1))
    return [a for a in monitor.alerts() if a.kind == "data"]


def test_a_feed_that_stops_for_a_day_gives_one_data_alert_on_that_days_run(
    monitor: Monitor,
) -> None:
    feed(monitor, 40, stop=30)
    found = data_alerts(monitor, 40)
    opened = [a for a in found if a.state == "opened"]
    stopped = START + timedelta(days=30)
    assert [(a.metric, a.date) for a in opened] == [("predictions", stopped)]
    assert opened[0].message.startswith(f"predictions stopped: none made on {stopped}")
    assert "a usual Wednesday has" in opened[0].message
    assert found[-1].state == "resolved"  # the feed came back


def test_labels_that_stop_arriving_give_one_data_alert_on_the_first_day_without_them(
    monitor: Monitor,
) -> None:
    feed(monitor, 40, labels_stop=31)
    found = data_alerts(monitor, 40)
    opened = [a for a in found if a.state == "opened"]
    assert [(a.metric, a.date) for a in opened] == [("labels", START + timedelta(days=31))]
    assert found[-1].state in ("ongoing", "opened")  # still stopped after the last run


def test_sixty_benign_days_with_weekly_cycles_and_a_holiday_give_no_data_alert(
    monitor: Monitor,
) -> None:
    feed(monitor, 60, holiday=38)  # a Wednesday, with 45% of its usual volume
    assert data_alerts(monitor, 60) == []
