from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.store.inputs import from_memory
from hindsight.store.schema import ARRIVED_AT, normalize_labels, normalize_predictions
from tests.conftest import COLUMNS


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_score_is_refused_naming_the_row(make_config: Callable[..., Config],
                                                      value: float) -> None:
    config = make_config(columns={**COLUMNS, "score": "confidence"})
    data = [{**row, "confidence": score} for row, score in zip(rows(), [0.9, value],
                                                               strict=True)]
    with pytest.raises(InputError, match=r"row 2: column 'confidence' has .*not a finite number"):
        normalize_predictions(from_memory(data), config)


def test_a_non_finite_regression_label_is_refused(make_config: Callable[..., Config]) -> None:
    config = make_config(task="regression")
    labels = [{"request_id": "r1", "actual": 1.0, "actual_at": "2026-01-02T00:00:00Z"},
              {"request_id": "r2", "actual": float("nan"), "actual_at": "2026-01-02T00:00:00Z"}]
    with pytest.raises(InputError, match="row 2: column 'actual' has nan"):
        normalize_labels(from_memory(labels), config, datetime(2026, 2, 1, tzinfo=UTC))


def test_a_nan_feature_is_missing_and_an_infinite_one_is_refused(
    make_config: Callable[..., Config],
) -> None:
    table = normalize_predictions(from_memory(rows(amount=float("nan"))), make_config())
    assert table["amount"].to_pylist() == [2.5, None]
    with pytest.raises(InputError, match="row 2: column 'amount' has inf, an infinite feature"):
        normalize_predictions(from_memory(rows(amount=float("inf"))), make_config())


@pytest.mark.parametrize("stamp", ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00",
                                  "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z"])
def test_timestamps_outside_the_documented_range_are_refused(
    make_config: Callable[..., Config], stamp: str,
) -> None:
    with pytest.raises(InputError, match="row 2: column 'served_at' .*outside 1970-01-01"
                                         r"\.\.2100-01-01"):
        normalize_predictions(from_memory(rows(served_at=stamp)), make_config())


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Europe/Zurich"])
def test_every_timestamp_precision_is_accepted_and_truncated_to_microseconds(
    make_config: Callable[..., Config], unit: str, zone: str | None,
) -> None:
    import pandas as pd

    stamps = pd.Series(pd.to_datetime(["2026-01-01 10:00:00.123456789"] * 2)).dt.floor(
        {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}[unit]).astype(f"datetime64[{unit}]")
    if zone:
        stamps = stamps.dt.tz_localize(zone)
    frame = pd.DataFrame({"request_id": ["1", "2"], "served_at": stamps, "predicted": "a",
                          "country": "CH", "tier": "free"})
    table = normalize_predictions(from_memory(frame), make_config())
    local = datetime(2026, 1, 1, 10, 0, 0, {"s": 0, "ms": 123000}.get(unit, 123456))
    expected = pd.Timestamp(local).tz_localize(zone or "UTC").tz_convert("UTC").to_pydatetime()
    assert table["served_at"].to_pylist() == [expected, expected]


@pytest.mark.parametrize("column, value", [("request_id", ""), ("request_id", "  "),
                                           ("predicted", "")])
def test_blank_ids_and_predictions_are_refused(make_config: Callable[..., Config],
                                               column: str, value: str) -> None:
    data = [{**row, "request_id": str(row["request_id"])} for row in rows()]
    data[1][column] = value
    with pytest.raises(InputError, match=f"row 2: column '{column}' is empty"):
        normalize_predictions(from_memory(data), make_config())


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_label_timestamp_means_the_time_of_ingestion(
    make_config: Callable[..., Config], empty: str | None,
) -> None:
    now = datetime(2026, 2, 1, 9, tzinfo=UTC)
    labels = [{"request_id": "r1", "actual": "a", "actual_at": "2026-01-02T00:00:00Z"},
              {"request_id": "r2", "actual": "b", "actual_at": empty}]
    table = normalize_labels(from_memory(labels), make_config(), now)
    assert table[ARRIVED_AT].to_pylist() == [datetime(2026, 1, 2, tzinfo=UTC), now]


def _scored(make_config: Callable[..., Config]) -> Config:
    return make_config(columns={**COLUMNS, "scores": {"a": "p_a", "b": "p_b", 1: "p_1"}})


def test_per_class_probabilities_are_stored_as_numbers_beside_the_prediction(
    make_config: Callable[..., Config],
) -> None:
    """Probabilities written as text are numbers; a prediction written 1.0 is class 1."""
    data = [{**row, "p_a": "0.7", "p_b": 0.2, "p_1": None} for row in rows(predicted="1.0")]
    table = normalize_predictions(from_memory(data), _scored(make_config))
    assert table["p_a"].to_pylist() == [0.7, 0.7]
    assert table["predicted"].to_pylist() == ["a", "1"]
    assert "p_1" in table.column_names and "amount" in table.column_names


@pytest.mark.parametrize(("change", "expected"), [
    ({"p_b": 1.5}, r"batch: row 2: column 'p_b' has 1.5, which is not a probability in \[0, 1\]"),
    ({"p_b": -0.1}, r"row 2: column 'p_b' has -0.1, which is not a probability"),
    ({"p_a": "high"}, r"row 2: column 'p_a' has 'high', which is not a number"),
    ({"p_b": float("nan")}, r"row 2: column 'p_b' has nan, which is not a finite number"),
    ({"predicted": "c"}, r"row 2: column 'predicted' has 'c', a class without a probability "
                         r"column in columns.scores \(test.yaml: it maps 'a', 'b', '1'\); add"),
])
def test_per_class_probabilities_that_are_not_probabilities_are_refused_by_row_and_column(
    make_config: Callable[..., Config], change: dict[str, object], expected: str,
) -> None:
    base = {"p_a": "0.5", "p_b": 0.5, "p_1": 0.0}
    data = [{**row, **base} for row in rows()]
    data[1] |= change
    with pytest.raises(InputError, match=expected):
        normalize_predictions(from_memory(data), _scored(make_config))


def test_a_missing_per_class_probability_column_names_the_column_and_the_fix(
    make_config: Callable[..., Config],
) -> None:
    data = [{**row, "p_a": 0.5, "p_b": 0.5} for row in rows()]
    with pytest.raises(InputError, match=r"missing column 'p_1' \(mapped in test.yaml\)"):
        normalize_predictions(from_memory(data), _scored(make_config))
