from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hindsight.errors import InputError
from hindsight.store.inputs import from_memory, read_file


def test_csv_keeps_text_columns_as_text_so_leading_zeros_survive(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,amount\n007,1.5\n")
    batch = read_file(path, text_columns=["id"])
    assert batch.table["id"].to_pylist() == ["007"]
    assert batch.table["amount"].to_pylist() == [1.5]


def test_json_lines_and_parquet_are_read(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"id": "a", "x": 1}\n{"id": "b", "x": 2}\n')
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "p.parquet")
    assert read_file(tmp_path / "p.jsonl").table.num_rows == 2
    assert read_file(tmp_path / "p.parquet").table.num_rows == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.xlsx", "x", "unknown file type '.xlsx'"),
        ("p.csv", "", "the file is empty"),
        ("p.csv", "id,x\n", "has no rows"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_unreadable_files_are_refused_with_the_file_named(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_file(path)
    assert name in str(info.value)


def test_memory_batches_accept_pandas_polars_arrow_and_rows() -> None:
    import pandas as pd
    import polars as pl

    rows = [{"id": "a", "x": 1}]
    for data in (pd.DataFrame(rows), pl.DataFrame(rows), pa.Table.from_pylist(rows), rows):
        assert from_memory(data).table.to_pylist() == rows


def test_memory_batches_refuse_other_objects() -> None:
    with pytest.raises(InputError, match="expected a pyarrow Table"):
        from_memory(42)
