from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hindsight.alerts.model import Alert
from hindsight.config import parse_config
from hindsight.jobs import intraday
from hindsight.jobs.intraday import CheckResult, Schedule
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from tests.conftest import log_simulation

START = date(2026, 10, 1)
BREAK = datetime(2026, 10, 2, 9, 0, tzinfo=UTC)


def _config(store: Path, **drift: Any) -> Any:
    raw = demo_config(str(store))
    raw["drift"] = {"every": "1h", **drift}
    return parse_config(raw, source="test.yaml")


def _scenario(days: int, **overrides: Any) -> Scenario:
    return Scenario(start=START, days=days, per_day=20_000, failure_start=None,
                    daily_cycle=True, **overrides)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Monitor, list[CheckResult]]]:
    """Three days of day-and-night traffic; the serving path breaks at 09:00 on the second.
    The days replayed with hourly checks and their daily runs."""
    store = tmp_path_factory.mktemp("broken") / "store"
    with Monitor(_config(store)) as monitor:
        log_simulation(monitor, _scenario(3, break_at=BREAK))
        checks: list[CheckResult] = []
        monitor.backfill(START, START + timedelta(days=2), every=timedelta(hours=1),
                         checked=checks.append)
        yield monitor, checks


def _drift_rows(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.kind == "prediction_drift"]


@pytest.mark.slow
def test_a_break_at_mid_day_pages_at_the_first_check_after_it_and_once(
        broken: tuple[Monitor, list[CheckResult]]) -> None:
    monitor, checks = broken
    assert len(checks) == 3 * 23  # hourly, midnight left to the daily run
    openings = [a for c in checks for a in c.alerts if a.state == "opened"]
    assert [(a.at, a.segment) for a in openings] == [(BREAK + timedelta(hours=1), {})]
    # every later check of the break, and the daily runs, carry the same incident on
    assert all(any(a.state == "ongoing" and a.segment == {} for a in c.alerts)
               for c in checks if c.at > BREAK + timedelta(hours=1))
    listed = _drift_rows(monitor.alerts())
    assert [a.state for a in listed if a.state != "ongoing"] == ["opened"]
    daily = [a for a in listed if a.at is not None and a.at.hour == 0]
    assert {a.state for a in daily} == {"ongoing"}
    assert {a.key for a in listed} == {openings[0].key}


@pytest.mark.slow
def test_checks_before_the_break_found_nothing_and_scored_what_they_should(
        broken: tuple[Monitor, list[CheckResult]]) -> None:
    _, checks = broken
    before = [c for c in checks if c.at <= BREAK]
    assert before and not any(c.alerts for c in before)
    for c in checks:
        # a check sees only predictions made before its instant, at least min_samples
        # of them unless it widened to a whole day
        assert c.window_start < c.at
        assert c.n >= 1000 or c.at - c.window_start == timedelta(days=1)
        assert ("{}" in {s.segment for s in c.measured}) == (c.n >= 1000)
    assert sum(c.n < 1000 for c in checks) <= 6  # only before the first day's morning


@pytest.mark.slow
def test_sixty_days_of_day_and_night_traffic_open_nothing(tmp_path: Path) -> None:
    """Fewer predictions at night and another mix of countries, merchants and tiers by hour,
    replayed every hour for 60 days: no alert. The same traffic against the reference as it
    is (not weighted to each window's mix) pages within three days: the test can fail."""
    with Monitor(_config(tmp_path / "store")) as monitor:
        log_simulation(monitor, Scenario(start=START, days=60, per_day=12_000,
                                         failure_start=None, daily_cycle=True,
                                         reference_rows=20_000))
        schedule = Schedule.of(monitor.config)
        mix = monitor._reference_mix()
        assert mix is not None
        opened = []
        for offset in range(60):
            for result in intraday.replay_day(START + timedelta(days=offset), schedule,
                                              monitor.config, monitor.store, monitor.lookups,
                                              mix):
                opened += [a for a in result.alerts if a.state == "opened"]
        assert opened == []

        unweighted = intraday.ReferenceMix(mix.rows, ())  # no segment: no weighting
        paged = [a for offset in range(3)
                 for result in intraday.replay_day(START + timedelta(days=offset), schedule,
                                                   monitor.config, monitor.store,
                                                   monitor.lookups, unweighted)
                 for a in result.alerts if a.state == "opened"]
        assert paged


def test_the_schedule_leaves_midnight_to_the_daily_run() -> None:
    schedule = Schedule(timedelta(hours=6), timedelta(hours=6))
    assert [t.hour for t in schedule.instants(START)] == [6, 12, 18]
    assert schedule.checks_a_day == 4
    moment = datetime(2026, 10, 1, 13, 59, tzinfo=UTC)
    assert schedule.last_before(moment) == datetime(2026, 10, 1, 12, tzinfo=UTC)


def test_the_reference_mix_weights_a_slice_to_the_window_s_shares() -> None:
    import pyarrow as pa

    reference = pa.table({"country": ["CH"] * 6 + ["US"] * 2, "tier": ["a", "b"] * 4,
                          "p": np.arange(8.0)})
    window = pa.table({"country": ["US"] * 3 + ["CH"], "tier": ["a", "a", "b", "b"],
                       "p": np.arange(4.0)})
    mix = intraday.ReferenceMix(reference, ("country", "tier"))
    weights = mix.weights("{}", window)
    share = {c: weights[np.array(reference["country"].to_pylist()) == c].sum() / weights.sum()
             for c in ("CH", "US")}
    assert share == pytest.approx({"CH": 0.25, "US": 0.75})
    tier = np.array(reference["tier"].to_pylist())
    assert weights[tier == "a"].sum() / weights.sum() == pytest.approx(0.5)


@pytest.mark.slow
def test_a_repaired_break_resolves_after_three_clean_checks_and_the_night_run_stays_quiet(
        tmp_path: Path) -> None:
    """Broken 09:00-12:00: opened at 10:00; the checks of 13:00, 14:00 and 15:00 see clean
    windows, so it resolves at 15:00. The daily run of that day, whose window holds the
    morning's broken hours, does not page the incident again."""
    with Monitor(_config(tmp_path / "store")) as monitor:
        log_simulation(monitor, _scenario(2, break_at=BREAK,
                                          break_until=BREAK + timedelta(hours=3)))
        monitor.backfill(START, START + timedelta(days=1), every=timedelta(hours=1))
        moves = [(a.at, a.state) for a in _drift_rows(monitor.alerts()) if a.state != "ongoing"]
    assert moves == [(BREAK + timedelta(hours=1), "opened"),
                     (BREAK + timedelta(hours=6), "resolved")]
