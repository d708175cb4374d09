from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hindsight.config import Config
from hindsight.monitor import Monitor
from tests.service.test_app import TOKEN, Server


@pytest.fixture
def service_settings() -> dict[str, Any]:
    """The ``service:`` section of the test config; a module overrides it for its limits."""
    return {"max_body_bytes": 200_000, "max_rows": 1000}


@pytest.fixture
def monitor(make_config: Callable[..., Config],
            service_settings: dict[str, Any]) -> Iterator[Monitor]:
    with Monitor(make_config(service=service_settings),
                 clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as m:
        yield m


@pytest.fixture
def server(monitor: Monitor) -> Iterator[Server]:
    s = Server(monitor, TOKEN)
    yield s
    s.stop()
