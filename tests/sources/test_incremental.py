"""A table read in place, in a bucket: the same results as the rows logged, and a source
appended between two runs is read only where the counts need it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from hindsight.config import parse_config
from hindsight.engine.duck import DuckDBEngine
from hindsight.monitor import Monitor
from tests.sources.conftest import (
    START,
    Rows,
    assert_same_results,
    classifier_rows,
    raw_config,
    run_days,
)


def _s3_options(endpoint: str) -> dict[str, str]:
    from tests.objectstore.conftest import ACCESS_KEY, SECRET_KEY

    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


class BucketWriter:
    """Appends days of rows to a Delta table or a Hive-partitioned Parquet prefix in a
    bucket, as a serving job would."""

    def __init__(self, kind: str, bucket: str, endpoint: str, rows: Rows) -> None:
        self.kind, self.rows = kind, rows
        self.root = f"{bucket}/serving"
        self.endpoint = endpoint
        self.added: dict[tuple[str, date], set[str]] = {}  # data files each day added

    def sources(self) -> dict[str, Any]:
        return {name: {"format": "delta" if self.kind == "delta" else "parquet",
                       "path": f"{self.root}/{name}"} for name in ("predictions", "labels")}

    def append(self, days: list[date]) -> None:
        for day in days:
            if day in self.rows.predictions:
                self._write("predictions", day, self.rows.predictions[day])
            if day in self.rows.labels:
                self._write("labels", day, self.rows.labels[day])

    def _write(self, name: str, day: date, table: pa.Table) -> None:
        before = self._listed(name)
        self._put(name, day, table)
        self.added[name, day] = self._listed(name) - before

    def _listed(self, name: str) -> set[str]:
        fs, path = pafs.FileSystem.from_uri(f"{self.root}/{name}")
        return {i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True,
                                                                   allow_not_found=True))
                if i.path.endswith(".parquet")}

    def _put(self, name: str, day: date, table: pa.Table) -> None:
        if self.kind == "delta":
            from deltalake import write_deltalake

            write_deltalake(f"{self.root}/{name}", table, mode="append",
                            storage_options=_s3_options(self.endpoint))
            return
        fs, path = pafs.FileSystem.from_uri(f"{self.root}/{name}/dt={day}/part-0.parquet")
        pq.write_table(table, path, filesystem=fs)


def _read_by_run(monitor: Monitor, day: date) -> dict[str, int]:
    engine = monitor.engine
    assert isinstance(engine, DuckDBEngine)
    before = dict(engine.bytes_read())
    monitor.run(day)
    return {path: n - before.get(path, 0) for path, n in engine.bytes_read().items()
            if n - before.get(path, 0) > 0}


@pytest.mark.parametrize("kind", ["delta", "parquet"])
def test_a_table_in_a_bucket_appended_between_runs_is_read_where_the_counts_need_it(
        kind: str, lake_bucket: str, moto_endpoint: str, tmp_path: Path,
        in_store: Callable[[Rows], Monitor]) -> None:
    rows = classifier_rows(per_day=200, days=8)
    writer = BucketWriter(kind, lake_bucket, moto_endpoint, rows)
    days = sorted(set(rows.predictions) | set(rows.labels))
    first_run, second_run = START + timedelta(days=6), START + timedelta(days=7)
    writer.append([d for d in days if d <= first_run])

    raw = raw_config(rows, tmp_path / "store", **writer.sources())
    with Monitor(parse_config(raw)) as lake:
        lake.log_reference(rows.reference)
        first = _read_by_run(lake, first_run)
    writer.append([d for d in days if d == second_run])
    # another process: it starts from the counts the first run carried in the store
    with Monitor(parse_config(raw)) as lake:
        second = _read_by_run(lake, second_run)
    # the same day counted from scratch, for the comparison
    with Monitor(parse_config({**raw, "store": str(tmp_path / "fresh")})) as fresh:
        fresh.log_reference(rows.reference)
        scratch = _read_by_run(fresh, second_run)

    window_start = second_run - timedelta(days=raw["label_window_days"] - 1)
    needed = {path for (name, day), paths in writer.added.items() for path in paths
              if (name == "predictions" and window_start <= day <= second_run)
              or (name == "labels" and window_start - timedelta(days=2) <= day <= second_run)}
    read_first = {p for p in first if "predictions" in p}
    assert set(second) <= needed, sorted(set(second) - needed)
    # from scratch the data alerts' history (rows per day over weeks) is read too; the
    # second run had it carried and read none of it
    history = {path for path in scratch if path not in needed}
    assert history and history <= {path for paths in writer.added.values() for path in paths}
    # the oldest prediction days, read by the first run, are outside the second's window
    assert read_first - set(second)
    # counted from the day before's counts: less than a count from scratch reads
    assert sum(second.values()) < sum(scratch.values()), (sum(second.values()),
                                                          sum(scratch.values()))

    logged = in_store(rows)
    with Monitor(parse_config(raw)) as lake:
        run_days(logged, first_run, second_run)
        assert_same_results(logged, lake)
