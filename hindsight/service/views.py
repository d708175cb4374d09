"""What the dashboard shows, as plain data and plotly figures, read from the store.

No HTML here (templates render), and no drawing decisions in the templates."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.incidents import headlines
from hindsight.alerts.model import Alert
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table


def figure_json(figure: go.Figure) -> str:
    """A figure as JSON that is safe inside a <script> element."""
    return str(figure.to_json()).replace("</", "<\\/")


def plain(text: object) -> str:
    """A user string as plotly text: plotly renders a subset of HTML (links, bold) in titles,
    tick labels and legends, and turns entities back into the characters they stand for."""
    return html.escape(str(text), quote=False)


@dataclass(frozen=True, slots=True)
class Overview:
    as_of: date | None
    chart: str | None
    open_alerts: list[Alert]  # one per incident: its headline
    sizes: dict[str, int]  # per alert key shown: how many open alerts its incident holds


def _latest_metrics(monitor: Monitor,
                    as_of: date | None = None) -> tuple[date | None, pa.Table | None]:
    runs = [d for d in monitor.store.partitions(Table.METRICS) if as_of is None or d <= as_of]
    if not runs:
        return None, None
    files = monitor.store.files(Table.METRICS, runs[-1], runs[-1])
    return runs[-1], pa.concat_tables([monitor.store.read(f.path) for f in files])


def overview(monitor: Monitor, as_of: date | None = None) -> Overview:
    as_of, table = _latest_metrics(monitor, as_of)
    if table is None or as_of is None:
        return Overview(None, None, [], {})
    whole = table.filter(pc.equal(table["segment"], "{}")).sort_by("day")
    figure = go.Figure()
    headline = "accuracy" if monitor.config.task == "classification" else "mae"
    for metric, name in ((headline, f"{headline} (labelled so far)"),
                         ("estimated_accuracy", "estimated accuracy (from confidence)")):
        rows = whole.filter(pc.equal(whole["metric"], metric))
        if rows.num_rows:
            figure.add_scatter(x=rows["day"].to_pylist(), y=rows["value"].to_pylist(),
                               name=name, mode="lines+markers")
    cover = whole.filter(pc.equal(whole["metric"], headline))
    figure.add_bar(x=cover["day"].to_pylist(), y=cover["label_coverage"].to_pylist(),
                   name="label coverage", yaxis="y2", opacity=0.25)
    figure.update_layout(title=f"{plain(monitor.config.model)}: by prediction day, as of {as_of}",
                         yaxis={"title": headline}, legend={"orientation": "h"},
                         yaxis2={"overlaying": "y", "side": "right", "range": [0, 1],
                                 "tickformat": ".0%", "title": "label coverage"},
                         margin={"t": 50})
    shown = headlines(monitor.open_alerts(end=as_of))
    return Overview(as_of, figure_json(figure), [a for a, _ in shown],
                    {a.key: size for a, size in shown})


@dataclass(frozen=True, slots=True)
class SegmentView:
    as_of: date | None
    column: str | None
    within: dict[str, str]
    columns: list[str]
    chart: str | None
    values: list[str]


def segments(monitor: Monitor, column: str | None, within: dict[str, str],
             as_of: date | None = None) -> SegmentView:
    """A heatmap of the headline metric by segment value and prediction day; cells with fewer
    than min_samples labelled rows are left grey. ``within`` drills into a segment's crosses."""
    names = list(monitor.config.segments)
    column = column if column in names else (names[0] if names else None)
    as_of, table = _latest_metrics(monitor, as_of)
    if table is None or column is None:
        return SegmentView(as_of, column, within, names, None, [])
    headline = "accuracy" if monitor.config.task == "classification" else "mae"
    table = table.filter(pc.equal(table["metric"], headline))
    cells: dict[tuple[str, date], tuple[float | None, int]] = {}
    for row in table.to_pylist():
        segment = json.loads(row["segment"])
        if set(segment) != {column, *within} or any(segment.get(k) != v
                                                    for k, v in within.items()):
            continue
        cells[(segment[column], row["day"])] = (row["value"], row["n_labelled"])
    values = sorted({v for v, _ in cells})
    days = sorted({d for _, d in cells})
    enough = monitor.config.min_samples
    z = [[cells.get((v, d), (None, 0))[0] if cells.get((v, d), (None, 0))[1] >= enough
          else None for d in days] for v in values]
    counts = [[cells.get((v, d), (None, 0))[1] for d in days] for v in values]
    figure = go.Figure(go.Heatmap(z=z, x=days, y=[plain(v) for v in values], customdata=counts,
                                  colorscale="RdYlGn",
                                  hovertemplate="%{y} %{x}: %{z:.3f} (n=%{customdata})"
                                                "<extra></extra>",
                                  hoverongaps=False))
    place = plain(" × ".join(f"{k}={v}" for k, v in within.items()))
    figure.update_layout(title=f"{headline} by {plain(column)}"
                               f"{' within ' + place if place else ''}, "
                               f"as of {as_of} (grey: fewer than {enough} labelled)",
                         plot_bgcolor="#dddddd", margin={"t": 50},
                         height=max(300, 22 * len(values) + 120))
    return SegmentView(as_of, column, within, names, figure_json(figure), values)


@dataclass(frozen=True, slots=True)
class DriftView:
    prediction_chart: str | None
    ranking: list[dict[str, Any]]
    feature: str | None
    histogram: str | None


def drift(monitor: Monitor, feature: str | None) -> DriftView:
    files = monitor.store.files(Table.DRIFT)
    if not files:
        return DriftView(None, [], None, None)
    table = pa.concat_tables([monitor.store.read(f.path) for f in files])
    whole = table.filter(pc.and_(pc.equal(table["segment"], "{}"),
                                 pc.equal(table["kind"], "prediction"))).sort_by("date")
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
                         legend={"orientation": "h"})
    last = max(table["date"].to_pylist())
    ranking = [r.as_json() for r in monitor.drift(last, last) if r.method == "psi"]
    chosen = feature if feature in {r["feature"] for r in ranking} else (
        ranking[0]["feature"] if ranking else None)
    return DriftView(figure_json(figure), ranking, chosen,
                     _histogram(monitor, chosen, last) if chosen else None)


def _histogram(monitor: Monitor, feature: str, day: date) -> str | None:
    from hindsight.jobs.drift import read_reference

    reference = read_reference(monitor.store, monitor.config)
    if reference is None or feature not in reference.column_names:
        return None
    current = monitor.engine.predictions(day, day, [feature])
    figure = go.Figure()
    for name, values in (("reference", reference[feature]), (str(day), current[feature])):
        shown = values.to_pylist()
        if pa.types.is_string(values.type):
            shown = [None if v is None else plain(v) for v in shown]
        figure.add_histogram(x=shown, name=name, histnorm="probability", opacity=0.6)
    figure.update_layout(barmode="overlay", title=f"{plain(feature)}: reference vs {day}",
                         margin={"t": 50})
    return figure_json(figure)
