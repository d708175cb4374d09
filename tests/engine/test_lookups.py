from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from hindsight.config import Config
from hindsight.engine.duck import DuckDBEngine
from hindsight.engine.lookups import SmallFileRows
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import PartitionFile
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
    kept = SmallFileRows(budget=rows.nbytes * 20)
    for k in range(30):
        kept.keep(f"f{k}", rows)
    files = [PartitionFile(f"f{k}", None, size=100) for k in range(30)]
    held, unseen, others = kept.split(files)
    assert len(held) == 20 and unseen == [f"f{k}" for k in range(10)] and others == []
    kept.split(files[10:11])  # f10 used: f11 goes next
    kept.keep("g", rows)
    assert "f11" in kept.split(files)[1] and "f10" not in kept.split(files)[1]
