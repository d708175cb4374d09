"""Delivering alerts through sinks: nothing lost, and at most the one send in flight repeated.

Every opened or resolved alert is written to an outbox in the store, once per sink (the
outbox id is sink, key, state and the day it opened, so a re-run or a backfill never queues
it twice). Delivery sends what is pending, oldest first, with retries and backoff, and makes
each outcome durable (``journal``) before it starts the next send; what still fails stays
pending for the next call. A delivery killed mid-send may repeat that one alert on its next
run, never one recorded as sent: every send carries an idempotency key (a digest of its
outbox id, the same on every try) for the sink to drop a repeat by. A run delivers within a
small time budget and leaves the rest pending (``hindsight deliver``, the service's checks and
the pipelines' deliver step send it), so a sink that never answers never holds a run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from hindsight.alerts.incidents import pages
from hindsight.alerts.journal import DeliveryLock, Journal, Outcome
from hindsight.alerts.model import Alert, alert_from_json
from hindsight.alerts.sinks import TIMEOUT_SECONDS, DeliveryError, Sink
from hindsight.engine.base import end_of_day
from hindsight.store.partitions import Store, Table

OUTBOX_FILE = "outbox.parquet"
RUN_DELIVERY_SECONDS = 10.0  # how long a run (or a service check) delivers before it moves on
OUTBOX_SCHEMA = pa.schema([
    ("id", pa.string()), ("sink", pa.string()), ("alert", pa.string()),
    ("queued_at", pa.timestamp("us", "UTC")), ("attempts", pa.int64()),
    ("delivered_at", pa.timestamp("us", "UTC")), ("last_error", pa.string()),
])


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int
    pending: int
    errors: tuple[str, ...]
    note: str = ""  # why some were left pending without trying (out of time, another sender)


def outbox_id(sink: str, alert: Alert) -> str:
    """One per transition: a daily run's (of its date), or an intra-day check's (of its
    instant: an alert may resolve and open again within a day)."""
    daily = f"{sink}|{alert.key}|{alert.state}|{alert.opened_on or alert.date}"
    if alert.at is None or alert.at == end_of_day(alert.date):
        return daily
    return f"{daily}|{alert.at.isoformat()}"


def idempotency_key(outbox: str) -> str:
    """The key a sink can drop a repeated delivery by: the same for every send of one outbox
    row, and plain ASCII whatever the segment values.

    >>> idempotency_key("hook|performance|accuracy|country=CH|opened|2026-01-10")
    'a140e9c106f4c2782a99f80ab19fbaac'
    """
    return hashlib.sha256(outbox.encode()).hexdigest()[:32]


def _load(store: Store) -> list[dict[str, object]]:
    files = store.files(Table.OUTBOX)
    return store.read(files[0].path).to_pylist() if files else []


def _save(store: Store, rows: list[dict[str, object]]) -> None:
    store.write(Table.OUTBOX, pa.Table.from_pylist(rows, schema=OUTBOX_SCHEMA),
                name=OUTBOX_FILE)


def enqueue(store: Store, alerts: Sequence[Alert], sinks: Sequence[str],
            now: datetime) -> int:
    """Queue every page of a run (``incidents.pages``: a new incident's headline, an
    incident's resolution) for every sink, once. Returns how many queued.
    The outbox is one file rewritten whole: writers (the daily job, the service's checks)
    take turns on the store's outbox lock."""
    with store.lock("outbox"):
        return _enqueue(store, alerts, sinks, now)


def _enqueue(store: Store, alerts: Sequence[Alert], sinks: Sequence[str],
             now: datetime) -> int:
    rows = _load(store)
    known = {str(r["id"]) for r in rows}
    added = 0
    for alert in pages(alerts):  # one page per incident
        body = json.dumps(alert.as_json())
        for sink in sinks:
            key = outbox_id(sink, alert)
            if key not in known:
                known.add(key)
                rows.append({"id": key, "sink": sink, "alert": body, "queued_at": now,
                             "attempts": 0, "delivered_at": None, "last_error": None})
                added += 1
    if added:
        _save(store, rows)
    return added


def deliver(store: Store, sinks: Sequence[Sink], model: str, now: Callable[[], datetime],
            tries: int = 3, backoff_seconds: float = 0.5, within: float | None = None,
            wait: bool = True) -> DeliveryReport:
    """Send what is pending, oldest first, ``tries`` times each with doubling pauses, each
    outcome durable before the next send. ``within``: seconds after which nothing more is
    sent (each send's timeout shortened to fit), the rest left pending. ``wait=False``: if
    another delivery is sending, leave the pending alerts to it (it sends what was queued
    before this call) rather than wait for it."""
    lock = DeliveryLock(store)
    if not lock.acquire(wait):
        names = {s.name for s in sinks}
        return DeliveryReport(0, _pending(_load(store), names), (),
                              "another delivery is sending them")
    try:
        deadline = None if within is None else time.monotonic() + within
        return _deliver(store, lock, sinks, model, now, tries, backoff_seconds, deadline)
    finally:
        lock.release()


def _deliver(store: Store, lock: DeliveryLock, sinks: Sequence[Sink], model: str,
             now: Callable[[], datetime], tries: int, backoff_seconds: float,
             deadline: float | None) -> DeliveryReport:
    by_name = {s.name: s for s in sinks}
    journal, tried = Journal(store), set[str]()
    delivered, errors = 0, list[str]()
    while True:  # again while alerts were queued during the sends
        with store.lock("outbox"):
            rows = _fold(store, journal)
            todo = [r for r in rows if r["delivered_at"] is None and r["sink"] in by_name
                    and r["id"] not in tried]
            if not todo or _left(deadline) <= 0:
                # let go of sending before the outbox: whoever queues after this fold finds
                # the delivery lock free and sends what it queued
                lock.release()
                note = (f"out of time after {len(tried)} sends; 'hindsight deliver' sends "
                        "the rest" if todo else "")
                return DeliveryReport(delivered, _pending(rows, set(by_name)),
                                      tuple(errors), note)
        for row in todo:
            if _left(deadline) <= 0:
                break
            key = str(row["id"])
            tried.add(key)
            alert = alert_from_json(json.loads(str(row["alert"])))
            attempts, error = _send(by_name[str(row["sink"])], alert, model, key, tries,
                                    backoff_seconds, deadline)
            journal.record(Outcome(key, attempts, now() if error is None else None, error))
            if error is None:
                delivered += 1
            else:
                errors.append(error)


def _send(sink: Sink, alert: Alert, model: str, outbox: str, tries: int,
          backoff_seconds: float, deadline: float | None) -> tuple[int, str | None]:
    """Up to ``tries`` sends, none started after the deadline: (attempts, last error)."""
    error = "no time left to send"
    for attempt in range(tries):
        left = _left(deadline)
        if left <= 0:
            return attempt, error
        try:
            sink.send(alert, model, idempotency_key(outbox), min(TIMEOUT_SECONDS, left))
        except DeliveryError as exc:
            error = str(exc)
            if attempt + 1 < tries:
                time.sleep(max(0.0, min(backoff_seconds * 2**attempt, _left(deadline))))
            continue
        return attempt + 1, None
    return tries, error


def _fold(store: Store, journal: Journal) -> list[dict[str, object]]:
    """The outbox with the journal's outcomes applied, saved, and the journal emptied. A kill
    between the save and the removal folds the same outcomes again: sent stays sent (only
    the attempts count is added twice)."""
    rows = _load(store)
    outcomes, files = journal.read()
    if not files:
        return rows
    by_id = {str(r["id"]): r for r in rows}
    for outcome in outcomes:
        row = by_id.get(outcome.id)
        if row is None:
            continue  # cannot happen: outbox rows are never removed
        row["attempts"] = int(str(row["attempts"] or 0)) + outcome.attempts
        if outcome.delivered_at is not None:
            if row["delivered_at"] is None:
                row["delivered_at"] = outcome.delivered_at
            row["last_error"] = None
        elif row["delivered_at"] is None:
            row["last_error"] = outcome.error
    if outcomes:
        _save(store, rows)
    journal.remove(files)  # a record cut short too: the next one must start a line
    return rows


def _pending(rows: list[dict[str, object]], sinks: set[str]) -> int:
    return sum(1 for r in rows if r["delivered_at"] is None and r["sink"] in sinks)


def _left(deadline: float | None) -> float:
    return float("inf") if deadline is None else deadline - time.monotonic()
