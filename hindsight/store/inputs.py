"""Read the user's files (CSV, Parquet, JSON lines) and in-memory frames into Arrow tables.

Each table carries where its rows came from (``Source``) so that a later check can name the
file and row of a bad value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from hindsight.errors import InputError

READERS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # how Hive-style writers name a null partition value


@dataclass(frozen=True, slots=True)
class Source:
    """Where a batch came from, to name it in errors."""

    name: str
    kind: str  # csv | parquet | json | memory

    def row(self, index: int) -> str:
        """A 0-based row index as a reader would look for it."""
        if self.kind == "csv":
            return f"row {index + 1} (line {index + 2})"
        if self.kind == "json":
            return f"line {index + 1}"
        return f"row {index + 1}"


@dataclass(frozen=True, slots=True)
class Batch:
    table: pa.Table
    source: Source


def read_file(path: str | Path, text_columns: Iterable[str] = ()) -> Batch:
    """Read one file; ``text_columns`` are kept as strings (ids like ``007`` stay ``007``)."""
    file = Path(path)
    table = _table(file, list(text_columns))
    if table.num_rows == 0:
        raise InputError(f"{file}: has no rows; nothing was stored")
    return Batch(table, Source(str(file), READERS[file.suffix.lower()]))


def read_files(paths: Iterable[str | Path], text_columns: Iterable[str] = ()) -> list[Batch]:
    """Each file, and each data file inside a directory, as a batch of its own (see
    ``read_directory``)."""
    names = list(text_columns)
    batches: list[Batch] = []
    for path in map(Path, paths):
        batches += read_directory(path, names) if path.is_dir() else [read_file(path, names)]
    return batches


def read_whole(path: str | Path, text_columns: Iterable[str] = ()) -> pa.Table:
    """A file, or all the data files of a directory, as one table."""
    return pa.concat_tables([b.table for b in read_files([path], text_columns)],
                            promote_options="permissive")


def read_directory(directory: Path, text_columns: Iterable[str] = ()) -> list[Batch]:
    """The data files a writer left in ``directory``, as Spark, pandas or polars leave them:
    part files, in Hive-style ``key=value`` sub-directories or not. Names starting with ``.``
    or ``_`` are the writer's own (``_SUCCESS``, ``_temporary/``, ``.crc`` checksums) and
    are skipped, as are empty part files. A ``key=value`` directory gives its files' rows the
    column ``key`` unless they hold it: the value as text (``007`` stays ``007``), URL-decoded,
    and null for Hive's default partition."""
    names = list(text_columns)
    files = sorted(path for path in directory.rglob("*") if path.is_file() and not any(
        part.startswith((".", "_")) for part in path.relative_to(directory).parts))
    batches = []
    for file in files:
        if file.stat().st_size == 0:
            continue
        table = _table(file, names)
        if table.num_rows == 0:
            continue
        for key, value in _partition_values(file.parent.relative_to(directory)).items():
            if key not in table.column_names:
                table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
        batches.append(Batch(table, Source(str(file), READERS[file.suffix.lower()])))
    if not batches:
        raise InputError(f"{directory}: a directory without rows in any data file (CSV, "
                         "Parquet or JSON lines; names starting with . or _ are skipped); "
                         "nothing was stored. Name the directory the part files are in, or "
                         "the files themselves")
    return batches


def _partition_values(relative: Path) -> dict[str, str | None]:
    """``country=CH/day=2026-10-01`` as ``{"country": "CH", "day": "2026-10-01"}``."""
    values: dict[str, str | None] = {}
    for part in relative.parts:
        key, equals, value = part.partition("=")
        if equals and key:
            decoded = unquote(value)
            values[unquote(key)] = None if decoded == HIVE_NULL else decoded
    return values


def _table(file: Path, text_columns: list[str]) -> pa.Table:
    try:
        size = file.stat().st_size
    except FileNotFoundError as exc:
        raise InputError(f"{file}: no such file or directory") from exc
    kind = READERS.get(file.suffix.lower())
    if kind is None:
        raise InputError(
            f"{file}: unknown file type {file.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(READERS))}, or a directory of them"
        )
    if size == 0:
        raise InputError(f"{file}: the file is empty; nothing was stored")
    try:
        return _read(file, kind, text_columns)
    except (pa.ArrowInvalid, OSError) as exc:
        if kind == "json":
            _explain_json_lines(file)
        raise InputError(f"{file}: cannot be read as {kind}: {exc}") from exc


def _read(file: Path, kind: str, text_columns: list[str]) -> pa.Table:
    if kind == "csv":
        options = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns})
        return pacsv.read_csv(file, convert_options=options)
    if kind == "json":
        # JSON carries its own types: a numeric id is cast to text when it is checked.
        return pajson.read_json(file)
    return pq.read_table(file)


def rows_to_table(rows: list[dict[str, Any]], name: str) -> pa.Table:
    """Row dicts (parsed JSON, a caller's list) to a table; a value Arrow cannot hold is
    refused naming its row and column."""
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        found = _first_disagreeing(rows)
        if found is None:
            raise InputError(f"{name}: rows disagree on a column's type: {exc}") from exc
        (row, value, kind), (first, first_value, first_kind), column = found
        raise InputError(
            f"{name}: row {row + 1}: column {column!r} has {value!r} ({kind}), where row "
            f"{first + 1} has {first_value!r} ({first_kind}); send each column as one type "
            "(a number without quotes)") from exc
    except (OverflowError, UnicodeError) as exc:
        row, column, value = _first_unstorable(rows)
        raise InputError(
            f"{name}: row {row + 1}: column {column!r} has {value!r}, which cannot be stored "
            f"({_why(exc)}); send it as text, or fix the value") from exc


def _why(exc: Exception) -> str:
    if isinstance(exc, OverflowError):
        return "a whole number beyond 64 bits"
    return "text that is not valid Unicode (a lone surrogate?)"


def _first_unstorable(rows: list[dict[str, Any]]) -> tuple[int, str, object]:
    # Only on the error path: find the culprit one value at a time.
    for index, row in enumerate(rows):
        for column, value in row.items():
            try:
                pa.array([value])
            except (OverflowError, UnicodeError, pa.ArrowException):
                return index, column, value
    return 0, "?", None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "an object" if isinstance(value, dict) else type(value).__name__


_Place = tuple[int, object, str]


def _first_disagreeing(rows: list[dict[str, Any]]) -> tuple[_Place, _Place, str] | None:
    """The first row whose value's kind (number, text, boolean, ...) is not that of the first
    value of its column, that value's row, and the column. Only on the error path."""
    first: dict[str, _Place] = {}
    for index, row in enumerate(rows):
        for column, value in row.items():
            if value is None:
                continue
            kind = _kind(value)
            seen = first.setdefault(column, (index, value, kind))
            if seen[2] != kind:
                return (index, value, kind), seen, column
    return None


def json_line(line: str | bytes, where: str) -> dict[str, Any]:
    """One line of JSON lines as a row; ``where`` names it ("rows.jsonl: line 2") in the
    error, with the fix."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}); fix "
                         "that line: one JSON object per line") from exc
    except RecursionError as exc:
        raise InputError(f"{where} is nested too deeply; a row is a flat object of "
                         "column: value") from exc
    if not isinstance(row, dict):
        raise InputError(f"{where} is not a JSON object; one object per line, e.g. "
                         '{"id": "r1", ...}')
    return row


def _explain_json_lines(file: Path) -> None:
    """Name the first line that is not one JSON object (Arrow's reader counts rows from the
    start of a block, not lines of the file)."""
    with file.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                json_line(line, f"{file}: line {number}")


def from_memory(data: Any, name: str = "batch") -> Batch:
    """Accept a pyarrow Table, a pandas or polars DataFrame, or a list of row dicts."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, list):
        table = rows_to_table(data, name)
    elif hasattr(data, "to_arrow"):  # polars
        table = data.to_arrow()
    elif hasattr(data, "to_records") and hasattr(data, "columns"):  # pandas
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        raise InputError(
            f"{name}: expected a pyarrow Table, a pandas or polars DataFrame or a list of "
            f"dicts, got {type(data).__name__}"
        )
    if table.num_rows == 0:
        raise InputError(f"{name}: has no rows; nothing was stored")
    return Batch(table, Source(name, "memory"))
