"""Request bodies to Arrow: JSON arrays, NDJSON, Arrow IPC streams, Parquet; and their
description in the OpenAPI document, built from the config's columns."""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.store.inputs import (
    OverLimit,
    json_line,
    json_value,
    refuse_deep_json,
    refuse_undecodable_names,
    rows_to_table,
)

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
NDJSON = ("application/x-ndjson", "application/jsonl", "application/ndjson")
JSON = ("application/json", "")


class UnsupportedMediaType(InputError):
    """A Content-Type hindsight does not read (answered 415)."""


def media_kind(content_type: str) -> str:
    kind = content_type.split(";")[0].strip().lower()
    if kind not in (ARROW, *PARQUET, *NDJSON, *JSON):
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not supported; send application/json, {NDJSON[0]}, "
            f"{ARROW} or {PARQUET[0]}")
    return kind


def request_body(config: Config, table: Literal["predictions", "labels"]) -> dict[str, Any]:
    """The ``requestBody`` of an ingest operation: one row per prediction (or label), with
    the columns the config maps; in JSON, NDJSON, Arrow IPC or Parquet."""
    cols = config.columns
    value: dict[str, Any] = ({"type": "string"} if config.task == "classification"
                             else {"type": "number"})
    feature = {"type": ["string", "number", "boolean"]}
    text = {"type": "string"}
    when = {"type": "string", "format": "date-time"}
    if table == "predictions":
        required = {cols.id: text, cols.timestamp: when, cols.prediction: value}
        optional: dict[str, Any] = {name: text for name in [
            *config.segments, *cols.versions(), *([cols.input_hash] if cols.input_hash else [])]}
        if cols.score:
            optional[cols.score] = {"type": "number"}
        optional |= {name: {"type": "number", "minimum": 0, "maximum": 1}
                     for name in (cols.scores or {}).values()}
        optional |= {name: feature for name in config.features or ()}
    else:
        required = {cols.id: text, cols.label: value}
        if cols.label_timestamp:
            required[cols.label_timestamp] = when
        optional = {}
    row = {
        "type": "object",
        "properties": required | {k: _or_null(v) for k, v in optional.items()},
        # every mapped column is present in a batch, null where a row has no value
        "required": [*required, *optional],
        # without a features list, every other column is kept as a feature
        "additionalProperties": _or_null(feature) if config.features is None
        and table == "predictions" else False,
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": row, "minItems": 1}},
        NDJSON[0]: {"schema": {"type": "string",
                               "description": "one JSON object per line, as in the array"}},
        ARROW: binary,
        PARQUET[0]: binary,
    }}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What one body may hold, checked while it is decoded."""

    max_rows: int
    max_decoded_bytes: int
    max_columns: int
    max_depth: int

    @classmethod
    def of(cls, config: Config) -> BodyLimits:
        return cls(config.service.max_rows, config.service.max_decoded_bytes,
                   config.ingest.max_columns, config.ingest.max_json_depth)


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """The body as sent before its ``Content-Encoding``: gzip is inflated, at most ``limit``
    bytes of it; another encoding is refused (415)."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not supported; send the "
                                   "body as it is, or gzip it")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InputError(f"body: not valid gzip ({exc}); send it as it is, or gzip it "
                         "whole") from exc
    if len(out) > limit:
        raise OverLimit(f"body: inflates to over the limit of {limit} bytes "
                        "(service.max_body_bytes); send smaller batches")
    if not inflate.eof or inflate.unused_data:
        raise InputError("body: the gzip stream is cut short or followed by other data; "
                         "send one whole gzip stream")
    return out


def parse(body: bytes, content_type: str, limits: BodyLimits) -> pa.Table:
    kind = media_kind(content_type)
    try:
        if kind == ARROW:
            table = _arrow(body, limits)
        elif kind in PARQUET:
            table = _parquet(body, limits)
        else:
            table = _json(body, kind, limits)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise InputError(f"body: cannot be read as {kind}: {exc}") from exc
    refuse_undecodable_names(table, "body")
    if not table.num_rows:
        raise InputError("body: no rows")
    _refuse_over(table.num_rows, limits.max_rows, "rows", "service.max_rows")
    _refuse_over(_decoded_bytes(table), limits.max_decoded_bytes, "bytes decoded",
                 "service.max_decoded_bytes")
    return table


def _refuse_over(value: int, limit: int, what: str, key: str) -> None:
    if value > limit:
        raise OverLimit(f"body: {value} {what} is over the limit of {limit} ({key}); send "
                        "smaller batches")


def _json(body: bytes, kind: str, limits: BodyLimits) -> pa.Table:
    lines = kind in NDJSON
    refuse_deep_json(body, "body", limits.max_depth, lines=lines)
    if lines:
        numbered = [(i, line) for i, line in enumerate(body.splitlines()) if line.strip()]
        _refuse_over(len(numbered), limits.max_rows, "rows", "service.max_rows")
        rows = [json_line(line, f"body: line {i + 1}", limits.max_columns)
                for i, line in numbered]
    else:
        rows = json_value(body or b"null", "body", max_columns=limits.max_columns,
                          max_objects=limits.max_rows)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError("body: expected a JSON array of objects, one per row")
    if not rows:
        raise InputError("body: no rows")
    return rows_to_table(rows, "body")


def _arrow(body: bytes, limits: BodyLimits) -> pa.Table:
    reader = ipc.open_stream(body)
    _refuse_over(len(reader.schema), limits.max_columns, "columns", "ingest.max_columns")
    batches, rows, size = [], 0, 0
    for batch in reader:  # each batch is checked before the next is decoded
        rows += batch.num_rows
        size += batch.nbytes
        _refuse_over(rows, limits.max_rows, "rows", "service.max_rows")
        _refuse_over(size, limits.max_decoded_bytes, "bytes decoded",
                     "service.max_decoded_bytes")
        batches.append(batch)
    return pa.Table.from_batches(batches, reader.schema)


def _parquet(body: bytes, limits: BodyLimits) -> pa.Table:
    """Refused from the footer when it declares too many rows, columns or bytes; text read
    as dictionaries, so that values repeated a million times are counted before they are
    spelled out."""
    file = pq.ParquetFile(io.BytesIO(body))
    meta = file.metadata
    _refuse_over(len(file.schema_arrow), limits.max_columns, "columns", "ingest.max_columns")
    _refuse_over(meta.num_rows, limits.max_rows, "rows", "service.max_rows")
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    _refuse_over(declared, limits.max_decoded_bytes, "bytes decoded",
                 "service.max_decoded_bytes")
    text = [f.name for f in file.schema_arrow
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    table = pq.ParquetFile(io.BytesIO(body), read_dictionary=text).read()
    _refuse_over(_decoded_bytes(table), limits.max_decoded_bytes, "bytes decoded",
                 "service.max_decoded_bytes")
    return table.cast(pa.schema([f.with_type(f.type.value_type) if f.name in text
                                 and pa.types.is_dictionary(f.type) else f
                                 for f in table.schema]))


def _decoded_bytes(table: pa.Table) -> int:
    """The memory ``table`` takes once its dictionaries are spelled out."""
    total = 0
    for column in table.columns:
        if not pa.types.is_dictionary(column.type):
            total += column.nbytes
            continue
        for chunk in column.chunks:
            lengths = (pc.binary_length(chunk.dictionary)
                       if _is_text(chunk.dictionary.type) else None)
            if lengths is None:
                total += chunk.indices.nbytes + chunk.dictionary.nbytes
                continue
            spelled = pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0
            total += int(spelled) + 4 * len(chunk)
    return total


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))
