"""Batches refused at the entry, whatever brought them (here the Python API; the service and
the CLI share the path): names the store uses itself, values that would be stored as
something else, and rows the next retention would delete."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table
from tests.conftest import label, prediction


def with_(**values: Any) -> list[dict[str, Any]]:
    return [{**prediction(1, 1, "CH", "a"), **values}]


@pytest.mark.parametrize("rows, named", [
    (with_(_hindsight_file="x"), "column '_hindsight_file' is reserved for hindsight"),
    (with_(_hindsight_origin=1), "column '_hindsight_origin' is reserved"),
    (with_(_hindsight_arrived_at="2026-01-01"), "column '_hindsight_arrived_at' is reserved"),
    (with_(_HINDSIGHT_FILE="x"), "column '_HINDSIGHT_FILE' is reserved"),
    (with_(dt="2026-01-01"), "column 'dt' is the store's partition key"),
    (with_(Amount=1.0), "columns 'amount' and 'Amount' differ only in case"),
    (with_(request_id=math.nan), "column 'request_id' has nan, which is not an id"),
    (with_(request_id=math.inf), "column 'request_id' has inf, which is not an id"),
    (with_(request_id=True), "column 'request_id' holds booleans"),
    (with_(request_id="x" * 2000), "an id of 2000 characters, over the limit of 1024"),
    (with_(predicted=-math.inf), "column 'predicted' has -inf, which is not a class"),
    (with_(predicted=math.nan), "column 'predicted' has nan, which is not a class"),
])
def test_reserved_names_and_values_that_would_change_meaning_are_refused(
    monitor: Monitor, rows: list[dict[str, Any]], named: str,
) -> None:
    with pytest.raises(InputError, match="predictions: ") as refused:
        monitor.log_predictions(rows)
    assert named in str(refused.value)
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_a_reserved_name_is_refused_as_a_listed_feature_but_ignored_when_left_out(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(features=["amount"])
    with Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as monitor:
        # not stored: nothing to refuse (a Hive-partitioned directory gives its rows dt)
        report = monitor.log_predictions(with_(dt="2026-01-01", _hindsight_file="x"))
        assert report.stored == 1


def test_labels_with_a_non_finite_class_or_a_reserved_id_type_are_refused(
    monitor: Monitor,
) -> None:
    with pytest.raises(InputError, match="column 'actual' has nan, which is not a class"):
        monitor.log_labels([{**label(1, "a", 2), "actual": math.nan}])
    with pytest.raises(InputError, match="holds booleans"):
        monitor.log_labels([{**label(1, "a", 2), "request_id": False}])
    assert monitor.store.files(Table.LABELS) == []


def test_the_id_length_limit_is_configurable(make_config: Callable[..., Config]) -> None:
    config = make_config(ingest={"max_id_chars": 4})
    with Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as monitor:
        with pytest.raises(InputError, match=r"over the limit of 4 .ingest.max_id_chars."):
            monitor.log_predictions(with_(request_id="r12345"))
        assert monitor.log_predictions(with_(request_id="r123")).stored == 1


def test_a_batch_wider_than_the_column_limit_is_refused(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(ingest={"max_columns": 10})
    with Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as monitor:
        wide = with_(**{f"f{i}": 1.0 for i in range(10)})
        with pytest.raises(InputError, match="16 columns is over the limit of 10"):
            monitor.log_predictions(wide)


def test_rows_the_next_retention_would_delete_are_refused_not_acknowledged(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(storage={"delete_after_days": {"predictions": 40, "labels": 40}})
    # today is 2026-03-01: the retention keeps predictions from 2026-01-20 on
    with Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC)) as monitor:
        with pytest.raises(InputError, match=r"before 2026-01-20 .storage.delete_after_days"
                                             r".predictions is 40."):
            monitor.log_predictions([prediction(1, 19, "CH", "a"), prediction(2, 25, "CH", "a")])
        assert monitor.store.files(Table.PREDICTIONS) == []
        assert monitor.log_predictions([prediction(2, 25, "CH", "a")]).stored == 1
        with pytest.raises(InputError, match=r"delete_after_days.labels is 40"):
            monitor.log_labels([label(2, "a", 10)])
        assert monitor.log_labels([label(2, "a", 26)]).stored == 1


def test_an_arrow_table_with_a_column_of_a_type_the_store_cannot_keep_is_refused(
    monitor: Monitor,
) -> None:
    table = pa.Table.from_pylist(with_()).append_column(
        "wait", pa.array([1], pa.duration("s")))
    with pytest.raises(InputError, match="column 'wait' has type duration"):
        monitor.log_predictions(table)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps_in_every_unit_are_admitted_and_one_past_year_9999_is_refused(
    monitor: Monitor, unit: str,
) -> None:
    """Spark and pandas write nanoseconds, whose bounds for years 1..9999 are beyond 64 bits."""
    table = pa.Table.from_pylist(with_())
    at = table["served_at"].cast(pa.timestamp(unit, "UTC"))
    assert monitor.log_predictions(table.set_column(1, "served_at", at)).stored == 1
    if unit != "ns":  # no nanosecond timestamp reaches year 10000
        beyond = pa.array([253_402_300_800 * {"s": 1, "ms": 10**3, "us": 10**6}[unit]],
                          pa.int64()).cast(pa.timestamp(unit, "UTC"))
        row = table.set_column(1, "served_at", beyond).set_column(
            0, "request_id", pa.array(["r-late"]))
        with pytest.raises(InputError, match=r"outside the years 1\.\.9999"):
            monitor.log_predictions(row)
