"""The drift page: prediction drift against its noise band over a range of runs, the
features ranked by how far they moved in the last run of the range, and one feature's
histogram against the reference on shared bins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.monitor import Monitor
from hindsight.service.figures import figure_json, histogram, plain
from hindsight.service.history import NO_RUN, Range, drift_in
from hindsight.store.partitions import Table


@dataclass(frozen=True, slots=True)
class DriftView:
    prediction_chart: str | None
    ranking: list[dict[str, Any]]
    feature: str | None
    histogram: str | None
    as_of: date | None = None
    empty: str | None = None  # why there is no prediction drift chart, and what to do
    no_histogram: str | None = None  # why there is no histogram
    days: Range = field(default_factory=Range)


NO_REFERENCE = ("no reference set: log the predictions of the validation set with their "
                "labels ('hindsight reference PATH'), then run")


def drift(monitor: Monitor, feature: str | None, days: Range | None = None) -> DriftView:
    days = days or Range()
    has_reference = bool(monitor.store.files(Table.REFERENCE))
    last, table = drift_in(monitor.store, days)
    if last is None or table is None:
        reason = (NO_REFERENCE if not has_reference
                  else NO_RUN if last is None and days.end is None
                  else f"no drift run {days.describe()}: widen the dates, or run those days")
        return DriftView(None, [], None, None, last, reason, None, days)
    whole = table.filter(pc.and_(pc.equal(table["segment"], "{}"),
                                 pc.equal(table["kind"], "prediction"))).sort_by("date")
    chart, empty = None, None
    if whole.num_rows:
        chart = figure_json(_prediction_figure(whole))
    else:
        empty = (f"the runs {days.describe()} measured no prediction drift: the days had too "
                 "few predictions, or the reference set lacks the prediction column")
    ranking = [r.as_json() for r in monitor.drift(last, last) if r.method == "psi"]
    chosen = feature if feature in {r["feature"] for r in ranking} else (
        ranking[0]["feature"] if ranking else None)
    shown: str | None = None
    why: str | None = ("no feature drift in that run: list features in hindsight.yaml, or "
                       "log a reference set that holds them")
    if chosen:
        shown, why = _histogram(monitor, chosen, last)
    return DriftView(chart, ranking, chosen, shown, last, empty, why, days)


def _prediction_figure(whole: pa.Table) -> go.Figure:
    figure = go.Figure()
    for target in sorted(set(whole["target"].to_pylist())):
        rows = whole.filter(pc.equal(whole["target"], target))
        x = rows["date"].to_pylist()
        figure.add_scatter(x=x, y=rows["threshold"].to_pylist(), mode="lines",
                           line={"dash": "dot"}, name=f"{plain(target)}: 99% noise")
        figure.add_scatter(x=x, y=rows["value"].to_pylist(), mode="lines+markers",
                           name=f"{plain(target)}: distance")
    figure.update_layout(title="prediction drift against the reference set, with its "
                               "bootstrapped noise band", margin={"t": 50},
                         legend={"orientation": "h"}, yaxis={"rangemode": "tozero"})
    return figure


def _histogram(monitor: Monitor, feature: str, day: date) -> tuple[str | None, str | None]:
    """The figure, or why there is none."""
    files = monitor.store.files(Table.REFERENCE)
    reference = pa.concat_tables([monitor.store.read(f.path, [feature]) for f in files]) \
        if files else None
    if reference is None or feature not in reference.column_names:
        return None, f"the reference set has no column {feature}: log one that holds it"
    current = monitor.lookups.predictions(day, day, [feature])
    if current.num_rows == 0:
        return None, f"no predictions on {day} to compare with the reference"
    figure = histogram(reference[feature], current[feature], ("reference", str(day)),
                       f"{plain(feature)}: reference vs {day}, as shares of the same bins")
    return figure_json(figure), None
