"""Request bodies to Arrow: JSON arrays, NDJSON, Arrow IPC streams, Parquet; and their
description in the OpenAPI document, built from the config's columns."""

from __future__ import annotations

import io
import json
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.store.inputs import json_line, rows_to_table

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


def parse(body: bytes, content_type: str) -> pa.Table:
    kind = media_kind(content_type)
    try:
        if kind == ARROW:
            return ipc.open_stream(body).read_all()
        if kind in PARQUET:
            return pq.read_table(io.BytesIO(body))
        if kind in NDJSON:
            rows = [json_line(line, f"body: line {i + 1}")
                    for i, line in enumerate(body.splitlines()) if line.strip()]
        else:
            rows = json.loads(body or b"null")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise InputError("body: expected a JSON array of objects, one per row")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"body: cannot be read as {kind}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"body: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise InputError("body: JSON nested too deeply; a row is a flat object of "
                         "column: value") from exc
    if not rows:
        raise InputError("body: no rows")
    return rows_to_table(rows, "body")

