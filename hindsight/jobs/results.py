"""Reading what the daily runs wrote: alerts over a date range, metrics of a prediction day."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.model import OPEN_STATES, Alert, alerts_from_table
from hindsight.engine.base import end_of_day
from hindsight.store.partitions import Store, Table


def read_alerts(store: Store, start: date | None = None, end: date | None = None) -> list[Alert]:
    """The daily runs' alert rows of a date range, and the openings and resolutions of the
    intra-day checks on those dates, in the order they happened."""
    found = _alert_rows(store, Table.ALERTS, start, end)
    found += [a for a in _alert_rows(store, Table.CHECKS, start, end)
              if a.state in ("opened", "resolved")]
    return sorted(found, key=lambda a: (a.date, a.at or end_of_day(a.date), a.key))


def open_alerts(store: Store, start: date | None = None,
                end: date | None = None) -> list[Alert]:
    """What is open after the latest run of a range (default: the latest run), one row per
    alert: the open rows of the latest daily run, its prediction drift as the latest intra-day
    check (if one came after it) left it."""
    from hindsight.jobs.intraday import KIND, state_before  # the drift check's: on demand

    def within(day: date) -> bool:
        return (start is None or day >= start) and (end is None or day <= end)

    runs = [d for d in store.partitions(Table.ALERTS) if within(d)]
    checked = [f.dt for f in store.files(Table.CHECKS, start, end) if f.dt is not None]
    last = max([*runs, *checked], default=None)
    if last is None:
        return []
    daily = _alert_rows(store, Table.ALERTS, runs[-1], runs[-1]) if runs else []
    drifted = state_before(store, end_of_day(last) + timedelta(microseconds=1))
    found = [a for a in daily if a.kind != KIND] + drifted
    return sorted((a for a in found if a.state in OPEN_STATES and within(a.date)),
                  key=lambda a: a.key)


def _alert_rows(store: Store, table: Table, start: date | None, end: date | None) -> list[Alert]:
    files = store.files(table, start, end)
    if not files:
        return []
    return alerts_from_table(pa.concat_tables([store.read(f.path) for f in files],
                                              promote_options="permissive"))


@dataclass(frozen=True, slots=True)
class MetricRow:
    date: date
    segment: dict[str, str]
    metric: str
    value: float | None
    n_predictions: int
    n_labelled: int
    label_coverage: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(), "segment": self.segment, "metric": self.metric,
            "value": self.value, "n_predictions": self.n_predictions,
            "n_labelled": self.n_labelled, "label_coverage": self.label_coverage,
        }


def covering_run(store: Store, day: date, as_of: date | None = None) -> date | None:
    """The stored run of ``as_of`` (default: the latest run), if it is not before ``day``."""
    runs = [d for d in store.partitions(Table.METRICS) if d >= day]
    if as_of is None:
        return runs[-1] if runs else None
    return as_of if as_of in runs else None


def stored_metrics(store: Store, run: date, day: date) -> pa.Table:
    """The metrics the run of ``run`` stored for the predictions of ``day`` (none when ``day``
    was outside its label window)."""
    files = store.files(Table.METRICS, run, run)
    table = pa.concat_tables([store.read(f.path) for f in files])
    return table.filter(pc.equal(table["day"], pa.scalar(day, pa.date32())))


def metric_rows_in(table: pa.Table, segment: dict[str, str] | None = None) -> list[MetricRow]:
    """Rows of a metrics table; ``segment`` keeps the cells inside it: those that have every
    given column at the given value (the segment itself and its crosses)."""
    rows = []
    for row in table.to_pylist():
        cell = json.loads(row["segment"])
        if segment and any(cell.get(k) != v for k, v in segment.items()):
            continue
        rows.append(MetricRow(row["day"], cell, row["metric"], row["value"],
                              row["n_predictions"], row["n_labelled"], row["label_coverage"]))
    return rows


@dataclass(frozen=True, slots=True)
class DriftRanking:
    date: date
    feature: str
    segment: dict[str, str]
    method: str
    value: float

    def as_json(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "feature": self.feature,
                "segment": self.segment, "method": self.method, "value": self.value}


def read_feature_drift(store: Store, start: date | None = None, end: date | None = None,
                       segment: dict[str, str] | None = None,
                       rank_by: str = "psi") -> list[DriftRanking]:
    """Feature drift rows of the runs in a range, for one segment (default: everyone), each
    day's features ranked by ``rank_by`` (PSI: the one measure numbers and categories share),
    then the other measures of the same feature."""
    files = store.files(Table.DRIFT, start, end)
    if not files:
        return []
    table = pa.concat_tables([store.read(f.path) for f in files])
    wanted = json.dumps(segment or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    table = table.filter(pc.and_(pc.equal(table["kind"], "feature"),
                                 pc.equal(table["segment"], wanted)))
    rows = table.to_pylist()
    rank = {(r["date"], r["target"]): r["value"] for r in rows if r["method"] == rank_by}
    rows.sort(key=lambda r: (r["date"], -rank.get((r["date"], r["target"]), 0.0),
                             r["target"], r["method"] != rank_by, r["method"]))
    return [DriftRanking(r["date"], r["target"], json.loads(r["segment"]), r["method"],
                         r["value"]) for r in rows]
