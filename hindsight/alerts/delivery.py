"""Delivering alerts through sinks, without losing or repeating any.

Every opened or resolved alert is written to an outbox in the store, once per sink (the
outbox id is sink, key, state and the day it opened, so a re-run or a backfill never queues
it twice). Delivery retries with backoff; what still fails stays pending for the next call.
A sink that is down never blocks the daily job: the job only queues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from hindsight.alerts.model import Alert, alert_from_json
from hindsight.alerts.sinks import DeliveryError, Sink
from hindsight.engine.base import end_of_day
from hindsight.store.partitions import Store, Table

OUTBOX_FILE = "outbox.parquet"
SENT_STATES = ("opened", "resolved")
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


def outbox_id(sink: str, alert: Alert) -> str:
    """One per transition: a daily run's (of its date), or an intra-day check's (of its
    instant: an alert may resolve and open again within a day)."""
    daily = f"{sink}|{alert.key}|{alert.state}|{alert.opened_on or alert.date}"
    if alert.at is None or alert.at == end_of_day(alert.date):
        return daily
    return f"{daily}|{alert.at.isoformat()}"


def _load(store: Store) -> list[dict[str, object]]:
    files = store.files(Table.OUTBOX)
    return store.read(files[0].path).to_pylist() if files else []


def _save(store: Store, rows: list[dict[str, object]]) -> None:
    store.write(Table.OUTBOX, pa.Table.from_pylist(rows, schema=OUTBOX_SCHEMA),
                name=OUTBOX_FILE)


def enqueue(store: Store, alerts: Sequence[Alert], sinks: Sequence[str],
            now: datetime) -> int:
    """Queue every opened or resolved alert for every sink, once. Returns how many queued.
    The outbox is one file rewritten whole: writers (the daily job, the service's checks)
    take turns on the store's outbox lock."""
    with store.lock("outbox"):
        return _enqueue(store, alerts, sinks, now)


def _enqueue(store: Store, alerts: Sequence[Alert], sinks: Sequence[str],
             now: datetime) -> int:
    rows = _load(store)
    known = {str(r["id"]) for r in rows}
    added = 0
    for alert in alerts:
        if alert.state not in SENT_STATES:
            continue
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
            tries: int = 3, backoff_seconds: float = 0.5) -> DeliveryReport:
    """Send what is pending, oldest first, ``tries`` times each with doubling pauses."""
    with store.lock("outbox"):
        return _deliver(store, sinks, model, now, tries, backoff_seconds)


def _deliver(store: Store, sinks: Sequence[Sink], model: str, now: Callable[[], datetime],
             tries: int, backoff_seconds: float) -> DeliveryReport:
    by_name = {s.name: s for s in sinks}
    rows = _load(store)
    delivered, errors = 0, []
    for row in rows:
        sink = by_name.get(str(row["sink"]))
        if row["delivered_at"] is not None or sink is None:
            continue
        alert = alert_from_json(json.loads(str(row["alert"])))
        for attempt in range(tries):
            row["attempts"] = int(row["attempts"] or 0) + 1  # type: ignore[call-overload]
            try:
                sink.send(alert, model)
            except DeliveryError as exc:
                row["last_error"] = str(exc)
                if attempt + 1 < tries:
                    time.sleep(backoff_seconds * 2**attempt)
                continue
            row["delivered_at"], row["last_error"] = now(), None
            delivered += 1
            break
        else:
            errors.append(str(row["last_error"]))
    if rows:
        _save(store, rows)
    pending = sum(1 for r in rows if r["delivered_at"] is None and r["sink"] in by_name)
    return DeliveryReport(delivered, pending, tuple(errors))


