"""The alert page: one alert with its numbers for people, its cell's recent trend, and links
to the cell's history, the drift of its run and the features that moved in its segment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import plotly.graph_objects as go
import pyarrow.compute as pc

from hindsight.alerts.model import Alert, segment_key
from hindsight.monitor import Monitor
from hindsight.service.figures import figure_json, number, plain
from hindsight.service.grid import segment_link
from hindsight.service.history import Range, drift_in, metrics_in, young_days

TREND_DAYS = 42  # the trend shows this many days up to the alert's run
MOVED_SHOWN = 5


@dataclass(frozen=True, slots=True)
class AlertView:
    alert: Alert
    value: str
    reference: str
    aggregate: str | None
    n: str
    trend: str | None
    no_trend: str | None  # why there is no trend
    history: str  # link to the cell's history
    drift: str  # link to the drift page of the alert's run
    moved: list[tuple[str, str, str]]  # feature, its PSI, link to its histogram


def alert_view(monitor: Monitor, alert: Alert) -> AlertView:
    days = Range(alert.date - timedelta(days=TREND_DAYS - 1), alert.date)
    metric = alert.metric
    trend, why = (_drift_trend(monitor, alert, days) if alert.kind == "prediction_drift"
                  else _metric_trend(monitor, alert, days))
    moved = [(r.feature, f"{r.value:.2f}",
              f"/drift?feature={_quoted(r.feature)}&{days.query}")
             for r in monitor.drift(alert.date, alert.date, alert.segment)
             if r.method == "psi"][:MOVED_SHOWN]
    return AlertView(
        alert, number(alert.value, metric), number(alert.reference, metric),
        None if alert.aggregate is None else number(alert.aggregate, metric), f"{alert.n:,}",
        trend, why, segment_link(alert.segment, days.query), f"/drift?{days.query}", moved)


def _quoted(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _metric_trend(monitor: Monitor, alert: Alert, days: Range
                  ) -> tuple[str | None, str | None]:
    as_of, table = metrics_in(monitor.store, days, monitor.config.label_window_days)
    if table is None:
        return None, f"no metrics stored {days.describe()}"
    key = segment_key(alert.segment)
    young = young_days(table, "accuracy" if monitor.config.task == "classification" else "mae",
                       monitor.config.alerts.min_label_coverage)
    rows = table.filter(pc.and_(pc.equal(table["segment"], key),
                                pc.equal(table["metric"], alert.metric))).sort_by("day")
    if rows.num_rows == 0:
        return None, (f"no {alert.metric} stored for this segment {days.describe()}: the "
                      "segment may be deeper than cross_depth")
    figure = go.Figure()
    listed = rows.to_pylist()
    for immature, name, mode in ((False, alert.metric, "lines+markers"),
                                 (True, "labels still arriving", "markers")):
        picked = [r for r in listed
                  if (r["day"] in young) == immature and r["value"] is not None]
        if picked:
            figure.add_scatter(x=[r["day"] for r in picked], y=[r["value"] for r in picked],
                               mode=mode, name=plain(name),
                               marker={"symbol": "circle-open"} if immature else None)
    figure.add_hline(y=alert.reference, line={"dash": "dot"},
                     annotation_text=f"reference {number(alert.reference, alert.metric)}")
    _shape(figure, alert, as_of)
    return figure_json(figure), None


def _drift_trend(monitor: Monitor, alert: Alert, days: Range) -> tuple[str | None, str | None]:
    last, table = drift_in(monitor.store, days)
    if table is None:
        return None, f"no drift stored {days.describe()}"
    key = segment_key(alert.segment)
    rows = table.filter(pc.and_(pc.equal(table["segment"], key),
                                pc.equal(table["kind"], "prediction"))).sort_by("date")
    figure = go.Figure()
    for target in sorted(set(rows["target"].to_pylist())):
        part = rows.filter(pc.equal(rows["target"], target))
        figure.add_scatter(x=part["date"].to_pylist(), y=part["value"].to_pylist(),
                           mode="lines+markers", name=plain(target))
        figure.add_scatter(x=part["date"].to_pylist(), y=part["threshold"].to_pylist(),
                           mode="lines", line={"dash": "dot"}, name=f"{plain(target)}: noise")
    if not figure.data:
        return None, f"no prediction drift stored for this segment {days.describe()}"
    _shape(figure, alert, last)
    return figure_json(figure), None


def _shape(figure: go.Figure, alert: Alert, as_of: date | None) -> None:
    figure.update_layout(title=f"{plain(alert.metric)} of this segment by day, as of {as_of}",
                         height=280, margin={"t": 40, "b": 30}, legend={"orientation": "h"})


def describe_segment(segment: dict[str, str]) -> str:
    return " × ".join(f"{k}={v}" for k, v in segment.items()) or "(all)"

