"""Request bodies to Arrow: JSON arrays, NDJSON, Arrow IPC streams, Parquet."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from hindsight.errors import InputError

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = ("application/vnd.apache.parquet", "application/x-parquet")
NDJSON = ("application/x-ndjson", "application/jsonl", "application/ndjson")


def parse(body: bytes, content_type: str) -> pa.Table:
    kind = content_type.split(";")[0].strip().lower()
    try:
        if kind == ARROW:
            return ipc.open_stream(body).read_all()
        if kind in PARQUET:
            return pq.read_table(io.BytesIO(body))
        if kind in NDJSON:
            rows = [_row(line, i) for i, line in enumerate(body.splitlines()) if line.strip()]
        elif kind in ("application/json", ""):
            rows = json.loads(body or b"null")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise InputError("body: expected a JSON array of objects, one per row")
        else:
            raise InputError(f"Content-Type {kind!r} is not supported; send application/json, "
                             f"{NDJSON[0]}, {ARROW} or {PARQUET[0]}")
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"body: cannot be read as {kind}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"body: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not rows:
        raise InputError("body: no rows")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"body: rows disagree on a column's type: {exc}") from exc


def _row(line: bytes, index: int) -> dict[str, object]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"body: line {index + 1} is not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise InputError(f"body: line {index + 1} is not a JSON object")
    return row
