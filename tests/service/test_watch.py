"""The service's intra-day drift checks, live: predictions arrive hour by hour over HTTP while
the service's clock moves on; a replay over the same rows must decide exactly the same."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hindsight.alerts.model import Alert, alerts_from_table
from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config
from hindsight.store.partitions import Table
from tests.service.test_app import Server, arrow_body, client

START = date(2026, 10, 1)
BREAK = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)
SETTLED = timedelta(seconds=31)  # the service checks an instant 30 s after it


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, now: datetime) -> None:
        with self._lock:
            self.now = now


def _config(store: Path, sink_file: Path) -> Config:
    raw: dict[str, Any] = demo_config(str(store))
    raw["drift"] = {"every": "1h"}
    raw["sinks"] = [{"name": "pager", "type": "log", "path": str(sink_file)}]
    return parse_config(raw, source="test.yaml")


def _decisions(monitor: Monitor) -> list[tuple[Any, ...]]:
    """Every check's and daily run's prediction drift rows, as stored."""
    rows: list[Alert] = []
    for table in (Table.CHECKS, Table.ALERTS):
        for f in monitor.store.files(table):
            rows += [a for a in alerts_from_table(monitor.store.read(f.path))
                     if a.kind == "prediction_drift"]
    return sorted((a.at, a.key, a.state, a.value, a.reference, a.n, a.opened_on,
                   a.passing_runs, a.message) for a in rows)


@pytest.mark.slow
def test_the_service_checks_every_hour_pages_once_and_a_replay_decides_the_same(
        tmp_path: Path) -> None:
    simulator = Simulator(Scenario(start=START, days=2, per_day=20_000, failure_start=None,
                                   daily_cycle=True, break_at=BREAK))
    reference = simulator.reference()
    days = [d.predictions for d in simulator.days()]
    sink_file = tmp_path / "pages.jsonl"
    clock = Clock(datetime.combine(START, datetime.min.time(), UTC))
    live = Monitor(_config(tmp_path / "live", sink_file))
    live.log_reference(reference)
    server = Server(live, None, clock)
    watch = server.app.state.drift_watch
    metrics_during_break = ""
    try:
        with client(server, None) as http:
            for day, predictions in zip((START, START + timedelta(days=1)), days, strict=True):
                midnight = datetime.combine(day, datetime.min.time(), UTC)
                stamps = predictions["predicted_at"]
                for hour in range(24):
                    begin, end = midnight + timedelta(hours=hour), midnight + timedelta(
                        hours=hour + 1)
                    batch = predictions.filter(pc.and_(pc.greater_equal(stamps, begin),
                                                       pc.less(stamps, end)))
                    answer = http.post("/v1/predictions", content=arrow_body(batch),
                                       headers={"content-type":
                                                "application/vnd.apache.arrow.stream"})
                    assert answer.status_code == 200, answer.text
                    clock.set(end + SETTLED)
                    if hour == 23:  # the nightly job, as of the day just ended
                        live.run(day)
                        live.deliver()
                        continue
                    watch.poke()
                    assert watch.wait_for(end, timeout=120), f"no check of {end}"
                    if end == BREAK + timedelta(hours=3):
                        metrics_during_break = http.get("/metrics").text
    finally:
        server.stop()
    live_decisions = _decisions(live)
    live.close()

    # paged once, at the first check after the break, through the sink
    pages = [json.loads(line) for line in sink_file.read_text().splitlines()]
    assert [(p["kind"], p["state"], p["at"]) for p in pages] == [
        ("prediction_drift", "opened", (BREAK + timedelta(hours=1)).isoformat())]

    # /metrics during the incident: the population's distance above its threshold
    gauges = {(s.name, s.labels.get("segment"), s.labels.get("signal")): s.value
              for family in text_string_to_metric_families(metrics_during_break)
              for s in family.samples}
    distance = gauges[("hindsight_drift_distance", "all predictions", "score")]
    assert distance > gauges[("hindsight_drift_threshold", "all predictions", "score")]
    assert gauges[("hindsight_drift_check_timestamp_seconds", None, None)] == (
        BREAK + timedelta(hours=3)).timestamp()

    # the same rows replayed: every decision identical
    with Monitor(_config(tmp_path / "replay", tmp_path / "unused.jsonl")) as replay:
        replay.log_reference(reference)
        for predictions in days:
            replay.log_predictions(predictions)
        replay.backfill(START, START + timedelta(days=1), every=timedelta(hours=1))
        assert _decisions(replay) == live_decisions
    assert len(live_decisions) > 10
