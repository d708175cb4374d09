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


def test_a_directory_is_read_as_the_part_files_a_writer_left_in_it(tmp_path: Path) -> None:
    """pandas and polars partitioned output: the partition values come back as text (``007``
    stays ``007``, a space URL-decoded, Hive's default partition null), whether the files
    hold the column (polars) or only the path does (pandas); markers, checksums, a
    ``_temporary/`` directory and an empty part file are skipped."""
    import pandas as pd
    import polars as pl

    from hindsight.store.inputs import read_files

    rows = [{"id": "a", "country": "CH", "tier": "007", "x": 1.0},
            {"id": "b", "country": "C H", "tier": None, "x": 2.0},
            {"id": "c", "country": "DE", "tier": "1", "x": 3.0},
            {"id": "d", "country": "DE", "tier": "1", "x": 4.0}]
    pd.DataFrame(rows).to_parquet(tmp_path / "pandas", partition_cols=["country", "tier"])
    pl.DataFrame(rows).write_parquet(tmp_path / "polars", partition_by=["country", "tier"])
    for written in ("pandas", "polars"):
        directory = tmp_path / written
        (directory / "_SUCCESS").write_text("")
        (directory / ".part-0.parquet.crc").write_bytes(b"\x00crc")
        (directory / "_temporary" / "0").mkdir(parents=True)
        (directory / "_temporary" / "0" / "part-9.csv").write_text("not,a,part\n1,2,3\n")
        (directory / "country=DE" / "tier=1" / "part-empty.csv").write_text("")
        batches = read_files([directory])
        assert all(b.source.name.startswith(str(directory)) for b in batches)
        got = [{k: r[k] for k in ("id", "country", "tier", "x")}
               for b in batches for r in b.table.to_pylist()]
        assert sorted(got, key=lambda r: r["id"]) == rows, written


@pytest.mark.parametrize(("files", "message"), [
    ({}, "without rows in any data file"),
    ({"_SUCCESS": ""}, "without rows in any data file"),
    ({"part-0.csv.gz": "x"}, "part-0.csv.gz: unknown file type '.gz'"),
    ({"part-0.parquet": "not Parquet"}, "part-0.parquet: cannot be read as parquet"),
])
def test_a_directory_without_readable_rows_is_refused_naming_what_is_wrong(
    tmp_path: Path, files: dict[str, str], message: str,
) -> None:
    from hindsight.store.inputs import read_files

    directory = tmp_path / "out"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_files([directory])
    assert str(directory) in str(info.value)


def test_rows_whose_column_switches_from_number_to_text_are_refused_naming_row_and_column(
) -> None:
    rows = [{"id": "r1", "confidence": 0.8}, {"id": "r2", "confidence": None},
            {"id": "r3", "confidence": "0.9"}]
    with pytest.raises(InputError, match=r"^rows: row 3: column 'confidence' has '0.9' \(text\)"
                                         r", where row 1 has 0.8 \(a number\)"):
        from_memory(rows, "rows")
