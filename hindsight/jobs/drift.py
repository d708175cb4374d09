"""Prediction drift (alerts) and feature drift (stored, explains) for one run date.

The current window is the run date's predictions (``drift.window_days``); the reference is the
reference set, the model's predictions at promotion. Without a reference set there is nothing
to drift from, and the run says so.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.hierarchy import describe
from hindsight.alerts.model import Alert, segment_key
from hindsight.alerts.rules import RuleResult
from hindsight.config import Config
from hindsight.engine.base import MISSING_SEGMENT_VALUE
from hindsight.jobs.sketches import ColumnSketch, Sketched, SketchedRows
from hindsight.stats.calibration import ConfidenceCalibration
from hindsight.stats.drift import (
    CategoryDetector,
    NumericReference,
    WassersteinDetector,
    effective_size,
    jensen_shannon,
    psi,
    tail_quantile,
)
from hindsight.store.identity import value_identities
from hindsight.store.partitions import Store, Table
from hindsight.store.scores import score_column, score_inputs, with_score

DRIFT_SCHEMA = pa.schema([
    ("date", pa.date32()), ("kind", pa.string()), ("target", pa.string()),
    ("segment", pa.string()), ("method", pa.string()), ("value", pa.float64()),
    ("threshold", pa.float64()), ("n", pa.int64()),
])
PSI_BINS = 10
MOVED_PSI = 0.1
MIN_CALIBRATION_ROWS = 200


@dataclass(frozen=True, slots=True)
class DriftRow:
    kind: str  # prediction | feature
    target: str  # the feature, or the prediction signal (classes, score, value)
    segment: str
    method: str
    value: float
    threshold: float | None
    n: int


def category_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    counts = pc.value_counts(column.cast(pa.string()))
    return {str(v): int(n) for v, n in zip(counts.field("values").to_pylist(),
                                            counts.field("counts").to_pylist(), strict=True)}


def read_reference(store: Store, config: Config | None = None) -> pa.Table | None:
    """The reference set; with a ``config`` that lists its features, only the columns the
    job uses (a wide reference then costs no more than a narrow one)."""
    files = store.files(Table.REFERENCE)
    if not files:
        return None
    columns = None
    if config is not None and config.features is not None:
        cols = config.columns
        columns = list(dict.fromkeys([cols.id, cols.prediction, cols.label, *config.segments,
                                      *config.features, *score_inputs(config)]))
    table = pa.concat_tables([store.read(f.path, columns) for f in files])
    return table if config is None else with_score(value_identities(table, config), config)


def calibration_table(reference: pa.Table | None, config: Config) -> pa.Table | None:
    """The reference's P(correct | score) as steps (lower, probability), for the engine."""
    cols, score = config.columns, score_column(config)
    if (reference is None or config.task != "classification" or score is None
            or reference.num_rows < MIN_CALIBRATION_ROWS):
        return None
    scored = reference.filter(pc.fill_null(pc.is_finite(reference[score].cast(pa.float64())),
                                           False))
    if scored.num_rows < MIN_CALIBRATION_ROWS:
        return None
    hit = pc.equal(scored[cols.prediction], scored[cols.label])
    fitted = ConfidenceCalibration.fit(_numbers(scored[score]),
                                       np.asarray(hit.to_numpy(zero_copy_only=False), float))
    return pa.table({"lower": fitted.lower_edges, "probability": fitted.probability})


def segment_cells(table: pa.Table, segments: Sequence[str]) -> list[tuple[str, pa.Array]]:
    """The whole table and each single segment value: (segment key, row mask)."""
    cells = [("{}", pa.array(np.ones(table.num_rows, dtype=bool)))]
    for column in segments:
        values = pc.fill_null(table[column], MISSING_SEGMENT_VALUE)
        for value in pc.unique(values).to_pylist():
            cells.append((segment_key({column: value}), pc.equal(values, value)))
    return cells


@dataclass(frozen=True, slots=True)
class Slice:
    """One segment's rows today (or their sketch, from a cluster) and in the reference;
    ``weights``: one per reference row, when the reference is weighted to the current rows'
    mix of segments."""

    segment: str
    now: pa.Table | SketchedRows
    then: pa.Table
    weights: np.ndarray | None = None


def slices(current: pa.Table | Sketched, reference: pa.Table, segments: Sequence[str],
           min_rows: int, fits: ReferenceFits | None = None) -> list[Slice]:
    """The whole population and each single segment value with ``min_rows`` on both sides,
    cut once for every comparison of the run (the reference once for all runs ``fits``
    serves). A sketch comes cut already."""
    then = (fits or ReferenceFits()).groups(reference, segments)
    groups: dict[str, pa.Table] | dict[str, SketchedRows] = (
        current.groups if isinstance(current, Sketched) else segment_groups(current, segments))
    return [Slice(segment, now, then[segment])
            for segment, now in groups.items()
            if segment in then and min(now.num_rows, then[segment].num_rows) >= min_rows]


def segment_groups(table: pa.Table, segments: Sequence[str]) -> dict[str, pa.Table]:
    """The whole table and each single segment value's rows, by segment key: one sort per
    segment column, then zero-copy slices (a filter per value would pass over the table once
    for each of them)."""
    groups = {"{}": table}
    for column in segments:
        encoded = pc.fill_null(table[column], MISSING_SEGMENT_VALUE).combine_chunks()
        encoded = encoded.dictionary_encode()
        codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
        ordered = table.take(pa.array(np.argsort(codes, kind="stable")))
        sizes = np.bincount(codes, minlength=len(encoded.dictionary))
        starts = np.cumsum(sizes) - sizes
        for value, start, size in zip(encoded.dictionary.to_pylist(), starts, sizes,
                                      strict=True):
            groups[segment_key({column: value})] = ordered.slice(int(start), int(size))
    return groups


def feature_drift(cut: Sequence[Slice], features: Sequence[str],
                  fits: ReferenceFits | None = None) -> list[DriftRow]:
    """Every feature in every slice; on all cores (sorting, the bulk of it, frees the GIL).
    ``fits``: the reference's side, kept across runs."""
    pairs = [(piece, feature) for piece in cut for feature in features]
    fits = fits or ReferenceFits()

    def one(pair: tuple[Slice, str]) -> list[DriftRow]:
        piece, feature = pair
        then = piece.then[feature]
        return _one_feature(feature, piece.segment, piece.now[feature], then,
                            fits.feature(piece.segment, feature, then))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [row for rows in pool.map(one, pairs) for row in rows]


def _fit_feature(then: pa.ChunkedArray) -> Fitted:
    """A feature's reference side; None when it has no value to compare with."""
    valid = then.drop_null()
    if pa.types.is_integer(then.type) or pa.types.is_floating(then.type):
        numbers = _numbers(valid)
        return NumericReference.fit(numbers, PSI_BINS) if numbers.size else None
    return CategoryDetector.fit(category_counts(valid)) if len(valid) else None


def _one_feature(feature: str, segment: str, now: pa.ChunkedArray | ColumnSketch,
                 then: pa.ChunkedArray, fitted: Fitted) -> list[DriftRow]:
    def row(method: str, value: float) -> DriftRow:
        return DriftRow("feature", feature, segment, method, value, None, len(now))

    missing = [row("missing_rate", float(_missing(now) / max(len(now), 1))),
               row("missing_rate_reference", float(then.null_count / max(len(then), 1)))]
    if len(now) == _missing(now) or fitted is None:
        return missing
    if isinstance(fitted, NumericReference):
        current, _ = _finite(now)
        if current.size == 0:
            return missing
        return [*missing, *(row(method, value)
                            for method, value in fitted.compare(current).items())]
    assert isinstance(fitted, CategoryDetector)
    found, unseen = fitted.current_shares(_categories(now))
    expected = np.append(fitted.expected, 0.0)
    actual = np.append(found, unseen)
    missing_categories = float(np.sum(found == 0))
    return [
        *missing,
        row("psi", psi(expected, actual)),
        row("jensen_shannon", jensen_shannon(expected, actual)),
        row("new_category_share", unseen),
        row("missing_categories", missing_categories),
    ]


@dataclass(frozen=True, slots=True)
class PredictionDrift:
    """Prediction drift of one run: stored rows, alerts and what was tested."""

    rows: tuple[DriftRow, ...]
    result: RuleResult


@dataclass(frozen=True, slots=True)
class SliceSignals:
    """The prediction signals of one slice, measured against their noise."""

    segment: str
    n: int
    n_reference: int
    signals: tuple[Signal, ...]


Fitted = WassersteinDetector | CategoryDetector | NumericReference | None


class ReferenceFits:
    """What a run derives from the reference alone, kept across the days of a backfill (and
    the service's checks): its cut into segments, and per slice the detectors of each
    prediction signal and feature (sorted numbers and bins, class shares). Only the current
    side changes from one day to the next. Valid for one reference set."""

    def __init__(self) -> None:
        self._fitted: dict[tuple[str, str, str], Fitted] = {}
        self._groups: dict[tuple[str, ...], dict[str, pa.Table]] = {}
        self._lock = threading.Lock()

    def get(self, segment: str, name: str, then: pa.ChunkedArray
            ) -> WassersteinDetector | CategoryDetector | None:
        """The fitted reference side of prediction signal ``name`` in a slice."""
        fitted = self._get(("signal", segment, name), lambda: _fit(name, then))
        assert not isinstance(fitted, NumericReference)
        return fitted

    def feature(self, segment: str, name: str, then: pa.ChunkedArray) -> Fitted:
        """The fitted reference side of feature ``name`` in a slice."""
        return self._get(("feature", segment, name), lambda: _fit_feature(then))

    def groups(self, reference: pa.Table, segments: Sequence[str]) -> dict[str, pa.Table]:
        """The reference cut by ``segment_groups``."""
        key = tuple(segments)
        with self._lock:
            if key not in self._groups:
                self._groups[key] = segment_groups(reference, segments)
            return self._groups[key]

    def _get(self, key: tuple[str, str, str], fit: Callable[[], Fitted]) -> Fitted:
        with self._lock:
            if key in self._fitted:
                return self._fitted[key]
        fitted = fit()
        with self._lock:
            self._fitted[key] = fitted
        return fitted


def prediction_signals(cut: Sequence[Slice], config: Config,
                       fits: ReferenceFits | None = None,
                       checks_a_day: int = 1) -> list[SliceSignals]:
    """Score each signal of the predictions against the reference, for every slice with
    ``drift.min_samples`` on both sides, with its bootstrapped noise quantile (Bonferroni-
    adjusted across everything tested, and across the ``checks_a_day`` checks that share a
    day's error budget); the slices in parallel. ``fits``: the reference's detectors, kept
    across runs (a backfill's days, the service's checks)."""
    settings = config.drift
    testable = [s for s in cut if min(s.now.num_rows, s.then.num_rows) >= settings.min_samples]
    chosen = _prediction_signals(config)
    tests = max(len(testable) * len(chosen), 1) * checks_a_day
    level = 1.0 - (1.0 - settings.quantile) / tests
    fits = fits or ReferenceFits()

    def one(piece: Slice) -> SliceSignals:
        return SliceSignals(piece.segment, piece.now.num_rows, piece.then.num_rows, tuple(
            _signal(name, piece.now[column], piece.then[column], settings.replicates, level,
                    settings.quantile, fits.get(piece.segment, name, piece.then[column]),
                    piece.weights)
            for name, column in chosen))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, testable))


def prediction_drift(as_of: date, measured: Sequence[SliceSignals], config: Config,
                     top_features: dict[str, list[str]],
                     window: str | None = None) -> PredictionDrift:
    """A slice alerts when a signal exceeds its noise threshold *and* moved by at least the
    minimum effect; when the whole population moved, that is the one alert."""
    settings = config.drift
    rows: list[DriftRow] = []
    alerts: list[Alert] = []
    failing: set[str] = set()
    for found in measured:
        for signal in found.signals:
            rows += signal.rows(found.segment, found.n)
        moved = [s for s in found.signals if s.fires(settings.min_shift, settings.min_share_moved)]
        if moved:
            failing.add(found.segment)
            alerts.append(_drift_alert(as_of, found.segment, moved, found.n, found.n_reference,
                                       top_features.get(found.segment, []), settings.quantile,
                                       window or f"of {as_of}"))
    if any(a.segment == {} for a in alerts):  # the whole population moved: one alert
        alerts = [a for a in alerts if a.segment == {}]
    tested = {found.segment for found in measured}
    return PredictionDrift(tuple(rows), RuleResult(tuple(alerts), frozenset(tested),
                                                   frozenset(failing),
                                                   frozenset(tested - failing), 0))


def _prediction_signals(config: Config) -> list[tuple[str, str]]:
    cols = config.columns
    if config.task == "regression":
        return [("prediction", cols.prediction)]
    signals = [("classes", cols.prediction)]
    score = score_column(config)
    if score is not None:
        signals.append(("score", score))
    return signals


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    method: str
    score: float
    threshold: float  # Bonferroni-adjusted noise quantile
    shown_threshold: float  # the plain quantile, as people read it
    effect: float  # in reference sd (numbers) or share of mass moved (classes)

    def fires(self, min_shift: float, min_share_moved: float) -> bool:
        floor = min_shift if self.method == "wasserstein" else min_share_moved
        return self.score > self.threshold and self.effect >= floor

    def rows(self, segment: str, n: int) -> list[DriftRow]:
        return [DriftRow("prediction", self.name, segment, self.method, self.score,
                         self.shown_threshold, n)]

    def describe(self, quantile: float) -> str:
        times = self.score / self.shown_threshold if self.shown_threshold > 0 else float("inf")
        size = (f"a shift of {self.effect:.2f} reference sd" if self.method == "wasserstein"
                else f"{self.effect:.1%} of predictions changed class")
        return (f"{self.name} {self.method} {self.score:.4g} = {times:.1f}× the "
                f"{quantile:.0%} quantile of baseline noise ({self.shown_threshold:.4g}), {size}")


def _fit(name: str, then: pa.ChunkedArray) -> WassersteinDetector | CategoryDetector | None:
    """The reference side of a signal; None when it has no finite value to compare with."""
    if name == "classes":
        return CategoryDetector.fit(category_counts(then.drop_null()))
    reference = _numbers(then.drop_null())
    if reference.size == 0:
        return None
    # a grid finer than the reference can resolve only costs time
    return WassersteinDetector.fit(reference, grid=int(np.clip(reference.size // 20, 50, 2000)))


def _signal(name: str, now: pa.ChunkedArray | ColumnSketch, then: pa.ChunkedArray,
            replicates: int,
            level: float, quantile: float,
            fitted: WassersteinDetector | CategoryDetector | None,
            weights: np.ndarray | None = None) -> Signal:
    """One signal of a slice. ``weights`` (one per reference row) weigh the reference to the
    current rows' mix; the reference is then worth its effective size in the bootstrap."""
    if isinstance(fitted, CategoryDetector):
        detector, reference_size = fitted, len(then) - then.null_count
        if weights is not None:
            valid = np.asarray(then.is_valid().to_numpy(zero_copy_only=False), bool)
            detector = CategoryDetector.fit(_weighted_counts(then, weights))
            reference_size = max(int(effective_size(weights[valid])), 1)
        counts = _categories(now)
        noise = detector.bootstrap(sum(counts.values()), replicates,
                                   reference_size=reference_size)
        score = detector.score(counts)
        return Signal(name, "total_variation", score, tail_quantile(noise, level),
                      tail_quantile(noise, quantile), score)
    current, size = _finite(now)
    if fitted is None or current.size == 0:
        return Signal(name, "wasserstein", 0.0, 0.0, 0.0, 0.0)  # nothing to compare
    numeric = fitted
    # the fitted values are the reference's finite ones, in row order: weigh those
    kept = None if weights is None else weights[np.isfinite(_floats(then))]
    noise = numeric.bootstrap(size, replicates, weights=kept)
    score = numeric.score(current, kept)
    effect = score / numeric.spread if numeric.spread > 0 else 0.0
    return Signal(name, "wasserstein", score, tail_quantile(noise, level),
                  tail_quantile(noise, quantile), effect)


def _drift_alert(as_of: date, segment: str, moved: list[Signal], n: int, n_reference: int,
                 features: list[str], quantile: float, window: str) -> Alert:
    strongest = max(moved, key=lambda s: s.score / s.threshold if s.threshold else 0.0)
    cell = json.loads(segment)
    message = (f"prediction drift, {describe(cell)}: "
               + "; ".join(s.describe(quantile) for s in moved)
               + f". {n:,} predictions {window} vs {n_reference:,} in the reference set")
    if features:
        message += f". Top moved features: {', '.join(features)}"
    # one key per segment: an incident whose strongest signal changes stays one alert
    return Alert(date=as_of, kind="prediction_drift", segment=cell,
                 metric="predictions", value=strongest.score,
                 reference=strongest.shown_threshold, n=n, message=message,
                 window_start=as_of, window_end=as_of)


def top_moved(rows: Sequence[DriftRow], segment: str, k: int = 3) -> list[str]:
    """The features that moved most in a segment, by PSI, as "name (PSI 0.31)"; below
    ``MOVED_PSI`` (the usual "no real change" line) a feature is not named."""
    ranked = sorted((r for r in rows if r.kind == "feature" and r.segment == segment
                     and r.method == "psi"), key=lambda r: -r.value)
    return [f"{r.target} (PSI {r.value:.2f})" for r in ranked[:k] if r.value >= MOVED_PSI]


def drift_table(as_of: date, rows: Sequence[DriftRow]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"date": as_of, "kind": r.kind, "target": r.target, "segment": r.segment,
          "method": r.method, "value": r.value, "threshold": r.threshold, "n": r.n}
         for r in rows], schema=DRIFT_SCHEMA)


def window(as_of: date, days: int) -> tuple[date, date]:
    return as_of - timedelta(days=days - 1), as_of


def _missing(now: pa.ChunkedArray | ColumnSketch) -> int:
    return now.missing if isinstance(now, ColumnSketch) else int(now.null_count)


def _categories(now: pa.ChunkedArray | ColumnSketch) -> dict[str, int]:
    return now.counts if isinstance(now, ColumnSketch) else category_counts(now.drop_null())


def _finite(now: pa.ChunkedArray | ColumnSketch) -> tuple[np.ndarray, int]:
    """The finite numbers (or the sample standing for them) and how many there are."""
    if isinstance(now, ColumnSketch):
        return now.numbers, now.finite
    numbers = _numbers(now.drop_null())
    return numbers, numbers.size


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The finite values, as float64. Ingest refuses non-finite scores and values; a store
    written before that may hold some, and one NaN must not poison a run."""
    values = _floats(column)
    finite: np.ndarray = values[np.isfinite(values)]
    return finite


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Every value as float64, a missing one as NaN."""
    values: np.ndarray = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False),
                                    np.float64)
    return values


def _weighted_counts(column: pa.ChunkedArray, weights: np.ndarray) -> dict[str, float]:
    """The summed weight of each category (missing values left out)."""
    encoded = column.cast(pa.string()).combine_chunks().dictionary_encode()
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
    valid = codes >= 0
    sums = np.bincount(codes[valid], weights[valid], minlength=len(encoded.dictionary))
    return {str(v): float(w) for v, w in zip(encoded.dictionary.to_pylist(), sums, strict=True)}


def feature_alerts(as_of: date, rows: Sequence[DriftRow], config: Config) -> RuleResult:
    """Feature drift alerts, only for the features the config opts in (whole population)."""
    chosen = set(config.drift.alert_features)
    psi_rows = [r for r in rows if r.kind == "feature" and r.segment == "{}"
                and r.method == "psi" and r.target in chosen]
    alerts = tuple(
        Alert(date=as_of, kind="feature_drift", segment={}, metric=f"psi:{r.target}",
              value=r.value, reference=config.drift.feature_psi_alert, n=r.n,
              message=(f"feature drift: {r.target} PSI {r.value:.2f} >= "
                       f"{config.drift.feature_psi_alert:.2f} on {as_of} ({r.n:,} predictions)"),
              window_start=as_of, window_end=as_of)
        for r in psi_rows if r.value >= config.drift.feature_psi_alert)
    # one segment ({}) carries several features: lifecycle keys are per feature (metric)
    tested = frozenset("{}" for _ in psi_rows)
    failing = frozenset("{}" for _ in alerts)
    return RuleResult(alerts, tested, failing, tested - failing, 0)
