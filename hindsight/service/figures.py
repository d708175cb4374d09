"""Drawing decisions the pages share: numbers for people, the fixed colour scale of a change
against a baseline, and histograms drawn on one set of bins."""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.compute as pc

HISTOGRAM_BINS = 20
MOST_CATEGORIES = 30  # a categorical histogram shows the most common ones, then "other"
SHARE_METRICS = ("accuracy", "estimated_accuracy", "macro_f1", "precision[", "recall[")


def figure_json(figure: go.Figure) -> str:
    """A figure as JSON that is safe inside a <script> element."""
    return str(figure.to_json()).replace("</", "<\\/")


def plain(text: object) -> str:
    """A user string as plotly text: plotly renders a subset of HTML (links, bold) in titles,
    tick labels and legends, and turns entities back into the characters they stand for."""
    return html.escape(str(text), quote=False)


def number(value: float | None, metric: str = "") -> str:
    """A value as a person reads it: a share as a percentage, anything else to four
    significant digits, with thousands separated.

    >>> number(0.527624662882522, "accuracy"), number(1234.5678, "mae"), number(None)
    ('52.8%', '1,235', '—')
    >>> number(0.0123456, "predictions")
    '0.01235'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric.startswith(SHARE_METRICS):
        return f"{value:.1%}"
    if value != 0 and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def change(value: float | None, baseline: float | None, task: str) -> float | None:
    """How much better (positive) or worse (negative) a value is than its baseline: points of
    accuracy, or for an error (regression) the share it fell by, so that the alert threshold
    (``min_effect``) is the same line on the colour scale either way.

    >>> change(0.63, 0.75, "classification"), change(3.0, 1.0, "regression")
    (-0.12, -2.0)
    """
    if value is None or baseline is None:
        return None
    if task == "classification":
        return round(value - baseline, 9)
    if baseline <= 0:
        return None
    return round((baseline - value) / baseline, 9)


def change_scale(threshold: float, task: str) -> dict[str, object]:
    """Heatmap settings that give a change the same colour on every page and day: red from
    the alert threshold down, orange to yellow for a smaller drop, green only at or above the
    baseline."""
    e = max(threshold, 0.01)
    unit = "pts" if task == "classification" else "% error"

    def tick(z: float) -> str:
        return f"{100 * z:+.0f} {unit}"

    stops = [[0.0, "#67000d"], [1 / 3, "#d7301f"], [0.5, "#fdae61"],
             [2 / 3 - 1e-6, "#fee08b"], [2 / 3, "#a6d96a"], [1.0, "#1a9850"]]
    return {
        "zmin": -2 * e, "zmax": e, "colorscale": stops,
        "colorbar": {"title": {"text": "vs baseline"},
                     "tickvals": [-2 * e, -e, -e / 2, 0, e],
                     "ticktext": [tick(-2 * e) + " or worse",
                                  tick(-e) + ": alert threshold", tick(-e / 2),
                                  "baseline", tick(e) + " or better"]},
    }


def histogram(reference: pa.ChunkedArray, current: pa.ChunkedArray, names: tuple[str, str],
              title: str) -> go.Figure:
    """Reference and current values as shares of one set of bins: equal-width bins over the
    range of both for numbers, the reference's most common values (then "other") for text."""
    figure = go.Figure()
    if pa.types.is_integer(reference.type) or pa.types.is_floating(reference.type):
        ref, cur = _finite(reference), _finite(current)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=HISTOGRAM_BINS)
        centres = (edges[:-1] + edges[1:]) / 2
        for name, values in zip(names, (ref, cur), strict=True):
            counts, _ = np.histogram(values, edges)
            figure.add_bar(x=centres.tolist(), y=(counts / max(values.size, 1)).tolist(),
                           name=plain(name),
                           hovertemplate="%{x:.4g}: %{y:.1%}<extra>%{fullData.name}</extra>")
    else:
        ref_counts = _categories(reference)
        cur_counts = _categories(current)
        top = sorted(ref_counts, key=lambda k: -ref_counts[k])[:MOST_CATEGORIES]
        for name, tally in zip(names, (ref_counts, cur_counts), strict=True):
            total = max(sum(tally.values()), 1)
            shares = [tally.get(k, 0) / total for k in top]
            labels = [plain(k) for k in top]
            rest = 1 - sum(shares) if tally else 0.0
            if rest > 1e-9:
                labels, shares = [*labels, "(other)"], [*shares, rest]
            figure.add_bar(x=labels, y=shares, name=plain(name),
                           hovertemplate="%{x}: %{y:.1%}<extra>%{fullData.name}</extra>")
    figure.update_layout(barmode="group", bargap=0.1, title=title, margin={"t": 50},
                         yaxis={"tickformat": ".0%", "title": "share of rows"},
                         legend={"orientation": "h"})
    return figure


def _finite(values: pa.ChunkedArray) -> np.ndarray:
    numbers = np.asarray(pc.drop_null(values).to_numpy(zero_copy_only=False), np.float64)
    return numbers[np.isfinite(numbers)]


def _categories(values: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(pc.drop_null(values).cast(pa.string()))
    return {str(v): int(n) for v, n in zip(counts.field("values").to_pylist(),
                                            counts.field("counts").to_pylist(), strict=True)}

