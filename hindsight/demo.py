"""``hindsight demo``: simulate the seed scenario into a local store, replay every day's run,
and compare what fired with the planted failure."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from hindsight.alerts.hierarchy import compatible
from hindsight.alerts.model import Alert
from hindsight.config import load_config
from hindsight.errors import ConfigError
from hindsight.jobs.daily import RunSummary
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config

MARKER = ".hindsight-demo"


@dataclass(frozen=True, slots=True)
class DemoResult:
    directory: Path
    scenario: Scenario
    alerts: list[Alert]
    runs: list[RunSummary]

    @property
    def planted(self) -> dict[str, str]:
        return dict(self.scenario.failure_segment)

    @property
    def opened(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "opened"]

    @property
    def first_detection(self) -> date | None:
        hits = [a.date for a in self.opened if a.segment == self.planted]
        return min(hits) if hits else None

    @property
    def overlapping(self) -> list[Alert]:
        """Other alerts on segments that share rows with the planted one."""
        return [a for a in self.opened
                if a.segment != self.planted and compatible(a.segment, self.planted)]

    @property
    def elsewhere(self) -> list[Alert]:
        """Alerts on segments the planted failure does not touch: false alarms."""
        return [a for a in self.opened if not compatible(a.segment, self.planted)]


def prepare_directory(directory: Path) -> Path:
    """An empty directory for the demo; a previous demo's directory is reused, nothing else."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise ConfigError(
                f"{directory}: exists and is not a hindsight demo directory; "
                "pass --dir with a new or empty directory"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("created by hindsight demo; safe to delete\n")
    return directory


def run_demo(directory: Path, scenario: Scenario,
             on_day: Callable[[str, date], None] | None = None) -> DemoResult:
    """Generate, log and backfill; ``on_day(stage, day)`` reports progress."""
    prepare_directory(directory)
    config_file = directory / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump(demo_config("store"), sort_keys=False))
    if scenario.failure_day is not None:  # the planted truth, for 'hindsight evaluate'
        incident = {"name": "planted failure", "segment": dict(scenario.failure_segment),
                    "start": scenario.failure_day}
        (directory / "incidents.yaml").write_text(yaml.safe_dump([incident], sort_keys=False))
    simulator = Simulator(scenario)
    with Monitor(load_config(config_file)) as monitor:
        monitor.log_reference(simulator.reference(), name="validation set")
        for day in simulator.days():
            monitor.log_predictions(day.predictions, name=f"predictions of {day.day}")
            if day.labels.num_rows:
                monitor.log_labels(day.labels, name=f"labels of {day.day}")
            if on_day:
                on_day("log", day.day)

        def progress(summary: RunSummary) -> None:
            if on_day:
                on_day("run", summary.as_of)

        runs = monitor.backfill(scenario.start, scenario.end, progress)
        return DemoResult(directory, scenario, monitor.alerts(), runs)
