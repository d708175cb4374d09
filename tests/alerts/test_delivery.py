from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from hindsight.alerts.delivery import deliver, enqueue, idempotency_key, outbox_id
from hindsight.alerts.journal import Journal
from hindsight.alerts.model import Alert
from hindsight.alerts.sinks import AlertmanagerSink, LogSink, SlackSink, WebhookSink
from hindsight.cli import main
from hindsight.config import Config, load_config, parse_config
from hindsight.monitor import Monitor
from hindsight.service.watch import DriftWatch
from hindsight.simulate import demo_config
from hindsight.store.partitions import Store, Table
from tests.conftest import COLUMNS
from tests.jobs.test_daily import seed_collapse

NOW = datetime(2026, 1, 20, tzinfo=UTC)


class Receiver:
    """A stand-in for Slack or any webhook on 127.0.0.1; answers ``statuses`` in turn. From
    the ``hold_from``-th post on, it records the post and then answers only once ``release``
    is set (a sink that never answers, or one a sender is killed in front of)."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        self.statuses: list[int] = []
        self.received: list[tuple[str | None, object]] = []  # (idempotency key, body)
        self.hold_from: int | None = None
        self.holding, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.received.append((self.headers.get("Idempotency-Key"), body))
                    number = len(receiver.received)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.hold_from is not None and number >= receiver.hold_from:
                    receiver.holding.set()
                    receiver.release.wait()
                    return  # the sender is gone or gave up: no answer
                if status == 200:
                    receiver.bodies.append(body)
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
    r.release.set()
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
    key = idempotency_key(outbox_id("hook", alert()))
    assert receiver.bodies == [{"model": "churn", **alert().as_json(), "idempotency_key": key}]
    assert [k for k, _ in receiver.received] == [key] * 3  # the same on every try
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


def test_alertmanager_knows_an_alert_by_its_incident_so_any_member_resolves_it(
    receiver: Receiver,
) -> None:
    sink = AlertmanagerSink("am", receiver.url.removesuffix("/hook"))
    sink.send(replace(alert(), incident="abc", headline=True), "churn")
    sink.send(replace(alert("resolved", 13), segment={"country": "CH", "tier": "gold"},
                      incident="abc"), "churn")
    opened, resolved = (b[0] for b in receiver.bodies)  # type: ignore[index]
    assert opened["labels"] == resolved["labels"] == {
        "alertname": "hindsight_performance", "model": "churn", "incident": "abc"}
    assert resolved["annotations"]["segment"] == "country=CH × tier=gold"


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


ROOT = Path(__file__).resolve().parents[2]


def _webhook_config(tmp_path: Path, url: str, **extra: object) -> Path:
    raw: dict[str, object] = {
        "model": "churn", "store": str(tmp_path / "store"), "columns": dict(COLUMNS),
        "segments": ["country", "tier"], "min_samples": 20,
        "sinks": [{"name": "hook", "type": "webhook", "url": url}], **extra}
    path = tmp_path / "hindsight.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_delivery_killed_mid_loop_resends_only_the_alert_in_flight_under_its_key(
    tmp_path: Path, receiver: Receiver,
) -> None:
    """``hindsight deliver`` is SIGKILLed while the receiver holds the 4th of 10 posts
    unanswered: the next delivery sends the other six and the 4th again, never one of the
    three answered before, and the 4th carries the same idempotency key both times."""
    config = _webhook_config(tmp_path, receiver.url)
    store = Store.open(tmp_path / "store")
    alerts = [replace(alert(), segment={"country": f"C{i}"}) for i in range(10)]
    assert enqueue(store, alerts, ["hook"], NOW) == 10
    receiver.hold_from = 4
    process = subprocess.Popen(
        [sys.executable, "-m", "hindsight.cli", "--config", str(config), "deliver"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert receiver.holding.wait(timeout=120), process.communicate(timeout=60)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    receiver.hold_from = None
    receiver.release.set()
    assert len(receiver.received) == 4

    report = deliver(store, [WebhookSink("hook", receiver.url)], "churn", lambda: NOW)
    assert (report.delivered, report.pending) == (7, 0)
    keys = [key for key, _ in receiver.received]
    segments = [body["segment"]["country"] for _, body in receiver.received]  # type: ignore[index]
    assert len(keys) == 11 and None not in keys
    assert sorted(set(segments)) == sorted(f"C{i}" for i in range(10))
    twice = [s for s in set(segments) if segments.count(s) > 1]
    assert twice == [segments[3]]  # the one in flight at the kill, and no other
    assert len(set(keys)) == 10 and keys.count(keys[3]) == 2
    in_body = [body["idempotency_key"] for _, body in receiver.received]  # type: ignore[index]
    assert in_body == keys


def test_a_log_sinks_line_is_on_disk_before_its_outbox_row_says_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, path = Store.open(tmp_path / "store"), tmp_path / "pages.jsonl"
    enqueue(store, [alert(), alert("resolved", 13)], ["log"], NOW)
    fsynced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    report = deliver(store, [LogSink("log", str(path))], "churn", lambda: NOW)
    monkeypatch.undo()
    assert report.delivered == 2
    outbox = tmp_path / "store" / "outbox"
    order = ["line" if p == str(path) else "sent" for p in fsynced
             if p == str(path) or Path(p).parent == outbox]  # a file, not the directory
    # each line durable before anything in the outbox says it was sent, and before the next
    assert order[:4] == ["line", "sent", "line", "sent"], fsynced


def test_a_run_whose_sink_never_answers_returns_promptly_and_leaves_its_alerts_pending(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
) -> None:
    """The run delivers within ``--delivery-seconds``; what a sink has not taken by then stays
    pending, and ``hindsight deliver`` sends it once the sink answers."""
    config = _webhook_config(tmp_path, receiver.url)
    with Monitor(load_config(config)) as m:
        seed_collapse(m)
    receiver.hold_from = 1  # never answers
    started = time.monotonic()
    assert main(["--config", str(config), "run", "--date", "2026-01-15",
                 "--delivery-seconds", "1"]) == 0
    elapsed = time.monotonic() - started
    output = capsys.readouterr().out
    assert len(receiver.received) <= 1 and elapsed < 30, (elapsed, receiver.received)
    queued = deliver_report_pending(config)
    assert queued > 0 and f"0 delivered, {queued} pending" in output
    receiver.release.set()
    receiver.hold_from = None
    assert main(["--config", str(config), "deliver"]) == 0
    assert f"{queued} delivered, 0 pending" in capsys.readouterr().out
    assert len(receiver.bodies) == queued


def deliver_report_pending(config: Path) -> int:
    """How many outbox rows wait for a sink (read from the store, without sending)."""
    store = Store.open(load_config(config).store)
    return sum(1 for row in store.read(store.files(Table.OUTBOX)[0].path).to_pylist()
               if row["delivered_at"] is None)


def test_a_log_line_written_by_a_killed_delivery_is_not_written_again(tmp_path: Path) -> None:
    """The kill fell between the line and its record: the next delivery finds the key on the
    file's last line and records the alert as sent without a second line."""
    store, path = Store.open(tmp_path / "store"), tmp_path / "pages.jsonl"
    enqueue(store, [alert()], ["log"], NOW)
    sink = LogSink("log", str(path))
    sink.send(alert(), "churn", idempotency_key(outbox_id("log", alert())))  # the one in flight
    assert deliver(store, [sink], "churn", lambda: NOW).delivered == 1
    assert len(path.read_text().splitlines()) == 1
    assert deliver(store, [sink], "churn", lambda: NOW).pending == 0


def test_a_record_cut_short_by_a_kill_counts_for_nothing_and_the_journal_starts_afresh(
    tmp_path: Path,
) -> None:
    store, path = Store.open(tmp_path / "store"), tmp_path / "pages.jsonl"
    enqueue(store, [alert(), alert("resolved", 13)], ["log"], NOW)
    cut = '{"id": "' + outbox_id("log", alert()) + '", "attem'
    (tmp_path / "store" / "outbox" / "delivered.jsonl").write_text(cut)  # no line end
    assert deliver(store, [LogSink("log", str(path))], "churn", lambda: NOW).delivered == 2
    assert not (tmp_path / "store" / "outbox" / "delivered.jsonl").exists()
    rows = store.read(store.files(Table.OUTBOX)[0].path).to_pylist()
    assert [(r["attempts"], r["delivered_at"] is not None) for r in rows] == [(1, True)] * 2


def test_a_run_beside_a_delivery_stuck_on_a_dead_sink_queues_at_once_and_leaves_it_the_send(
    tmp_path: Path, receiver: Receiver,
) -> None:
    """Sending holds the delivery lock, not the outbox's: a run queues while another delivery
    waits on a sink, does not wait for it, and that delivery sends what the run queued."""
    store, sink = Store.open(tmp_path), WebhookSink("hook", receiver.url)
    enqueue(store, [alert()], ["hook"], NOW)
    receiver.hold_from = 1
    stuck = threading.Thread(target=deliver, args=(store, [sink], "churn", lambda: NOW),
                             kwargs={"backoff_seconds": 0})
    stuck.start()
    assert receiver.holding.wait(timeout=60)
    later = replace(alert(), segment={"country": "DE"})
    assert enqueue(store, [later], ["hook"], NOW) == 1
    report = deliver(store, [sink], "churn", lambda: NOW, wait=False)
    assert stuck.is_alive()  # neither the queueing nor the run's delivery waited for it
    assert (report.delivered, report.note) == (0, "another delivery is sending them")
    receiver.hold_from = None
    receiver.release.set()
    stuck.join()
    sent = sorted(b["segment"]["country"] for b in receiver.bodies)  # type: ignore[index]
    assert sent == ["CH", "DE"]
    assert deliver(store, [sink], "churn", lambda: NOW).pending == 0


def test_the_services_next_check_delivers_what_a_run_left_pending(tmp_path: Path) -> None:
    raw = demo_config(str(tmp_path / "store"))
    raw["drift"] = {"every": "1h"}
    raw["sinks"] = [{"name": "pager", "type": "log", "path": str(tmp_path / "pages.jsonl")}]
    config = parse_config(raw, source="test.yaml")
    enqueue(Store.open(config.store), [alert()], ["pager"], NOW)  # a run's, its sink was down
    now = [datetime(2026, 1, 20, 9, 0, tzinfo=UTC)]
    watch = DriftWatch(config, clock=lambda: now[0])
    try:
        now[0] += timedelta(hours=1)
        watch.run_due()  # no predictions yet: the check finds nothing, delivery still runs
    finally:
        watch.stop()
    lines = (tmp_path / "pages.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [alert().key]


def test_a_store_that_cannot_append_records_each_send_as_its_own_object(
    tmp_path: Path,
) -> None:
    """As in a bucket: one small object per send, folded into the outbox and removed."""
    (tmp_path / "store" / "outbox" / "delivered").mkdir(parents=True)  # a bucket needs none
    store = Store(pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()), "store")
    assert not store.is_local
    enqueue(store, [alert(), alert("resolved", 13)], ["log"], NOW)
    journal, recorded = Journal(store), []
    sink = LogSink("log", str(tmp_path / "pages.jsonl"))

    class Watching:
        name = "log"

        def send(self, alert: Alert, model: str, key: str | None = None,
                 timeout: float = 5.0) -> None:
            recorded.append(len(journal.read()[0]))  # what is durable before this send
            sink.send(alert, model, key, timeout)

    assert deliver(store, [Watching()], "churn", lambda: NOW).delivered == 2
    assert recorded == [0, 1]
    assert journal.read() == ([], [])
    assert deliver(store, [sink], "churn", lambda: NOW).pending == 0
