"""Rules that turn a run's cell counts into performance alerts.

``PerformanceRule`` is the seam: the daily job calls ``evaluate`` and stores what it returns.
``DropRule`` is the first rule. Every (segment, prediction day) cell with enough labelled rows
is tested against its segment's reference with a one-sided two-sample test; the false discovery
rate is controlled across all cells of the run (Benjamini-Hochberg); and a rejected cell alerts
only when its drop is also at least ``min_effect``, so significant but irrelevant differences
stay quiet. One alert per segment, naming its latest failing day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.model import Alert, segment_key
from hindsight.stats.intervals import mean_interval, wilson_interval
from hindsight.stats.significance import (
    benjamini_hochberg,
    mean_increase_pvalues,
    proportion_drop_pvalues,
)

SHOWN_CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class RunWindow:
    """The run of ``as_of`` looks at predictions made on ``first_day..as_of``."""

    as_of: date
    first_day: date


class PerformanceRule(Protocol):
    def evaluate(
        self, window: RunWindow, cells: pa.Table, reference: pa.Table | None
    ) -> list[Alert]:
        """Alerts for the cells of one run; ``reference`` holds the reference set's cells."""
        ...


@dataclass(frozen=True, slots=True)
class _Cells:
    """Column arrays of a cell table: per cell, the metric's sufficient statistics."""

    segment: np.ndarray  # int code into the run's segment dictionary
    day: np.ndarray  # days since first_day
    n: np.ndarray
    total: np.ndarray  # correct predictions, or the sum of absolute errors
    squares: np.ndarray  # the sum of squared errors (equal to total for 0/1 outcomes)


@dataclass(frozen=True, slots=True)
class DropRule:
    """Alert on a cell whose metric is significantly *and* materially worse than its reference.

    Reference, per segment: the reference set when it has ``min_samples`` labelled rows for the
    segment, else the pooled oldest ``baseline_days`` of the run's window (then only later days
    are tested). Classification tests accuracy; regression tests the mean absolute error, and
    ``min_effect`` is then a relative increase.
    """

    task: str
    min_samples: int
    min_effect: float
    false_discovery_rate: float
    baseline_days: int

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mae"

    def evaluate(
        self, window: RunWindow, cells: pa.Table, reference: pa.Table | None
    ) -> list[Alert]:
        names = pc.unique(cells["segment"])
        current = self._arrays(cells, names, window.first_day)
        k = len(names)
        ref_total, ref_squares, ref_n, tested_from, source = self._references(current, k)
        if reference is not None and reference.num_rows:
            given = self._arrays(reference, names, window.first_day)
            use = (given.n >= self.min_samples) & (given.segment >= 0)
            seg = given.segment[use]
            ref_total[seg], ref_squares[seg], ref_n[seg] = (
                given.total[use], given.squares[use], given.n[use])
            tested_from[seg], source[seg] = 0, 1
        c = current
        tested = (c.n >= self.min_samples) & (ref_n[c.segment] >= self.min_samples) & (
            c.day >= tested_from[c.segment])
        seg = c.segment[tested]
        p, material = self._test(c.total[tested], c.squares[tested], c.n[tested],
                                 ref_total[seg], ref_squares[seg], ref_n[seg])
        rejected = benjamini_hochberg(p, self.false_discovery_rate)
        failing = rejected & material
        if not failing.any():
            return []
        reference_of = _Reference(ref_total, ref_squares, ref_n, float(p[rejected].max()))
        index = np.nonzero(tested)[0][failing]
        flagged = [int(code) for code in np.unique(c.segment[index])]
        segments = [json.loads(names[code].as_py()) for code in flagged]
        explained = self._explained(flagged, segments, names, c, tested, reference_of)
        tested_per_segment = np.bincount(seg, minlength=k)
        alerts = []
        for code, segment in zip(flagged, segments, strict=True):
            if explained[code] or _has_kept_ancestor(segment, flagged, segments, explained):
                continue
            rows = index[c.segment[index] == code]
            latest = rows[np.argmax(c.day[rows])]
            covers = [_describe_segment(other) for other_code, other in zip(flagged, segments,
                                                                            strict=True)
                      if explained[other_code] == code or (
                          other_code != code and _inside(segment, other))]
            alerts.append(self._alert(
                window, segment, c, int(latest), rows, int(tested_per_segment[code]),
                ref_total[code] / ref_n[code],
                _source_text(window, self.baseline_days, int(source[code])), covers,
            ))
        return sorted(alerts, key=lambda a: a.key)

    def _test(self, total: np.ndarray, squares: np.ndarray, n: np.ndarray,
              ref_total: np.ndarray, ref_squares: np.ndarray, ref_n: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """One-sided p-values of "worse than the reference", and whether the effect matters."""
        with np.errstate(divide="ignore", invalid="ignore"):
            value, reference = total / n, ref_total / ref_n
        if self.task == "classification":
            p = proportion_drop_pvalues(total, n, ref_total, ref_n)
            return p, reference - value >= self.min_effect
        p = mean_increase_pvalues(total, squares, n, ref_total, ref_squares, ref_n)
        return p, value - reference >= self.min_effect * reference

    def _explained(self, flagged: list[int], segments: list[dict[str, str]], names: pa.Array,
                   c: _Cells, tested: np.ndarray, reference: _Reference) -> dict[int, int | None]:
        """For each flagged segment, another flagged segment that explains its drop: without
        their overlap, it would not fail on any tested day. An ancestor never explains."""
        code_of = {name: i for i, name in enumerate(names.to_pylist())}
        explained: dict[int, int | None] = dict.fromkeys(flagged)
        for code, segment in zip(flagged, segments, strict=True):
            for other_code, other in zip(flagged, segments, strict=True):
                if other_code == code or _inside(segment, other) or not _compatible(
                        segment, other):
                    continue
                overlap = code_of.get(segment_key({**segment, **other}))
                if overlap is not None and not self._remainder_fails(
                        code, overlap, c, tested, reference):
                    explained[code] = other_code
                    break
        return explained

    def _remainder_fails(self, code: int, overlap: int, c: _Cells, tested: np.ndarray,
                         reference: _Reference) -> bool:
        rows = np.nonzero(tested & (c.segment == code))[0]
        inner = {int(c.day[i]): i for i in np.nonzero(c.segment == overlap)[0]}
        take = np.array([inner.get(int(c.day[i]), -1) for i in rows])
        has = take >= 0
        total, squares, n = (c.total[rows].copy(), c.squares[rows].copy(), c.n[rows].copy())
        total[has] -= c.total[take[has]]
        squares[has] -= c.squares[take[has]]
        n[has] -= c.n[take[has]]
        enough = n >= self.min_samples
        if not enough.any():
            return False
        size = int(enough.sum())
        p, material = self._test(
            total[enough], squares[enough], n[enough], np.full(size, reference.total[code]),
            np.full(size, reference.squares[code]), np.full(size, reference.n[code]))
        return bool(((p <= reference.cutoff) & material).any())

    def _references(self, c: _Cells, k: int) -> tuple[np.ndarray, ...]:
        """Per segment: the pooled oldest ``baseline_days`` of the window."""
        base = c.day < self.baseline_days
        ref_total = np.bincount(c.segment[base], c.total[base], minlength=k)
        ref_squares = np.bincount(c.segment[base], c.squares[base], minlength=k)
        ref_n = np.bincount(c.segment[base], c.n[base], minlength=k).astype(np.float64)
        tested_from = np.full(k, self.baseline_days)
        return ref_total, ref_squares, ref_n, tested_from, np.zeros(k, dtype=np.int64)

    def _arrays(self, cells: pa.Table, names: pa.Array, first_day: date) -> _Cells:
        if self.task == "classification":
            total = _numbers(cells["n_correct"])
            squares = total
        else:
            total, squares = _numbers(cells["sum_abs_error"]), _numbers(cells["sum_sq_error"])
        days = pc.fill_null(pc.days_between(pa.scalar(first_day, pa.date32()), cells["day"]), 0)
        return _Cells(
            segment=np.asarray(pc.fill_null(pc.index_in(cells["segment"], names), -1)
                               .to_numpy(zero_copy_only=False), dtype=np.int64),
            day=np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.int64),
            n=_numbers(cells["n_labelled"]), total=total, squares=squares,
        )

    def _alert(self, window: RunWindow, cell: dict[str, str], c: _Cells, latest: int,
               failing: np.ndarray, tested: int, reference: float, source: str,
               covers: list[str]) -> Alert:
        n, total = int(c.n[latest]), float(c.total[latest])
        value = total / n
        if self.task == "classification":
            low, high = (float(x[0]) for x in wilson_interval([total], [n], SHOWN_CONFIDENCE))
            shown = f"{value:.1%} [{low:.1%}, {high:.1%}] vs reference {reference:.1%}"
        else:
            low, high = (float(x[0]) for x in mean_interval(
                [total], [float(c.squares[latest])], [n], SHOWN_CONFIDENCE))
            shown = f"{value:.4g} [{low:.4g}, {high:.4g}] vs reference {reference:.4g}"
        day = window.first_day + timedelta(days=int(c.day[latest]))
        message = (
            f"{_describe_segment(cell)}: {self.metric} {shown} ({source}) on predictions of "
            f"{day}, n={n} labelled; {len(failing)} of {tested} tested days worse"
        )
        if covers:
            message += f". Also explains the drop of: {'; '.join(sorted(covers))}"
        return Alert(
            date=window.as_of, kind="performance", segment=cell, metric=self.metric,
            value=value, reference=reference, n=n, message=message,
            window_start=window.first_day + timedelta(days=int(c.day[failing].min())),
            window_end=day,
        )


@dataclass(frozen=True, slots=True)
class _Reference:
    """Per segment code: the reference's sufficient statistics; and the run's BH cut-off."""

    total: np.ndarray
    squares: np.ndarray
    n: np.ndarray
    cutoff: float


def _inside(segment: dict[str, str], other: dict[str, str]) -> bool:
    """Whether ``other`` contains ``segment``: every pair of ``other`` is in ``segment``."""
    return all(segment.get(k) == v for k, v in other.items())


def _compatible(segment: dict[str, str], other: dict[str, str]) -> bool:
    """Whether two segments can overlap: no column with two different values."""
    return all(segment.get(k, v) == v for k, v in other.items())


def _has_kept_ancestor(segment: dict[str, str], flagged: list[int],
                       segments: list[dict[str, str]], explained: dict[int, int | None]) -> bool:
    return any(
        explained[code] is None and other != segment and _inside(segment, other)
        for code, other in zip(flagged, segments, strict=True)
    )


def _source_text(window: RunWindow, baseline_days: int, source: int) -> str:
    if source == 1:
        return "reference set"
    end = window.first_day + timedelta(days=baseline_days - 1)
    return f"trailing days {window.first_day}..{end}"


def _describe_segment(segment: dict[str, str]) -> str:
    return " × ".join(f"{k}={v}" for k, v in segment.items()) or "all predictions"


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(column, 0).to_numpy(zero_copy_only=False), dtype=np.float64)
