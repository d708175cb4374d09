"""The SQL of a drift sketch on Spark (``base.DriftSketch``): a few rows per cell and column,
computed by the executors, however many predictions the window holds.

Each column of each row is stacked into (column, value) rows on the executors, then grouped
per cell (the whole population and each single segment value) and column: counts, and the
quantiles of the finite numbers (``percentile_approx``, a Greenwald-Khanna sketch).
"""

from __future__ import annotations

from collections.abc import Sequence

from hindsight.engine.base import SKETCH_ACCURACY, SKETCH_RANKS


def ranks(count: int = SKETCH_RANKS) -> str:
    """The sketch's ranks as a Spark SQL array literal.

    >>> ranks(2)
    'array(0.25D, 0.75D)'
    """
    return "array(" + ", ".join(f"{(i + 0.5) / count!r}D" for i in range(count)) + ")"


def _cells(segments: Sequence[tuple[str, str]], keys: str) -> tuple[str, str]:
    """(the cell columns, the grouping sets) for ``segments``: (name literal, alias) pairs."""
    whens = " ".join(f"WHEN grouping({alias}) = 0 THEN {name}" for name, alias in segments)
    column = f"CASE {whens} END" if segments else "CAST(NULL AS STRING)"
    value = (f"coalesce({', '.join(alias for _, alias in segments)})" if segments
             else "CAST(NULL AS STRING)")
    sets = ", ".join([f"({keys})", *(f"({alias}, {keys})" for _, alias in segments)])
    return f"{column} AS segment_column, {value} AS segment_value", sets


def columns_sql(source: str, segments: Sequence[tuple[str, str]],
                numeric: Sequence[tuple[str, str]], categorical: Sequence[tuple[str, str]]
                ) -> str:
    """Per cell and column of ``source`` (its rows: the segment aliases, then each column's
    alias): rows, present, finite and the quantiles of the finite numbers. ``numeric`` and
    ``categorical``: (name literal, alias) pairs."""
    stacked = [*(f"{name}, {alias} IS NOT NULL, CASE WHEN isnan(CAST({alias} AS DOUBLE)) "
                 f"OR abs(CAST({alias} AS DOUBLE)) = double('infinity') THEN NULL "
                 f"ELSE CAST({alias} AS DOUBLE) END" for name, alias in numeric),
               *(f"{name}, {alias} IS NOT NULL, CAST(NULL AS DOUBLE)"
                 for name, alias in categorical)]
    cell, sets = _cells(segments, "`column`")
    keep = "".join(f"{alias}, " for _, alias in segments)
    return (
        f"SELECT {cell}, `column`, count(*) AS rows, count_if(present) AS present, "
        f"count(number) AS finite, percentile_approx(number, {ranks()}, {SKETCH_ACCURACY}) "
        f"AS quantiles FROM (SELECT {keep}stack({len(stacked)}, {', '.join(stacked)}) "
        f"AS (`column`, present, number) FROM ({source}) s) t GROUP BY GROUPING SETS ({sets})")


def categories_sql(source: str, segments: Sequence[tuple[str, str]],
                   categorical: Sequence[tuple[str, str]]) -> str:
    """Per cell, category column and value of ``source``: its rows (nulls left out)."""
    stacked = ", ".join(f"{name}, CAST({alias} AS STRING)" for name, alias in categorical)
    cell, sets = _cells(segments, "`column`, value")
    keep = "".join(f"{alias}, " for _, alias in segments)
    return (
        f"SELECT {cell}, `column`, value, count(*) AS n FROM (SELECT {keep}"
        f"stack({len(categorical)}, {stacked}) AS (`column`, value) FROM ({source}) s) t "
        f"WHERE value IS NOT NULL GROUP BY GROUPING SETS ({sets})")
