"""The coverage figures against what happens: the simulator plants a drop of the reported
smallest size in one cell from a day on, and the daily runs must catch it at about the
reported delay; half that drop must go unseen over the same span.

What happened is decided by the simulator (the planted cell, its onset and the size of its
drop: ``Simulator.planted_accuracy - failure_accuracy``), never by the coverage code.

Tolerance: the reported delay is the first run whose unit lies wholly after the onset, with
80% power at that run (``stats.power.POWER``), so a planted drop is caught by the run of the
reported delay or the next one (a miss in both has odds of about 1 in 25), or a day early by
a larger segment holding it: in all trials but one of nine (three cells of 80 to 400 rows a
day, labels a median 1 to 3 days late, three seeds). Half the smallest drop has about a 10%
chance per run at the run's error budget, so it is caught by then in at most a third."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from hindsight.alerts.rules import DropRule
from hindsight.config import parse_config
from hindsight.jobs.coverage import coverage_of
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config

PLANTED = {"country": "CH", "merchant_category": "restaurants"}
TOLERANCE = 1  # days either side of the reported delay


@dataclass(frozen=True, slots=True)
class Trial:
    drop: float  # the reported smallest detectable drop of the planted cell
    delay: int  # its reported days to detect that drop
    caught: int | None  # days after onset of the first run alerting on it (or a parent)
    caught_half: int | None  # the same for half that drop


def raw(store: Path, window: int) -> dict[str, object]:
    return {**demo_config(str(store)), "label_window_days": window,
            "alerts": {"baseline_days": 3}, "min_samples": 50, "features": ["amount"],
            "drift": {"min_samples": 200, "replicates": 100}}


def log_days(monitor: Monitor, scenario: Scenario, first: int, last: int) -> None:
    """Log the days with index first..last-1 (predictions and the labels arriving then)."""
    for index, day in enumerate(Simulator(scenario).days()):
        if index >= last:
            break
        if index >= first:
            monitor.log_predictions(day.predictions)
            if day.labels.num_rows:
                monitor.log_labels(day.labels)


def first_alert(monitor: Monitor, scenario: Scenario, runs: range) -> int | None:
    """Days after onset of the first run (of ``runs``) alerting on the planted cell or on a
    segment holding it."""
    onset = scenario.failure_day
    assert onset is not None
    for after in runs:
        day = onset + timedelta(days=after)
        monitor.run(day)
        if any(a.kind == "performance" and set(a.segment.items()) <= set(PLANTED.items())
               for a in monitor.alerts(day, day)):
            return after
    return None


def trial(folder: Path, per_cell: int, median: float, p95: float, seed: int,
          window: int = 10, every_run: bool = True, half: bool = True) -> Trial:
    onset = window + 1
    scenario = Scenario(per_day=1_000, days=onset + 8, failure_start=onset,
                        failure_cell_per_day=per_cell, label_delay_median_days=median,
                        label_delay_p95_days=p95, reference_rows=1_000, seed=seed)
    before = folder / "before"
    with Monitor(parse_config(raw(before, window))) as monitor:
        monitor.log_reference(Simulator(scenario).reference())
        log_days(monitor, scenario, 0, onset)
        assert isinstance(monitor.rule, DropRule)
        last = scenario.start + timedelta(days=onset - 1)
        cell = next(c for c in coverage_of(last, monitor.config, monitor.store, monitor.engine,
                                           monitor.rule, 1.0, 0.1).cells
                    if c.segment == PLANTED)
        drop = cell.min_detectable_drop
        assert drop is not None, cell.reason
        cell = next(c for c in coverage_of(last, monitor.config, monitor.store, monitor.engine,
                                           monitor.rule, drop, 0.1).cells
                    if c.segment == PLANTED)
    delay = cell.days_to_detect
    assert delay is not None
    end = delay + TOLERANCE
    caught: list[int | None] = []
    for fraction in (1.0, 0.5) if half else (1.0,):
        store = folder / f"drop-{fraction}"
        shutil.copytree(before, store)  # the days before onset are the same
        planted = replace(scenario, failure_accuracy=(
            Simulator(scenario).planted_accuracy - fraction * drop))
        with Monitor(parse_config(raw(store, window))) as monitor:
            log_days(monitor, planted, onset, onset + end + 1)
            runs = range(0 if every_run else delay - TOLERANCE, end + 1)
            caught.append(first_alert(monitor, planted, runs))
    return Trial(drop, delay, caught[0], caught[1] if half else None)


def test_a_drop_of_the_reported_smallest_size_is_caught_at_the_reported_delay(
    tmp_path: Path,
) -> None:
    found = trial(tmp_path, per_cell=150, median=1.0, p95=3.0, seed=1, every_run=False,
                  half=False)  # the slow test below plants half of it too, across seeds
    assert found.caught is not None, found
    assert abs(found.caught - found.delay) <= TOLERANCE, found


@pytest.mark.slow
def test_across_cell_sizes_label_delays_and_seeds_the_reported_figures_hold(
    tmp_path: Path,
) -> None:
    cells = [(150, 1.0, 3.0), (400, 3.0, 8.0), (80, 2.0, 5.0)]  # rows a day, label delays
    trials = [trial(tmp_path / f"{size}-{seed}", size, median, p95, seed)
              for size, median, p95 in cells for seed in (1, 2, 3)]
    on_time = [t for t in trials
               if t.caught is not None and abs(t.caught - t.delay) <= TOLERANCE]
    assert len(on_time) >= len(trials) - 1, trials
    half = [t for t in trials if t.caught_half is not None]
    assert len(half) <= len(trials) // 3, trials
