"""The model list of a workspace: each model's health in one row, read from its store (its
latest run and the alerts open after it). Each row is read on its own: a model whose store
cannot be read says so in its row, and the others are shown."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from hindsight.alerts.lifecycle import OPEN_STATES
from hindsight.jobs.results import read_alerts
from hindsight.service.access import Scope
from hindsight.service.served import ServedModel
from hindsight.store.partitions import Store, Table

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelRow:
    name: str
    task: str | None = None
    metric: str | None = None  # the headline metric of the latest run
    value: float | None = None
    coverage: float | None = None  # label coverage of the latest run's window
    open_alerts: dict[str, int] = field(default_factory=dict)  # by kind
    last_run: date | None = None
    #: why the model is not served (its config), or could not be read
    problem: str | None = None
    #: a note on a served model (its intra-day checks could not start)
    note: str | None = None

    @property
    def open_total(self) -> int:
        return sum(self.open_alerts.values())


def latest_run(store: Store) -> dict[str, Any] | None:
    """The row of the latest run in ``store``, or None before the first."""
    runs = store.files(Table.RUNS)
    return store.read(runs[-1].path).to_pylist()[0] if runs else None


def model_row(served: ServedModel) -> ModelRow:
    monitor = served.monitor
    note = (f"intra-day drift checks not running: {served.watch_problem}"
            if served.watch_problem else None)
    try:
        with served.writer:
            row = latest_run(monitor.store)
            if row is None:
                return ModelRow(served.name, monitor.config.task, note=note)
            counts: dict[str, int] = {}
            for alert in read_alerts(monitor.store, row["as_of"], row["as_of"]):
                if alert.state in OPEN_STATES:
                    counts[alert.kind] = counts.get(alert.kind, 0) + 1
    except Exception as exc:  # this row only: the list shows the others
        log.exception("the store of model %s could not be read for the model list",
                      served.name)
        return ModelRow(served.name, monitor.config.task,
                        problem=f"its store could not be read: {type(exc).__name__}: {exc}")
    return ModelRow(served.name, monitor.config.task, row["metric"], row["overall"],
                    row["label_coverage"], counts, row["as_of"], note=note)


def model_rows(served: Mapping[str, ServedModel], broken: Mapping[str, str],
               order: list[str], scope: Scope) -> list[ModelRow]:
    """The rows ``scope`` may see, in the workspace's order; a broken model is shown only to
    the workspace's token (no model's own token can be known to be its)."""
    rows = []
    for name in order:
        if name in served and scope.opens(name):
            rows.append(model_row(served[name]))
        elif name in broken and scope.everything:
            rows.append(ModelRow(name, problem=broken[name]))
    return rows
