"""What a query engine must do for hindsight's jobs. DuckDB is the embedded default.

An engine reads the store's Parquet tables and returns Arrow tables of *counts*: the sufficient
statistics of every cell. It knows nothing about alerts or significance.

A cell is one prediction day and one combination of segment values, keyed by ``segment``, a
JSON object ``{column: value}`` with sorted keys (``{}`` is the whole population).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import pyarrow as pa

from hindsight.store.partitions import Table

MISSING_SEGMENT_VALUE = "(missing)"
# Labels are read from the partitions of the days they arrived, from this many days before the
# first prediction day joined: a run's cost follows its window, not the store's age. A label
# stamped earlier than that before its prediction (a clock off by more than a day) is not joined.
LABEL_LEAD_DAYS = 1
# A drift sketch (``DriftSketch``) holds each numeric column's quantiles at this many evenly
# spaced ranks, each within 1 / SKETCH_ACCURACY of its rank: a cell's current side is this
# bounded however many predictions it holds.
SKETCH_RANKS = 1_000
SKETCH_ACCURACY = 10_000
SKETCH_COLUMNS = pa.schema([
    ("segment_column", pa.string()), ("segment_value", pa.string()), ("column", pa.string()),
    ("rows", pa.int64()), ("present", pa.int64()), ("finite", pa.int64()),
    ("quantiles", pa.list_(pa.float64())),
])
SKETCH_CATEGORIES = pa.schema([
    ("segment_column", pa.string()), ("segment_value", pa.string()), ("column", pa.string()),
    ("value", pa.string()), ("n", pa.int64()),
])


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` in UTC: what a run "as of ``day``" sees up to.

    >>> end_of_day(date(2026, 11, 30)).isoformat()
    '2026-12-01T00:00:00+00:00'
    """
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


def partition_days(start: datetime, stop: datetime) -> tuple[date, date]:
    """The date partitions that can hold a prediction made in ``[start, stop)``.

    >>> partition_days(end_of_day(date(2026, 11, 29)), end_of_day(date(2026, 11, 30)))
    (datetime.date(2026, 11, 30), datetime.date(2026, 11, 30))
    """
    return start.astimezone(UTC).date(), (stop.astimezone(UTC) - timedelta(microseconds=1)).date()


@dataclass(frozen=True, slots=True)
class CellCounts:
    """Counts per cell, and for classification per cell and class.

    ``cells``: day, segment, depth, n_predictions, n_labelled, then n_correct,
    expected_correct, n_scored (classification) or sum_abs_error, sum_sq_error (regression).
    ``classes`` (classification only): day, segment, depth, class, tp, n_predicted, n_true,
    counted over labelled rows, and ``cell``: the row of its cell in ``cells`` (cells are
    ordered by day and segment, classes by day, segment and class).
    ``label_ages`` (classification only, null for the reference): day, age, n_correct,
    n_wrong: labelled predictions of the whole population by how many days after the
    prediction day their first label arrived. It measures how much early labels flatter.
    """

    cells: pa.Table
    classes: pa.Table | None
    label_ages: pa.Table | None = None


@dataclass(frozen=True, slots=True)
class DriftSketch:
    """The current side of drift, summarized where the predictions are: per cell (the whole
    population, ``segment_column`` null, and each single segment value) and column.

    ``columns`` (``SKETCH_COLUMNS``): rows, present (not null), finite (finite numbers) and,
    for a numeric column, the quantiles of its finite numbers at ranks (i + 0.5) /
    ``SKETCH_RANKS``. ``categories`` (``SKETCH_CATEGORIES``): the rows of each value of a
    category column (nulls left out).
    """

    columns: pa.Table
    categories: pa.Table


class Engine(Protocol):
    def close(self) -> None:
        """Release the engine's connections."""
        ...

    def stored_predictions(self, ids: pa.Array, first_day: date | None = None,
                           last_day: date | None = None) -> pa.Table:
        """Rows ``(id, prediction, at)`` stored for any of ``ids`` in the partitions
        ``first_day..last_day`` (unbounded ends: the whole store)."""
        ...

    def stored_labels(self, ids: pa.Array, first_day: date | None = None,
                      last_day: date | None = None) -> pa.Table:
        """Every row ``(id, label, arrived_at)`` stored for any of ``ids`` in the partitions
        (days of arrival) ``first_day..last_day``."""
        ...

    def remember(self, table: Table, path: str, rows: pa.Table) -> None:
        """Rows just written to ``path`` (one of ``table``'s files), so that later look-ups
        need not read that file again."""
        ...

    def version_history(self, as_of: date, columns: list[str],
                        since: date | None = None) -> pa.Table:
        """Per version column and value, over the predictions made on ``since..as_of``
        (unbounded start: all): first_seen, last_seen, today, total."""
        ...

    def predictions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        """The given columns of the predictions made on ``first_day..last_day``."""
        ...

    def predictions_between(self, start: datetime, stop: datetime,
                            columns: list[str]) -> pa.Table:
        """The given columns of the predictions made in ``[start, stop)``."""
        ...

    def daily_versions(self, first_day: date, last_day: date, columns: list[str]) -> pa.Table:
        """Per day, version column and value: predictions (n) and those whose answer that
        day was also given to a different input (repeated)."""
        ...

    def drift_sketch(self, first_day: date, last_day: date, segments: list[str],
                     numeric: list[str], categorical: list[str],
                     within: dict[str, str] | None = None) -> DriftSketch | None:
        """The ``numeric`` and ``categorical`` columns of the predictions made on
        ``first_day..last_day`` (those ``within`` a segment, if given) sketched per cell of
        ``segments``; None where the engine hands over the rows themselves (``predictions``)
        instead. The prediction (of a classifier) is its class, the score column
        (``store.scores.score_column``) the predicted class's probability."""
        ...

    def cell_counts(self, as_of: date, first_day: date, last_day: date,
                    calibration: pa.Table | None = None) -> CellCounts:
        """Predictions made on ``first_day..last_day`` joined with the labels that had arrived
        by the end of ``as_of`` and not before ``first_day - LABEL_LEAD_DAYS`` (latest arrival
        per id wins), counted per cell. With a
        ``calibration`` (lower, probability) of the score, cells also sum each prediction's
        calibrated chance of being right (expected_correct, n_scored)."""
        ...

    def counts_change_only(self, as_of: date, first_day: date, last_day: date,
                           calibration: pa.Table | None = None) -> bool:
        """Whether ``cell_counts`` of this window, called next, will count only its change
        from the day before's counts: light work, beside which a run can do other work. A
        window counted anew takes both cores and the most memory of the run."""
        ...

    def carry_counts(self) -> None:
        """Keep the counts of the latest daily window (``cell_counts`` ending on its
        ``as_of``) in the store, so that the next day's run, in any process, counts only
        what changed since; a no-op where an engine counts each window anew."""
        ...

    def reference_counts(self) -> CellCounts | None:
        """The reference set counted per cell (``day`` is null), or None without one."""
        ...
