from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from hindsight.errors import StoreError
from hindsight.store.partitions import Store, Table


def test_written_partitions_read_back_with_duckdb_hive_partitioning(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.write(Table.PREDICTIONS, pa.table({"x": [1, 2]}), dt=date(2026, 1, 1))
    store.write(Table.PREDICTIONS, pa.table({"x": [3]}), dt=date(2026, 1, 2))
    rows = duckdb.sql(
        f"SELECT dt::VARCHAR, sum(x) FROM read_parquet('{tmp_path}/predictions/*/*.parquet', "
        "hive_partitioning = true) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [("2026-01-01", 3), ("2026-01-02", 3)]


def test_measurements_are_written_without_a_dictionary_and_read_back_whole(
        tmp_path: Path) -> None:
    """A float column whose values rarely repeat gets no dictionary (Parquet would hash it
    until the dictionary overflowed); one of a few values, strings and integers keep theirs."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    data = pa.table({"amount": rng.normal(size=50_000), "rate": rng.choice([0.0, 7.7], 50_000),
                     "country": rng.choice(["CH", "DE"], 50_000), "n": np.arange(50_000),
                     "score": np.concatenate([rng.random(40_000), [None] * 10_000])})
    path = Store.open(tmp_path).write(Table.PREDICTIONS, data, dt=date(2026, 1, 1))
    meta = pq.ParquetFile(path).metadata.row_group(0)
    dictionary = {meta.column(i).path_in_schema: meta.column(i).has_dictionary_page
                  for i in range(meta.num_columns)}
    assert dictionary == {"amount": False, "rate": True, "country": True, "n": True,
                          "score": False}
    assert pq.read_table(path).equals(data)


def test_files_are_zstd_compressed(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = Store.open(tmp_path).write(Table.METRICS, pa.table({"x": [1]}), dt=date(2026, 1, 1))
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_files_can_be_limited_to_a_date_range(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    for day in (1, 2, 3):
        store.write(Table.LABELS, pa.table({"x": [day]}), dt=date(2026, 1, day))
    found = store.files(Table.LABELS, start=date(2026, 1, 2), end=date(2026, 1, 2))
    assert [f.dt for f in found] == [date(2026, 1, 2)]
    assert store.partitions(Table.LABELS) == [date(2026, 1, d) for d in (1, 2, 3)]


def test_a_fixed_name_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.write(Table.ALERTS, pa.table({"x": [1]}), dt=date(2026, 1, 1), name="data.parquet")
    store.write(Table.ALERTS, pa.table({"x": [2]}), dt=date(2026, 1, 1), name="data.parquet")
    files = list((tmp_path / "alerts" / "dt=2026-01-01").iterdir())
    assert [f.name for f in files] == ["data.parquet"]
    assert store.read(str(files[0]))["x"].to_pylist() == [2]


def test_hidden_half_written_files_are_invisible_to_readers(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.write(Table.LABELS, pa.table({"x": [1]}), dt=date(2026, 1, 1))
    (tmp_path / "labels" / "dt=2026-01-01" / ".tmp-crashed.parquet").write_bytes(b"PAR1")
    assert len(store.files(Table.LABELS)) == 1


def test_a_write_that_fails_raises_store_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "predictions"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(StoreError, match="cannot write"):
        Store.open(tmp_path).write(Table.PREDICTIONS, pa.table({"x": [1]}), dt=date(2026, 1, 1))


def test_a_write_reaches_the_disk_before_its_name_and_its_name_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fsync of the file (still under its temporary name), then the rename, then fsync of the
    directories that now hold the name, up to the store's root and the root's own entry in its
    parent (the first write makes it): a write that returned survives a power cut."""
    import os

    import hindsight.store.partitions as partitions

    partition = tmp_path / "predictions" / "dt=2026-01-05"
    events: list[tuple[str, list[str]]] = []  # what was fsynced, and the visible names then
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append((os.readlink(f"/proc/self/fd/{fd}"),
                       sorted(p.name for p in partition.glob("part-*.parquet"))))
        real_fsync(fd)

    monkeypatch.setattr(partitions.os, "fsync", fsync)
    final = Store.open(tmp_path).write(Table.PREDICTIONS, pa.table({"x": [1]}),
                                       dt=date(2026, 1, 5))
    name = Path(final).name
    assert [(Path(path).name.startswith(".tmp-"), visible) for path, visible in events[:1]] \
        == [(True, [])]
    assert events[1:] == [(str(partition), [name]), (str(partition.parent), [name]),
                          (str(tmp_path), [name]), (str(tmp_path.parent), [name])]
