"""Connections against slow, idle or cross-site clients: heads have a deadline, open
connections a limit answered 503, and the server without a token answers only its own
machine's clients."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from hindsight.cli import _token
from hindsight.config import Config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.service.app import create_app
from hindsight.service.connections import server_config
from hindsight.store.partitions import Table
from tests.conftest import prediction


class Served:
    """The app under the settings of ``hindsight serve``, without a token, on loopback."""

    def __init__(self, monitor: Monitor) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = server_config(create_app(monitor, None), "127.0.0.1", self.port,
                               monitor.config.service)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@pytest.fixture
def served(make_config: Callable[..., Config]) -> Iterator[tuple[Served, Monitor]]:
    config = make_config(service={"header_timeout_seconds": 0.5, "max_connections": 8})
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        s = Served(monitor)
        yield s, monitor
        s.stop()


def closed_by_server(conn: socket.socket) -> bool:
    conn.settimeout(30)
    try:
        return conn.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_connection_that_sends_nothing_or_half_a_head_is_closed_at_the_deadline(
    served: tuple[Served, Monitor],
) -> None:
    server, _ = served
    with socket.create_connection(("127.0.0.1", server.port)) as idle, \
            socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert closed_by_server(idle)
        assert closed_by_server(slow)


def test_connections_beyond_the_limit_are_answered_503_and_health_returns_after(
    served: tuple[Served, Monitor],
) -> None:
    server, _ = served
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(8)]
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/healthz").status_code == 503
    finally:
        for conn in held:
            conn.close()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        deadline = time.monotonic() + 60
        while http.get("/healthz").status_code != 200:  # until the server saw them close
            assert time.monotonic() < deadline


@pytest.mark.parametrize("headers, status", [
    ({"Host": "evil.example"}, 421),
    ({"Host": "evil.example:8080", "Content-Type": "application/json"}, 421),
    ({"Origin": "https://evil.example", "Content-Type": "application/json"}, 403),
    ({"Content-Type": ""}, 415),
    ({"Content-Type": "text/plain"}, 415),
])
def test_without_a_token_cross_site_writes_and_foreign_hosts_are_refused(
    served: tuple[Served, Monitor], headers: dict[str, str], status: int,
) -> None:
    server, monitor = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/v1/predictions", content=json.dumps([prediction(1, 1, "CH", "a")]),
                           headers=headers)
    assert answer.status_code == status, answer.text
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_without_a_token_a_local_client_still_writes_and_reads(
    served: tuple[Served, Monitor],
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.post("/v1/predictions", json=[prediction(1, 1, "CH", "a")],
                         headers={"Origin": f"http://localhost:{server.port}"}
                         ).status_code == 200
        assert http.get("/v1/alerts", headers={"Host": f"localhost:{server.port}"}
                        ).status_code == 200


def test_a_token_with_surrounding_whitespace_is_stripped_and_a_blank_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HINDSIGHT_TEST_TOKEN", "s3cret\n")
    assert _token("HINDSIGHT_TEST_TOKEN") == "s3cret"
    monkeypatch.setenv("HINDSIGHT_TEST_TOKEN", " \n")
    with pytest.raises(ConfigError, match="only whitespace"):
        _token("HINDSIGHT_TEST_TOKEN")
    monkeypatch.setenv("HINDSIGHT_TEST_TOKEN", "")
    assert _token("HINDSIGHT_TEST_TOKEN") is None

