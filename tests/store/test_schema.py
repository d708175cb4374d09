from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.store.inputs import from_memory
from hindsight.store.schema import ARRIVED_AT, normalize_labels, normalize_predictions


def rows(**changes: object) -> list[dict[str, object]]:
    base = {"request_id": 1, "served_at": "2026-01-01T10:00:00", "predicted": "a",
            "country": "CH", "tier": "free", "amount": 2.5}
    return [base, {**base, "request_id": 2, **changes}]


def test_timestamps_without_a_zone_are_utc_and_zoned_ones_are_converted(
    make_config: Callable[..., Config],
) -> None:
    table = normalize_predictions(
        from_memory(rows(served_at="2026-01-01T10:00:00+02:00")), make_config())
    assert table["served_at"].to_pylist() == [
        datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 8, tzinfo=UTC)]
    assert table["request_id"].to_pylist() == ["1", "2"]


def test_an_unparseable_timestamp_is_named_by_row_column_and_value(
    make_config: Callable[..., Config],
) -> None:
    with pytest.raises(InputError, match=r"batch: row 2: column 'served_at' has 'yesterday'"):
        normalize_predictions(from_memory(rows(served_at="yesterday")), make_config())


def test_a_missing_mapped_column_names_the_column_and_the_fix(
    make_config: Callable[..., Config],
) -> None:
    data = [{k: v for k, v in r.items() if k != "country"} for r in rows()]
    with pytest.raises(InputError, match=r"missing column 'country'.*change the mapping"):
        normalize_predictions(from_memory(data), make_config())


def test_an_empty_id_is_refused(make_config: Callable[..., Config]) -> None:
    with pytest.raises(InputError, match="row 2: column 'request_id' is empty"):
        normalize_predictions(from_memory(rows(request_id=None)), make_config())


def test_features_default_to_every_other_column(make_config: Callable[..., Config]) -> None:
    table = normalize_predictions(from_memory(rows()), make_config())
    assert "amount" in table.column_names
    narrowed = normalize_predictions(from_memory(rows()), make_config(features=[]))
    assert "amount" not in narrowed.column_names


def test_labels_without_a_label_timestamp_arrive_at_ingestion_time(
    make_config: Callable[..., Config],
) -> None:
    columns = {"id": "request_id", "timestamp": "served_at", "prediction": "predicted",
               "label": "actual"}
    now = datetime(2026, 2, 1, 9, tzinfo=UTC)
    table = normalize_labels(from_memory([{"request_id": "r1", "actual": "a"}]),
                             make_config(columns=columns), now)
    assert table[ARRIVED_AT].to_pylist() == [now]


def test_regression_values_must_be_numbers(make_config: Callable[..., Config]) -> None:
    data = [{**row, "predicted": value} for row, value in zip(rows(), ["1.5", "abc"], strict=True)]
    with pytest.raises(InputError, match="row 2: column 'predicted' has 'abc', which is not a"):
        normalize_predictions(from_memory(data), make_config(task="regression"))
