"""One identity for a segment value, a class and a label, whatever wrote it.

Writers spell the same value differently: a boolean is ``true`` in Parquet and JSON, ``True``
in a pandas CSV; a whole number is ``1`` in an integer column and ``1.0`` in a float one
(pandas makes a column with one missing value float). hindsight stores and compares one
spelling, its *identity*:

- a boolean is ``true`` or ``false`` (whatever its case, in a text column too);
- a whole number is written without a fractional part (``1.0``, ``1.00`` -> ``1``;
  ``-0.0`` -> ``0``); any other number as the shortest text that reads back as it;
- any other text is kept as it is (``007`` stays ``007``, ``Yes`` stays ``Yes``).

A boolean is not a number: ``0``/``1`` stay ``0``/``1``. The rule is applied where values enter
(files, HTTP, the Python API, the reference, validation candidates) and again where the engines
read the store, so that values stored under an older spelling are read under this one.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import Config

# text that is a whole number with a fractional part of zeros: -12.00
_WHOLE = r"^-?[0-9]+[.]0+$"
_BOOLEANS = ("true", "false")
DISTINCT_FIRST = 64  # rows from which the rule runs on the distinct values only


def identity(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The identity of each value of ``column`` as text (nulls stay null).

    >>> identity(pa.array([True, None])).to_pylist()
    ['true', None]
    >>> identity(pa.array(["True", "FALSE", "1.0", "-0.0", "007", "Yes"])).to_pylist()
    ['true', 'false', '1', '0', '007', 'Yes']
    >>> identity(pa.array([1.0, 2.5, 3.0])).to_pylist()
    ['1', '2.5', '3']
    """
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([identity(chunk) for chunk in column.chunks], pa.string())
    text = column if pa.types.is_string(column.type) else column.cast(pa.string())
    if len(text) > DISTINCT_FIRST:
        # a column repeats few values: the rule once per distinct value, then each row's
        encoded = pc.dictionary_encode(text)
        return _identity(encoded.dictionary).take(encoded.indices)
    return _identity(text)


def _identity(text: pa.Array) -> pa.Array:
    """``identity`` of a text array, value by value."""
    lowered = pc.utf8_lower(text)
    boolean = pc.is_in(lowered, value_set=pa.array(_BOOLEANS))
    whole = pc.match_substring_regex(text, _WHOLE)
    integral = pc.replace_substring_regex(text, r"[.]0+$", "")
    integral = pc.if_else(pc.equal(integral, "-0"), "0", integral)
    return pc.if_else(boolean, lowered,
                      pc.if_else(pc.fill_null(whole, False), integral, text))


def identity_of(value: str) -> str:
    """The identity of one value written as text (a class named in the config).

    >>> identity_of("1.0"), identity_of("True"), identity_of("approve")
    ('1', 'true', 'approve')
    """
    return str(identity(pa.array([value])).to_pylist()[0])


def identities(table: pa.Table, names: list[str] | tuple[str, ...]) -> pa.Table:
    """``table`` with each of the columns ``names`` it has read as identities."""
    for name in names:
        index = table.schema.get_field_index(name)
        if index >= 0:
            table = table.set_column(index, name, identity(table[name]))
    return table


def value_identities(table: pa.Table, config: Config) -> pa.Table:
    """Stored segment values and classes of ``table`` under today's spelling (values stored
    before the identity rule was applied at ingest read as if they were stored now)."""
    cols = config.columns
    names = [*config.segments,
             *([cols.prediction, cols.label] if config.task == "classification" else [])]
    return identities(table, names)


def identity_sql(expression: str, dialect: Literal["duckdb", "spark"] = "duckdb") -> str:
    """The same rule as ``identity`` in SQL, for ``expression`` (evaluated as text).

    >>> identity_sql('"x"', "spark").startswith("CASE WHEN lower(CAST(")
    True
    """
    text = f"CAST({expression} AS {'VARCHAR' if dialect == 'duckdb' else 'STRING'})"
    if dialect == "duckdb":
        whole = f"regexp_full_match({text}, '{_WHOLE[1:-1]}')"
    else:
        whole = f"{text} RLIKE '{_WHOLE}'"
    integral = f"regexp_replace({text}, '[.]0+$', '')"
    return (f"CASE WHEN lower({text}) IN ('true', 'false') THEN lower({text}) "
            f"WHEN {text} LIKE '%.0%' AND {whole} "
            f"THEN CASE WHEN {integral} = '-0' THEN '0' ELSE {integral} END "
            f"ELSE {text} END")
