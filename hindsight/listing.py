"""Rows the command line prints, for people and for pipes.

On a terminal a table is drawn (title, borders, cells wrapped to the window). Piped or
redirected, it is plain columns: a header line, then one line per row, each column padded to
its widest cell and two spaces apart, the last (free text) never padded; no title, no
borders, no colour. ``--format json`` and ``--format csv`` print the records themselves:
numbers as numbers, a segment as ``column=value, ...`` in csv.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table as RichTable


@dataclass(slots=True)
class Rows:
    """A table being filled: ``add_row`` as on a rich table, then printed by the caller."""

    title: str
    columns: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def drawn(self) -> RichTable:
        """For a terminal: cells wrap rather than being cut short."""
        table = RichTable(title=self.title, **self.options)
        for column in self.columns:
            table.add_column(column, overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        return table

    def plain(self) -> str:
        return plain_columns(self.columns, self.rows)


def plain_columns(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A header and rows as plain columns, two spaces apart.

    >>> print(plain_columns(("day", "n", "note"), [("2026-01-01", "5", "ok"), ("x", "10", "")]))
    day         n   note
    2026-01-01  5   ok
    x           10
    """
    lines = [[" ".join(str(cell).split()) for cell in row] for row in [columns, *rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]

    def joined(cells: list[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return "  ".join([*padded, *cells[-1:]]).rstrip()

    return "\n".join(joined(line) for line in lines)


def flat(value: Any) -> Any:
    """A record's value as one csv cell: a segment as ``column=value, ...``, a list joined
    with ``; ``, other objects as JSON, None as empty.

    >>> flat({"country": "CH", "tier": "free"}), flat(["a", "b"]), flat(None), flat(0.5)
    ('country=CH, tier=free', 'a; b', '', 0.5)
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        if all(isinstance(v, str) for v in value.values()):
            return ", ".join(f"{k}={v}" for k, v in value.items())
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, list | tuple):
        return "; ".join(str(flat(v)) for v in value)
    return value


def csv_text(records: Sequence[dict[str, Any]], columns: Sequence[str] = ()) -> str:
    """Records as csv with a header (every key any record has, in order of appearance;
    ``columns`` when there is no record)."""
    rows = [_flattened(r) for r in records]
    keys = list(dict.fromkeys([*columns, *(k for r in rows for k in r)]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _flattened(record: dict[str, Any]) -> dict[str, Any]:
    """A nested record (not a segment) as dotted keys: ``{"drift": {"days": 3}}`` gives
    ``drift.days``."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value and not all(isinstance(v, str)
                                                         for v in value.values()):
            row.update({f"{key}.{k}": flat(v) for k, v in value.items()})
        else:
            row[key] = flat(value)
    return row
