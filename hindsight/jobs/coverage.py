"""What a run can see, and what it cannot: the notes a daily run adds to its summary when the
configuration cannot work for the data it sees (each with the value that would), and the
coverage map of ``hindsight coverage``: per segment and cross, the smallest drop each rule
would catch and how soon (``stats.power``)."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.rules import (
    SKIP_FEW_LABELS,
    SKIP_LABEL_DELAY,
    SKIP_NO_REFERENCE,
    DropRule,
    RunWindow,
)
from hindsight.alerts.rules import _References as References
from hindsight.config import Config
from hindsight.engine.base import Engine
from hindsight.jobs import drift
from hindsight.stats.drift import CategoryDetector, WassersteinDetector, tail_quantile
from hindsight.stats.maturity import debiased_counts
from hindsight.stats.power import (
    detection_delay,
    diluted_delay,
    material_drop,
    min_detectable_drop,
)
from hindsight.store.partitions import Store

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


CROSS_DRIFT = "prediction drift is measured on the population and single segment values only"
DRIFT_NO_REFERENCE = "no reference set"
DRIFT_SMALL_REFERENCE = "too few reference rows"
DRIFT_FEW_PREDICTIONS = "too few predictions"


@dataclass(frozen=True, slots=True)
class CellCoverage:
    """What one segment (or cross) can show: the performance rule's smallest detectable drop
    (metric units) and its delay from onset for the report's drop, and the same for
    prediction drift (share of predictions changing class, or reference sd); a reason where
    it is blind."""

    segment: dict[str, str]
    predictions_per_day: float
    min_detectable_drop: float | None
    days_to_detect: int | None
    reason: str | None
    drift_min_detectable_shift: float | None = None
    drift_days_to_detect: int | None = None
    drift_reason: str | None = CROSS_DRIFT

    def as_json(self) -> dict[str, object]:
        return {"segment": self.segment, "predictions_per_day": self.predictions_per_day,
                "min_detectable_drop": self.min_detectable_drop,
                "days_to_detect": self.days_to_detect, "reason": self.reason,
                "drift": {"min_detectable_shift": self.drift_min_detectable_shift,
                          "days_to_detect": self.drift_days_to_detect,
                          "reason": self.drift_reason}}


@dataclass(frozen=True, slots=True)
class CoverageReport:
    as_of: date
    metric: str
    drop: float  # the drop whose delay is given, in metric units
    shift: float  # the prediction drift shift whose delay is given, in the rule's units
    drift_unit: str
    drift_window_days: int
    maturity_age: int | None  # age in days at which a day's labels reach min_label_coverage
    cells: tuple[CellCoverage, ...]
    blind: dict[int, dict[str, float]]  # depth -> reason -> share of that depth's predictions

    def as_json(self) -> dict[str, object]:
        return {"as_of": self.as_of.isoformat(), "metric": self.metric, "drop": self.drop,
                "shift": self.shift, "drift_unit": self.drift_unit,
                "drift_window_days": self.drift_window_days,
                "maturity_age": self.maturity_age,
                "blind": {str(d): shares for d, shares in self.blind.items()},
                "cells": [c.as_json() for c in self.cells]}


def measure(window: RunWindow, cells: pa.Table, reference_cells: pa.Table | None,
            reference_rows: pa.Table | None, config: Config, rule: DropRule, drop: float,
            shift: float, label_ages: pa.Table | None = None,
            with_drift: bool = True) -> CoverageReport:
    """The coverage map of a run's counts: per cell, from its observed volume, the
    population's observed label-arrival curve, ``min_samples``, pooling, the reference the
    rule would use, the run's error budget (alpha over the cells it can test) and, where the
    rule corrects early labels for their bias (``label_ages``), the rows that correction
    leaves it (``stats.maturity.debiased_counts``: a young day's labels count for less)."""
    found = _detectable(window, cells, reference_cells, rule, label_ages)
    drifts = (_drift_coverage(found.names, found.volume, reference_rows, config, shift)
              if with_drift else _Drift("", 0, {}))
    out = []
    for s, key in enumerate(found.names.to_pylist()):
        mdd = found.smallest.get(s, float("nan"))
        known = bool(np.isfinite(mdd))
        delay = (detection_delay(drop, mdd, found.age, found.units[s])
                 if known and found.age is not None else None)
        out.append(CellCoverage(json.loads(key), round(float(found.volume[s]), 1),
                                float(mdd) if known else None, delay,
                                found.reasons[s] or (None if known else "no drop is detectable"),
                                *drifts.cells.get(key, (None, None, CROSS_DRIFT))))
    out.sort(key=lambda x: (len(x.segment), -x.predictions_per_day))
    return CoverageReport(window.as_of, rule.metric, drop, shift, drifts.unit, drifts.days,
                          found.age, tuple(out),
                          _blind_shares([(len(c.segment), c.predictions_per_day, c.reason)
                                         for c in out]))


def run_blind_note(window: RunWindow, cells: pa.Table, reference_cells: pa.Table | None,
                   rule: DropRule, label_ages: pa.Table | None = None) -> str | None:
    """``blind_note`` of ``measure``'s report without drift, computed without the rest of
    the report (each cell's detection delay, its segment as a dict): the line every run
    prints."""
    found = _detectable(window, cells, reference_cells, rule, label_ages)
    # a cell's depth is the number of segments in its key, as ``measure`` counts them
    first = pc.index_in(found.names, value_set=cells["segment"].combine_chunks())
    depths = cells["depth"].take(first).to_numpy(zero_copy_only=False).astype(np.int64)
    smallest = np.full(len(found.names), np.nan)
    smallest[list(found.smallest)] = list(found.smallest.values())
    known = np.isfinite(smallest)
    per_day = [round(v, 1) for v in found.volume.tolist()]
    # as ``measure`` orders its cells: by depth, then the busiest first (a stable sort)
    order = np.lexsort((-np.array(per_day, np.float64), depths)).tolist()
    return blind_note_of(_blind_shares([
        (int(depths[s]), per_day[s],
         found.reasons[s] or (None if known[s] else "no drop is detectable"))
        for s in order]))


@dataclass(frozen=True, slots=True)
class _Detectable:
    names: pa.Array  # the segment keys, as the rule numbers them
    volume: np.ndarray  # predictions a day, per segment
    age: int | None  # the age at which days mature
    units: list[np.ndarray]
    reasons: list[str | None]
    smallest: dict[int, float]  # the smallest detectable drop of each testable segment


def _detectable(window: RunWindow, cells: pa.Table, reference_cells: pa.Table | None,
                rule: DropRule, label_ages: pa.Table | None) -> _Detectable:
    """Per segment: its volume, the unit the rule would pool, why it has none, and the
    smallest drop the rule can detect in it."""
    names, c, refs = rule.baselines(window, cells, reference_cells)
    curve = coverage_by_age(cells, window)
    age = maturity_age(curve, rule.min_label_coverage)
    days_seen = max(int(np.count_nonzero(~np.isnan(curve))), 1)
    volume = np.bincount(c.segment[c.segment >= 0], c.predictions[c.segment >= 0],
                         minlength=len(names)) / days_seen
    units, reasons = _units(np.nan_to_num(curve), age, volume, refs, rule,
                            rule.delay_odds(window, label_ages))
    testable = [s for s, r in enumerate(reasons) if r is None]
    level = rule.alpha / max(len(testable), 1)  # Holm's first step: a lone failing cell's
    sizes = np.array([units[s].sum() for s in testable], np.float64)
    found = min_detectable_drop(rule.task, sizes, refs.total[testable],
                                refs.squares[testable], refs.n[testable], level)
    # the rule alerts only on an observed drop of at least min_effect, too
    floor = material_drop(rule.task, sizes, refs.total[testable], refs.squares[testable],
                          refs.n[testable], rule.min_effect)
    smallest = dict(zip(testable, np.maximum(found, floor), strict=True))
    return _Detectable(names, volume, age, units, reasons, smallest)


def blind_note(report: CoverageReport) -> str | None:
    """The run summary's coverage line: per depth (single segments, crosses of 2, ...), the
    share of predictions in cells the performance rule can never test, by reason."""
    return blind_note_of(report.blind)


def blind_note_of(blind: dict[int, dict[str, float]]) -> str | None:
    """``blind_note`` of a report's ``blind`` shares."""
    parts = []
    for depth, shares in blind.items():
        if depth == 0 or not shares:
            continue
        cells = "segments" if depth == 1 else f"crosses of {depth}"
        why = ", ".join(f"{why} {share:.1%}" for why, share in shares.items())
        parts.append(f"{cells} {sum(shares.values()):.1%} ({why})")
    if not parts:
        return None
    return ("coverage: predictions in cells that can never be tested at this configuration: "
            + "; ".join(parts) + "; 'hindsight coverage' shows each cell")


def _units(curve: np.ndarray, age: int | None, volume: np.ndarray, refs: References,
           rule: DropRule, odds: np.ndarray | None = None
           ) -> tuple[list[np.ndarray], list[str | None]]:
    """Per segment: the labelled rows its unit would pool (effective rows, once the rule's
    early-label correction by ``odds`` per age has stretched their noise), by age from the
    youngest mature day; or why it has none, in the order the rule counts skips."""
    k = volume.size
    oldest = curve.size - 1 - refs.tested_from.astype(np.int64)
    if age is None:
        return [np.zeros(0)] * k, [SKIP_LABEL_DELAY] * k
    ages = np.arange(age, min(age + rule.pool_days - 1, curve.size - 1) + 1)
    labelled = volume[:, None] * curve[ages][None, :] * (ages[None, :] <= oldest[:, None])
    if odds is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.nan_to_num(refs.total / refs.n)  # the reference's accuracy
        labelled = labelled * _kept_share(share[:, None], odds[ages][None, :])
    enough = np.asarray(np.cumsum(labelled, axis=1) >= rule.min_samples)
    found = np.asarray(enough.any(axis=1))
    ends = np.argmax(enough, axis=1) + 1
    late = np.asarray(oldest < age)
    units = [labelled[s, :ends[s]] if found[s] and not late[s] else np.zeros(0)
             for s in range(k)]
    reasons: list[str | None] = [
        SKIP_LABEL_DELAY if late[s] else SKIP_FEW_LABELS if not found[s]
        else SKIP_NO_REFERENCE if refs.n[s] < rule.min_samples else None for s in range(k)]
    return units, reasons


def _kept_share(accuracy: float | np.ndarray, odds: np.ndarray) -> np.ndarray:
    """The share of a day's labelled rows the early-label correction leaves as effective
    rows, per age, for a cell whose mature accuracy is ``accuracy``: its early labels show
    the flattered rate, which ``debiased_counts`` divides back (stretching the noise).

    >>> _kept_share(0.9, np.array([1.0, 2.25])).round(3).tolist()
    [1.0, 0.498]
    """
    early = accuracy * odds / (accuracy * odds + 1.0 - accuracy)
    return debiased_counts(early, np.ones_like(early), np.broadcast_to(odds, early.shape))[1]


@dataclass(frozen=True, slots=True)
class _Drift:
    unit: str
    days: int
    cells: dict[str, tuple[float | None, int | None, str | None]]


def _drift_coverage(names: pa.Array, volume: np.ndarray, reference_rows: pa.Table | None,
                    config: Config, shift: float) -> _Drift:
    """Per population and single segment value: the prediction drift rule's threshold at the
    window's size (its own bootstrap, at the run's Bonferroni level), and its delay."""
    settings, task = config.drift, config.task
    unit = "share of predictions changing class" if task == "classification" else \
        "reference sd"
    keys = [k for k in names.to_pylist() if len(json.loads(k)) <= 1]
    code = {k: i for i, k in enumerate(names.to_pylist())}
    whole = float(volume[code["{}"]]) if "{}" in code else 0.0
    days = min(max(settings.window_days, math.ceil(settings.min_samples / max(whole, 1e-9))),
               max(settings.max_window_days, settings.window_days))
    if reference_rows is None:
        return _Drift(unit, days, {k: (None, None, DRIFT_NO_REFERENCE) for k in keys})
    groups = drift.segment_groups(reference_rows, config.segments)
    sizes = {k: (volume[code[k]] * days, groups[k].num_rows if k in groups else 0)
             for k in keys}
    cells: dict[str, tuple[float | None, int | None, str | None]] = {
        k: (None, None, DRIFT_SMALL_REFERENCE if then < settings.min_samples
            else DRIFT_FEW_PREDICTIONS)
        for k, (now, then) in sizes.items() if min(now, then) < settings.min_samples}
    tested = [k for k in keys if k not in cells]
    level = 1.0 - (1.0 - settings.quantile) / max(len(tested), 1)
    column = config.columns.prediction
    for k in tested:
        threshold = _drift_threshold(task, groups[k][column], int(sizes[k][0]),
                                     settings.replicates, level)
        floor = settings.min_share_moved if task == "classification" else settings.min_shift
        smallest = max(threshold, floor)
        cells[k] = (smallest, diluted_delay(shift, smallest, days), None)
    return _Drift(unit, days, cells)


def _drift_threshold(task: str, then: pa.ChunkedArray, size: int, replicates: int,
                     level: float) -> float:
    if task == "classification":
        detector = CategoryDetector.fit(drift.category_counts(then.drop_null()))
        noise = detector.bootstrap(size, replicates,
                                   reference_size=len(then) - then.null_count)
        return tail_quantile(noise, level)
    values = np.asarray(then.drop_null().cast(pa.float64()).to_numpy(zero_copy_only=False))
    numeric = WassersteinDetector.fit(values[np.isfinite(values)])
    noise = numeric.bootstrap(size, replicates)
    return tail_quantile(noise, level) / numeric.spread if numeric.spread > 0 else math.inf


def _blind_shares(cells: list[tuple[int, float, str | None]]) -> dict[int, dict[str, float]]:
    """Per depth: the share of predictions (counted once per cell of that depth they are in)
    in cells the performance rule can never test, by reason. ``cells``: (depth, predictions
    a day, reason) of each cell, summed in their order."""
    totals: dict[int, float] = {}
    blind: dict[int, dict[str, float]] = {}
    for depth, per_day, reason in cells:
        totals[depth] = totals.get(depth, 0.0) + per_day
        of_depth = blind.setdefault(depth, {})
        if reason is not None:
            of_depth[reason] = of_depth.get(reason, 0.0) + per_day
    shares: dict[int, dict[str, float]] = {}
    for depth in sorted(totals):
        total = totals[depth] or 1.0
        shares[depth] = {r: round(v / total, 4) for r, v in sorted(blind[depth].items())}
    return shares


def coverage_of(as_of: date, config: Config, store: Store, engine: Engine, rule: DropRule,
                drop: float, shift: float) -> CoverageReport:
    """The coverage map as of ``as_of``, from the counts its run would see."""
    window = RunWindow(as_of, as_of - timedelta(days=config.label_window_days - 1))
    counts = engine.cell_counts(as_of, window.first_day, as_of, None)
    reference = engine.reference_counts()
    return measure(window, counts.cells, reference.cells if reference else None,
                   drift.read_reference(store, config), config, rule, drop, shift,
                   counts.label_ages)
