from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hindsight.alerts.delivery import deliver, enqueue
from hindsight.alerts.model import Alert
from hindsight.alerts.sinks import AlertmanagerSink, LogSink, SlackSink, WebhookSink
from hindsight.cli import main
from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.store.partitions import Store
from tests.jobs.test_daily import seed_collapse

NOW = datetime(2026, 1, 20, tzinfo=UTC)


class Receiver:
    """A stand-in for Slack or any webhook on 127.0.0.1; answers ``statuses`` in turn."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(self.rfile.read(length)))
                else:
                    self.rfile.read(length)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def alert(state: str = "opened", day: int = 10) -> Alert:
    return Alert(date=date(2026, 1, day), kind="performance", segment={"country": "CH"},
                 metric="accuracy", value=0.7, reference=0.94, n=200, message="CH dropped",
                 window_start=date(2026, 1, day), window_end=date(2026, 1, day), state=state,
                 opened_on=date(2026, 1, 10))


def test_each_opening_and_resolution_is_sent_once(tmp_path: Path, receiver: Receiver) -> None:
    store, sink = Store.open(tmp_path), SlackSink("slack", receiver.url)
    for state, day in [("opened", 10), ("ongoing", 11), ("ongoing", 12), ("resolved", 13)]:
        enqueue(store, [alert(state, day)], ["slack"], NOW)
        enqueue(store, [alert(state, day)], ["slack"], NOW)  # a re-run changes nothing
        deliver(store, [sink], "churn", lambda: NOW, backoff_seconds=0)
    texts = [str(b["text"]) for b in receiver.bodies]  # type: ignore[index]
    assert len(texts) == 2
    assert texts[0].startswith("*[hindsight alert] churn: performance in country=CH*")
    assert texts[1].startswith("*[hindsight resolved]")


def test_an_alert_that_opens_again_within_a_day_is_sent_again(tmp_path: Path) -> None:
    """Intra-day checks can open, resolve and open the same alert on one day: each
    transition is its own page; a replay of the same checks queues nothing new."""
    store, path = Store.open(tmp_path / "store"), tmp_path / "pages.jsonl"
    base = alert("opened", 10)

    def at(hour: int, state: str) -> Alert:
        return replace(base, state=state, at=datetime(2026, 1, 10, hour, tzinfo=UTC))

    transitions = [at(9, "opened"), at(13, "resolved"), at(18, "opened")]
    for _ in range(2):
        enqueue(store, transitions, ["log"], NOW)
    deliver(store, [LogSink("log", str(path))], "churn", lambda: NOW)
    sent = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(s["state"], s["at"][11:13]) for s in sent] == [
        ("opened", "09"), ("resolved", "13"), ("opened", "18")]


def _enqueue_many(root: str, writer: int) -> None:
    store = Store.open(root)
    for i in range(15):
        opened = replace(alert("opened", 10), segment={"writer": str(writer), "i": str(i)})
        enqueue(store, [opened], ["log"], NOW)


def test_writers_in_several_processes_lose_no_queued_alert(tmp_path: Path) -> None:
    """The daily job and the service's checks queue into one outbox file, rewritten whole:
    four processes queueing at once keep every alert."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.starmap(_enqueue_many, [(str(tmp_path), w) for w in range(4)])
    path = tmp_path / "pages.jsonl"
    deliver(Store.open(tmp_path), [LogSink("log", str(path))], "churn", lambda: NOW)
    assert len(path.read_text().splitlines()) == 60


def test_a_sink_that_is_down_keeps_the_alert_pending_until_it_is_back(
    tmp_path: Path, receiver: Receiver,
) -> None:
    store, sink = Store.open(tmp_path), WebhookSink("hook", receiver.url)
    enqueue(store, [alert()], ["hook"], NOW)
    receiver.statuses = [503, 503]
    first = deliver(store, [sink], "churn", lambda: NOW, tries=2, backoff_seconds=0)
    assert (first.delivered, first.pending) == (0, 1) and "HTTP 503" in first.errors[0]
    second = deliver(store, [sink], "churn", lambda: NOW, backoff_seconds=0)
    assert (second.delivered, second.pending) == (1, 0)
    assert receiver.bodies == [{"model": "churn", **alert().as_json()}]
    assert deliver(store, [sink], "churn", lambda: NOW).delivered == 0  # never twice


def test_an_unreachable_sink_does_not_raise(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    enqueue(store, [alert()], ["gone"], NOW)
    report = deliver(store, [WebhookSink("gone", "http://127.0.0.1:9/")], "m", lambda: NOW,
                     tries=1)
    assert report.pending == 1 and report.errors


def test_alertmanager_gets_labels_and_a_resolution_end(receiver: Receiver) -> None:
    sink = AlertmanagerSink("am", receiver.url.removesuffix("/hook"))
    sink.send(alert("resolved", 13), "churn")
    body = receiver.bodies[0][0]  # type: ignore[index]
    assert body["labels"] == {"alertname": "hindsight_performance", "model": "churn",
                              "metric": "accuracy", "segment": "country=CH"}
    assert body["startsAt"].startswith("2026-01-10")


def test_the_log_sink_appends_json_lines(tmp_path: Path) -> None:
    LogSink("log", str(tmp_path / "alerts.jsonl")).send(alert(), "churn")
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["key"] == alert().key


def test_daily_runs_queue_and_deliver_while_backfills_stay_quiet(
    make_config: Callable[..., Config], receiver: Receiver,
) -> None:
    config = make_config(sinks=[{"name": "slack", "type": "slack", "url": receiver.url}])
    with Monitor(config, clock=lambda: NOW) as m:
        seed_collapse(m)
        m.backfill(date(2026, 1, 1), date(2026, 1, 14))
        assert m.deliver().delivered == 0
        summary = m.run(date(2026, 1, 15))
        report = m.deliver(backoff_seconds=0)
    opened = [a for a in summary.alerts if a.state in ("opened", "resolved")]
    assert report.delivered == len(opened) == len(receiver.bodies)


def test_test_sink_reports_success_and_failure(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOK_URL", receiver.url)
    (tmp_path / "hindsight.yaml").write_text(
        "model: m\nstore: ./s\ncolumns: {id: i, timestamp: t, prediction: p, label: y}\n"
        "sinks:\n  - {name: ok, type: webhook, url_env: HOOK_URL}\n"
        "  - {name: down, type: slack, url: 'http://127.0.0.1:9/'}\n")
    config = str(tmp_path / "hindsight.yaml")
    assert main(["--config", config, "alerts", "test-sink", "ok"]) == 0
    assert receiver.bodies[0]["kind"] == "test"  # type: ignore[index]
    assert main(["--config", config, "alerts", "test-sink", "down"]) == 1
    assert main(["--config", config, "alerts", "test-sink", "nope"]) == 2
    assert "no sink named 'nope'" in capsys.readouterr().err
