"""The same rows written by pandas, polars and pyarrow, as CSV, Parquet and JSON lines, give
the same metrics, segments, drift rows and alerts: a value means the same thing whichever
writer produced it."""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table

START = date(2026, 2, 1)
DAYS = 8
COLUMNS = {"id": "request_id", "timestamp": "served_at", "prediction": "predicted",
           "score": "confidence", "label": "actual", "label_timestamp": "actual_at"}


def rows(seed: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                 list[dict[str, Any]]]:
    """Reference, predictions and labels of a binary model whose customers' answers go wrong
    from day 4 on, with a boolean segment, a text one and integer classes."""
    draw = random.Random(seed)

    def one(i: int, served: str, broken: bool) -> tuple[dict[str, Any], int]:
        customer = draw.random() < 0.5
        predicted = draw.choice([0, 1])
        right = draw.random() < (0.4 if broken and customer else 0.92)
        row = {"request_id": f"r{i}", "served_at": served,
               "country": draw.choice(["CH", "DE"]), "is_customer": customer,
               "predicted": predicted, "confidence": round(draw.uniform(0.5, 1.0), 3),
               "amount": round(draw.gauss(100, 20 if not broken else 40), 2)}
        return row, predicted if right else 1 - predicted

    reference = []
    for i in range(600):
        row, actual = one(10_000 + i, "2026-01-15T12:00:00Z", False)
        reference.append({**row, "actual": actual})
    predictions, labels = [], []
    for day in range(DAYS):
        served = START + timedelta(days=day)
        for k in range(240):
            row, actual = one(day * 1_000 + k, f"{served}T{k % 24:02d}:10:00Z", day >= 4)
            predictions.append(row)
            labels.append({"request_id": row["request_id"], "actual": actual,
                           "actual_at": f"{served + timedelta(days=1)}T06:00:00Z"})
    return reference, predictions, labels


def _pandas(data: list[dict[str, Any]], path: Path, kind: str) -> None:
    frame = pd.DataFrame(data)
    if "actual" in frame:  # a label column that had a missing value, dropped: floats
        frame["actual"] = frame["actual"].astype("float64")
    {"csv": lambda: frame.to_csv(path, index=False),
     "parquet": lambda: frame.to_parquet(path, index=False),
     "jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[kind]()


def _polars(data: list[dict[str, Any]], path: Path, kind: str) -> None:
    frame = pl.DataFrame(data)
    {"csv": frame.write_csv, "parquet": frame.write_parquet,
     "jsonl": frame.write_ndjson}[kind](path)


def _pyarrow(data: list[dict[str, Any]], path: Path, kind: str) -> None:
    table = pa.Table.from_pylist(data)
    {"csv": lambda: pacsv.write_csv(table, path),
     "parquet": lambda: pq.write_table(table, path)}[kind]()


WRITERS: dict[str, Callable[[list[dict[str, Any]], Path, str], None]] = {
    "pandas": _pandas, "polars": _polars, "pyarrow": _pyarrow}
CASES = [("pandas", "csv"), ("pandas", "parquet"), ("pandas", "jsonl"), ("polars", "csv"),
         ("polars", "parquet"), ("polars", "jsonl"), ("pyarrow", "csv"),
         ("pyarrow", "parquet")]


def _config(store: Path) -> Config:
    return parse_config({"model": "m", "store": str(store), "columns": COLUMNS,
                         "segments": ["country", "is_customer"], "min_samples": 20,
                         "label_window_days": 5, "alerts": {"baseline_days": 2},
                         "drift": {"min_samples": 100}}, source="test.yaml")


def _results(tmp_path: Path, name: str,
             write: dict[str, tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """Log the three sets as the writers given for each write them; backfill; the results."""
    reference, predictions, labels = rows()
    paths = {}
    for what, data in (("reference", reference), ("predictions", predictions),
                       ("labels", labels)):
        writer, kind = write[what]
        paths[what] = tmp_path / f"{name}-{what}.{kind}"
        WRITERS[writer](data, paths[what], kind)
    with Monitor(_config(tmp_path / name)) as monitor:
        monitor.log_reference_files([paths["reference"]])
        monitor.log_prediction_files([paths["predictions"]])
        monitor.log_label_files([paths["labels"]])
        monitor.backfill(START + timedelta(days=3), START + timedelta(days=DAYS))
        found = {}
        for table in (Table.METRICS, Table.DRIFT, Table.ALERTS):
            got = [r for f in monitor.store.files(table)
                   for r in monitor.store.read(f.path).to_pylist()]
            for r in got:  # when a run happened, and where its rows went, is no result
                for key in ("run_at", "created_at", "id", "seconds"):
                    r.pop(key, None)
            found[table.value] = sorted(got, key=repr)
    return found


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    parquet = ("pyarrow", "parquet")
    return _results(tmp_path_factory.mktemp("expected"), "expected",
                    {"reference": parquet, "predictions": parquet, "labels": parquet})


@pytest.mark.parametrize(("writer", "kind"), CASES, ids=[f"{w}-{k}" for w, k in CASES])
def test_the_same_rows_from_any_writer_give_the_same_results(
    tmp_path: Path, expected: dict[str, list[dict[str, Any]]], writer: str, kind: str,
) -> None:
    found = _results(tmp_path, "store", dict.fromkeys(("reference", "predictions", "labels"),
                                                      (writer, kind)))
    segments = {r["segment"] for r in found["metrics"]}
    assert '{"is_customer":"false"}' in segments and '{"is_customer":"true"}' in segments
    assert any(r["metric"] == "accuracy" and r["value"] > 0.5 for r in found["metrics"])
    assert expected["alerts"], "the scenario alerts"
    for table in ("metrics", "drift", "alerts"):
        assert found[table] == expected[table], table


def test_predictions_from_a_pandas_csv_beside_a_parquet_reference_give_the_same_results(
    tmp_path: Path, expected: dict[str, list[dict[str, Any]]],
) -> None:
    found = _results(tmp_path, "store", {"reference": ("pyarrow", "parquet"),
                                         "predictions": ("pandas", "csv"),
                                         "labels": ("pandas", "csv")})
    for table in ("metrics", "drift", "alerts"):
        assert found[table] == expected[table], table
