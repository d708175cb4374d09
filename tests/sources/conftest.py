"""Rows of a model whose column names are its own, written into the store through hindsight's
ingest and, beside it, into tables by the real writers (deltalake, pyiceberg, pyarrow, pandas,
polars): runs over either must store the same metrics and alerts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table

START = date(2026, 3, 2)
DAYS = 9
CLASSES = ("approve", "review", "reject")
CLASSIFIER = {"id": "txn", "timestamp": "scored_at", "prediction": "verdict",
              "score": "conf", "label": "truth", "label_timestamp": "truth_at"}
REGRESSOR = {"id": "trip", "timestamp": "quoted_at", "prediction": "eta_min",
             "label": "took_min", "label_timestamp": "arrived_at_dest"}


@dataclass(frozen=True)
class Rows:
    """Predictions and labels as Arrow tables, one per day (labels by the day they arrived)."""

    predictions: dict[date, pa.Table]
    labels: dict[date, pa.Table]
    reference: pa.Table
    columns: dict[str, str]
    task: str

    def all_predictions(self) -> pa.Table:
        return pa.concat_tables(self.predictions.values())

    def all_labels(self) -> pa.Table:
        return pa.concat_tables(self.labels.values())


def _utc(values: list[datetime]) -> pa.Array:
    return pa.array(values, pa.timestamp("us", "UTC"))


def classifier_rows(per_day: int = 260, seed: int = 5, days: int = DAYS,
                    start: date = START, classes: tuple[str, ...] = CLASSES) -> Rows:
    """Three classes (or ``classes``: two for a binary model); the 'eu'/'pro' traffic goes
    wrong from day 5 on, so alerts open."""
    draw = random.Random(seed)
    predictions: dict[date, list[dict[str, Any]]] = {}
    labels: dict[date, list[dict[str, Any]]] = {}

    def one(i: int, at: datetime, broken: bool) -> tuple[dict[str, Any], str]:
        region, plan = draw.choice(["eu", "us", "apac"]), draw.choice(["pro", "free"])
        verdict = draw.choice(classes)
        right = draw.random() < (0.3 if broken and region == "eu" else 0.9)
        truth = verdict if right else draw.choice([c for c in classes if c != verdict])
        return ({"txn": f"t{i}", "scored_at": at, "region": region, "plan": plan,
                 "verdict": verdict, "conf": round(draw.uniform(0.4, 1.0), 3),
                 "basket": round(draw.gauss(50, 10), 2)}, truth)

    reference = []
    for i in range(900):
        row, truth = one(900_000 + i, datetime(2026, 2, 20, 12, tzinfo=UTC), False)
        reference.append({**row, "truth": truth})
    for d in range(days):
        day = start + timedelta(days=d)
        for k in range(per_day):
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                minutes=(k * 1439) // per_day)
            row, truth = one(d * 10_000 + k, at, d >= 5)
            predictions.setdefault(day, []).append(row)
            delay = draw.choice([0, 1, 1, 2, 3])
            arrived = at + timedelta(days=delay, hours=1)
            labels.setdefault(arrived.date(), []).append(
                {"txn": row["txn"], "truth": truth, "truth_at": arrived})
    return Rows({d: _table(r, ("scored_at",)) for d, r in predictions.items()},
                {d: _table(r, ("truth_at",)) for d, r in sorted(labels.items())},
                _table(reference, ("scored_at",)), CLASSIFIER, "classification")


def regressor_rows(per_day: int = 200, seed: int = 7, days: int = DAYS) -> Rows:
    """Trip durations; quotes in 'north' go far off from day 5 on."""
    draw = random.Random(seed)
    predictions: dict[date, list[dict[str, Any]]] = {}
    labels: dict[date, list[dict[str, Any]]] = {}
    reference = []
    for d in range(-1, days):
        day = START + timedelta(days=d)
        for k in range(per_day):
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                minutes=(k * 1439) // per_day)
            zone = draw.choice(["north", "south"])
            took = round(draw.uniform(5, 60), 1)
            off = draw.gauss(0, 3) + (25 if d >= 5 and zone == "north" else 0)
            row = {"trip": f"q{d}-{k}", "quoted_at": at, "zone": zone,
                   "eta_min": round(took + off, 1), "distance": round(took / 2, 1)}
            if d < 0:
                reference.append({**row, "took_min": took})
                continue
            predictions.setdefault(day, []).append(row)
            arrived = at + timedelta(hours=draw.choice([1, 20, 30]))
            labels.setdefault(arrived.date(), []).append(
                {"trip": row["trip"], "took_min": took, "arrived_at_dest": arrived})
    return Rows({d: _table(r, ("quoted_at",)) for d, r in predictions.items()},
                {d: _table(r, ("arrived_at_dest",)) for d, r in sorted(labels.items())},
                _table(reference, ("quoted_at",)), REGRESSOR, "regression")


def _table(rows: list[dict[str, Any]], times: tuple[str, ...]) -> pa.Table:
    table = pa.Table.from_pylist(rows)
    for name in times:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, _utc(table[name].to_pylist()))
    return table


def arriving_today_unstamped(per_day: int = 60, days: int = 4) -> Rows:
    """A classifier's rows of the last ``days`` days whose labels all arrive today and carry
    no timestamp (no ``label_timestamp`` mapped): each arrives when its file was added."""
    today = datetime.now(UTC).date()
    rows = classifier_rows(per_day=per_day, days=days, start=today - timedelta(days=days))
    return Rows(rows.predictions, {today: rows.all_labels().drop_columns(["truth_at"])},
                rows.reference, {k: v for k, v in rows.columns.items()
                                 if k != "label_timestamp"}, rows.task)


def raw_config(rows: Rows, store: Path | str, **extra: Any) -> dict[str, Any]:
    segments = ["region", "plan"] if rows.task == "classification" else ["zone"]
    return {"model": "lake", "store": str(store), "task": rows.task,
            "columns": dict(rows.columns), "segments": segments, "min_samples": 20,
            "label_window_days": 5, "alerts": {"baseline_days": 2},
            "drift": {"min_samples": 50}, **extra}


def log_into_store(rows: Rows, config: Config) -> Monitor:
    """The same rows through hindsight's ingest: the store's own tables."""
    monitor = Monitor(config)
    monitor.log_reference(rows.reference)
    for day in sorted(set(rows.predictions) | set(rows.labels)):
        if day in rows.predictions:
            monitor.log_predictions(rows.predictions[day])
        if day in rows.labels:
            monitor.log_labels(rows.labels[day])
    return monitor


def run_days(monitor: Monitor, first: date, last: date) -> None:
    day = first
    while day <= last:
        monitor.run(day)
        day += timedelta(days=1)


def stored(monitor: Monitor, table: Table) -> dict[date, pa.Table]:
    """A result table of the store, by day, rows in a stable order, run times left out."""
    found = {}
    for day in monitor.store.partitions(table):
        read = pa.concat_tables([monitor.store.read(f.path)
                                 for f in monitor.store.files(table, day, day)])
        drop = [c for c in ("seconds", "created_at", "opened_at", "notes")
                if c in read.column_names]
        read = read.drop_columns(drop)
        keys = [(c, "ascending") for c in read.column_names
                if not pa.types.is_nested(read.schema.field(c).type)]
        found[day] = read.sort_by(keys)
    return found


def assert_same_results(a: Monitor, b: Monitor,
                        tables: tuple[Table, ...] = (Table.METRICS, Table.ALERTS, Table.DRIFT)
                        ) -> None:
    """The same metrics, alerts and drift rows (floats within 1e-9: sums in no fixed order),
    or those of ``tables``."""
    for table in tables:
        left, right = stored(a, table), stored(b, table)
        assert left.keys() == right.keys(), table
        for day in left:
            x, y = left[day], right[day]
            assert x.schema == y.schema and x.num_rows == y.num_rows, (table, day)
            for name in x.column_names:
                if pa.types.is_floating(x.schema.field(name).type):
                    gap = pc.max(pc.abs(pc.subtract(pc.fill_null(x[name], 0.0),
                                                    pc.fill_null(y[name], 0.0)))).as_py()
                    assert (gap or 0.0) <= 1e-9, (table, day, name, gap)
                else:
                    assert x[name].equals(y[name]), (table, day, name)


@pytest.fixture
def in_store(tmp_path: Path) -> Iterator[Callable[[Rows], Monitor]]:
    made: list[Monitor] = []

    def make(rows: Rows) -> Monitor:
        monitor = log_into_store(rows, parse_config(raw_config(rows, tmp_path / "ingested")))
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.close()




@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; the environment points every client at it."""
    from tests.objectstore.conftest import _moto, pointed_at

    with _moto(Path(".")) as endpoint, pointed_at(endpoint):
        yield endpoint


@pytest.fixture
def lake_bucket(moto_endpoint: str) -> str:
    """A new, empty bucket: ``s3://name``."""
    from tests.objectstore.conftest import new_bucket

    return new_bucket(moto_endpoint, "lake")
