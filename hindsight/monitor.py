"""The Python entry point: one monitored model, its config, store and engine::

    from hindsight import Monitor

    with Monitor.from_config("hindsight.yaml") as monitor:
        monitor.log_predictions(predictions_df)   # pandas, polars, pyarrow or a list of dicts
        monitor.log_labels(labels_df)
        summary = monitor.run(date(2026, 11, 28))

The engine (DuckDB), the rule engine and the HTTP sinks load on first use: a command that only
reads results starts without them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight.alerts.model import Alert
from hindsight.config import Config, load_config
from hindsight.errors import ConfigError, InputError
from hindsight.jobs import drift, ingest, results, storage
from hindsight.jobs.drift import read_reference
from hindsight.jobs.ingest import IngestReport
from hindsight.jobs.performance import metric_rows
from hindsight.jobs.validate import (
    Validation,
    candidate_predictions,
    check_version,
    latest_verdicts,
    record,
    validate,
)
from hindsight.jobs.versions import VersionSeen, versions_seen
from hindsight.store import compaction, delta, retention, tiering
from hindsight.store.check import CheckReport, check_store
from hindsight.store.inputs import Batch, from_memory, read_file, read_files, read_whole
from hindsight.store.partitions import MAINTENANCE_LOCK, Store, Table
from hindsight.store.schema import ARRIVED_AT, text_columns

if TYPE_CHECKING:
    from hindsight.alerts.delivery import DeliveryReport
    from hindsight.alerts.rules import PerformanceRule
    from hindsight.alerts.sinks import Sink
    from hindsight.engine.base import Engine
    from hindsight.engine.duck import DuckDBEngine
    from hindsight.jobs.daily import DayCounts, RunSummary
    from hindsight.jobs.intraday import CheckResult, ReferenceMix


class Monitor:
    def __init__(self, config: Config, rule: PerformanceRule | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.store = Store.open(config.store)
        self._engine: Engine | None = None
        self._lookups: DuckDBEngine | None = None
        self._rule = rule
        self._clock = clock or (lambda: datetime.now(UTC))
        self._mix: tuple[tuple[str, ...], ReferenceMix | None] | None = None

    @property
    def engine(self) -> Engine:
        """What runs the jobs' queries: ``config.engine`` (DuckDB unless it says spark)."""
        if self._engine is None:
            if self.config.engine == "spark":
                from hindsight.engine.spark import SparkEngine

                self._engine = SparkEngine(self.store, self.config, self.lookups)
            else:
                self._engine = self.lookups
        return self._engine

    @property
    def lookups(self) -> DuckDBEngine:
        """Ingest's id look-ups: always the embedded engine (milliseconds, no cluster)."""
        if self._lookups is None:
            from hindsight.engine.duck import DuckDBEngine

            self._lookups = DuckDBEngine(self.store, self.config)
        return self._lookups

    @property
    def rule(self) -> PerformanceRule:
        if self._rule is None:
            from hindsight.alerts.rules import DropRule

            alerts = self.config.alerts
            self._rule = DropRule(
                task=self.config.task, min_samples=self.config.min_samples,
                min_effect=alerts.min_effect, alpha=alerts.alpha,
                correction=alerts.correction, baseline_days=alerts.baseline_days,
                pool_days=alerts.pool_days, min_label_coverage=alerts.min_label_coverage,
                correct_label_delay=alerts.correct_label_delay,
            )
        return self._rule

    @classmethod
    def from_config(cls, path: str | Path | None = None, model: str | None = None) -> Monitor:
        """The monitor of a config file; in a workspace file, of its model ``model`` (which
        may be left out when the workspace holds one model)."""
        return cls(load_config(path, model))

    def close(self) -> None:
        for engine in {id(e): e for e in (self._engine, self._lookups) if e is not None}.values():
            engine.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- logging ------------------------------------------------------------------------

    def log_predictions(self, data: Any, name: str = "predictions") -> IngestReport:
        """Log a pandas/polars DataFrame, a pyarrow Table or a list of row dicts."""
        return ingest.log_predictions([from_memory(data, name)], self.config, self.store,
                                      self.lookups, self._clock().date())

    def log_labels(self, data: Any, name: str = "labels") -> IngestReport:
        return ingest.log_labels([from_memory(data, name)], self.config, self.store,
                                 self.lookups, self._clock())

    def log_reference(self, data: Any, name: str = "reference") -> IngestReport:
        return ingest.log_reference([from_memory(data, name)], self.config, self.store)

    def log_prediction_files(self, paths: Sequence[str | Path]) -> IngestReport:
        return ingest.log_predictions(self._read(paths, labels=False), self.config, self.store,
                                      self.lookups, self._clock().date())

    def log_label_files(self, paths: Sequence[str | Path]) -> IngestReport:
        return ingest.log_labels(self._read(paths, labels=True), self.config, self.store,
                                 self.lookups, self._clock())

    def log_reference_files(self, paths: Sequence[str | Path]) -> IngestReport:
        return ingest.log_reference(self._read(paths, labels=False), self.config, self.store)

    def compact(self, grace: timedelta = compaction.GRACE,
                progress: Callable[[Table, date], None] | None = None
                ) -> compaction.CompactionReport:
        """Merge small prediction and label files per day (see ``store.compaction``)."""
        return compaction.compact(self.store, grace=grace, progress=progress)

    def check(self, progress: Callable[[Table], None] | None = None) -> CheckReport:
        """Is the store consistent (see ``store.check``)? Reads every file's footer and ids."""
        return check_store(self.store, self.config, progress)

    def storage_status(self) -> list[storage.TableStatus]:
        """Files, bytes and rows of each table (see ``jobs.storage``)."""
        return storage.status(self.store)

    def storage_estimate(self, rows_per_day: int, days: int, hot_days: int, price_hot: float,
                         price_cold: float, sample: str | Path | None = None,
                         labels_per_prediction: float | None = None) -> storage.Estimate:
        """The store's size after ``days`` days and its monthly price, from a measured sample:
        the store's newest rows, else ``sample`` (a predictions file), else made-up rows."""
        batch = read_file(sample, text_columns(self.config)) if sample is not None else None
        return storage.estimate(self.store, self.config, rows_per_day, days, hot_days,
                                price_hot, price_cold, batch, labels_per_prediction)

    def retention(self, today: date, dry_run: bool = False) -> list[retention.Retired]:
        """Delete the partitions older than ``storage.delete_after_days`` allows, as of
        ``today`` (``dry_run``: only say which)."""
        keep = self.config.storage.delete_after_days
        if dry_run:
            return retention.expired(self.store, keep, today)
        return retention.retire(self.store, keep, today)

    def migrate(self, progress: Callable[[Table, date], None] | None = None
                ) -> list[delta.Migrated]:
        """Turn the store's predictions and labels into Delta tables (see ``store.delta``),
        holding the store's maintenance and writer locks."""
        keys = {Table.PREDICTIONS: [self.config.columns.id],
                Table.LABELS: [self.config.columns.id, ARRIVED_AT]}
        with self.store.lock(MAINTENANCE_LOCK), self.store.lock(Table.PREDICTIONS.value), \
                self.store.lock(Table.LABELS.value):
            return delta.migrate(self.store, keys, progress)

    def maintain(self) -> None:
        """What the config schedules for the store, as of today (the monitor's clock):
        retention, then tiering. The service runs it once a UTC day, after a compaction."""
        today = self._clock().date()
        if self.config.storage.delete_after_days.configured:
            self.retention(today)
        if self.config.storage.hot_days is not None:
            self.tier(today)

    def tiering_due(self, today: date) -> list[tuple[Table, date]]:
        """The partitions the next tiering as of ``today`` would move (none without one)."""
        hot_days = self.config.storage.hot_days
        return tiering.due(self.store, today, hot_days) if hot_days is not None else []

    def tier(self, today: date) -> tiering.TieringReport:
        """Move partitions older than ``storage.hot_days`` to ``storage.cold_store``."""
        settings = self.config.storage
        if settings.cold_store is None or settings.hot_days is None:
            raise ConfigError(f"{self.config.source}: no tiering configured; set "
                              "storage.hot_days and storage.cold_store")
        return tiering.tier(self.store, Store.open(settings.cold_store), today,
                            settings.hot_days)

    def _read(self, paths: Sequence[str | Path], labels: bool) -> list[Batch]:
        return read_files(paths, text_columns(self.config, labels=labels),
                          self.config.ingest.max_json_depth)

    # --- the daily job and its results --------------------------------------------------

    def run(self, as_of: date) -> RunSummary:
        """The daily job as of a date. Its openings and resolutions are queued for every sink
        (delivery is a separate step: a sink that is down never blocks the job)."""
        from hindsight.jobs import daily

        beside = self._second_engine()
        try:
            return self._queued(daily.run_daily(as_of, self.config, self.store, self.engine,
                                                self.rule, beside=beside))
        finally:
            if beside is not None:
                beside.close()

    def count(self, as_of: date) -> DayCounts:
        """The first step of a run, as a pipeline runs it: the engine's counts."""
        from hindsight.jobs import daily

        return daily.count_day(as_of, self.config, self.store, self.engine)

    def judge(self, counts: DayCounts) -> RunSummary:
        """The second step: metrics, alerts and results from a counting step's output;
        openings and resolutions are queued for the sinks, as ``run`` does."""
        from hindsight.jobs import daily

        return self._queued(daily.judge_day(counts, self.config, self.store, self.engine,
                                            self.rule))

    def _queued(self, summary: RunSummary) -> RunSummary:
        self._enqueue(summary.alerts)
        return summary

    def _enqueue(self, alerts: Sequence[Alert]) -> None:
        if not self.config.sinks:
            return  # nor import the sinks' HTTP client (0.3 s) for nothing
        from hindsight.alerts.delivery import enqueue

        enqueue(self.store, alerts, [s.name for s in self.config.sinks], self._clock())

    def check_drift(self, at: datetime, every: timedelta | None = None,
                    window: timedelta | None = None) -> CheckResult | None:
        """The intra-day prediction drift check of instant ``at`` (the service runs one every
        ``drift.every``); its openings and resolutions are queued for every sink. None when
        there is no reference set to compare with. Checks are small: always the embedded
        engine."""
        from hindsight.jobs import intraday

        mix = self._reference_mix()
        if mix is None:
            return None
        result = intraday.check(at, intraday.Schedule.of(self.config, every, window),
                                self.config, self.store, self.lookups, mix)
        self._enqueue(result.alerts)
        return result

    def _reference_mix(self) -> ReferenceMix | None:
        """The reference set cut for intra-day checks; read again only when its files
        change (a new reference set)."""
        from hindsight.jobs.intraday import ReferenceMix

        files = tuple(f.path for f in self.store.files(Table.REFERENCE))
        if self._mix is None or self._mix[0] != files:
            rows = read_reference(self.store, self.config)
            self._mix = (files, None if rows is None else ReferenceMix(rows,
                                                                       self.config.segments))
        return self._mix[1]

    def backfill(self, start: date, end: date,
                 progress: Callable[[RunSummary], None] | None = None,
                 every: timedelta | None = None, window: timedelta | None = None,
                 checked: Callable[[CheckResult], None] | None = None) -> list[RunSummary]:
        """Replay history; nothing is queued for the sinks (no one wants last month paged).
        What the reference set alone determines (its rows, calibration, counts and drift
        detectors) is derived once for all the days: it is the same for each of them.
        ``every``: also replay each day's intra-day checks, before its daily run, as the
        service would have run them (``window``: their trailing window)."""
        from hindsight.jobs import daily, intraday

        reference = daily.Reference.read(self.config, self.store, self.engine)
        config, schedule = self.config, None
        if every is not None:  # the history as if the config had said so
            schedule = intraday.Schedule.of(self.config, every, window)
            config = config.model_copy(update={"drift": config.drift.model_copy(
                update={"every": schedule.every, "window": schedule.window})})
        mix = self._reference_mix() if schedule is not None else None
        # The next day is counted while this one is judged: counting reads only the inputs,
        # judging reads and writes only the results. The embedded engine counts on its own
        # connection (a cluster counts in its own processes already).
        counter = self._second_engine()
        with ThreadPoolExecutor(max_workers=1) as ahead:
            def count(day: date) -> Future[daily.DayCounts]:
                if counter is None:  # one engine: count when the day comes
                    now: Future[daily.DayCounts] = Future()
                    now.set_result(daily.count_day(day, config, self.store, self.engine,
                                                   reference, carry=day == end))
                    return now
                return ahead.submit(daily.count_day, day, config, self.store, counter,
                                    reference, day == end)

            pending = count(start) if start <= end else None

            def one(day: date) -> RunSummary:
                nonlocal pending
                assert pending is not None
                counted = pending.result()
                pending = count(day + timedelta(days=1)) if day < end else None
                if schedule is not None and mix is not None:
                    for result in intraday.replay_day(day, schedule, config, self.store,
                                                      self.lookups, mix):
                        if checked is not None:
                            checked(result)
                return daily.judge_day(counted, config, self.store, self.engine, self.rule,
                                       reference)

            try:
                return daily.backfill(start, end, one, progress)
            finally:
                if pending is not None and not pending.cancel():
                    pending.exception()  # a count in flight finishes before its engine closes
                if counter is not None:
                    counter.close()

    def _second_engine(self) -> Engine | None:
        """An engine to work with beside the monitor's (a backfill's counting, a run's drift);
        None where the two would share a connection (Spark's engine rolls up with the
        embedded one)."""
        if self.config.engine != "duckdb":
            return None
        from hindsight.engine.duck import DuckDBEngine

        return DuckDBEngine(self.store, self.config)

    def sinks(self) -> list[Sink]:
        from hindsight.alerts.sinks import make_sink

        return [make_sink(s, config_file=self.config.source) for s in self.config.sinks]

    def deliver(self, tries: int = 3, backoff_seconds: float = 0.5, within: float | None = None,
                wait: bool = True) -> DeliveryReport:
        """Send what the sinks have pending; what fails stays pending. ``within``: for at most
        that many seconds; ``wait=False``: not if another delivery is sending (it sends
        these); see ``alerts.delivery.deliver``."""
        from hindsight.alerts.delivery import deliver

        return deliver(self.store, self.sinks(), self.config.model, self._clock, tries,
                       backoff_seconds, within, wait)

    def alerts(self, start: date | None = None, end: date | None = None) -> list[Alert]:
        return results.read_alerts(self.store, start, end)

    def open_alerts(self, start: date | None = None, end: date | None = None) -> list[Alert]:
        """What is open after the latest run of a range (default: the latest run)."""
        return results.open_alerts(self.store, start, end)

    def drift(self, start: date | None = None, end: date | None = None,
              segment: dict[str, str] | None = None) -> list[results.DriftRanking]:
        return results.read_feature_drift(self.store, start, end, segment)

    def versions(self, as_of: date | None = None) -> tuple[date | None, list[VersionSeen]]:
        """Every model version, provider model and serving variant seen up to ``as_of``
        (default: the latest prediction day)."""
        day = as_of or self._latest_prediction_day()
        if day is None:
            return None, []
        history = self.engine.version_history(day, self.config.columns.versions())
        return day, versions_seen(history, self.config, latest_verdicts(self.store))

    def _latest_prediction_day(self) -> date | None:
        """The latest day predictions were made: the store's latest partition, or that of
        the table the predictions are read in place from."""
        in_place = getattr(self.engine, "latest_day", None)
        if self.config.predictions is not None and in_place is not None:
            latest: date | None = in_place(Table.PREDICTIONS)
            return latest
        days = self.store.partitions(Table.PREDICTIONS)
        return days[-1] if days else None

    def validate(self, candidate: Any, version: str | None = None,
                 min_agreement: float | None = None,
                 source: str = "candidate") -> Validation:
        """Gate a candidate: its predictions on the reference set (a table of id and
        prediction, or a function from the reference rows to predictions) against the
        promoted model's, overall and per segment."""
        reference = read_reference(self.store, self.config)
        if reference is None:
            raise InputError("no reference set to validate against: log the validation set "
                             "with 'hindsight reference PATH' first")
        if not callable(candidate):
            candidate = from_memory(candidate, source).table
        predicted = candidate_predictions(candidate, reference, self.config, source)
        result = validate(reference, predicted, self.config, check_version(version),
                          min_agreement)
        record(self.store, result, self._clock())
        return result

    def validate_file(self, path: str | Path, version: str | None = None,
                      min_agreement: float | None = None) -> Validation:
        cols = self.config.columns
        return self.validate(read_whole(path, [cols.id, cols.prediction]), version,
                             min_agreement, source=str(path))

    def version_shares(self, as_of: date | None, days: int) -> tuple[date, list[dict[str, Any]]]:
        """Each version value's share of each day's predictions, for ``days`` days."""
        last = as_of or self._latest_prediction_day() or datetime.now(UTC).date()
        counts = self.engine.daily_versions(last - timedelta(days=days - 1), last,
                                            self.config.columns.versions()).to_pylist()
        totals: dict[tuple[date, str], int] = {}
        for r in counts:
            totals[(r["day"], r["column"])] = totals.get((r["day"], r["column"]), 0) + r["n"]
        hashed = self.config.columns.input_hash is not None
        return last, [{"date": r["day"].isoformat(), "column": r["column"],
                       "value": r["value"], "predictions": r["n"],
                       "share": r["n"] / totals[(r["day"], r["column"])],
                       "repeated_answers": (r["repeated"] or 0) / r["n"] if hashed else None}
                      for r in counts]

    def runs(self, start: date | None = None, end: date | None = None) -> list[date]:
        """The dates that have a completed run."""
        return [d for d in self.store.partitions(Table.RUNS)
                if (start is None or d >= start) and (end is None or d <= end)]

    def metrics(self, day: date, as_of: date | None = None,
                segment: dict[str, str] | None = None) -> tuple[date, list[results.MetricRow]]:
        """Metrics of the predictions of ``day`` with the labels known at the end of ``as_of``
        (default: as the latest run saw them). Read from that run when it covered ``day``;
        otherwise (``day`` older than its label window, or no run of ``as_of``) computed now
        from the store as it was then: one day's join, the same numbers a run would store."""
        if as_of is not None and as_of < day:
            raise InputError(f"--as-of {as_of} is before {day}: no prediction of {day} "
                             "existed then")
        run = results.covering_run(self.store, day, as_of)
        if run is not None:
            table = results.stored_metrics(self.store, run, day)
            if table.num_rows:
                return run, results.metric_rows_in(table, segment)
        seen = as_of or run
        if seen is None:
            raise InputError(f"no run has covered {day} yet; run 'hindsight run --date {day}', "
                             "or ask for one with --as-of")
        calibration = drift.calibration_table(read_reference(self.store, self.config),
                                              self.config)
        table = metric_rows(self.engine.cell_counts(seen, day, day, calibration),
                            self.config.task)
        return seen, results.metric_rows_in(table, segment)
