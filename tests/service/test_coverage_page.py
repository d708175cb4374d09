"""The coverage page: a heatmap of segment × segment, blind cells with their reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from hindsight.config import load_config, parse_config
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from tests.conftest import log_simulation
from tests.service.test_app import Server
from tests.service.test_pages import CHROMIUM, CHROMIUM_ARGS

SCENARIO = Scenario(per_day=2_000, days=12, failure_start=None, reference_rows=3_000, seed=4)
RAW = {"label_window_days": 10, "alerts": {"baseline_days": 3}, "min_samples": 100,
       "drift": {"min_samples": 500}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("coverage-page")
    raw = {**demo_config(str(directory / "store")), **RAW}
    monitor = log_simulation(Monitor(parse_config(raw)), SCENARIO)
    monitor.run(SCENARIO.end)
    running = Server(monitor, token=None)
    yield running
    running.stop()
    monitor.close()


def chart_of(page: str) -> dict[str, object]:
    start = page.index('data-chart="coverage-chart">') + len('data-chart="coverage-chart">')
    return dict(json.loads(page[start:page.index("</script>", start)]))


def test_the_coverage_page_maps_the_crosses_of_two_columns_and_says_why_cells_are_blind(
    server: Server,
) -> None:
    page = httpx.get(server.url + "/coverage?rows=country&columns=customer_tier",
                     timeout=60).text
    trace = chart_of(page)["data"][0]  # type: ignore[index]
    assert trace["type"] == "heatmap"
    assert "CH" in trace["y"] and set(trace["x"]) == {"business", "enterprise", "free",
                                                      "starter", "team"}
    shown = [t for row in trace["text"] for t in row if t]
    assert any(t == "too few labels" for t in shown)  # a blind cell says why, in the map
    assert any(t[0].isdigit() for t in shown)  # a testable one its smallest drop
    assert "<td>too few labels</td>" in page  # and counted in the table below it
    delay = httpx.get(server.url + "/coverage?rows=country&columns=customer_tier&show=delay"
                      "&drop=0.3", timeout=60).text
    assert any(t.endswith(" d") for row in chart_of(delay)["data"][0]["text"]  # type: ignore[index]
               for t in row)


def test_the_overview_links_to_the_coverage_page(server: Server) -> None:
    assert 'href="/coverage"' in httpx.get(server.url + "/", timeout=60).text


def test_an_empty_coverage_page_says_why(tmp_path: Path) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text("model: m\nstore: ./s\nsegments: [country]\n"
                      "columns: {id: i, timestamp: t, prediction: p, label: y}\n")
    with Monitor(load_config(config)) as monitor:
        server = Server(monitor, token=None)
        try:
            one = httpx.get(server.url + "/coverage").text
        finally:
            server.stop()
    assert "two segment columns" in one and "add one to segments" in one
    config.write_text("model: m\nstore: ./s\nsegments: [country, tier]\n"
                      "columns: {id: i, timestamp: t, prediction: p, label: y}\n")
    with Monitor(load_config(config)) as monitor:
        server = Server(monitor, token=None)
        try:
            none = httpx.get(server.url + "/coverage").text
        finally:
            server.stop()
    assert "no run yet" in none


def test_user_strings_are_escaped_on_the_coverage_page(tmp_path: Path) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text("model: m\nstore: ./s\nsegments: [country, tier]\nmin_samples: 1\n"
                      "columns: {id: i, timestamp: t, prediction: p, label: y}\n")
    nasty = "<script>alert(1)</script>"
    with Monitor(load_config(config)) as monitor:
        monitor.log_predictions([{"i": str(i), "t": "2026-01-01T00:00:00Z", "p": "a",
                                  "country": nasty, "tier": nasty} for i in range(3)])
        monitor.run(date(2026, 1, 1))
        server = Server(monitor, token=None)
        try:
            page = httpx.get(server.url + "/coverage", timeout=60).text
        finally:
            server.stop()
    assert "coverage-chart" in page
    assert nasty not in page and "&lt;script&gt;" in page


@pytest.mark.slow
def test_the_coverage_page_renders_its_heatmap_in_chromium(server: Server,
                                                          tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.click("#coverage-link")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() == 1
        assert "too few labels" in page.inner_text("#coverage-chart")
        page.screenshot(path=str(tmp_path / "coverage.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (tmp_path / "coverage.png").stat().st_size > 10_000
