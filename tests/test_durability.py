"""Durability under failure and concurrency, with real processes.

- Writers (``hindsight log`` processes and a ``hindsight serve`` process) are killed with
  SIGKILL at seeded random moments while other writers and a compactor run; afterwards every
  acknowledged row is stored exactly once and ``hindsight check`` finds the store sound.
- Several processes log overlapping batches while a daily run reads and a compactor merges:
  no id is stored twice, no acknowledged row is lost, and the run's counts equal a recount.
- Writers, compactions, tierings into a cold store shared by two models and retentions are
  SIGKILLed at random beside each other: nothing acknowledged is lost or doubled.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hindsight.config import load_config
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import Store, Table
from tests.conftest import COLUMNS, label, prediction

pytestmark = pytest.mark.slow


def write_config(folder: Path) -> Path:
    config = folder / "hindsight.yaml"
    config.write_text(yaml.safe_dump({"model": "m", "store": str(folder / "store"),
                                      "columns": COLUMNS, "segments": ["country", "tier"],
                                      "min_samples": 20,
                                      "service": {"compact_every_writes": 3}}))
    return config


def prediction_batch(k: int) -> list[dict[str, Any]]:
    """Batch k: 300 ids over three days, its first 100 shared with batch k - 1."""
    return [prediction(i, 1 + i % 3, "CH" if i % 2 else "DE", "a")
            for i in range(k * 200, k * 200 + 300)]


def label_batch(k: int) -> list[dict[str, Any]]:
    return [label(i, "a" if i % 7 else "b", 4 + k % 2) for i in range(k * 150, k * 150 + 200)]


def hindsight(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hindsight.cli", "--config", str(config), *args]


class Service:
    """``hindsight serve`` as its own process, restartable after a kill."""

    def __init__(self, config: Path) -> None:
        self.config = config
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "HINDSIGHT_TOKEN"}
        self.process = subprocess.Popen(hindsight(self.config, "serve", "--port",
                                                  str(self.port)),
                                        env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until it answers, however busy the machine
            if self.process.poll() is not None:
                raise RuntimeError("hindsight serve exited during start-up")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("hindsight serve did not become ready")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for k in range(12):
        pq.write_table(pa.Table.from_pylist(prediction_batch(k)),
                       tmp_path / f"predictions-{k}.parquet")
        pq.write_table(pa.Table.from_pylist(label_batch(k)), tmp_path / f"labels-{k}.parquet")
    return tmp_path


@pytest.fixture
def service(folder: Path) -> Iterator[Service]:
    running = Service(write_config(folder))
    running.start()
    yield running
    running.stop()


def stored(config: Path, table: Table, keys: str) -> Counter[tuple[Any, ...]]:
    with Monitor.from_config(config) as monitor:
        files = [f.path for f in monitor.store.files(table)]
    if not files:
        return Counter()
    rows = duckdb.execute(f"SELECT {keys} FROM read_parquet($files, union_by_name = true)",
                          {"files": files}).fetchall()
    return Counter(rows)


def test_writers_killed_at_random_lose_no_acknowledged_row_and_double_none(
    folder: Path, service: Service,
) -> None:
    config = service.config
    chance = random.Random(20261130)
    acknowledged: list[tuple[str, int]] = []
    posted: list[tuple[str, int]] = []

    def post(kind: str, k: int) -> None:
        rows = prediction_batch(k) if kind == "predictions" else label_batch(k)
        try:
            answer = httpx.post(f"{service.url}/v1/{kind}", json=rows, timeout=60)
        except httpx.HTTPError:
            return  # the server was killed under it: not acknowledged
        if answer.status_code == 200:
            posted.append((kind, k))

    kills = 0
    for round_ in range(8):
        writers = []
        for _ in range(3):
            kind, k = chance.choice(["predictions", "labels"]), chance.randrange(12)
            writers.append(((kind, k), subprocess.Popen(
                hindsight(config, "log", kind, str(folder / f"{kind}-{k}.parquet")),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        compactor = subprocess.Popen(hindsight(config, "compact"), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = threading.Thread(target=post, args=(chance.choice(["predictions", "labels"]),
                                                     chance.randrange(12)))
        client.start()
        time.sleep(chance.uniform(0.0, 2.0))  # the kill point, seeded
        victim = chance.choice([*(p for _, p in writers), compactor])
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            kills += 1
        if round_ % 3 == 2:
            service.kill()
            kills += 1
        for batch, process in writers:
            if process.wait(timeout=300) == 0:
                acknowledged.append(batch)
        compactor.wait(timeout=300)
        client.join(timeout=300)
        if service.process is not None and service.process.poll() is not None:
            service.start()
    service.stop()
    acknowledged += posted

    assert kills >= 4 and acknowledged
    ids = stored(config, Table.PREDICTIONS, COLUMNS["id"])
    assert max(ids.values(), default=1) == 1, "an id is stored twice"
    labels = stored(config, Table.LABELS, f"{COLUMNS['id']}, {COLUMNS['label']}, "
                                          f"strftime({COLUMNS['label_timestamp']}, '%Y-%m-%d')")
    assert max(labels.values(), default=1) == 1, "a label is stored twice"
    arrivals: dict[str, list[tuple[str, str]]] = {}
    for key, value, day in labels:
        arrivals.setdefault(key, []).append((value, day))
    for kind, k in acknowledged:
        if kind == "predictions":
            assert all(ids[(r["request_id"],)] == 1 for r in prediction_batch(k))
        else:  # stored, or skipped because the same label had arrived earlier
            assert all(any(value == r["actual"] and day <= r["actual_at"][:10]
                           for value, day in arrivals.get(r["request_id"], []))
                       for r in label_batch(k))
    check = subprocess.run(hindsight(config, "check", "--format", "json"),
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True


def _writer(config: str, batches: list[int], start: Any) -> list[int]:
    with Monitor.from_config(config) as monitor:
        start.wait()
        for k in batches:
            monitor.log_predictions([{**row, "served_at": row["served_at"].replace(
                "2026-01-0", "2026-01-1")} for row in prediction_batch(k)])
    return batches


def test_concurrent_writers_and_a_compactor_never_skew_a_daily_run(folder: Path) -> None:
    """Days 1-3 are logged first in small batches; then four processes log overlapping
    batches for days 11-13 while the main process compacts and runs the daily job again and
    again. Every run counts days 1-3 exactly as a recount does; afterwards no id is stored
    twice, and a run counts every day exactly."""
    config = write_config(folder)
    run_date = date(2026, 1, 14)
    with Monitor.from_config(config) as monitor:
        for k in range(0, 12, 2):  # ids 0..2499 without overlap, days 1-3
            monitor.log_predictions(prediction_batch(k))
        monitor.log_labels([label(i, "a", 4) for i in range(0, 2500, 3)])
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(4) as pool:
            start = manager.Barrier(5)
            pending = pool.starmap_async(_writer, [(str(config), [20 + w, 21 + w, 22 + w], start)
                                                   for w in range(4)])
            start.wait()
            runs = 0
            while not pending.ready() or runs < 2:
                compact(monitor.store, grace=timedelta(minutes=10))
                monitor.run(run_date)
                runs += 1
                for day in (1, 2, 3):
                    assert counted(monitor, date(2026, 1, day), run_date) == \
                        recount(monitor, date(2026, 1, day))
            pending.get(timeout=600)
        monitor.run(run_date)
        for day in (1, 2, 3, 11, 12, 13):
            assert counted(monitor, date(2026, 1, day), run_date) == \
                recount(monitor, date(2026, 1, day))
    ids = stored(config, Table.PREDICTIONS, COLUMNS["id"])
    assert max(ids.values()) == 1
    expected = {(r["request_id"],) for k in range(20, 26) for r in prediction_batch(k)}
    assert expected <= set(ids)


def counted(monitor: Monitor, day: date, as_of: date) -> tuple[int, int]:
    _, rows = monitor.metrics(day, as_of, {})
    whole = [r for r in rows if r.segment == {} and r.metric == "accuracy"]
    return (whole[0].n_predictions, whole[0].n_labelled) if whole else (0, 0)


def recount(monitor: Monitor, day: date) -> tuple[int, int]:
    files = [f.path for f in monitor.store.files(Table.PREDICTIONS, day, day)]
    labels = [f.path for f in monitor.store.files(Table.LABELS)]
    if not files:
        return (0, 0)
    found = duckdb.execute(
        "SELECT count(*), count(l.request_id) FROM read_parquet($files) p LEFT JOIN "
        "(SELECT DISTINCT request_id FROM read_parquet($labels)) l USING (request_id)",
        {"files": files, "labels": labels}).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def maintained_config(folder: Path, name: str, cold: Path, hook: str) -> Path:
    """A model whose store tiers days older than 3 into a cold store shared with another model,
    deletes days older than 8, and sends its alerts to a webhook."""
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "model": name, "store": str(folder / name), "columns": COLUMNS,
        "segments": ["country", "tier"], "min_samples": 20, "label_window_days": 3,
        "alerts": {"baseline_days": 1},
        "sinks": [{"name": "hook", "type": "webhook", "url": hook}],
        "storage": {"hot_days": 3, "cold_store": str(cold),
                    "delete_after_days": {"predictions": 8, "labels": 8}}}))
    return config


class Hook:
    """A webhook on 127.0.0.1 that takes a moment for each post (so a delivery can be killed
    between two), and records each post's idempotency key."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(0.1)  # a slow sink, not a wait for readiness
                hook.keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def dated_batch(k: int, today: date) -> list[dict[str, Any]]:
    """Batch k: 300 ids over the four days from a week ago, its first 100 shared with k - 1."""
    return [{**prediction(i, 1, "CH" if i % 2 else "DE", "a"),
             "served_at": f"{today - timedelta(days=7 - i % 4)}T12:00:00Z"}
            for i in range(k * 200, k * 200 + 300)]


@pytest.fixture
def hook() -> Iterator[Hook]:
    running = Hook()
    yield running
    running.close()


def test_maintenance_killed_and_raced_at_random_loses_nothing_of_two_models_sharing_a_cold_store(
    tmp_path: Path, hook: Hook,
) -> None:
    """Writers of two models, compactions (grace 0), tierings into one shared cold store,
    retentions and deliveries to a webhook run side by side and are SIGKILLed at seeded random
    moments: every acknowledged row is stored exactly once in its own model's store, expired
    days are gone whole, no cold file is left that no commit names, ``check`` finds both stores
    sound, and every alert reaches the webhook, again only if it was in flight at a kill."""
    from hindsight.alerts.delivery import enqueue, idempotency_key, outbox_id
    from hindsight.alerts.model import Alert
    from hindsight.store import tiering

    today = date.today()
    cold = tmp_path / "cold"
    configs = {name: maintained_config(tmp_path, name, cold, hook.url) for name in ("a", "b")}
    queued: set[str] = set()
    for k in range(12):
        pq.write_table(pa.Table.from_pylist(dated_batch(k, today)), tmp_path / f"batch-{k}.parquet")
    earlier = datetime.now(UTC) - timedelta(days=3)  # when these days were not expired yet
    with Monitor(load_config(configs["a"]), clock=lambda: earlier) as monitor:  # two days that
        monitor.log_predictions([{**prediction(90_000 + i, 1, "DE", "a"),
                                  "served_at": f"{today - timedelta(days=9 + i % 2)}T12:00:00Z"}
                                 for i in range(50)])  # retention removes
    chance = random.Random(20261203)
    acknowledged: dict[str, list[int]] = {"a": [], "b": []}
    kills = 0
    for round_ in range(8):
        alerts = [Alert(date=today, kind="performance", segment={"country": f"C{round_}-{i}"},
                        metric="accuracy", value=0.7, reference=0.9, n=100, message="drop",
                        window_start=today, window_end=today) for i in range(8)]
        with Monitor.from_config(configs["a"]) as monitor:  # beside a delivery still running
            enqueue(monitor.store, alerts, ["hook"], datetime.now(UTC))
        queued |= {idempotency_key(outbox_id("hook", a)) for a in alerts}
        writers = [(name, k, subprocess.Popen(
                        hindsight(configs[name], "log", "predictions",
                                  str(tmp_path / f"batch-{k}.parquet")),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                   for name in ("a", "b") for k in [chance.randrange(12)]]
        upkeep = [subprocess.Popen(hindsight(configs[chance.choice("ab")], *command),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for command in (["compact", "--grace-minutes", "0"],
                                  ["storage", "tier", "--as-of", str(today)],
                                  ["storage", "tier", "--as-of", str(today)],
                                  ["storage", "retention", "--as-of", str(today)],
                                  ["deliver"])]
        time.sleep(chance.uniform(0.5, 3.0))  # the kill point, seeded
        victim = chance.choice([*(p for _, _, p in writers), *upkeep])
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            kills += 1
        for name, k, process in writers:
            if process.wait(timeout=300) == 0:
                acknowledged[name].append(k)
        for process in upkeep:
            process.wait(timeout=300)

    later = datetime.now(UTC) + timedelta(hours=1)  # past every grace: sweep what kills left
    for config in configs.values():
        with Monitor.from_config(config) as monitor:
            monitor.retention(today)
            tiering.tier(monitor.store, Store.open(cold), today, 3, now=later)
            assert monitor.deliver().pending == 0
    assert set(hook.keys) == queued, "an alert was never sent, or sent without its key"
    assert len(hook.keys) - len(queued) <= kills, "an alert not in flight at a kill was resent"
    assert kills >= 4 and acknowledged["a"] and acknowledged["b"]
    named: set[str] = set()
    for name, config in configs.items():
        ids = stored(config, Table.PREDICTIONS, COLUMNS["id"])
        assert max(ids.values()) == 1, f"an id of {name} is stored twice"
        expected = {r["request_id"] for k in acknowledged[name] for r in dated_batch(k, today)}
        assert expected <= {key for (key,) in ids}, f"an acknowledged row of {name} is lost"
        assert not any(key.startswith("r9") and len(key) == 6 for (key,) in ids)  # expired
        check = subprocess.run(hindsight(config, "check", "--format", "json"),
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 0, check.stdout + check.stderr
        with Monitor.from_config(config) as monitor:
            named |= {f.path for f in monitor.store.files(Table.PREDICTIONS) if f.cold}
    left = {str(p) for p in cold.rglob("tiered-*.parquet")}
    assert named and left == named, "a cold file no commit names was left, or one was lost"
