"""The shipped rules and the Alertmanager sink against the real servers (Debian's
prometheus and prometheus-alertmanager), started on 127.0.0.1 by the test."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from hindsight.alerts.model import Alert
from hindsight.alerts.sinks import AlertmanagerSink
from hindsight.config import Config
from hindsight.monitor import Monitor
from tests.service.test_app import Server, collapse_rows

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-rules.yml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Until ``check`` holds. A server still starting may refuse the connection or answer
    something that is not the JSON asked for (ValueError, KeyError): not ready yet."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_shipped_rules_are_valid() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.slow
def test_prometheus_scrapes_metrics_and_fires_the_shipped_rule(
    make_config: Callable[..., Config], tmp_path: Path,
    process: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    rows, labels = collapse_rows()
    with Monitor(make_config(), clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        monitor.run(date(2026, 1, 15))
        server = Server(monitor, token=None)
        try:
            target = server.url.removeprefix("http://")
            port = free_port()
            (tmp_path / "prometheus.yml").write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{RULES}']\n"
                f"scrape_configs:\n  - job_name: hindsight\n"
                f"    static_configs: [{{targets: ['{target}']}}]\n")
            process(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp_path / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}"])
            api = f"http://127.0.0.1:{port}/api/v1"
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready",
                                       timeout=5).status_code == 200, 120, "prometheus")

            def firing() -> bool:
                alerts = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
                return any(a["labels"]["alertname"] == "HindsightPerformanceAlertOpen"
                           and a["state"] == "firing" for a in alerts)

            wait_for(firing, 120, "the performance rule to fire")
            value = httpx.get(f"{api}/query", params={"query": "hindsight_open_alerts"},
                              timeout=5).json()["data"]["result"]
            assert {r["metric"]["kind"] for r in value} >= {"performance", "model_version"}
        finally:
            server.stop()


@pytest.mark.slow
def test_alertmanager_receives_what_the_sink_sends(
    tmp_path: Path, process: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    (tmp_path / "alertmanager.yml").write_text(
        "route: {receiver: nobody}\nreceivers:\n  - name: nobody\n")
    process(["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
             f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="])
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=5).status_code == 200, 120,
             "alertmanager")
    day = date(2026, 1, 10)
    AlertmanagerSink("am", url).send(
        Alert(date=day, kind="performance", segment={"country": "CH"}, metric="accuracy",
              value=0.7, reference=0.94, n=200, message="CH dropped", window_start=day,
              window_end=day, opened_on=day), "churn")
    received = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
    assert [a["labels"] for a in received] == [{
        "alertname": "hindsight_performance", "model": "churn", "metric": "accuracy",
        "segment": "country=CH"}]
    assert received[0]["annotations"]["description"] == "CH dropped"
