"""Check a batch against the config and give it the stored types.

Stored tables keep the user's column names. Roles get fixed types: ids, classes, versions and
segment values are text; timestamps are UTC microseconds (a timestamp without a zone is read
as UTC; finer precisions are truncated to the microsecond) within ``EARLIEST``..``LATEST``;
scores and regression values are finite float64; per-class probabilities (``columns.scores``)
are in [0, 1], and every predicted class has one. Segment values and classes are stored as
their identities (``hindsight.store.identity``): ``True``, ``true`` -> ``true``; ``1.0`` ->
``1``. A bad value raises ``InputError`` naming the source, the row, the column and the fix.

Ids and classes may not be empty or blank. A NaN in a feature means "missing" and is stored as
null (pandas writes missing numbers as NaN); an infinite feature is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import RESERVED_PREFIX, Config
from hindsight.errors import InputError
from hindsight.store.identity import identity
from hindsight.store.inputs import Batch

ARRIVED_AT = f"{RESERVED_PREFIX}arrived_at"
UTC_MICROS = pa.timestamp("us", tz="UTC")
_ZONE_SUFFIX = r"(Z|z|[+-]\d\d(:?\d\d)?)$"
# A prediction or label outside these instants is a typo or a placeholder, not an event.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

Caster = Callable[[pa.ChunkedArray, Batch, str], pa.Array]


def text_columns(config: Config, *, labels: bool = False) -> list[str]:
    """Columns to read as text so that ``007`` stays ``007``."""
    cols = config.columns
    names = [cols.id, *config.segments]
    if config.task == "classification":
        names += [cols.label] if labels else [cols.prediction, cols.label]
    return names + cols.versions()


def normalize_predictions(batch: Batch, config: Config, *, with_label: bool = False) -> pa.Table:
    """The stored form of a predictions batch (``with_label`` for the reference set, which
    needs no timestamp, version or input hash: no check reads them from it)."""
    cols = config.columns
    value = _value_caster(config)
    typed: dict[str, tuple[Caster, bool]] = {
        cols.id: (_text, True),
        cols.timestamp: (_timestamp, True),
        cols.prediction: (value, True),
    }
    if with_label:
        typed[cols.label] = (value, True)
    if cols.score:
        typed[cols.score] = (_number, False)
    for column in (cols.scores or {}).values():
        typed[column] = (_probability, False)
    for name in [*cols.versions(), *([cols.input_hash] if cols.input_hash else [])]:
        typed[name] = (_text, False)
    for segment in config.segments:
        typed[segment] = (_value, False)
    if with_label:  # the reference: only what the checks read from it is required
        unread = [cols.timestamp, *cols.versions(), *([cols.input_hash] if cols.input_hash
                                                      else [])]
        for name in unread:
            if name not in batch.table.column_names:
                del typed[name]
    kept = list(typed) + list(config.features or ())
    if config.features is None:
        kept += [c for c in batch.table.column_names if c not in typed and c != cols.label]
    present = set(batch.table.column_names)  # built once: a row may have thousands
    for name in kept:
        if name not in typed and name in present and pa.types.is_nested(
                batch.table[name].type):
            raise InputError(
                f"{batch.source.name}: column {name!r} holds objects or lists; a feature is a "
                "number, text or a boolean. Flatten it into columns of its own, or leave it out")
    table = _apply(batch, typed, kept, config.source)
    if cols.scores:
        _refuse_unscored(table[cols.prediction], batch, config)
    return table


def normalize_labels(batch: Batch, config: Config, received_at: datetime) -> pa.Table:
    """The stored form of a labels batch, with the time each label arrived."""
    cols = config.columns
    typed: dict[str, tuple[Caster, bool]] = {
        cols.id: (_text, True),
        cols.label: (_value_caster(config), True),
    }
    if cols.label_timestamp:
        typed[cols.label_timestamp] = (_timestamp, False)  # empty: the time of ingestion
    table = _apply(batch, typed, list(typed), config.source)
    received = pa.scalar(received_at, UTC_MICROS)
    if cols.label_timestamp:
        arrived = pc.fill_null(table[cols.label_timestamp], received)
    else:
        arrived = pa.array([received_at] * table.num_rows, UTC_MICROS)
    return table.append_column(ARRIVED_AT, arrived)


def _apply(batch: Batch, typed: dict[str, tuple[Caster, bool]], kept: list[str],
           config_file: str) -> pa.Table:
    table = batch.table
    present = set(table.column_names)
    missing = [c for c in kept if c not in present]
    if missing:
        raise InputError(
            f"{batch.source.name}: missing column {missing[0]!r} (mapped in {config_file}); "
            f"the file has {', '.join(table.column_names)}. Add the column or change the mapping"
        )
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in kept:
        column = table[name]
        if name in typed:
            cast, required = typed[name]
            column = cast(column, batch, name)
            if required:
                _refuse_empty(column, batch, name)
        elif pa.types.is_floating(column.type):
            column = _feature_numbers(column, batch, name)
        out[name] = column
    return pa.table(out)


def _value_caster(config: Config) -> Caster:
    """Predictions and labels: classes are text (their identities), regression values finite
    numbers."""
    return _value if config.task == "classification" else _number


def _refuse_empty(column: pa.Array, batch: Batch, name: str) -> None:
    empty = pc.is_null(column)
    if pa.types.is_string(column.type):
        empty = pc.or_kleene(empty, pc.equal(pc.utf8_trim_whitespace(column), ""))
    if pc.any(empty).as_py():
        row = pc.index(empty, True).as_py()
        raise InputError(
            f"{batch.source.name}: {batch.source.row(row)}: column {name!r} is empty; "
            "every row needs a value here"
        )


def _refuse_where(bad: pa.Array, column: pa.Array, batch: Batch, name: str,
                  what: str) -> None:
    if pc.any(bad).as_py():
        row = pc.index(bad, True).as_py()
        raise InputError(
            f"{batch.source.name}: {batch.source.row(row)}: column {name!r} has "
            f"{_shown(column, row)}, {what}"
        )


def _shown(column: pa.Array | pa.ChunkedArray, row: int) -> str:
    try:
        return repr(column[row].as_py())
    except (OverflowError, ValueError):  # e.g. a year Python's datetime cannot hold
        return repr(column.slice(row, 1).cast(pa.string())[0].as_py())


def _text(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    return _cast_or_explain(column, pa.string(), batch, name)


def _value(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    """A segment value or a class: its identity (see ``identity``), whatever wrote it."""
    return identity(_text(column, batch, name))


def _number(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    """float64, finite: a NaN or infinite score or value would poison every mean after it."""
    numbers = _cast_or_explain(column, pa.float64(), batch, name)
    _refuse_where(pc.fill_null(pc.invert(pc.is_finite(numbers)), False), numbers, batch, name,
                  "which is not a finite number; send null for a missing value")
    return numbers


def _probability(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    """A class's probability: a finite number in [0, 1]."""
    numbers = _number(column, batch, name)
    outside = pc.or_(pc.less(numbers, 0.0), pc.greater(numbers, 1.0))
    _refuse_where(pc.fill_null(outside, False), numbers, batch, name,
                  "which is not a probability in [0, 1] (columns.scores); map the model's class "
                  "probabilities (predict_proba, softmax), not logits or percentages")
    return numbers


def _refuse_unscored(predicted: pa.ChunkedArray, batch: Batch, config: Config) -> None:
    """Every predicted class has a probability column: its score."""
    mapped = pa.array(list(config.columns.scores or {}))
    unscored = pc.invert(pc.is_in(predicted, value_set=mapped))
    _refuse_where(pc.fill_null(unscored, False), predicted, batch, config.columns.prediction,
                  f"a class without a probability column in columns.scores ({config.source}: "
                  f"it maps {', '.join(repr(c) for c in mapped.to_pylist())}); add the class "
                  "and its column there")


def _feature_numbers(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.ChunkedArray:
    """NaN is how pandas writes a missing number: stored as null. Infinity is refused."""
    _refuse_where(pc.fill_null(pc.is_inf(column), False), column, batch, name,
                  "an infinite feature; send null for a missing value or clip it")
    return pc.if_else(pc.fill_null(pc.is_nan(column), False), pa.scalar(None, column.type),
                      column)


def _timestamp(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    """Any timestamp form to UTC micros; strings may mix zoned and zone-less ISO 8601."""
    stamps = _utc_micros(column, batch, name)
    outside = pc.or_(pc.less(stamps, pa.scalar(EARLIEST, UTC_MICROS)),
                     pc.greater_equal(stamps, pa.scalar(LATEST, UTC_MICROS)))
    _refuse_where(pc.fill_null(outside, False), column, batch, name,
                  f"which is outside {EARLIEST:%Y-%m-%d}..{LATEST:%Y-%m-%d} (UTC); fix the "
                  "value or the column mapping")
    return stamps


def _utc_micros(column: pa.ChunkedArray, batch: Batch, name: str) -> pa.Array:
    kind = column.type
    if pa.types.is_timestamp(kind):
        # nanoseconds: truncated (their range lies inside that of microseconds); s and ms are
        # cast safely, so an out-of-range value is refused rather than wrapped
        micros = column.cast(pa.timestamp("us", kind.tz), safe=kind.unit != "ns")
        return (pc.assume_timezone(micros, "UTC") if kind.tz is None
                else micros.cast(UTC_MICROS))
    if pa.types.is_date(kind):
        return pc.assume_timezone(column.cast(pa.timestamp("us")), "UTC")
    if pa.types.is_null(kind):
        return pa.nulls(len(column), UTC_MICROS)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column.cast(pa.string())
        text = pc.if_else(pc.equal(pc.utf8_trim_whitespace(text), ""), None, text)
        zoned = pc.fill_null(pc.match_substring_regex(text, _ZONE_SUFFIX), False)
        with_zone = _cast_or_explain(pc.if_else(zoned, text, None), UTC_MICROS, batch, name)
        naive = _cast_or_explain(pc.if_else(zoned, None, text), pa.timestamp("us"), batch, name)
        return pc.if_else(zoned, with_zone, pc.assume_timezone(naive, "UTC"))
    raise InputError(
        f"{batch.source.name}: column {name!r} has type {kind}; expected ISO 8601 timestamps "
        "such as 2026-11-29T14:05:00Z"
    )


def _cast_or_explain(
    column: pa.ChunkedArray | pa.Array, target: pa.DataType, batch: Batch, name: str
) -> pa.Array:
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        row, value = _first_uncastable(column, target)
        example = "2026-11-29T14:05:00Z" if pa.types.is_timestamp(target) else "0.75"
        where = f"{batch.source.row(row)}: " if row is not None else ""
        raise InputError(
            f"{batch.source.name}: {where}column {name!r} has {value!r}, which is not "
            f"{_describe_type(target)} (e.g. {example}); fix the value or the column mapping"
        ) from exc


def _first_uncastable(
    column: pa.ChunkedArray | pa.Array, target: pa.DataType
) -> tuple[int | None, object]:
    # Only on the error path: find the culprit one value at a time.
    for index, value in enumerate(column.to_pylist()):
        try:
            pa.array([value], type=column.type).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index, value
    return None, None


def _describe_type(target: pa.DataType) -> str:
    if pa.types.is_timestamp(target):
        return "an ISO 8601 timestamp"
    if pa.types.is_floating(target):
        return "a number"
    return str(target)
