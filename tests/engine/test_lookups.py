from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from hindsight.config import Config
from hindsight.engine.duck import DuckDBEngine
from hindsight.engine.lookups import ENTRY_BYTES, SmallFileRows
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import PartitionFile, Table
from tests.conftest import prediction


def _reads(engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many files each query of ``engine`` names, in order."""
    named: list[int] = []
    query = engine._query

    def counting(sql: str, **params: Any) -> pa.Table:
        named.append(len(params.get("files", [])))
        return query(sql, **params)

    monkeypatch.setattr(engine, "_query", counting)
    return named


def _batches(monitor: Monitor, first: int, count: int) -> None:
    for k in range(first, first + count):
        monitor.log_predictions([prediction(10 * k + i, 5, "CH", "a") for i in range(3)])


def test_a_look_up_reads_each_small_file_once_and_the_files_it_wrote_never(
        make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch) -> None:
    """Between compactions a day holds a file per request: read from disk on every look-up,
    10,000 of them made one-row ingest take seconds."""
    config = make_config()
    with Monitor(config) as writer:
        _batches(writer, 0, 40)
    with Monitor(config) as monitor:
        reads = _reads(monitor.lookups, monkeypatch)
        ids = pa.array([f"r{i}" for i in range(0, 400, 7)])
        first = monitor.lookups.stored_predictions(ids)
        again = monitor.lookups.stored_predictions(ids)
        assert reads == [40, 0, 0] and first.sort_by("id").equals(again.sort_by("id"))
        assert sorted(first["id"].to_pylist()) == sorted(
            f"r{i}" for i in range(0, 400, 7) if i % 10 < 3)
        assert set(first["prediction"].to_pylist()) == {"a"}
        _batches(monitor, 40, 10)  # its own writes: kept as written
        reads.clear()
        again_all = [prediction(10 * k + i, 5, "CH", "a") for k in range(50) for i in range(3)]
        assert monitor.log_predictions(again_all).stored == 0
        assert reads == [0]


def test_a_look_up_sees_what_other_writers_add_and_counts_merged_rows_once(
        make_config: Callable[..., Config]) -> None:
    config = make_config()
    with Monitor(config) as monitor, Monitor(config) as other:
        _batches(monitor, 0, 10)
        assert monitor.lookups.stored_predictions(pa.array(["r1"])).num_rows == 1
        _batches(other, 10, 10)  # files this engine never saw
        assert monitor.log_predictions([prediction(101, 5, "CH", "a")]).stored == 0
        compact(monitor.store, grace=timedelta(minutes=10))  # its small files are replaced
        found = monitor.lookups.stored_predictions(pa.array([f"r{i}" for i in range(200)]))
        assert sorted(found["id"].to_pylist()) == sorted(
            f"r{10 * k + i}" for k in range(20) for i in range(3))
        with pytest.raises(Exception, match="already stored with prediction 'a', not 'b'"):
            monitor.log_predictions([prediction(101, 5, "CH", "b")])


def test_the_kept_rows_stay_within_their_budget_least_recently_used_out_first() -> None:
    rows = pa.table({"id": [f"{i:08d}" for i in range(100)]})
    kept = SmallFileRows(budget=(rows.nbytes + ENTRY_BYTES) * 20)
    for k in range(30):
        kept.keep(f"dt={k}/f", rows)
    files = [PartitionFile(f"dt={k}/f", None, size=100) for k in range(30)]
    held, unseen, others = kept.split(files)
    assert len(held) == 20 and unseen == [f"dt={k}/f" for k in range(10)] and others == []
    kept.split(files[10:11])  # dt=10 used: dt=11 goes next
    kept.keep("g", rows)
    assert "dt=11/f" in kept.split(files)[1] and "dt=10/f" not in kept.split(files)[1]


def test_one_row_files_count_at_what_they_cost_so_their_number_stays_bounded() -> None:
    """A one-row table's buffers are a few dozen bytes, its objects some kilobytes: a budget
    of buffers alone was never reached, and the service kept every file it ever wrote."""
    kept = SmallFileRows(budget=1 << 20)
    for k in range(10_000):
        kept.keep(f"dt=2026-01-01/part-{k}.parquet", pa.table({"id": [f"r{k}"]}))
    assert 0 < len(kept) <= (1 << 20) // 4096  # each holds over 4 KiB resident
    assert kept.bytes <= 1 << 20


def test_files_merged_away_are_let_go_by_the_next_look_up_of_their_day(
        make_config: Callable[..., Config]) -> None:
    """Rounds of small writes and compactions, as a service between compactions: what the
    look-ups keep follows the files of the day, not every file ever written."""
    with Monitor(make_config()) as monitor:
        for round_ in range(4):
            _batches(monitor, 20 * round_, 20)
            compact(monitor.store, grace=timedelta(0))
            found = monitor.lookups.stored_predictions(pa.array(["r1", f"r{200 * round_}"]))
            assert found.num_rows == 2
            listed = monitor.store.files(Table.PREDICTIONS)
            assert len(monitor.lookups._small_files) <= len(listed) == 1
