"""What a batch must be before its values are typed and stored: checked at every entry (HTTP,
CLI files, the Python API), so that no batch that a later run, compaction or retention could
not handle reaches the disk.

- Widths are bounded (``ingest.max_columns``); a column name appears once (ignoring case, as
  DuckDB reads them), and none is one of hindsight's own: names starting with ``_hindsight_``
  (any case) and ``dt``, the partition key of the store's directories.
- A stored column has a type the store and every engine read back: no intervals, durations,
  unions or binary blobs; dates and timestamps within years 1..9999; text that is UTF-8.
- Ids are text or whole numbers, never booleans, NaN or infinite, and at most
  ``ingest.max_id_chars`` long; a class (classification prediction or label) is never a NaN
  or infinite number.
- After typing, no row is older than the retention keeps (``storage.delete_after_days``): the
  next retention would delete it, so acknowledging it would be a lie.

Each refusal is an ``InputError`` naming the source, the row, the column and the fix.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import RESERVED_PREFIX, Config
from hindsight.errors import InputError
from hindsight.store.inputs import Batch, first_invalid_text
from hindsight.store.partitions import PARTITION_KEY

Kind = Literal["predictions", "labels", "reference"]
UTC_MICROS = pa.timestamp("us", tz="UTC")
_FIRST, _LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)


def admit(batch: Batch, config: Config, kind: Kind) -> None:
    """Refuse a batch whose names, types or key values cannot be stored safely."""
    table, source = batch.table, batch.source.name
    limit = config.ingest.max_columns
    if table.num_columns > limit:
        raise InputError(
            f"{source}: {table.num_columns} columns is over the limit of {limit} "
            "(ingest.max_columns); send fewer columns, list the features to keep, or raise "
            "the limit")
    stored = stored_columns(batch, config, kind)
    _refuse_names(batch, stored, config)
    for name in stored:
        _refuse_type(batch, name)
    cols = config.columns
    _refuse_bad_ids(batch, cols.id, config.ingest.max_id_chars)
    if config.task == "classification":
        for name in (cols.prediction, cols.label):
            if name in stored:
                _refuse_non_finite(batch, name, "a class")


def stored_columns(batch: Batch, config: Config, kind: Kind) -> list[str]:
    """The columns of ``batch`` that would be stored (the others are left out)."""
    cols = config.columns
    names = batch.table.column_names
    if kind == "labels":
        wanted = {cols.id, cols.label, *([cols.label_timestamp] if cols.label_timestamp else [])}
        return [n for n in names if n in wanted]
    if config.features is None:
        return [n for n in names if kind == "reference" or n != cols.label]
    wanted = {*cols.roles().values(), *config.segments, *config.features}
    wanted -= {cols.label_timestamp, *([] if kind == "reference" else [cols.label])}
    return [n for n in names if n in wanted]


def refuse_expired(table: pa.Table, column: str, batch_name: str, config: Config,
                   kind: Literal["predictions", "labels"], today: date) -> None:
    """Refuse rows (typed: ``column`` in UTC microseconds) that the next retention would
    delete: older than ``storage.delete_after_days`` of their table as of ``today``."""
    days = getattr(config.storage.delete_after_days, kind)
    if days is None or not table.num_rows:
        return
    cutoff = today - timedelta(days=days)
    start = pa.scalar(datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC), UTC_MICROS)
    old = pc.fill_null(pc.less(table[column], start), False)
    if pc.any(old).as_py():
        row = pc.index(old, True).as_py()
        raise InputError(
            f"{batch_name}: column {column!r} has {table[column][row].as_py()}, before "
            f"{cutoff} (storage.delete_after_days.{kind} is {days}): the next retention would "
            "delete it, so nothing of the batch was stored. Leave out rows that old, or keep "
            "them longer")


def _refuse_names(batch: Batch, stored: list[str], config: Config) -> None:
    source = batch.source.name
    counts = Counter(batch.table.column_names)
    twice = [name for name, n in counts.items() if n > 1]
    if twice:
        raise InputError(f"{source}: the column {twice[0]!r} appears {counts[twice[0]]} times; "
                         "give each column its own name")
    folded: dict[str, str] = {}
    for name in stored:
        lower = name.lower()
        if lower.startswith(RESERVED_PREFIX) or lower == PARTITION_KEY:
            what = ("the store's partition key" if lower == PARTITION_KEY
                    else f"reserved for hindsight (names starting with {RESERVED_PREFIX!r})")
            fix = ("rename the column" if config.features is None else
                   "rename the column, or leave it out of features")
            if config.features is None:
                fix += ", or list features in the config to leave it out"
            raise InputError(f"{source}: column {name!r} is {what}; {fix}")
        if not name.strip():
            raise InputError(f"{source}: a column has an empty name; name every column")
        if lower in folded:
            raise InputError(
                f"{source}: columns {folded[lower]!r} and {name!r} differ only in case, and "
                "the store reads names regardless of case; rename one of them")
        folded[lower] = name


def _storable(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _storable(kind.value_type)
    if pa.types.is_nested(kind):
        return True  # refused with its own message when typed (a feature is not a list)
    return (pa.types.is_null(kind) or pa.types.is_boolean(kind) or pa.types.is_integer(kind)
            or (pa.types.is_floating(kind) and not pa.types.is_float16(kind))
            or pa.types.is_decimal128(kind) or pa.types.is_string(kind)
            or pa.types.is_large_string(kind) or pa.types.is_date(kind)
            or pa.types.is_timestamp(kind) or pa.types.is_time(kind))


def _refuse_type(batch: Batch, name: str) -> None:
    column = batch.table[name]
    kind = column.type
    if not _storable(kind):
        raise InputError(
            f"{batch.source.name}: column {name!r} has type {kind}, which the store does not "
            "keep; send it as a number, text, a boolean, a date or a timestamp, or leave it out")
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        row = first_invalid_text(column)
        if row is not None:
            raise InputError(
                f"{batch.source.name}: {batch.source.row(row)}: column {name!r} holds text "
                "that is not valid UTF-8; save the file as UTF-8")
    elif pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        _refuse_out_of_range(batch, name, column)


def _refuse_out_of_range(batch: Batch, name: str, column: pa.ChunkedArray) -> None:
    kind = column.type
    if pa.types.is_date32(kind):
        return  # every day a date32 holds is within what the store reads back
    unit = "ms" if pa.types.is_date64(kind) else kind.unit
    raw = column.cast(pa.int64())
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    epoch = datetime(1970, 1, 1)
    # in nanoseconds the years 1..9999 are beyond 64 bits: clamp to what the column can hold
    low = max(int((_FIRST - epoch).total_seconds()) * per_second, -(2**63))
    high = min(int((_LAST - epoch).total_seconds()) * per_second, 2**63 - 1)
    outside = pc.fill_null(pc.or_(pc.less(raw, low), pc.greater(raw, high)), False)
    if pc.any(outside).as_py():
        row = pc.index(outside, True).as_py()
        raise InputError(
            f"{batch.source.name}: {batch.source.row(row)}: column {name!r} has "
            f"{raw[row].as_py()} {unit} since 1970, outside the years 1..9999; fix the "
            "value or its unit")


def _refuse_bad_ids(batch: Batch, name: str, max_chars: int) -> None:
    if name not in batch.table.column_names:
        return  # missing: refused with the mapping when typed
    column = batch.table[name]
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_boolean(kind):
        raise InputError(
            f"{batch.source.name}: column {name!r} holds booleans (true/false), not ids; "
            "send each row's own id as text")
    _refuse_non_finite(batch, name, "an id")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if first_invalid_text(column) is not None:
            return  # refused as invalid text
        long = pc.fill_null(pc.greater(pc.utf8_length(column), max_chars), False)
        if pc.any(long).as_py():
            row = pc.index(long, True).as_py()
            raise InputError(
                f"{batch.source.name}: {batch.source.row(row)}: column {name!r} has an id of "
                f"{pc.utf8_length(column[row]).as_py()} characters, over the limit of "
                f"{max_chars} (ingest.max_id_chars); send a shorter key, such as a hash")


def _refuse_non_finite(batch: Batch, name: str, what: str) -> None:
    column = batch.table[name]
    if not pa.types.is_floating(column.type):
        return
    bad = pc.fill_null(pc.invert(pc.is_finite(column)), False)
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        raise InputError(
            f"{batch.source.name}: {batch.source.row(row)}: column {name!r} has "
            f"{column[row].as_py()}, which is not {what}; send a value, or leave the row out")
