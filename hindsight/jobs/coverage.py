"""What a run can see, and what it cannot: the notes a daily run adds to its summary when the
configuration cannot work for the data it sees (each with the value that would), and the
coverage map of ``hindsight coverage``: per segment and cross, the smallest drop each rule
would catch and how soon (``stats.power``)."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.rules import RunWindow
from hindsight.config import Config

NO_REFERENCE_SET = ("prediction drift not computed: there is no reference set to compare "
                    "with; log one with 'hindsight reference PATH'")
UNIQUE_SHARE = 0.5  # a segment column with more distinct values than this share of rows
UNIQUE_MIN_ROWS = 100  # ... over at least this many predictions


def drift_window_note(as_of: date, days: int, n: int, n_reference: int,
                      config: Config) -> str | None:
    """What the run says about its prediction drift window: widened (and what that costs),
    or not computed (and what to set); None when the configured window held enough."""
    least = config.drift.min_samples
    if n_reference < least:
        return (f"prediction drift not computed: the reference set has {n_reference:,} rows, "
                f"fewer than drift.min_samples ({least:,}); log a larger reference set or set "
                f"drift.min_samples to at most {n_reference:,}")
    if n < least:
        widen = (f" or drift.max_window_days to at least {math.ceil(days * least / n)}"
                 if n else "")
        return (f"prediction drift not computed: {n:,} predictions in the {days} day(s) to "
                f"{as_of}, fewer than drift.min_samples ({least:,}); set drift.min_samples "
                f"to at most {n:,}{widen}")
    if days > config.drift.window_days:
        first = as_of - timedelta(days=days - 1)
        return (f"prediction drift over {days} days ({first}..{as_of}, {n:,} predictions): "
                f"fewer than drift.min_samples ({least:,}) were made in "
                f"{config.drift.window_days} day(s), so the window widened (up to "
                f"drift.max_window_days, {config.drift.max_window_days}); a shift shows "
                f"diluted until the window is all after it. To judge each day alone, set "
                f"drift.min_samples to at most {n * config.drift.window_days // days:,}")
    return None


def run_notes(cells: pa.Table, config: Config, window: RunWindow) -> list[str]:
    """The run's warnings about its configuration, from the cells it counted."""
    return [*_label_window_notes(cells, config, window), *_unique_segment_notes(cells, config)]


def coverage_by_age(cells: pa.Table, window: RunWindow) -> np.ndarray:
    """The population's label coverage of each prediction day of the window, by its age in
    days at the run (index 0: the run's own day); NaN for a day without predictions."""
    span = (window.as_of - window.first_day).days + 1
    whole = cells.filter(pc.equal(cells["depth"], 0))
    offset = np.asarray(pc.days_between(pa.scalar(window.first_day, pa.date32()),
                                        whole["day"]).to_numpy(zero_copy_only=False), np.int64)
    keep = (offset >= 0) & (offset < span)
    age = span - 1 - offset[keep]

    def by_age(column: str) -> np.ndarray:
        values = pc.fill_null(whole[column], 0).to_numpy(zero_copy_only=False)
        return np.bincount(age, np.asarray(values, np.float64)[keep], minlength=span)

    predicted = by_age("n_predictions")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(predicted > 0, by_age("n_labelled") / predicted, np.nan)


def maturity_age(curve: np.ndarray, threshold: float) -> int | None:
    """The youngest age from which every older day's coverage reached ``threshold``.

    >>> maturity_age(np.array([0.0, 0.2, 0.6, 0.7, np.nan]), 0.5)
    2
    >>> maturity_age(np.array([0.0, 0.2]), 0.5) is None
    True
    """
    seen = ~np.isnan(curve)
    below = np.nonzero(seen & (curve < threshold))[0]
    start = int(below.max()) + 1 if below.size else 0
    return start if start < curve.size and seen[start:].any() else None


def _label_window_notes(cells: pa.Table, config: Config, window: RunWindow) -> list[str]:
    curve = coverage_by_age(cells, window)
    span, threshold = curve.size, config.alerts.min_label_coverage
    baseline = config.alerts.baseline_days
    if np.isnan(curve[-1]):
        return []  # the store does not reach back to the window's first day yet
    age = maturity_age(curve, threshold)
    if age is not None and age <= span - 1 - baseline:
        return []
    oldest = float(curve[-1])
    found = (f"labels reach alerts.min_label_coverage ({threshold:.0%}) only at age {age} "
             f"days" if age is not None else
             f"even the window's oldest day (age {span - 1} days) is only {oldest:.0%} "
             f"labelled, under alerts.min_label_coverage ({threshold:.0%})")
    need = (f"at least {age + baseline + 1}" if age is not None
            else f"well over {span} (the age at which days mature is beyond the window)")
    return [f"no segment can be tested: {found}, and the window of label_window_days "
            f"({config.label_window_days}) tests only days younger than {span - baseline} "
            f"days (its oldest alerts.baseline_days ({baseline}) are the trailing reference); "
            f"set label_window_days to {need}, or lower alerts.min_label_coverage"]


def _unique_segment_notes(cells: pa.Table, config: Config) -> list[str]:
    single = cells.filter(pc.equal(cells["depth"], 1))
    predictions = pc.sum(cells.filter(pc.equal(cells["depth"], 0))["n_predictions"]).as_py()
    if not predictions or predictions < UNIQUE_MIN_ROWS:
        return []
    distinct = Counter(next(iter(json.loads(key)))
                       for key in pc.unique(single["segment"]).to_pylist())
    return [f"segment column {column!r} has {n:,} distinct values in {predictions:,} "
            f"predictions: almost every value is a segment of its own that can never reach "
            f"min_samples ({config.min_samples}); drop it from segments or bucket it"
            for column, n in sorted(distinct.items()) if n > UNIQUE_SHARE * predictions]
