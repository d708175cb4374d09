"""``hindsight report``: the dashboard's views as one static HTML file (plotly inlined)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import plotly
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hindsight.monitor import Monitor
from hindsight.service import views


def render(monitor: Monitor, as_of: date | None) -> str:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html"]))
    bundle = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(
        encoding="utf-8").replace("</script", "<\\/script")
    overview = views.overview(monitor, as_of)
    return env.get_template("report.html").render(
        model=monitor.config.model, as_of=overview.as_of, plotly_js=bundle, overview=overview,
        segment_views=[views.segments(monitor, column, {}, as_of)
                       for column in monitor.config.segments],
        drift=views.drift(monitor, None, views.Range(end=overview.as_of or as_of)))
