from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.store.identity import identity, identity_sql
from hindsight.store.partitions import Table
from tests.conftest import label, prediction

SPELLINGS = ["True", "TRUE", "true", "False", "false", "1.0", "1.00", "-0.0", "2.5", "007",
             "Yes", "1e+20", None]


def test_a_booleans_and_an_integral_floats_spellings_are_one_identity() -> None:
    assert identity(pa.array([True, False, None])).to_pylist() == ["true", "false", None]
    assert identity(pa.array([1.0, 0.0, 2.5])).to_pylist() == ["1", "0", "2.5"]
    assert identity(pa.array([1, 0])).to_pylist() == ["1", "0"]  # a number is no boolean
    assert identity(pa.array(SPELLINGS)).to_pylist() == [
        "true", "true", "true", "false", "false", "1", "1", "0", "2.5", "007", "Yes", "1e+20",
        None]



def test_a_long_column_gets_the_identities_its_values_get_one_by_one() -> None:
    """Long columns run the rule once per distinct value: the same text, nulls where nulls
    were, each chunk of a chunked column kept as it was."""
    rows = SPELLINGS * 50 + ["12.000", "-3.0", "x.0", ""]
    one_by_one = [identity(pa.array([value])).to_pylist()[0] for value in rows]
    assert identity(pa.array(rows)).to_pylist() == one_by_one
    chunked = identity(pa.chunked_array([pa.array(rows[:7]), pa.array(rows[7:])]))
    assert isinstance(chunked, pa.ChunkedArray) and chunked.num_chunks == 2
    assert chunked.type == pa.string() and chunked.to_pylist() == one_by_one
    numbers = [1.0, 2.5, None, -0.0, 3.0] * 40
    assert identity(pa.array(numbers)).to_pylist() == [
        identity(pa.array([value])).to_pylist()[0] for value in numbers]

def test_the_sql_rule_gives_the_same_identities_as_the_arrow_one() -> None:
    spellings = pa.table({"x": pa.array(SPELLINGS)})
    got = duckdb.sql(f"SELECT {identity_sql('x')} AS y FROM spellings").to_arrow_table()
    assert got["y"].to_pylist() == identity(spellings["x"]).to_pylist()


def test_values_stored_under_an_older_spelling_are_read_under_todays(
    make_config: Callable[..., Config],
) -> None:
    """A store written before the rule holds ``True`` and ``1.0`` as they came: a run reads
    them as ``true`` and ``1``, one segment and one class with what is logged now."""
    config: Config = make_config(segments=["is_customer"])
    with Monitor(config) as monitor:
        old: list[dict[str, Any]] = [
            {**prediction(i, 1, "CH", "1.0"), "is_customer": "True"} for i in range(30)]
        table = pa.Table.from_pylist(old).drop_columns(["country", "tier"])
        stamps = pa.array([r["served_at"] for r in old]).cast(pa.timestamp("us", "UTC"))
        table = table.set_column(table.schema.get_field_index("served_at"), "served_at", stamps)
        monitor.store.write(Table.PREDICTIONS, table, dt=date(2026, 1, 1))
        monitor.log_predictions([{**prediction(100 + i, 1, "CH", 1), "is_customer": True}
                                 for i in range(30)])
        resent = monitor.log_predictions([{**prediction(i, 1, "CH", 1), "is_customer": True}
                                          for i in range(30)])
        assert resent.already_stored == 30  # the same prediction, spelled as now
        monitor.log_labels([label(i, "1", 2) for i in (*range(30), *range(100, 130))])
        monitor.run(date(2026, 1, 3))
        _, rows = monitor.metrics(date(2026, 1, 1), date(2026, 1, 3))
    segments = {tuple(r.segment.items()) for r in rows}
    assert segments == {(), (("is_customer", "true"),)}
    accuracy = [r for r in rows if r.metric == "accuracy" and not r.segment]
    assert [(r.value, r.n_labelled) for r in accuracy] == [(1.0, 60)]


@pytest.mark.parametrize("spelling", [[True, False], ["True", "False"], [1.0, 0.0]],
                         ids=["bool", "text", "float"])
def test_a_validation_candidate_is_read_under_the_references_identities(
    make_config: Callable[..., Config], spelling: list[Any],
) -> None:
    config: Config = make_config()
    with Monitor(config) as monitor:
        truth = ["true", "false"] if isinstance(spelling[0], (bool, str)) else ["1", "0"]
        monitor.log_reference([{**prediction(i, 1, "CH", truth[i % 2]), "actual": truth[i % 2]}
                               for i in range(40)])
        candidate = pa.table({"request_id": [f"r{i}" for i in range(40)],
                              "predicted": [spelling[i % 2] for i in range(40)]})
        result = monitor.validate(candidate)
    assert result.agreement == 1.0
