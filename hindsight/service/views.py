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


@dataclass(frozen=True, slots=True)
class CoverageView:
    as_of: date | None
    rows: str | None
    columns: str | None
    names: list[str]
    show: str  # "drop": smallest detectable drop; "delay": days to catch ``drop``
    drop: float
    chart: str | None
    blind: list[tuple[str, int, float]]  # why, cells, their predictions per day
    empty: str | None  # why there is no chart


COVERAGE_SHOWN = {"drop": "smallest detectable drop", "delay": "days to catch a drop of"}


def coverage(monitor: Monitor, rows: str | None, columns: str | None, show: str,
             drop: float) -> CoverageView:
    """A heatmap of the crosses of two segment columns (one row per value of ``rows``, one
    column per value of ``columns``): each cell's smallest detectable drop or its days to
    catch ``drop``, from the coverage map of the latest run; a blind cell says why."""
    from hindsight.alerts.rules import DropRule
    from hindsight.jobs.coverage import coverage_of

    names = list(monitor.config.segments)
    show = show if show in COVERAGE_SHOWN else "drop"
    runs = monitor.runs()
    as_of = runs[-1] if runs else None

    def empty(why: str) -> CoverageView:
        return CoverageView(as_of, rows, columns, names, show, drop, None, [], why)

    rule = monitor.rule
    if len(names) < 2:
        return empty(f"the map crosses two segment columns, and the configuration names "
                     f"{len(names)} ({', '.join(names) or 'none'}): add one to segments")
    if as_of is None:
        return empty("no run yet: the map is drawn from the counts of the latest run "
                     "(run 'hindsight run')")
    if not isinstance(rule, DropRule):
        return empty("the map needs the built-in performance rule")
    report = coverage_of(as_of, monitor.config, monitor.store, monitor.engine, rule, drop,
                         monitor.config.drift.min_share_moved)
    # By default, the two columns with the fewest values (the fewer across, so that each
    # cell is wide enough for its reason): a map that fits on a screen.
    values = {n: sum(1 for c in report.cells if list(c.segment) == [n]) for n in names}
    fewest = sorted(names, key=lambda n: (values[n], names.index(n)))
    columns = columns if columns in names else fewest[0]
    rows = rows if rows in names and rows != columns else next(
        n for n in fewest if n != columns)
    cells = {(c.segment[rows], c.segment[columns]): c for c in report.cells
             if set(c.segment) == {rows, columns}}
    if not cells:
        return CoverageView(as_of, rows, columns, names, show, drop, None, [],
                            f"no predictions in the label window to {as_of} carry both "
                            f"{rows} and {columns}")
    ys = sorted({r for r, _ in cells})
    xs = sorted({c for _, c in cells})
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    blind: dict[str, tuple[int, float]] = {}
    for y in ys:
        z.append([])
        text.append([])
        for x in xs:
            cell = cells.get((y, x))
            value = None if cell is None else (
                cell.min_detectable_drop if show == "drop" else cell.days_to_detect)
            z[-1].append(value)
            if cell is None:
                text[-1].append("")
            elif cell.reason is not None:
                text[-1].append(plain(cell.reason))
                n, volume = blind.get(cell.reason, (0, 0.0))
                blind[cell.reason] = (n + 1, volume + cell.predictions_per_day)
            elif value is None:
                text[-1].append(plain(f"misses {drop:g}"))
            else:
                text[-1].append(f"{value:.3f}" if show == "drop" else f"{value} d")
    what = (f"smallest detectable drop in {report.metric}" if show == "drop"
            else f"days from onset to catch a drop of {drop:g} in {report.metric}")
    figure = go.Figure(go.Heatmap(
        z=z, x=[plain(x) for x in xs], y=[plain(y) for y in ys], text=text,
        texttemplate="%{text}", textfont={"size": 10}, colorscale="YlOrRd",
        hovertemplate=f"{plain(rows)}=%{{y}} × {plain(columns)}=%{{x}}: %{{text}}"
                      "<extra></extra>", hoverongaps=False, xgap=1, ygap=1))
    figure.update_layout(title=f"{what} by {plain(rows)} × {plain(columns)}, as of {as_of} "
                               "(grey: blind, with its reason)",
                         plot_bgcolor="#dddddd", margin={"t": 50, "l": 120},
                         yaxis={"autorange": "reversed"},
                         height=max(320, 26 * len(ys) + 160))
    return CoverageView(as_of, rows, columns, names, show, drop, figure_json(figure),
                        [(why, n, v) for why, (n, v) in sorted(blind.items())], None)
