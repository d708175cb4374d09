"""The daily job, as of a date: it sees only predictions made and labels arrived by the end of
that date, so a backfill over history replays exactly what would have been alerted each day."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.model import Alert, alerts_to_table
from hindsight.alerts.rules import PerformanceRule, RunWindow
from hindsight.config import Config
from hindsight.engine.base import Engine
from hindsight.jobs.performance import metric_rows
from hindsight.store.partitions import Store, Table

RESULT_FILE = "data.parquet"


@dataclass(frozen=True, slots=True)
class RunSummary:
    as_of: date
    cells: int
    alerts: tuple[Alert, ...]
    overall: float | None  # the headline metric over all labelled predictions of the window
    metric: str
    label_coverage: float | None


def run_daily(as_of: date, config: Config, store: Store, engine: Engine,
              rule: PerformanceRule) -> RunSummary:
    window = RunWindow(as_of=as_of, first_day=as_of - timedelta(days=config.label_window_days - 1))
    counts = engine.cell_counts(as_of, window.first_day, as_of)
    reference = engine.reference_counts()
    metrics = metric_rows(counts, config.task)
    alerts = rule.evaluate(window, counts.cells, reference.cells if reference else None)
    # Results replace the run's partition whole, so re-running a date is idempotent.
    store.write(Table.METRICS, metrics, dt=as_of, name=RESULT_FILE)
    store.write(Table.ALERTS, alerts_to_table(alerts), dt=as_of, name=RESULT_FILE)
    headline = "accuracy" if config.task == "classification" else "mae"
    overall, coverage = _overall(counts.cells, config.task)
    return RunSummary(as_of, counts.cells.num_rows, tuple(alerts), overall, headline, coverage)


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


def _overall(cells: pa.Table, task: str) -> tuple[float | None, float | None]:
    whole = cells.filter(pc.equal(cells["depth"], 0))
    labelled = pc.sum(whole["n_labelled"]).as_py() or 0
    predicted = pc.sum(whole["n_predictions"]).as_py() or 0
    if not labelled:
        return None, (0.0 if predicted else None)
    numerator = "n_correct" if task == "classification" else "sum_abs_error"
    return pc.sum(whole[numerator]).as_py() / labelled, labelled / predicted
