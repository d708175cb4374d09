"""What the dashboard shows, as plain data and plotly figures, read from the store.

No HTML here (templates render), and no drawing decisions in the templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import plotly.graph_objects as go
import pyarrow.compute as pc

from hindsight.alerts.incidents import headlines
from hindsight.alerts.model import Alert
from hindsight.monitor import Monitor
from hindsight.service.drift_view import DriftView, drift
from hindsight.service.figures import figure_json, plain
from hindsight.service.grid import heatmap, segment_grid
from hindsight.service.history import NO_RUN, Range, metrics_in, young_days


@dataclass(frozen=True, slots=True)
class Overview:
    as_of: date | None
    chart: str | None
    open_alerts: list[Alert]  # one per incident: its headline
    sizes: dict[str, int]  # per alert key shown: how many open alerts its incident holds
    empty: str | None = None  # why there is no chart, and what to do
    days: Range = field(default_factory=Range)


def _no_run(days: Range) -> str:
    return (NO_RUN if days.end is None else
            f"no run on or before {days.end}: pick a later 'to', or run "
            f"'hindsight backfill --start ... --end {days.end}'")


def headline_metric(monitor: Monitor) -> str:
    return "accuracy" if monitor.config.task == "classification" else "mae"


def overview(monitor: Monitor, as_of: date | None = None, days: Range | None = None
             ) -> Overview:
    days = days or Range(end=as_of)
    as_of, table = metrics_in(monitor.store, days, monitor.config.label_window_days)
    if as_of is None:
        return Overview(None, None, [], {}, _no_run(days), days)
    shown = headlines(monitor.open_alerts(end=as_of))
    alerts, sizes = [a for a, _ in shown], {a.key: size for a, size in shown}
    if table is None or table.num_rows == 0:
        return Overview(as_of, None, alerts, sizes,
                        f"no predictions {days.describe()} in the runs up to {as_of}: "
                        "widen the dates", days)
    headline = headline_metric(monitor)
    threshold = monitor.config.alerts.min_label_coverage
    whole = table.filter(pc.equal(table["segment"], "{}")).sort_by("day")
    young = young_days(table, headline, threshold)
    rows = whole.filter(pc.equal(whole["metric"], headline)).to_pylist()
    figure = go.Figure()
    for immature, name, style in (
            (False, f"{headline} (labels mature)", {"mode": "lines+markers"}),
            (True, f"{headline}, labels still arriving (under {threshold:.0%} labelled)",
             {"mode": "markers", "marker": {"symbol": "circle-open", "size": 10,
                                            "color": "#9ca3af"}})):
        picked = [r for r in rows if (r["day"] in young) == immature and r["value"] is not None]
        if picked:
            figure.add_scatter(x=[r["day"] for r in picked], y=[r["value"] for r in picked],
                               name=name, **style)
    estimated = whole.filter(pc.equal(whole["metric"], "estimated_accuracy"))
    if estimated.num_rows:
        figure.add_scatter(x=estimated["day"].to_pylist(), y=estimated["value"].to_pylist(),
                           name="estimated accuracy (from confidence)", mode="lines+markers",
                           line={"dash": "dash"})
    figure.add_bar(x=[r["day"] for r in rows], y=[r["label_coverage"] for r in rows],
                   name="label coverage", yaxis="y2", opacity=0.25)
    figure.add_hline(y=threshold, yref="y2", line={"dash": "dot", "color": "#6b7280"},
                     annotation_text=f"tested from {threshold:.0%} labelled",
                     annotation_position="top left")
    figure.update_layout(title=f"{plain(monitor.config.model)}: by prediction day, as of {as_of}",
                         yaxis={"title": headline}, legend={"orientation": "h"},
                         yaxis2={"overlaying": "y", "side": "right", "range": [0, 1],
                                 "tickformat": ".0%", "title": "label coverage"},
                         margin={"t": 50})
    return Overview(as_of, figure_json(figure), alerts, sizes, None, days)


@dataclass(frozen=True, slots=True)
class SegmentView:
    as_of: date | None
    column: str | None
    within: dict[str, str]
    columns: list[str]
    chart: str | None
    values: list[str]
    empty: str | None = None  # why there is no chart, and what to do
    days: Range = field(default_factory=Range)


def segments(monitor: Monitor, column: str | None, within: dict[str, str],
             as_of: date | None = None, days: Range | None = None) -> SegmentView:
    """A heatmap of the headline metric by segment value and prediction day, coloured by
    each cell's change against its segment's baseline on one fixed scale (red from the alert
    threshold); cells with fewer than min_samples labelled rows are left grey, young days
    marked. ``within`` drills into a segment's crosses."""
    days = days or Range(end=as_of)
    names = list(monitor.config.segments)
    column = column if column in names else (names[0] if names else None)
    as_of, table = metrics_in(monitor.store, days, monitor.config.label_window_days)

    def empty(why: str) -> SegmentView:
        return SegmentView(as_of, column, within, names, None, [], why, days)

    if column is None:
        return empty("no segment columns are configured: list some under 'segments' in "
                     "hindsight.yaml")
    if as_of is None or table is None:
        return empty(_no_run(days))
    headline = headline_metric(monitor)
    grid = segment_grid(monitor, table, as_of, headline, column, within)
    if not grid.values:
        return empty(_no_cells(monitor, column, within, days, as_of))
    return SegmentView(as_of, column, within, names,
                       figure_json(heatmap(grid, monitor, headline, column, within, as_of)),
                       grid.values, None, days)


def _no_cells(monitor: Monitor, column: str, within: dict[str, str], days: Range,
              as_of: date) -> str:
    depth = monitor.config.cross_depth or 3
    place = " × ".join(f"{k}={v}" for k, v in within.items())
    if within and len(within) + 1 > depth:
        return (f"crosses of {len(within) + 1} segments are not computed (cross_depth is "
                f"{depth}): raise cross_depth in hindsight.yaml to see {column} within {place}")
    where = f" with {place}" if place else ""
    return (f"no predictions{where} have a value of {column} {days.describe()} (runs up to "
            f"{as_of}): pick another value or segment, or widen the dates")


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

__all__ = [
    "CoverageView",
    "DriftView",
    "Overview",
    "Range",
    "SegmentView",
    "coverage",
    "drift",
    "overview",
    "segments",
]
