"""The daily job, as of a date: it sees only predictions made and labels arrived by the end of
that date, so a backfill over history replays exactly what would have been alerted each day."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hindsight.alerts import estimated, incidents
from hindsight.alerts.estimated import EstimateRule, settle
from hindsight.alerts.lifecycle import OPEN_STATES, advance, open_segments
from hindsight.alerts.model import Alert, alerts_to_table
from hindsight.alerts.rules import (
    SKIP_FEW_LABELS,
    SKIP_LABEL_DELAY,
    SKIP_NO_REFERENCE,
    DropRule,
    PerformanceRule,
    RuleResult,
    RunWindow,
)
from hindsight.config import Config, feature_columns
from hindsight.engine.base import CellCounts, Engine, end_of_day
from hindsight.errors import InputError
from hindsight.jobs import coverage, drift, intraday, versions, volume
from hindsight.jobs.explain import Explainer
from hindsight.jobs.performance import metric_rows
from hindsight.jobs.results import read_alerts
from hindsight.jobs.sketches import Sketched, sketch_columns
from hindsight.store.partitions import Store, Table
from hindsight.store.scores import score_inputs, with_score

RESULT_FILE = "data.parquet"
DRIFT_KINDS = ("prediction_drift", "feature_drift")
NOTHING_TESTED = RuleResult((), frozenset(), frozenset(), frozenset(), 0)
RUNS_SCHEMA = pa.schema([
    ("as_of", pa.date32()), ("cells", pa.int64()), ("segments_tested", pa.int64()),
    ("segments_skipped", pa.int64()), ("segments_failing", pa.int64()),
    ("alerts_opened", pa.int64()), ("alerts_open", pa.int64()),
    ("alerts_resolved", pa.int64()), ("metric", pa.string()), ("overall", pa.float64()),
    ("label_coverage", pa.float64()), ("seconds", pa.float64()),
    ("skipped_label_delay", pa.int64()), ("skipped_few_labels", pa.int64()),
    ("skipped_no_reference", pa.int64()), ("notes", pa.list_(pa.string())),
])
SKIPPED_COLUMNS = {"skipped_label_delay": SKIP_LABEL_DELAY,
                   "skipped_few_labels": SKIP_FEW_LABELS,
                   "skipped_no_reference": SKIP_NO_REFERENCE}


@dataclass(frozen=True, slots=True)
class RunSummary:
    as_of: date
    cells: int
    segments_tested: int
    segments_skipped: int  # too few labelled rows, or labels still immature
    segments_failing: int
    alerts: tuple[Alert, ...]  # this run's rows: opened, ongoing and resolved
    metric: str
    overall: float | None  # the headline metric over all labelled predictions of the window
    label_coverage: float | None
    seconds: float
    skipped_by: dict[str, int] = field(default_factory=dict)  # by the rule's SKIP_REASONS
    notes: tuple[str, ...] = ()  # what the run could not see, and what to set

    def count(self, *states: str) -> int:
        return sum(1 for a in self.alerts if a.state in states)


@dataclass(frozen=True, slots=True)
class DayCounts:
    """The engine's part of a run: the window's counts and the reference's. A pipeline passes
    them from its counting step to its judging step as Parquet files (``save``/``load``)."""

    as_of: date
    counts: CellCounts
    reference: CellCounts | None
    seconds: float

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, table in self._tables().items():
            if table is not None:
                pq.write_table(table, directory / f"{name}.parquet")
        (directory / "day.json").write_text(json.dumps(
            {"as_of": self.as_of.isoformat(), "seconds": self.seconds}))

    @classmethod
    def load(cls, directory: Path) -> DayCounts:
        try:
            day = json.loads((directory / "day.json").read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{directory}: not the output of a counting step ({exc})") from exc

        def table(name: str) -> pa.Table | None:
            path = directory / f"{name}.parquet"
            return pq.read_table(path) if path.exists() else None

        cells = table("cells")
        if cells is None:
            raise InputError(f"{directory}: cells.parquet is missing; run the counting step")
        reference = table("reference_cells")
        return cls(date.fromisoformat(day["as_of"]),
                   CellCounts(cells, table("classes"), table("label_ages")),
                   None if reference is None else CellCounts(reference,
                                                             table("reference_classes")),
                   float(day["seconds"]))

    def _tables(self) -> dict[str, pa.Table | None]:
        reference = self.reference
        return {"cells": self.counts.cells, "classes": self.counts.classes,
                "label_ages": self.counts.label_ages,
                "reference_cells": reference.cells if reference else None,
                "reference_classes": reference.classes if reference else None}


@dataclass(frozen=True, slots=True)
class Reference:
    """Everything a run derives from the reference set alone: its rows (the columns the job
    uses), the score's calibration, its counts per cell and its drift detectors. The same for
    every day of a backfill, so derived once for all of them."""

    rows: pa.Table | None
    calibration: pa.Table | None
    counts: CellCounts | None
    fits: drift.ReferenceFits

    @classmethod
    def read(cls, config: Config, store: Store, engine: Engine) -> Reference:
        rows = drift.read_reference(store, config)
        return cls(rows, drift.calibration_table(rows, config), engine.reference_counts(),
                   drift.ReferenceFits())


def run_daily(as_of: date, config: Config, store: Store, engine: Engine,
              rule: PerformanceRule, reference: Reference | None = None,
              beside: Engine | None = None) -> RunSummary:
    """The run of ``as_of``. ``reference``: derived once by a caller running several days;
    by default, read now. ``beside``: an engine of its own for the drift (it needs only the
    reference and the day's predictions), measured on it while ``engine`` counts the change
    from the day before's counts; not beside a window counted anew, which takes both cores
    and the run's peak memory (at 500,000 a day the drift would add 190 MiB to it)."""
    reference = reference or Reference.read(config, store, engine)
    if beside is None or not engine.counts_change_only(
            as_of, _first_day(as_of, config), as_of, reference.calibration):
        return judge_day(count_day(as_of, config, store, engine, reference), config, store,
                         engine, rule, reference)
    with ThreadPoolExecutor(max_workers=1) as ahead:
        drifted = ahead.submit(_drift, as_of, config, beside, reference.rows, reference.fits)
        day = count_day(as_of, config, store, engine, reference)
        return judge_day(day, config, store, engine, rule, reference, drifted)


def count_day(as_of: date, config: Config, store: Store, engine: Engine,
              reference: Reference | None = None, carry: bool = True) -> DayCounts:
    """The engine's heavy part of the run of ``as_of``: the window's and the reference's
    counts per cell. ``carry``: store the window's counts for the next day's run to start
    from (a backfill carries only its last day's)."""
    started = time.perf_counter()
    reference = reference or Reference.read(config, store, engine)
    counts = engine.cell_counts(as_of, _first_day(as_of, config), as_of, reference.calibration)
    if carry:
        engine.carry_counts()
    return DayCounts(as_of, counts, reference.counts, time.perf_counter() - started)


def _first_day(as_of: date, config: Config) -> date:
    """The first prediction day of the label window of ``as_of``."""
    return as_of - timedelta(days=config.label_window_days - 1)


def judge_day(day: DayCounts, config: Config, store: Store, engine: Engine,
              rule: PerformanceRule, reference: Reference | None = None,
              drifted: Future[_DriftFound | None] | None = None) -> RunSummary:
    """The rest of the run: metrics, the alert rules (performance, drift, versions) and the
    results written to the store. ``drifted``: the day's drift, measured beside the count."""
    started = time.perf_counter() - day.seconds
    as_of, counts = day.as_of, day.counts
    window = RunWindow(as_of=as_of, first_day=_first_day(as_of, config))
    if reference is None:
        rows = drift.read_reference(store, config)
        reference = Reference(rows, None, day.reference, drift.ReferenceFits())
    reference_rows = reference.rows
    metrics = metric_rows(counts, config.task)
    previous = _previous_alerts(store, as_of)
    result = rule.evaluate(window, counts.cells, day.reference.cells if day.reference else None,
                           open_segments(_of_kind(previous, "performance")), counts.label_ages)
    found = (drifted.result() if drifted is not None
             else _drift(as_of, config, engine, reference_rows, reference.fits))
    explain = Explainer(config, engine, reference_rows, found.rows if found else ())
    resolve_after = config.alerts.resolve_after_runs
    alerts = [explain(a) for a in advance(_of_kind(previous, "performance"), result, as_of,
                                          resolve_after, window.first_day)]
    if config.task == "classification":  # the label-free estimate, judged today
        estimate = EstimateRule(config.min_samples, config.alerts.min_effect,
                                config.alerts.alpha, config.alerts.baseline_days,
                                config.alerts.min_label_coverage)
        alerts += settle(advance(_of_kind(previous, estimated.KIND),
                                 estimate.evaluate(window, counts.cells), as_of, resolve_after,
                                 window.first_day), alerts, result)
    drift_start: date | None = drift.window(as_of, config.drift.window_days)[0]
    for kind in DRIFT_KINDS:  # with nothing tested today, open drift alerts go stale
        outcome = found.results.get(kind, NOTHING_TESTED) if found else NOTHING_TESTED
        if kind == intraday.KIND and config.drift.every is not None:
            # the day's checks raised and resolved its prediction drift hour by hour; a
            # whole-day verdict would page again for a morning incident already resolved
            outcome, drift_start = NOTHING_TESTED, None
        # the day's intra-day checks, if any, are later than the run before
        before = (intraday.state_before(store, end_of_day(as_of)) if kind == intraday.KIND
                  else _of_kind(previous, kind))
        alerts += advance(before, outcome, as_of, resolve_after, drift_start)
    # bounded history: a run's cost does not grow with the store's age
    since = as_of - timedelta(days=config.versions.memory_days)
    history = engine.version_history(as_of, config.columns.versions(), since=since)
    seen = versions.versions_seen(history, config)
    alerts += advance(_of_kind(previous, "model_version"), versions.version_changes(as_of, seen),
                      as_of, resolve_after, since)
    history_start = as_of - timedelta(days=7 * config.data.weeks)
    for metric, outcome in volume.data_results(as_of, config, store,
                                               getattr(engine, "daily_rows", None)).items():
        before = [a for a in _of_kind(previous, volume.KIND) if a.metric == metric]
        alerts += advance(before, outcome, as_of, resolve_after, history_start)
    alerts = [replace(a, at=end_of_day(as_of)) for a in alerts]  # the run's instant
    alerts = incidents.assign(alerts, _joinable(store, previous, as_of,
                                                config.alerts.incident_span_days))
    if found is not None:
        store.write(Table.DRIFT, drift.drift_table(as_of, found.rows), dt=as_of,
                    name=RESULT_FILE)
    overall, covered = _overall(counts.cells, config.task)
    blind = (coverage.run_blind_note(window, counts.cells,
                                     day.reference.cells if day.reference else None, rule,
                                     counts.label_ages)
             if isinstance(rule, DropRule) and counts.cells.num_rows else None)
    notes = (*coverage.run_notes(counts.cells, config, window), *([blind] if blind else []),
             *([found.note] if found is not None and found.note else []),
             *([] if reference_rows is not None else [coverage.NO_REFERENCE_SET]))
    summary = RunSummary(
        as_of=as_of, cells=counts.cells.num_rows, segments_tested=len(result.tested),
        segments_skipped=result.skipped, segments_failing=len(result.failing),
        alerts=tuple(alerts), metric="accuracy" if config.task == "classification" else "mae",
        overall=overall, label_coverage=covered, seconds=time.perf_counter() - started,
        skipped_by=dict(result.skipped_by), notes=notes,
    )
    # Results replace the run's partitions whole, so re-running a date is idempotent.
    store.write(Table.METRICS, metrics, dt=as_of, name=RESULT_FILE)
    store.write(Table.ALERTS, alerts_to_table(alerts), dt=as_of, name=RESULT_FILE)
    store.write(Table.RUNS, _run_row(summary), dt=as_of, name=RESULT_FILE)
    return summary


def backfill(start: date, end: date, run: Callable[[date], RunSummary],
             progress: Callable[[RunSummary], None] | None = None) -> list[RunSummary]:
    """Run each date from ``start`` to ``end`` in order, each as of its own date."""
    if end < start:
        raise ValueError(f"backfill: end {end} is before start {start}")
    summaries = []
    for offset in range((end - start).days + 1):
        summary = run(start + timedelta(days=offset))
        summaries.append(summary)
        if progress is not None:
            progress(summary)
    return summaries


@dataclass(frozen=True, slots=True)
class _DriftFound:
    rows: tuple[drift.DriftRow, ...]
    results: dict[str, RuleResult]
    note: str | None = None  # a widened window, or why prediction drift was not computed


def _drift(as_of: date, config: Config, engine: Engine, reference: pa.Table | None,
           fits: drift.ReferenceFits) -> _DriftFound | None:
    """Prediction drift and feature drift of the run date; None without a reference set."""
    if reference is None:
        return None
    features = feature_columns(config, reference.column_names)
    cols = config.columns
    needed = list(dict.fromkeys([cols.prediction, *score_inputs(config),
                                 *config.segments, *features]))
    current, days = _drift_rows(as_of, config, engine, needed,
                                sketch_columns(config, reference.schema, features))
    note = coverage.drift_window_note(as_of, days, current.num_rows, reference.num_rows,
                                      config)
    if current.num_rows == 0:
        return _DriftFound((), {}, note)
    cut = drift.slices(current, reference, config.segments,
                       min(config.min_samples, config.drift.min_samples), fits)
    with ThreadPoolExecutor(max_workers=1) as beside:  # both sort and draw without the GIL
        signals = beside.submit(drift.prediction_signals, cut, config, fits)
        rows = drift.feature_drift([s for s in cut if min(len(s.now), len(s.then))
                                    >= config.min_samples], features, fits)
        by_segment: dict[str, list[drift.DriftRow]] = {}
        for row in rows:  # each segment's rows once, not every row for each segment
            by_segment.setdefault(row.segment, []).append(row)
        top = {segment: drift.top_moved(of_segment, segment)
               for segment, of_segment in by_segment.items()}
        predicted = drift.prediction_drift(
            as_of, signals.result(), config, top,
            None if days == config.drift.window_days else f"of {as_of - timedelta(days - 1)}.."
            f"{as_of} (window widened to hold drift.min_samples)")
    results = {"prediction_drift": predicted.result,
               "feature_drift": drift.feature_alerts(as_of, rows, config)}
    return _DriftFound(tuple(rows) + predicted.rows, results, note)


def _drift_rows(as_of: date, config: Config, engine: Engine, columns: list[str],
                kinds: tuple[list[str], list[str]]) -> tuple[pa.Table | Sketched, int]:
    """The predictions the run scores for drift (or, on a cluster, their sketch of the
    ``kinds``: numeric and categorical columns), and over how many days:
    ``drift.window_days``, widened (up to ``drift.max_window_days``) until they hold
    ``drift.min_samples``."""
    settings = config.drift

    def read(days: int) -> pa.Table | Sketched:
        first, last = drift.window(as_of, days)
        sketch = engine.drift_sketch(first, last, list(config.segments), *kinds)
        if sketch is not None:
            return Sketched.of(sketch)
        return with_score(engine.predictions(first, last, columns), config)

    days = settings.window_days
    rows = read(days)
    widest = max(settings.max_window_days, days)
    while rows.num_rows < settings.min_samples and days < widest:
        # as many days as the rows so far say are needed (one more query, not several)
        wanted = int(np.ceil(days * settings.min_samples / max(rows.num_rows, 1)))
        days = min(max(wanted, days + 1), widest)
        rows = read(days)
    return rows, days


def _of_kind(alerts: list[Alert], kind: str) -> list[Alert]:
    return [a for a in alerts if a.kind == kind]


def _previous_alerts(store: Store, as_of: date) -> list[Alert]:
    """The alerts of the latest run before ``as_of``: what is open going into this run."""
    earlier = [d for d in store.partitions(Table.ALERTS) if d < as_of]
    return read_alerts(store, earlier[-1], earlier[-1]) if earlier else []


def _joinable(store: Store, previous: list[Alert], as_of: date, span_days: int) -> list[Alert]:
    """Rows whose incidents a new opening may join: open after the run before, or seen in
    the span's runs."""
    recent = read_alerts(store, as_of - timedelta(days=span_days),
                         as_of - timedelta(days=1)) if span_days else []
    return [a for a in previous if a.state in OPEN_STATES] + recent


def _run_row(summary: RunSummary) -> pa.Table:
    row = {k: v for k, v in asdict(summary).items() if k in RUNS_SCHEMA.names}
    row |= {column: summary.skipped_by.get(reason, 0)
            for column, reason in SKIPPED_COLUMNS.items()}
    row |= {"notes": list(summary.notes), "alerts_opened": summary.count("opened"),
            "alerts_open": summary.count(*OPEN_STATES),
            "alerts_resolved": summary.count("resolved")}
    return pa.Table.from_pylist([row], schema=RUNS_SCHEMA)


def _overall(cells: pa.Table, task: str) -> tuple[float | None, float | None]:
    whole = cells.filter(pc.equal(cells["depth"], 0))
    labelled = pc.sum(whole["n_labelled"]).as_py() or 0
    predicted = pc.sum(whole["n_predictions"]).as_py() or 0
    if not labelled:
        return None, (0.0 if predicted else None)
    numerator = "n_correct" if task == "classification" else "sum_abs_error"
    return pc.sum(whole[numerator]).as_py() / labelled, labelled / predicted
