"""Prediction drift within the day: the service's checks, and their replay.

A check at instant T scores the predictions made in ``[T - drift.window, T)`` (the window
doubles, up to a day, until it holds ``drift.min_samples``) against the reference set, overall
and per single segment value, with the daily job's statistics. Two things differ:

- The reference is weighted to the window's mix of segment values (raking on each segment
  column's shares), so an hour whose traffic comes from other countries or customers than the
  day's average is compared with what the model answered for *those* rows at promotion. An
  hour's mix is not drift; a change inside the same mix is. (A change of mix alone is input
  drift: measured and stored by the daily run, never paged.)
- The error budget is the day's, not the check's: with C checks a day, each check's noise
  quantile is Bonferroni-adjusted over its tests times C, so a day of checks raises a false
  alarm no more often than one daily run does.

Checks come at whole multiples of ``drift.every`` after UTC midnight; midnight itself is the
daily run's. Each check's alert rows (``prediction_drift``, the daily job's keys and
lifecycle) are stored as ``checks/dt=D/check-HHMMSS.parquet``; what is open going into a check
is what the latest check or daily run before its instant left open; with checks on, the
daily run carries prediction drift alerts on without judging the day again. Seeds are fixed,
so a replay over stored predictions decides exactly as the service did on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts import incidents
from hindsight.alerts.lifecycle import OPEN_STATES, advance
from hindsight.alerts.model import Alert, alerts_from_table, alerts_to_table
from hindsight.config import DAY, Config, duration_text, schedule_problem
from hindsight.engine.base import MISSING_SEGMENT_VALUE, Engine, end_of_day
from hindsight.errors import ConfigError
from hindsight.jobs import drift
from hindsight.stats.drift import rake
from hindsight.store.partitions import Store, Table
from hindsight.store.scores import score_inputs, with_score

CHECK_PREFIX = "check-"
KIND = "prediction_drift"


@dataclass(frozen=True, slots=True)
class Schedule:
    """When checks run and what each scores."""

    every: timedelta
    window: timedelta

    @classmethod
    def of(cls, config: Config, every: timedelta | None = None,
           window: timedelta | None = None) -> Schedule:
        chosen = every or config.drift.every
        if chosen is None:
            raise ConfigError(f"{config.source}: no drift.every, and no --every given: say "
                              "how often to check (as 1h)")
        span = window or max(config.drift.window, chosen)
        problem = schedule_problem(chosen, span)
        if problem:
            raise ConfigError(problem)
        return cls(chosen, span)

    @property
    def checks_a_day(self) -> int:
        return DAY // self.every

    def instants(self, day: date) -> list[datetime]:
        """The day's checks: every whole multiple of ``every`` after midnight, UTC."""
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        return [midnight + k * self.every for k in range(1, self.checks_a_day)]

    def last_before(self, moment: datetime) -> datetime:
        """The latest check instant at or before ``moment`` (midnight counts: the daily
        run's)."""
        midnight = datetime.combine(moment.astimezone(UTC).date(), time(), tzinfo=UTC)
        return midnight + ((moment - midnight) // self.every) * self.every


class ReferenceMix:
    """The reference set cut into the slices a check compares, with each slice's codes per
    segment column, so weighting it to a window's mix is a few ``bincount`` calls. Built once
    per reference set and kept across checks, as are the detectors in ``fits``."""

    def __init__(self, rows: pa.Table, segments: Sequence[str]) -> None:
        self.rows = rows
        self.segments = tuple(segments)
        self.groups = drift.segment_groups(rows, segments)
        self.fits = drift.ReferenceFits()
        self._codes: dict[str, list[tuple[dict[str, int], np.ndarray]]] = {}

    def weights(self, segment: str, now: pa.Table) -> np.ndarray:
        """One weight per reference row of the slice, under which the slice's reference has
        the window's shares of every segment column's values (values the reference lacks
        are left out; reference values the window lacks weigh zero)."""
        if not self.segments:
            return np.ones(self.groups[segment].num_rows)
        codes = self._codes.get(segment)
        if codes is None:
            codes = [_codes(self.groups[segment][column]) for column in self.segments]
            self._codes[segment] = codes
        targets = []
        for column, (index, _) in zip(self.segments, codes, strict=True):
            counts = pc.value_counts(pc.fill_null(now[column].cast(pa.string()),
                                                  MISSING_SEGMENT_VALUE))
            target = np.zeros(len(index))
            for value, n in zip(counts.field("values").to_pylist(),
                                counts.field("counts").to_pylist(), strict=True):
                if value in index:
                    target[index[value]] = n
            targets.append(target)
        return rake([c for _, c in codes], targets)


def _codes(column: pa.ChunkedArray) -> tuple[dict[str, int], np.ndarray]:
    encoded = pc.fill_null(column.cast(pa.string()), MISSING_SEGMENT_VALUE)
    encoded = encoded.combine_chunks().dictionary_encode()
    index = {str(v): i for i, v in enumerate(encoded.dictionary.to_pylist())}
    return index, np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)


@dataclass(frozen=True, slots=True)
class CheckResult:
    at: datetime
    window_start: datetime
    n: int  # predictions in the window
    alerts: tuple[Alert, ...]  # this check's rows: opened, ongoing, resolved
    measured: tuple[drift.SliceSignals, ...]

    def count(self, *states: str) -> int:
        return sum(1 for a in self.alerts if a.state in states)


def check(at: datetime, schedule: Schedule, config: Config, store: Store, engine: Engine,
          reference: ReferenceMix) -> CheckResult:
    """The check of instant ``at``: it sees only predictions made before ``at``, and what
    the latest check or daily run before ``at`` left open."""
    at = at.astimezone(UTC)
    cols = config.columns
    needed = list(dict.fromkeys([cols.prediction, *score_inputs(config), *config.segments]))
    span = schedule.window
    rows = engine.predictions_between(at - span, at, needed)
    while rows.num_rows < config.drift.min_samples and span < DAY:
        # as many doublings as the rows so far say are needed (one more query, not several)
        short = config.drift.min_samples / max(rows.num_rows, 1)
        span = min(span * 2 ** max(1, int(np.ceil(np.log2(short)))), DAY)
        rows = engine.predictions_between(at - span, at, needed)
    start = at - span
    rows = with_score(rows, config)
    cut = _slices(rows, reference, config) if rows.num_rows else []
    measured = drift.prediction_signals(cut, config, reference.fits, schedule.checks_a_day)
    window = f"from {start:%Y-%m-%d %H:%M} to {at:%H:%M} UTC ({duration_text(span)})"
    found = drift.prediction_drift(at.date(), measured, config, {}, window)
    before = state_before(store, at)
    alerts = incidents.assign(advance(before, found.result, at.date(),
                                      config.alerts.resolve_after_runs),
                              [a for a in before if a.state in OPEN_STATES])
    alerts = [replace(a, at=at, window_start=start.date(),
                      window_end=(at - timedelta(microseconds=1)).date()) for a in alerts]
    store.write(Table.CHECKS, alerts_to_table(alerts), dt=at.date(), name=check_name(at))
    return CheckResult(at, start, rows.num_rows, tuple(alerts), tuple(measured))


def _slices(rows: pa.Table, reference: ReferenceMix, config: Config) -> list[drift.Slice]:
    """Every slice with ``drift.min_samples`` on both sides, its reference weighted to its
    mix."""
    least = config.drift.min_samples
    cut = []
    for segment, now in drift.segment_groups(rows, config.segments).items():
        then = reference.groups.get(segment)
        if then is None or min(now.num_rows, then.num_rows) < least:
            continue
        weights = reference.weights(segment, now)
        if weights.sum() > 0:  # else: no value of the window is in the reference
            cut.append(drift.Slice(segment, now, then, weights))
    return cut


def check_name(at: datetime) -> str:
    return f"{CHECK_PREFIX}{at.astimezone(UTC):%H%M%S}.parquet"


def _instant_of(day: date, path: str) -> datetime | None:
    name = path.rsplit("/", 1)[-1]
    if not (name.startswith(CHECK_PREFIX) and name.endswith(".parquet")):
        return None
    try:
        clock = datetime.strptime(name[len(CHECK_PREFIX):-len(".parquet")], "%H%M%S").time()
    except ValueError:
        return None
    return datetime.combine(day, clock, tzinfo=UTC)


def latest_check(store: Store, before: datetime,
                 days: int = 2) -> tuple[datetime, str] | None:
    """The latest stored check strictly before ``before`` within ``days`` days of it: its
    instant and file."""
    last_day = (before - timedelta(microseconds=1)).astimezone(UTC).date()
    found = []
    for f in store.files(Table.CHECKS, last_day - timedelta(days=days - 1), last_day):
        instant = _instant_of(f.dt, f.path) if f.dt is not None else None
        if instant is not None and instant < before:
            found.append((instant, f.path))
    return max(found) if found else None


def state_before(store: Store, before: datetime) -> list[Alert]:
    """The prediction drift alert rows of the latest check or daily run before ``before``
    (a daily run as of D counts at the end of D)."""
    runs = [d for d in store.partitions(Table.ALERTS) if end_of_day(d) < before]
    latest_run = runs[-1] if runs else None
    checked = latest_check(store, before)
    if checked is not None and (latest_run is None or checked[0] > end_of_day(latest_run)):
        rows = alerts_from_table(store.read(checked[1]))
    elif latest_run is not None:
        files = store.files(Table.ALERTS, latest_run, latest_run)
        rows = [a for f in files for a in alerts_from_table(store.read(f.path))]
    else:
        rows = []
    return [a for a in rows if a.kind == KIND]


def replay_day(day: date, schedule: Schedule, config: Config, store: Store, engine: Engine,
               reference: ReferenceMix) -> list[CheckResult]:
    """Every check of ``day``, in order, as the service would have run them."""
    return [check(at, schedule, config, store, engine, reference)
            for at in schedule.instants(day)]
