"""The rules of a table read in place: copies of an id count once, a label without a
timestamp arrived when its file did, ingest refuses a table read in place, and the rest of
hindsight (versions, intra-day checks) reads a source as it reads the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hindsight.config import parse_config
from hindsight.engine.duck import DuckDBEngine
from hindsight.errors import InputError
from hindsight.jobs import volume
from hindsight.jobs.results import MetricRow
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.sources.conftest import (
    START,
    Rows,
    arriving_today_unstamped,
    assert_same_results,
    classifier_rows,
    raw_config,
    run_days,
)
from tests.sources.test_tables import FIRST_RUN, LAST_RUN, in_place


def _whole(metrics: list[MetricRow]) -> MetricRow:
    return next(m for m in metrics if m.segment == {} and m.metric == "accuracy")


def _copies(table: pa.Table, every: int) -> pa.Table:
    """Every ``every``-th row again, stamped a minute later (within its day) and with another
    verdict: a resend by an at-least-once writer, which must lose to the original."""
    picked = table.take(pa.array(range(0, table.num_rows, every)))
    later = pc.add(picked["scored_at"], pa.scalar(timedelta(minutes=1)))
    same_day = pc.equal(pc.cast(later, pa.date32()), pc.cast(picked["scored_at"], pa.date32()))
    stamped = pc.if_else(same_day, later, picked["scored_at"])
    flipped = pc.if_else(pc.equal(picked["verdict"], "approve"), "reject", "approve")
    return (picked.set_column(picked.schema.get_field_index("scored_at"), "scored_at", stamped)
            .set_column(picked.schema.get_field_index("verdict"), "verdict", flipped))


def test_copies_of_an_id_count_once_the_earliest_wins(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows()
    logged = in_store(rows)
    root = tmp_path / "resent"
    for day, table in rows.predictions.items():  # polars, a directory a day, resends beside
        directory = root / "predictions" / f"dt={day}"
        directory.mkdir(parents=True)
        twice = pa.concat_tables([table, table.slice(0, 7)])  # copies in the same file
        pl.from_arrow(twice).write_parquet(directory / "a.parquet")
        pl.from_arrow(_copies(table, 9)).write_parquet(directory / "b.parquet")
    (root / "labels").mkdir()
    for day, table in rows.labels.items():  # a label sent twice is one label
        pl.from_arrow(pa.concat_tables([table, table])).write_parquet(
            root / "labels" / f"{day}.parquet")
    sources = {name: {"format": "parquet", "path": str(root / name)}
               for name in ("predictions", "labels")}
    with Monitor(parse_config(raw_config(rows, tmp_path / "store", **sources))) as lake:
        lake.log_reference(rows.reference)
        run_days(logged, FIRST_RUN, LAST_RUN)
        run_days(lake, FIRST_RUN, LAST_RUN)
        assert_same_results(logged, lake)
        day = START + timedelta(days=4)
        _, metrics = lake.metrics(day, LAST_RUN)
        assert _whole(metrics).n_predictions == rows.predictions[day].num_rows
        # the data alerts' rows per day: copies once, as the store counts what it kept
        assert isinstance(lake.engine, DuckDBEngine)
        for table in (Table.PREDICTIONS, Table.LABELS):
            assert lake.engine.daily_rows(table, START, LAST_RUN) == volume.daily_counts(
                logged.store, table, START, LAST_RUN), table


@pytest.mark.parametrize("writer", ["delta", "iceberg", "jsonl"])
def test_a_label_without_a_timestamp_arrived_when_its_file_was_added(
        writer: str, tmp_path: Path) -> None:
    unstamped = arriving_today_unstamped()
    (today,) = unstamped.labels  # every label arrives today
    with in_place(unstamped, tmp_path, writer) as lake:
        day = today - timedelta(days=2)
        _, yesterday = lake.metrics(day, today - timedelta(days=1))
        _, now = lake.metrics(day, today)
        assert _whole(yesterday).n_labelled == 0  # written today: not arrived yesterday
        assert _whole(now).n_labelled == unstamped.predictions[day].num_rows


def test_logging_into_a_table_read_in_place_is_refused_and_stores_nothing(
        tmp_path: Path) -> None:
    rows = classifier_rows(per_day=20, days=2)
    with in_place(rows, tmp_path, "delta") as lake:
        with pytest.raises(InputError, match="reads its predictions in place from the delta"):
            lake.log_predictions(rows.predictions[START])
        with pytest.raises(InputError, match="write them there"):
            lake.log_labels(rows.all_labels())
        assert lake.store.files(Table.PREDICTIONS) == []


def test_versions_and_intraday_checks_read_a_source_as_the_store(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    base = classifier_rows()
    release = {d: t.append_column("build", pa.array(
        ["v1" if d < START + timedelta(days=4) else "v2"] * t.num_rows))
        for d, t in base.predictions.items()}
    rows = Rows(release, base.labels, base.reference,
                {**base.columns, "model_version": "build"}, base.task)
    logged = in_store(rows)
    with in_place(rows, tmp_path, "delta") as lake:
        day = LAST_RUN - timedelta(days=1)
        assert lake.versions(day) == logged.versions(day)
        assert lake.version_shares(day, 6) == logged.version_shares(day, 6)
        at = datetime.combine(START + timedelta(days=6), datetime.min.time(), UTC) + \
            timedelta(hours=15)
        every = timedelta(hours=1)
        checked = lake.check_drift(at, every)
        assert checked is not None and checked.n > 0 and checked == logged.check_drift(at, every)


def test_a_feed_that_fell_in_a_table_read_in_place_alerts_as_in_the_store(
        tmp_path: Path, in_store: Callable[[Rows], Monitor]) -> None:
    full = classifier_rows(per_day=60, days=22)  # three weeks of history before the last day
    last = max(full.predictions)
    fell = {d: (t.slice(0, 8) if d == last else t) for d, t in full.predictions.items()}
    kept = pa.concat_tables(fell.values())["txn"]
    labels = {d: t.filter(pc.is_in(t["txn"], kept)) for d, t in full.labels.items()}
    rows = Rows(fell, {d: t for d, t in labels.items() if t.num_rows}, full.reference,
                full.columns, full.task)
    logged = in_store(rows)
    with in_place(rows, tmp_path, "parquet") as lake:
        logged.run(last)
        lake.run(last)
        assert_same_results(logged, lake)
        assert [a.metric for a in lake.alerts() if a.kind == "data"] == ["predictions"]
