"""Alerts as frozen values, and their stored (Parquet) form."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from hindsight.engine.base import end_of_day

ALERT_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("kind", pa.string()),
        ("segment", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("reference", pa.float64()),
        ("n", pa.int64()),
        ("message", pa.string()),
        ("window_start", pa.date32()),
        ("window_end", pa.date32()),
        ("key", pa.string()),
        ("aggregate", pa.float64()),
        ("state", pa.string()),
        ("opened_on", pa.date32()),
        ("passing_runs", pa.int64()),
        ("explains", pa.list_(pa.string())),
        ("at", pa.timestamp("us", "UTC")),
        ("incident", pa.string()),
        ("headline", pa.bool_()),
    ]
)
# an alert in one of these states is open: tested and failing, or no longer tested (stale)
OPEN_STATES = ("opened", "ongoing", "stale")


def segment_key(segment: dict[str, str]) -> str:
    """The canonical text of a segment: JSON with sorted keys, as the engine writes it.

    >>> segment_key({"b": "2", "a": "1"})
    '{"a":"1","b":"2"}'
    """
    return json.dumps(segment, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing worth a human's attention, found by the run of ``date``."""

    date: dt.date
    kind: str  # performance | estimated | prediction_drift | feature_drift | model_version | data
    segment: dict[str, str] = field(hash=False)
    metric: str
    value: float
    reference: float
    n: int
    message: str
    window_start: dt.date
    window_end: dt.date
    aggregate: float | None = None  # the population's metric on the same days
    state: str = "opened"  # opened | ongoing | stale | resolved
    opened_on: dt.date | None = None
    passing_runs: int = 0  # consecutive runs an open alert's segment was tested and fine
    explains: tuple[str, ...] = ()  # every failing segment this alert covers, largest first
    at: dt.datetime | None = None  # the check that produced this row; a daily run's: its end
    incident: str | None = None  # alerts of one cause share it (see ``incidents``)
    headline: bool = False  # this alert names its incident: the page sent for it

    @property
    def key(self) -> str:
        """Stable across runs: the same condition in the same place has the same key."""
        return f"{self.kind}|{self.metric}|{segment_key(self.segment)}"

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        for name in ("date", "window_start", "window_end", "opened_on"):
            row[name] = row[name].isoformat() if row[name] else None
        row["at"] = (self.at or end_of_day(self.date)).astimezone(dt.UTC).isoformat()
        row["key"] = self.key
        row["explains"] = list(self.explains)
        row["estimated"] = self.kind == "estimated"  # a label-free warning (``estimated``)
        return row


def alert_from_json(row: dict[str, Any]) -> Alert:
    """The inverse of ``Alert.as_json``."""
    fields = {k: v for k, v in row.items() if k not in ("key", "estimated")}
    for name in ("date", "window_start", "window_end", "opened_on"):
        if fields.get(name) is not None:
            fields[name] = dt.date.fromisoformat(fields[name])
    if fields.get("at") is not None:
        fields["at"] = dt.datetime.fromisoformat(fields["at"])
    fields["explains"] = tuple(fields.get("explains") or ())
    return Alert(**fields)


def alerts_to_table(alerts: list[Alert]) -> pa.Table:
    rows = [
        {**asdict(a), "segment": segment_key(a.segment), "key": a.key,
         "explains": list(a.explains), "at": a.at or end_of_day(a.date)} for a in alerts
    ]
    return pa.Table.from_pylist(rows, schema=ALERT_SCHEMA)


def alerts_from_table(table: pa.Table) -> list[Alert]:
    return [
        Alert(
            date=row["date"], kind=row["kind"], segment=json.loads(row["segment"]),
            metric=row["metric"], value=row["value"], reference=row["reference"], n=row["n"],
            message=row["message"], window_start=row["window_start"],
            window_end=row["window_end"], aggregate=row["aggregate"], state=row["state"],
            opened_on=row["opened_on"], passing_runs=row["passing_runs"],
            explains=tuple(row.get("explains") or ()),  # absent in stores written before it
            at=row.get("at") or end_of_day(row["date"]),  # likewise
            incident=row.get("incident"), headline=bool(row.get("headline")),  # likewise
        )
        for row in table.to_pylist()
    ]
