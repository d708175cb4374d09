"""The cells of one run as arrays, and the test units built from them.

A *unit* is what one segment is tested on in a run: its most recent eligible prediction days,
pooled backwards until they hold ``min_samples`` labelled rows (at most ``pool_days`` calendar
days). A large segment's unit is its latest eligible day; a small segment is checked on a week
or two, late rather than never.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CellArrays:
    """Column arrays of a cell table: per (segment, day), the metric's sufficient statistics."""

    segment: IntArray  # code into the run's segment dictionary, -1 if absent from it
    day: IntArray  # days since the window's first day
    n: FloatArray  # labelled rows, as the tests count them (effective, once debiased)
    labelled: FloatArray  # labelled rows as they are
    predictions: FloatArray  # all rows, labelled or not
    total: FloatArray  # correct predictions, or the sum of absolute errors
    squares: FloatArray  # the sum of squared errors (equal to total for 0/1 outcomes)

    @classmethod
    def from_table(cls, cells: pa.Table, names: pa.Array, first_day: date,
                   task: str) -> CellArrays:
        if task == "classification":
            total = _floats(cells["n_correct"])
            squares = total
        else:
            total, squares = _floats(cells["sum_abs_error"]), _floats(cells["sum_sq_error"])
        days = pc.fill_null(pc.days_between(pa.scalar(first_day, pa.date32()), cells["day"]), 0)
        return cls(
            segment=np.asarray(pc.fill_null(pc.index_in(cells["segment"], names), -1)
                               .to_numpy(zero_copy_only=False), dtype=np.int64),
            day=np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.int64),
            n=_floats(cells["n_labelled"]), labelled=_floats(cells["n_labelled"]),
            predictions=_floats(cells["n_predictions"]),
            total=total, squares=squares,
        )

    def sums(self, rows: IntArray) -> tuple[float, float, float]:
        """(total, squares, n) over some rows."""
        return float(self.total[rows].sum()), float(self.squares[rows].sum()), float(
            self.n[rows].sum())


@dataclass(frozen=True, slots=True)
class Units:
    """One test unit per segment that has one; arrays aligned by unit."""

    segment: IntArray
    first_day: IntArray  # oldest pooled day (offset)
    last_day: IntArray  # newest pooled day (offset)
    days: IntArray  # how many days were pooled
    n: FloatArray
    labelled: FloatArray
    predictions: FloatArray  # all predictions of the pooled days, labelled or not
    total: FloatArray
    squares: FloatArray


def pooled_units(c: CellArrays, eligible: npt.NDArray[np.bool_], min_samples: int,
                 pool_days: int) -> Units:
    """For every segment with eligible rows: pool from its newest eligible day backwards until
    ``min_samples`` labelled rows, spanning at most ``pool_days`` calendar days."""
    rows = np.nonzero(eligible & (c.segment >= 0))[0]
    order = rows[np.lexsort((-c.day[rows], c.segment[rows]))]
    if order.size == 0:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Units(empty_i, empty_i, empty_i, empty_i, *[empty_f] * 5)
    seg = c.segment[order]
    starts = np.concatenate(([0], np.nonzero(np.diff(seg))[0] + 1))
    group = np.repeat(np.arange(starts.size), np.diff(np.append(starts, order.size)))

    def within_group_cumsum(values: FloatArray) -> FloatArray:
        running = np.cumsum(values)
        before = np.concatenate(([0.0], running))[starts]
        return np.asarray(running - before[group], dtype=np.float64)

    cum_n = within_group_cumsum(c.n[order])
    newest = c.day[order][starts]
    span = newest[group] - c.day[order] + 1
    ok = (cum_n >= min_samples) & (span <= pool_days)
    position = np.where(ok, np.arange(order.size), order.size)
    first_ok = np.minimum.reduceat(position, starts)
    found = first_ok < order.size
    end = first_ok[found]
    cum_total = within_group_cumsum(c.total[order])
    cum_squares = within_group_cumsum(c.squares[order])
    return Units(
        segment=seg[starts][found], first_day=c.day[order][end], last_day=newest[found],
        days=end - starts[found] + 1, n=cum_n[end],
        labelled=within_group_cumsum(c.labelled[order])[end],
        predictions=within_group_cumsum(c.predictions[order])[end], total=cum_total[end],
        squares=cum_squares[end],
    )


def _floats(column: pa.ChunkedArray) -> FloatArray:
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.float64)
