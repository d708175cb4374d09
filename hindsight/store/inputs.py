"""Read the user's files (CSV, Parquet, JSON lines) and in-memory frames into Arrow tables.

Each table carries where its rows came from (``Source``) so that a later check can name the
file and row of a bad value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import numpy as np
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
MAX_JSON_DEPTH = 32  # a row is a flat object; deeper JSON is refused before it is parsed
_CHUNK = 16 << 20
# a JSON string (never across a line), to be taken out before brackets are counted
_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}\n")


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


def read_file(path: str | Path, text_columns: Iterable[str] = (),
              max_depth: int = MAX_JSON_DEPTH) -> Batch:
    """Read one file; ``text_columns`` are kept as strings (ids like ``007`` stay ``007``);
    JSON nested deeper than ``max_depth`` is refused before it is parsed."""
    file = Path(path)
    table = _table(file, list(text_columns), max_depth)
    if table.num_rows == 0:
        raise InputError(f"{file}: has no rows; nothing was stored")
    return Batch(table, Source(str(file), READERS[file.suffix.lower()]))


def read_files(paths: Iterable[str | Path], text_columns: Iterable[str] = (),
               max_depth: int = MAX_JSON_DEPTH) -> list[Batch]:
    """Each file, and each data file inside a directory, as a batch of its own (see
    ``read_directory``)."""
    names = list(text_columns)
    batches: list[Batch] = []
    for path in map(Path, paths):
        batches += (read_directory(path, names, max_depth) if path.is_dir()
                    else [read_file(path, names, max_depth)])
    return batches


def read_whole(path: str | Path, text_columns: Iterable[str] = ()) -> pa.Table:
    """A file, or all the data files of a directory, as one table."""
    return pa.concat_tables([b.table for b in read_files([path], text_columns)],
                            promote_options="permissive")


def read_directory(directory: Path, text_columns: Iterable[str] = (),
                   max_depth: int = MAX_JSON_DEPTH) -> list[Batch]:
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
        table = _table(file, names, max_depth)
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


def _table(file: Path, text_columns: list[str], max_depth: int) -> pa.Table:
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
    if kind == "json":  # Arrow's JSON reader recurses without a bound
        _refuse_deep_json_file(file, max_depth)
    try:
        return refuse_undecodable_names(_read(file, kind, text_columns), str(file))
    except (pa.ArrowInvalid, OSError) as exc:
        if kind == "json":
            _explain_json_lines(file)
        raise InputError(f"{file}: cannot be read as {kind}: {exc}") from exc


def refuse_undecodable_names(table: pa.Table, where: str) -> pa.Table:
    """``table``, if every column name is UTF-8 (Arrow takes a file's names as they come)."""
    try:
        table.column_names  # noqa: B018  # decodes each name
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: a column name is not UTF-8 ({exc.object[:40]!r}); "
                         "save the file as UTF-8") from exc
    return table


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


class OverLimit(InputError):
    """A batch over a configured size limit (answered 413 over HTTP)."""


def json_value(text: str | bytes, where: str, *, max_columns: int | None = None,
               max_objects: int | None = None, one_line: bool = False) -> Any:
    """Parse JSON text whose nesting was bounded (``json_depth``): a key given twice in one
    object, an object wider than ``max_columns``, more than ``max_objects`` objects, a whole
    number of more digits than any stored number has, or bytes that are not UTF-8 are
    refused naming ``where`` and the fix."""
    objects = 0

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal objects
        objects += 1
        if max_objects is not None and objects > max_objects:
            raise OverLimit(f"{where}: {objects} rows (counted so far) is over the limit of "
                            f"{max_objects} (service.max_rows); send smaller batches")
        if max_columns is not None and len(items) > max_columns:
            raise OverLimit(f"{where}: a row of {len(items)} columns is over the limit of "
                            f"{max_columns} (ingest.max_columns); send fewer columns")
        row = dict(items)
        if len(row) < len(items):
            key = next(k for i, (k, _) in enumerate(items) if k in dict(items[:i]))
            raise InputError(f"{where}: the key {key!r} appears twice in one row; keep one")
        return row

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_int=_whole_number(where))
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno}" if one_line else f"line {exc.lineno} column {exc.colno}"
        fix = ("fix that line: one JSON object per line" if one_line
               else "send a JSON array of objects, one per row")
        raise InputError(f"{where} is not valid JSON ({exc.msg} at {at}); {fix}") from exc
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1]
        raise InputError(f"{where}: byte {exc.start + 1} ({bad!r}) is not UTF-8; send the "
                         "text as UTF-8") from exc
    except RecursionError as exc:
        raise InputError(f"{where} is nested too deeply; a row is a flat object of "
                         "column: value") from exc


def _whole_number(where: str) -> Any:
    def parse(digits: str) -> int:
        if len(digits) > 40:  # 64 bits need 20 digits; Python would choke on thousands
            raise InputError(f"{where}: a whole number of {len(digits)} digits "
                             f"({digits[:12]}...) cannot be stored; send it as text")
        return int(digits)
    return parse


def json_line(line: str | bytes, where: str, max_columns: int | None = None) -> dict[str, Any]:
    """One line of JSON lines as a row; ``where`` names it ("rows.jsonl: line 2") in the
    error, with the fix."""
    row = json_value(line, where, max_columns=max_columns, one_line=True)
    if not isinstance(row, dict):
        raise InputError(f"{where} is not a JSON object; one object per line, e.g. "
                         '{"id": "r1", ...}')
    return row


def json_depth(data: bytes, lines: bool = True) -> tuple[int, int]:
    """The deepest nesting of JSON text and the (1-based) line it is on, counted without
    parsing (strings left out, brackets counted in C): what is too deep is refused before a
    parser recurses into it. With ``lines``, each line is a document of its own.

    >>> json_depth(b'{"a": 1}\\n{"b": [1, {"c": "[[["}]}\\n[]')
    (3, 2)
    >>> json_depth(b'[\\n  {"a": [1]}\\n]', lines=False)
    (3, 2)
    """
    codes = np.frombuffer(_STRING.sub(b"", data).translate(None, _NOT_BRACKETS), np.uint8)
    deepest, where, carry, base, newlines = 0, 1, 0, 0, 0
    for start in range(0, len(codes), _CHUNK):
        part = codes[start:start + _CHUNK]
        step = np.zeros(len(part), np.int32)
        step[(part == ord("[")) | (part == ord("{"))] = 1
        step[(part == ord("]")) | (part == ord("}"))] = -1
        depth = carry + np.cumsum(step, dtype=np.int64)
        newline = part == ord("\n")
        if lines:  # depth within the line: less the depth where the line began
            last = np.where(newline, np.arange(len(part)), -1)
            np.maximum.accumulate(last, out=last)
            begun = np.where(last >= 0, depth[np.maximum(last, 0)], base)
            base = int(begun[-1])
            within = depth - begun
        else:
            within = depth
        top = int(within.argmax()) if len(within) else 0
        if len(within) and within[top] > deepest:
            deepest = int(within[top])
            where = newlines + int(np.count_nonzero(newline[:top])) + 1
        carry = int(depth[-1])
        newlines += int(np.count_nonzero(newline))
    return deepest, where


def refuse_deep_json(data: bytes, where: str, max_depth: int, lines: bool = True,
                     first_line: int = 1) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` before any parser sees it."""
    depth, line = json_depth(data, lines)
    if depth > max_depth:
        raise InputError(
            f"{where}: line {line + first_line - 1} is nested too deeply ({depth} levels; "
            f"ingest.max_json_depth is {max_depth}); a row is a flat object of column: value")


def _refuse_deep_json_file(file: Path, max_depth: int) -> None:
    with file.open("rb") as stream:
        line = 1
        for piece in _whole_lines(stream):
            refuse_deep_json(piece, str(file), max_depth, first_line=line)
            _refuse_values_not_objects(piece.removeprefix(_BOM) if line == 1 else piece,
                                       file, line)
            line += piece.count(b"\n")


_BOM = b"\xef\xbb\xbf"
#: the first character of a line that is not blank and does not open an object
_NOT_AN_OBJECT = re.compile(rb"^[ \t\r\f\v]*([^{\s])", re.MULTILINE)


def _refuse_values_not_objects(piece: bytes, file: Path, first_line: int) -> None:
    """Each line of JSON lines is one object. Arrow's reader takes a ``null`` line for a row,
    and a file of only such lines crashes it (the process, not an exception): refuse them
    before it reads anything."""
    found = _NOT_AN_OBJECT.search(piece)
    if found is not None:
        line = first_line + piece.count(b"\n", 0, found.start())
        shown = piece[found.start(1):found.start(1) + 12].split(b"\n")[0].rstrip()
        raise InputError(f"{file}: line {line} is not a JSON object (it starts with "
                         f"{shown!r}); one object per "
                         'line, e.g. {"id": "r1", ...}')


def _whole_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream in pieces of about ``_CHUNK`` bytes that end at a line's end."""
    rest = b""
    while chunk := stream.read(_CHUNK):
        cut = chunk.rfind(b"\n")
        if cut < 0:
            rest += chunk
            continue
        yield rest + chunk[:cut + 1]
        rest = chunk[cut + 1:]
    if rest:
        yield rest


def first_invalid_text(column: pa.Array | pa.ChunkedArray) -> int | None:
    """The first row of a text column that is not valid UTF-8, if any (Arrow's JSON reader
    and IPC streams take bytes as they come)."""
    try:
        column.validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    raw = array.view(pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary())
    for row, value in enumerate(raw.to_pylist()):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError:
            return row
    return None


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
