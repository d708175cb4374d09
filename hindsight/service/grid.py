"""The segments page's heatmap: each cell's metric against its segment's own baseline.

The baseline is what the performance rule compares a segment with: the reference set's same
segment when it holds ``min_samples`` labelled rows, else the segment's oldest
``baseline_days`` days of the latest run's window. Colour is the change against it, on a scale
fixed by the alert threshold (``figures.change_scale``), so it means the same on every page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.monitor import Monitor
from hindsight.service.figures import change, change_scale, number, plain
from hindsight.service.history import young_days
from hindsight.store.identity import value_identities
from hindsight.store.partitions import Table


@dataclass(frozen=True, slots=True)
class Grid:
    values: list[str]  # segment values, one row each
    days: list[date]
    cells: dict[tuple[str, date], tuple[float | None, int]]  # value, labelled rows
    baselines: dict[str, float | None]
    young: set[date]


def segment_grid(monitor: Monitor, table: pa.Table, as_of: date, metric: str, column: str,
                 within: dict[str, str]) -> Grid:
    config = monitor.config
    young = young_days(table, metric, config.alerts.min_label_coverage)
    rows = table.filter(pc.and_(pc.equal(table["metric"], metric),
                                pc.equal(table["depth"], len(within) + 1)))
    if within:  # the JSON of a segment holds its values as written: a cheap first cut
        for value in within.values():
            rows = rows.filter(pc.match_substring(rows["segment"], json.dumps(
                value, ensure_ascii=False)))
    cells: dict[tuple[str, date], tuple[float | None, int]] = {}
    keys: dict[str, str] = {}
    for row in rows.select(["day", "segment", "value", "n_labelled"]).to_pylist():
        segment = json.loads(row["segment"])
        if set(segment) != {column, *within} or any(segment.get(k) != v
                                                    for k, v in within.items()):
            continue
        cells[(segment[column], row["day"])] = (row["value"], row["n_labelled"] or 0)
        keys[segment[column]] = row["segment"]
    values = sorted({v for v, _ in cells})
    return Grid(values, sorted({d for _, d in cells}), cells,
                _baselines(monitor, as_of, metric, keys, column, within), young)


def _baselines(monitor: Monitor, as_of: date, metric: str, keys: dict[str, str],
               column: str, within: dict[str, str]) -> dict[str, float | None]:
    config = monitor.config
    found: dict[str, float | None] = dict.fromkeys(keys)
    found.update({v: b for v, b in _reference(monitor, column, within).items() if v in found})
    missing = {key: value for value, key in keys.items() if found[value] is None}
    if not missing:
        return found
    first = as_of - timedelta(days=config.label_window_days - 1)
    last = first + timedelta(days=config.alerts.baseline_days - 1)
    run = pa.concat_tables([monitor.store.read(f.path)
                            for f in monitor.store.files(Table.METRICS, as_of, as_of)])
    run = run.filter(pc.and_(pc.equal(run["metric"], metric),
                             pc.less_equal(run["day"], pa.scalar(last, pa.date32()))))
    pooled: dict[str, tuple[float, float]] = {}
    for row in run.select(["segment", "value", "n_labelled"]).to_pylist():
        if row["segment"] in missing and row["value"] is not None and row["n_labelled"]:
            t, n = pooled.get(row["segment"], (0.0, 0.0))
            pooled[row["segment"]] = (t + row["value"] * row["n_labelled"],
                                      n + row["n_labelled"])
    for key, (t, n) in pooled.items():
        if n >= config.min_samples:
            found[missing[key]] = t / n
    return found


def _reference(monitor: Monitor, column: str, within: dict[str, str]) -> dict[str, float]:
    """Per value of ``column`` (inside ``within``): the reference set's metric, where it
    holds ``min_samples`` labelled rows. Read with pyarrow: no query engine on a page."""
    config = monitor.config
    cols = config.columns
    files = monitor.store.files(Table.REFERENCE)
    names = list(dict.fromkeys([cols.prediction, cols.label, column, *within]))
    if not files:
        return {}
    table = value_identities(pa.concat_tables(
        [monitor.store.read(f.path, names) for f in files], promote_options="default"), config)
    if not set(names) <= set(table.column_names):
        return {}
    keep = pc.is_valid(table[cols.label])
    for key, value in within.items():
        keep = pc.and_(keep, pc.equal(table[key].cast(pa.string()), value))
    table = table.filter(pc.fill_null(keep, False))
    if config.task == "classification":
        score = pc.equal(table[cols.prediction].cast(pa.string()),
                         table[cols.label].cast(pa.string())).cast(pa.float64())
    else:
        score = pc.abs(pc.subtract(table[cols.prediction].cast(pa.float64()),
                                   table[cols.label].cast(pa.float64())))
    grouped = pa.table({"value": table[column].cast(pa.string()), "score": score}).group_by(
        "value").aggregate([("score", "mean"), ("score", "count")])
    return {r["value"]: r["score_mean"] for r in grouped.to_pylist()
            if r["value"] is not None and r["score_count"] >= config.min_samples}


def heatmap(grid: Grid, monitor: Monitor, metric: str, column: str, within: dict[str, str],
            as_of: date) -> go.Figure:
    config = monitor.config
    enough = config.min_samples
    z: list[list[float | None]] = []
    hover: list[list[str]] = []
    marks: list[list[str]] = []
    for v in grid.values:
        base = grid.baselines.get(v)
        z.append([])
        hover.append([])
        marks.append([])
        for d in grid.days:
            value, n = grid.cells.get((v, d), (None, 0))
            shown = value if n >= enough else None
            z[-1].append(change(shown, base, config.task))
            young = d in grid.young
            marks[-1].append("young" if young and shown is not None else "")
            hover[-1].append(
                f"{number(value, metric)} vs baseline {number(base, metric)}, n={n:,}"
                + (f" (under {enough} labelled: not coloured)" if shown is None else "")
                + (" · labels still arriving" if young else ""))
    figure = go.Figure(go.Heatmap(
        z=z, x=grid.days, y=[plain(v) for v in grid.values], customdata=hover,
        text=marks, texttemplate="%{text}", textfont={"size": 9},
        hovertemplate="%{y} %{x}: %{customdata}<extra></extra>", hoverongaps=False,
        xgap=1, ygap=1, **change_scale(config.alerts.min_effect, config.task)))
    place = plain(" × ".join(f"{k}={v}" for k, v in within.items()))
    figure.update_layout(title=f"{metric} by {plain(column)}"
                               f"{' within ' + place if place else ''} against each segment's "
                               f"baseline, as of {as_of} (grey: fewer than {enough} labelled)",
                         plot_bgcolor="#dddddd", margin={"t": 50},
                         height=max(300, 22 * len(grid.values) + 120))
    return figure


def segment_link(segment: dict[str, str], query: str) -> str:
    """The page that shows a segment's history: the overview for the whole population, else
    the segments page by its last column, within the first (the link's text is escaped by
    the template; values are URL-encoded here)."""
    from urllib.parse import urlencode

    if not segment:
        return "/" + (f"?{query}" if query else "")
    keys = list(segment)
    params = {"column": keys[-1]}
    if len(keys) > 1:
        params["within"] = f"{keys[0]}={segment[keys[0]]}"
    return "/segments?" + urlencode(params) + (f"&{query}" if query else "")

