from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario

# CI replays the same examples every run: a red build is then a regression, not a draw.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

COLUMNS = {
    "id": "request_id",
    "timestamp": "served_at",
    "prediction": "predicted",
    "label": "actual",
    "label_timestamp": "actual_at",
}


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    def make(**overrides: Any) -> Config:
        raw: dict[str, Any] = {
            "model": "test-model",
            "store": str(tmp_path / "store"),
            "columns": dict(COLUMNS),
            "segments": ["country", "tier"],
            "min_samples": 20,
        }
        raw.update(overrides)
        return parse_config(raw, source="test.yaml")

    return make


@pytest.fixture
def monitor(make_config: Callable[..., Config]) -> Iterator[Monitor]:
    with Monitor(make_config(), clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as m:
        yield m


def prediction(i: int, day: int, country: str, predicted: str, tier: str = "free",
               hour: int = 12) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "served_at": f"2026-01-{day:02d}T{hour:02d}:00:00Z",
        "country": country,
        "tier": tier,
        "predicted": predicted,
        "amount": float(i),
    }


def label(i: int, actual: str, day: int, hour: int = 12) -> dict[str, Any]:
    return {"request_id": f"r{i}", "actual": actual,
            "actual_at": f"2026-01-{day:02d}T{hour:02d}:00:00Z"}


def log_simulation(monitor: Monitor, scenario: Scenario) -> Monitor:
    """Log a simulated scenario into a monitor: its reference set, then each day's
    predictions and the labels that arrived that day."""
    from hindsight.simulate import Simulator

    simulator = Simulator(scenario)
    monitor.log_reference(simulator.reference())
    for day in simulator.days():
        monitor.log_predictions(day.predictions)
        if day.labels.num_rows:
            monitor.log_labels(day.labels)
    return monitor
