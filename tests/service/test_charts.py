"""The dashboard's charts tell the truth, checked in a real browser on data made by hand (the
test's own column names and segment values, not the simulator's)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from hindsight.config import parse_config
from hindsight.monitor import Monitor
from hindsight.service import report, views
from tests.conftest import COLUMNS
from tests.service.test_app import Server
from tests.service.test_pages import CHROMIUM, CHROMIUM_ARGS

ODD = "Zürich <&>"  # the segment value that fails in January
ROWS = {ODD: 400, "B": 60, "C": 60}  # predictions a day
CORRECT = {ODD: 300, "B": 18, "C": 18}  # 75 %, 30 %, 30 %
FAILING = 254  # 63.5 %, from January 12 to 19


def _day(month: int, day: int, country: str) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """One country's predictions of one day and their labels. Labels arrive the next day,
    except the 20th's: only a third (correct ones, the easy labels) by the 21st's run."""
    when = datetime(2026, month, day, 12, tzinfo=UTC)
    right = FAILING if country == ODD and month == 1 and 12 <= day <= 19 else CORRECT[country]
    rows, labels = [], []
    for k in range(ROWS[country]):
        key = f"{country}-{month}-{day}-{k}"
        rows.append({"request_id": key, "served_at": when.isoformat(), "country": country,
                     "tier": "free", "predicted": "yes", "amount": float(k)})
        late = day == 20 and k >= 20
        labels.append({"request_id": key, "actual": "yes" if k < right else "no",
                       "actual_at": (when + timedelta(days=5 if late else 1)).isoformat()})
    return rows, labels


@pytest.fixture(scope="module")
def charted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    """January holds an incident of one segment value, March is healthy; runs on the 21st."""
    folder = tmp_path_factory.mktemp("charts")
    config = parse_config({"model": "fraud <b>", "store": str(folder / "store"),
                           "columns": dict(COLUMNS), "segments": ["country", "tier"],
                           "features": ["amount"], "min_samples": 20}, source="test.yaml")
    with Monitor(config, clock=lambda: datetime(2026, 4, 1, tzinfo=UTC)) as monitor:
        monitor.log_reference([
            {"request_id": f"ref-{c}-{k}", "served_at": "2025-12-01T00:00:00Z", "country": c,
             "tier": "free", "predicted": "yes", "amount": float(k % ROWS[c]),
             "actual": "yes" if k % ROWS[c] < CORRECT[c] else "no"}
            for c in CORRECT for k in range(10 * ROWS[c])])
        for month in (1, 3):
            rows, labels = [], []
            for day in range(1, 22):
                for country in CORRECT:
                    r, lab = _day(month, day, country)
                    rows += r
                    labels += lab
            monitor.log_predictions(rows)
            monitor.log_labels(labels)
            monitor.run(date(2026, month, 21))
        yield monitor


@pytest.fixture(scope="module")
def served(charted: Monitor) -> Iterator[Server]:
    server = Server(charted, token=None)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    tab.close()
    assert errors == []


def _drawn(page: Page, chart: str) -> None:
    page.wait_for_selector(f"#{chart} .main-svg", timeout=60_000)


CELL_COLOUR = """async ([chart, row, column]) => {
  const gd = document.getElementById(chart);
  const trace = gd._fullData[0];
  const image = gd.querySelector(".hm image");
  const picture = new Image();
  picture.src = image.getAttribute("href") || image.getAttribute("xlink:href");
  await picture.decode();
  const canvas = document.createElement("canvas");
  canvas.width = picture.naturalWidth;
  canvas.height = picture.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(picture, 0, 0);
  const i = trace.y.indexOf(row), j = trace.x.findIndex(x => String(x).startsWith(column));
  if (i < 0 || j < 0) return null;
  const x = Math.floor((j + 0.5) / trace.x.length * canvas.width);
  const y = Math.floor((1 - (i + 0.5) / trace.y.length) * canvas.height);
  return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


def test_a_histogram_of_identical_reference_and_current_data_draws_equal_bars(
        served: Server, page: Page) -> None:
    page.goto(served.url + "/drift?feature=amount")
    _drawn(page, "feature-histogram")
    heights = page.evaluate("""() => Array.from(
        document.querySelectorAll("#feature-histogram .trace.bars"),
        trace => Array.from(trace.querySelectorAll(".point path"),
                            bar => Math.round(bar.getBBox().height)))""")
    assert len(heights) == 2 and heights[0], heights
    assert heights[0] == heights[1]


def test_a_cell_below_its_baseline_is_never_coloured_as_healthy(served: Server,
                                                                 page: Page) -> None:
    page.goto(served.url + "/segments?column=country&from=2026-01-03&to=2026-01-19")
    _drawn(page, "segment-chart")
    shown = "Zürich &lt;&amp;&gt;"
    red, green, _ = page.evaluate(CELL_COLOUR, ["segment-chart", shown, "2026-01-15"])
    assert red >= green  # 63 % against its own 75 %: never green, whatever else is shown
    healthy = page.evaluate(CELL_COLOUR, ["segment-chart", shown, "2026-01-05"])
    assert healthy[1] > healthy[0]  # at its baseline
    stable = page.evaluate(CELL_COLOUR, ["segment-chart", "B", "2026-01-15"])
    assert stable[1] > stable[0]  # 30 % all along: low but not a drop
    legend = page.inner_text("#segment-chart")
    assert "alert threshold" in legend


def test_an_empty_drill_down_says_why_and_what_to_do(served: Server, page: Page) -> None:
    page.goto(served.url + "/segments?column=tier&within=country%3DNowhere")
    assert page.locator(".js-plotly-plot").count() == 0
    why = page.inner_text("#segment-empty")
    assert "country=Nowhere" in why and "tier" in why


def test_a_date_range_selection_shows_an_old_incident(served: Server, page: Page) -> None:
    page.goto(served.url + "/")
    _drawn(page, "overview-chart")
    assert "2026-03-21" in page.inner_text("h2")
    page.fill("input[name=from]", "2026-01-01")
    page.fill("input[name=to]", "2026-01-31")
    page.click("form#range button")
    page.wait_for_url(re.compile(r"from=2026-01-01"))
    _drawn(page, "overview-chart")
    days = page.evaluate("""() => document.getElementById('overview-chart').data.find(
        t => t.type === 'bar').x""")
    assert min(days).startswith("2026-01-01") and max(days).startswith("2026-01-21")
    assert "Zürich <&>" in page.inner_text("#open-alerts")
    page.click("nav a[href^='/segments']")  # the range goes along
    _drawn(page, "segment-chart")
    assert "from=2026-01-01" in page.url


@pytest.mark.parametrize(("query", "named"), [("/?to=2026-13-01", "to"),
                                               ("/segments?from=%1B%C3%8E", "from"),
                                               ("/drift?from=2026-03-02&to=2026-03-01", "from")])
def test_a_bad_date_is_refused_naming_its_parameter_in_the_documented_shape(
        served: Server, query: str, named: str) -> None:
    answer = httpx.get(served.url + query)
    assert answer.status_code == 422
    (detail,) = answer.json()["detail"]  # the OpenAPI document's HTTPValidationError
    assert detail["loc"] == ["query", named]
    assert "YYYY-MM-DD" in detail["msg"] or "swap them" in detail["msg"]


def test_young_days_get_their_own_mark_beside_label_coverage(served: Server,
                                                              page: Page) -> None:
    page.goto(served.url + "/?to=2026-01-21")
    _drawn(page, "overview-chart")
    traces = page.evaluate("""() => document.getElementById('overview-chart').data.map(
        t => ({name: t.name, x: t.x}))""")
    young = [t for t in traces if "labels still arriving" in t["name"]]
    assert len(young) == 1 and [d[:10] for d in young[0]["x"]] == ["2026-01-20"]
    settled = next(t for t in traces if t["name"].startswith("accuracy"))
    assert "2026-01-20" not in [d[:10] for d in settled["x"]]
    assert "labels still arriving" in page.inner_text("#overview-chart")


def test_the_alert_page_shows_numbers_for_people_and_leads_to_the_cell_history(
        served: Server, page: Page) -> None:
    page.goto(served.url + "/?from=2026-01-01&to=2026-01-21")
    page.click("#open-alerts a:has-text('details')")
    text = page.inner_text("#alert")
    assert "63.5%" in text and "75.0%" in text
    assert not re.search(r"\d\.\d{5,}", page.inner_text("main"))
    assert ODD in text and "&lt;" in page.content()
    _drawn(page, "alert-trend")
    page.click("a#alert-history")
    _drawn(page, "segment-chart")
    rows = page.evaluate("() => document.getElementById('segment-chart').data[0].y")
    days = page.evaluate("() => document.getElementById('segment-chart').data[0].x")
    assert "Zürich &lt;&amp;&gt;" in rows and any(d.startswith("2026-01-15") for d in days)
    page.go_back()
    page.click("a#alert-drift")
    page.wait_for_selector("#feature-ranking")
    assert "2026-01-21" in page.inner_text("main")


def test_the_report_of_a_date_shows_that_run_s_drift(charted: Monitor) -> None:
    january = report.render(charted, date(2026, 1, 21))
    assert "2026-03-2" not in january  # nothing of March's runs in January's report


def test_a_regression_cell_whose_error_rose_is_coloured_as_a_drop(tmp_path: Path) -> None:
    config = parse_config({"model": "price", "store": str(tmp_path / "s"), "task": "regression",
                           "columns": {"id": "sku", "timestamp": "priced_at",
                                       "prediction": "price", "label": "sold_for"},
                           "segments": ["shop"], "min_samples": 10}, source="t.yaml")
    rows, labels = [], []
    for day in range(1, 15):
        for shop, error in (("north", 1.0 if day < 10 else 3.0), ("south", 8.0)):
            for k in range(20):
                key = f"{shop}{day}-{k}"
                rows.append({"sku": key, "priced_at": f"2026-05-{day:02d}T10:00:00Z",
                             "shop": shop, "price": 100.0})
                labels.append({"sku": key, "sold_for": 100.0 + error * (1 if k % 2 else -1)})
    with Monitor(config, clock=lambda: datetime(2026, 5, 15, tzinfo=UTC)) as monitor:
        monitor.log_predictions(rows)
        monitor.log_labels(labels)
        monitor.run(date(2026, 5, 15))  # the labels arrived when logged: on the 15th
        view = views.segments(monitor, "shop", {})
    assert view.chart is not None and view.empty is None
    heatmap = __import__("json").loads(view.chart)["data"][0]
    north = heatmap["y"].index("north")
    changes = dict(zip(heatmap["x"], heatmap["z"][north], strict=True))
    assert changes["2026-05-12"] < -config.alerts.min_effect  # error tripled: a drop
    assert abs(changes["2026-05-03"]) < 1e-9  # its own baseline
    south = heatmap["z"][heatmap["y"].index("south")]
    assert all(abs(z) < 1e-9 for z in south if z is not None)  # high error, but its own
    assert (heatmap["zmin"], heatmap["zmax"]) == (-2 * config.alerts.min_effect,
                                                   config.alerts.min_effect)
