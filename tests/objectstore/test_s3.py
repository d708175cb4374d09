"""The store on an S3 API served on 127.0.0.1: every job gives what it gives on a local disk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from hindsight.config import parse_config
from hindsight.errors import ConfigError
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from hindsight.store.partitions import Store, Table
from tests.conftest import log_simulation

pytestmark = pytest.mark.slow

SCENARIO = Scenario(per_day=2_000, days=12, failure_start=4, failure_cell_per_day=200,
                    failure_accuracy=0.3, reference_rows=3_000, seed=11)


def filled(store: str, cold: str) -> Monitor:
    raw = demo_config(store)
    raw.update(label_window_days=10, min_samples=20, alerts={"baseline_days": 3},
               storage={"hot_days": 10, "cold_store": cold})
    return log_simulation(
        Monitor(parse_config(raw), clock=lambda: datetime(2026, 12, 1, tzinfo=UTC)), SCENARIO)


def results(monitor: Monitor) -> list[object]:
    """What the runs found, every float rounded to 1e-9: sums taken in another order (files
    read in another order) may differ in the last bits."""
    summaries = monitor.backfill(SCENARIO.end - timedelta(days=4), SCENARIO.end)
    metrics = [monitor.metrics(SCENARIO.start + timedelta(days=d), SCENARIO.end)[1]
               for d in (2, 6, 11)]
    return _rounded([[(s.as_of, s.overall, s.cells, s.segments_failing) for s in summaries],
                     sorted((a.as_json() for a in monitor.alerts()), key=str),
                     [[(m.date, m.segment, m.metric, m.value, m.n_predictions, m.n_labelled)
                       for m in day] for day in metrics]])


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def rows(store: Store, table: Table) -> int:
    return sum(store.footer(f.path).num_rows for f in store.files(table))


def test_the_daily_job_on_a_bucket_equals_the_one_on_a_local_disk(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = filled(str(tmp_path / "store"), str(tmp_path / "cold"))
    remote = filled(f"{bucket}/models/expense", f"{bucket}/cold/expense")
    assert not remote.store.is_local
    expected = results(local)
    assert expected[1], "the planted failure opens alerts"
    assert results(remote) == expected
    # compaction, tiering and retention keep every row and every result
    counts = {t: rows(remote.store, t) for t in (Table.PREDICTIONS, Table.LABELS)}
    remote.compact(grace=timedelta(0))
    tiered = remote.tier(SCENARIO.end)
    assert tiered.partitions > 0
    own = Store.open(f"{bucket}/cold/expense/{remote.store.identity()}")  # its part of it
    assert any(i.base_name.startswith("tiered-") for i in own.listing(Table.PREDICTIONS))
    assert {t: rows(remote.store, t) for t in counts} == counts
    assert results(remote) == expected
    report = remote.check()
    assert report.ok, report.problems
    # the next day's run, in a process of its own, starts from the counts the backfill
    # carried in the bucket; on the disk the same day is counted from scratch
    from hindsight.engine.duck import DuckDBEngine

    changes: list[object] = []
    original = DuckDBEngine._count_change
    monkeypatch.setattr(DuckDBEngine, "_count_change",
                        lambda self, *a: changes.append(a) or original(self, *a))
    after = SCENARIO.end + timedelta(days=1)
    local.store.fs.delete_dir(local.store.table_dir(Table.COUNTS))
    found = []
    for monitor in (local, remote):
        with Monitor(monitor.config) as run:
            run.run(after)
            found.append(stored_metrics(run.store, after))
        assert len(changes) == (monitor is remote)
    assert found[0] == found[1]
    local.close()
    remote.close()


def stored_metrics(store: Store, day: date) -> object:
    (file,) = store.files(Table.METRICS, day, day)
    return _rounded(sorted(store.read(file.path).to_pylist(), key=str))


def test_a_cold_store_on_another_kind_of_storage_is_refused(bucket: str,
                                                            tmp_path: Path) -> None:
    raw = demo_config(f"{bucket}/m")
    raw["storage"] = {"hot_days": 30, "cold_store": str(tmp_path / "cold")}
    with pytest.raises(ConfigError, match="different kinds of storage"):
        parse_config(raw)


def test_a_write_to_a_bucket_is_one_object_under_its_final_name(bucket: str) -> None:
    store = Store.open(f"{bucket}/m")
    written = store.write(Table.PREDICTIONS, pa.table({"x": [1, 2]}), dt=date(2026, 1, 1))
    names = [i.path for i in store.listing(Table.PREDICTIONS)]
    assert names == [written]  # no temporary object, no copy
    assert store.read(written).num_rows == 2
