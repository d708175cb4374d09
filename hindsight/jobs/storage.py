"""What the store costs: its state per table (``hindsight storage status``) and a projection of
its size and monthly price (``hindsight storage estimate``).

The estimate measures instead of guessing: it writes a sample the way the store writes a day
(zstd Parquet, the config's columns and types) and counts the bytes. The sample is the store's
newest rows when it has some, else the user's own file, else rows made up from the config (said
so in the result, as those compress differently from real data).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hindsight.config import Config
from hindsight.store.compaction import COMPACTED_TABLES, SMALL_FILE_BYTES, debris
from hindsight.store.inputs import Batch, Source
from hindsight.store.partitions import Store, Table
from hindsight.store.schema import normalize_labels, normalize_predictions

GB = 1e9
SAMPLE_ROWS = 200_000  # at most this many rows of each kind are rewritten to measure
SOURCES = ("the store's newest rows", "the sample file", "rows made up from the config")
MADE_UP = Source("a sample made up from the config", "memory")


@dataclass(frozen=True, slots=True)
class TableStatus:
    table: str
    files: int
    bytes: int
    rows: int
    oldest: date | None
    newest: date | None
    small_files: int  # in partitions that compaction would merge
    debris: int  # temporary or uncommitted files, swept by compaction after their grace
    cold_files: int = 0  # of ``files``, those kept in the cold store
    cold_bytes: int = 0


def status(store: Store, tables: tuple[Table, ...] = tuple(Table)) -> list[TableStatus]:
    """Files, bytes and rows (from the Parquet footers) of each table."""
    return [_table_status(store, table) for table in tables]


def _table_status(store: Store, table: Table) -> TableStatus:
    listing = store.listing(table)
    sizes = {i.path: i.size or 0 for i in listing}
    visible = store.files(table)
    cold = [f.path for f in visible if f.cold]
    # Cold files, and files a writer added after the listing, are sized one by one.
    sizes |= {f.path: store.fs.get_file_info(f.path).size or 0
              for f in visible if f.path not in sizes}
    rows = sum(store.footer(f.path).num_rows for f in visible)
    small: dict[date | None, int] = {}
    for f in visible if table in COMPACTED_TABLES else ():
        if not f.cold and sizes[f.path] < SMALL_FILE_BYTES:
            small[f.dt] = small.get(f.dt, 0) + 1
    days = sorted(f.dt for f in visible if f.dt is not None)
    return TableStatus(table.value, len(visible), sum(sizes[f.path] for f in visible), rows,
                       days[0] if days else None, days[-1] if days else None,
                       sum(n for n in small.values() if n > 1), len(debris(store, listing)),
                       len(cold), sum(sizes[path] for path in cold))


@dataclass(frozen=True, slots=True)
class Estimate:
    rows_per_day: int
    days: int
    hot_days: int
    labels_per_prediction: float
    bytes_per_prediction: float
    bytes_per_label: float
    sample: str  # where the measured rows came from (one of SOURCES)
    price_hot: float  # USD per GB-month
    price_cold: float

    @property
    def bytes_per_day(self) -> float:
        return self.rows_per_day * (self.bytes_per_prediction
                                    + self.labels_per_prediction * self.bytes_per_label)

    @property
    def hot_bytes(self) -> float:
        return self.bytes_per_day * min(self.days, self.hot_days)

    @property
    def cold_bytes(self) -> float:
        return self.bytes_per_day * max(0, self.days - self.hot_days)

    @property
    def total_bytes(self) -> float:
        return self.hot_bytes + self.cold_bytes

    @property
    def monthly_cost(self) -> float:
        """The monthly bill once the store holds ``days`` days."""
        return self.hot_bytes / GB * self.price_hot + self.cold_bytes / GB * self.price_cold

    def as_json(self) -> dict[str, object]:
        return {"bytes_per_prediction": self.bytes_per_prediction,
                "bytes_per_label": self.bytes_per_label, "total_bytes": self.total_bytes,
                "hot_bytes": self.hot_bytes, "cold_bytes": self.cold_bytes,
                "monthly_cost": self.monthly_cost, "rows_per_day": self.rows_per_day,
                "days": self.days, "hot_days": self.hot_days,
                "labels_per_prediction": self.labels_per_prediction, "sample": self.sample}


def estimate(store: Store, config: Config, rows_per_day: int, days: int, hot_days: int,
             price_hot: float, price_cold: float, sample: Batch | None = None,
             labels_per_prediction: float | None = None) -> Estimate:
    """Project the store's size after ``days`` days at ``rows_per_day`` predictions a day.
    Labels per prediction: as measured in the store, else ``labels_per_prediction``, else 1."""
    stored = _newest(store, Table.PREDICTIONS)
    if stored is not None:
        predictions, source = stored, SOURCES[0]
    elif sample is not None:
        predictions, source = normalize_predictions(sample, config), SOURCES[1]
    else:
        predictions, source = _made_up(config, min(rows_per_day, SAMPLE_ROWS)), SOURCES[2]
    labels = _newest(store, Table.LABELS)
    if labels is None:
        labels = _labels_for(predictions, config)
    measured_ratio = _labels_ratio(store)
    ratio = (measured_ratio if measured_ratio is not None
             else labels_per_prediction if labels_per_prediction is not None else 1.0)
    chunk = max(1, min(rows_per_day, SAMPLE_ROWS))
    return Estimate(rows_per_day, days, hot_days, ratio,
                    _bytes_per_row(predictions, chunk), _bytes_per_row(labels, chunk),
                    source, price_hot, price_cold)


def _bytes_per_row(table: pa.Table, chunk: int) -> float:
    """Written as the store writes a day: one zstd file of a day's rows (``chunk``)."""
    rows = table.slice(0, chunk)
    sink = io.BytesIO()
    pq.write_table(rows, sink, compression="zstd")
    return sink.tell() / max(int(rows.num_rows), 1)


def _newest(store: Store, table: Table) -> pa.Table | None:
    """Up to SAMPLE_ROWS of the newest rows of a table, newest partitions first."""
    parts: list[pa.Table] = []
    total = 0
    for f in sorted(store.files(table), key=lambda f: (f.dt or date.min, f.path), reverse=True):
        read = store.read(f.path)
        parts.append(read)
        total += read.num_rows
        if total >= SAMPLE_ROWS:
            break
    if not parts:
        return None
    return pa.concat_tables(parts, promote_options="permissive")


def _labels_ratio(store: Store) -> float | None:
    predictions, labels = status(store, (Table.PREDICTIONS, Table.LABELS))
    return labels.rows / predictions.rows if predictions.rows and labels.rows else None


def _made_up(config: Config, n: int) -> pa.Table:
    """Rows shaped like the config's: ids as UUIDs, a day of timestamps, ten classes, scores,
    segments of twenty values, numeric features. Real data compresses differently."""
    rng = np.random.default_rng(0)
    cols = config.columns
    start = datetime(2026, 1, 1, tzinfo=UTC)
    data: dict[str, pa.Array] = {
        cols.id: pa.array([str(uuid.UUID(int=int(x))) for x in rng.integers(0, 2**62, n)]),
        cols.timestamp: pa.array(sorted(start + timedelta(seconds=float(s))
                                        for s in rng.uniform(0, 86_400, n))),
    }
    classes = list(cols.scores or ()) or [f"class-{k}" for k in range(10)]
    if config.task == "classification":
        data[cols.prediction] = pa.array([classes[k] for k in
                                          rng.integers(0, len(classes), n)])
    else:
        data[cols.prediction] = pa.array(rng.normal(100, 30, n))
    for name in [*([cols.score] if cols.score else []), *(cols.scores or {}).values()]:
        data[name] = pa.array(np.round(rng.uniform(0.3, 1.0, n), 4))
    for name in cols.versions():
        data[name] = pa.array(["v2026-01-01"] * n)
    for name in config.segments:
        data[name] = pa.array([f"{name}-{k}" for k in rng.integers(0, 20, n)])
    for name in config.features or ():
        data[name] = pa.array(np.round(rng.lognormal(3, 1, n), 2))
    return normalize_predictions(Batch(pa.table(data), MADE_UP), config)


def _labels_for(predictions: pa.Table, config: Config) -> pa.Table:
    cols = config.columns
    rows = {cols.id: predictions[cols.id], cols.label: predictions[cols.prediction]}
    if cols.label_timestamp:
        rows[cols.label_timestamp] = predictions[cols.timestamp]
    return normalize_labels(Batch(pa.table(rows), MADE_UP), config, datetime.now(UTC))
