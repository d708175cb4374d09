"""The dashboard in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from hindsight.config import load_config
from hindsight.demo import run_demo
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario
from tests.service.test_app import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("pages") / "demo"
    run_demo(folder, Scenario(per_day=4000, days=24, failure_start=10, seed=3))
    monitor = Monitor(load_config(folder / "hindsight.yaml"))
    server = Server(monitor, token=None)
    server.config_file = str(folder / "hindsight.yaml")
    yield server
    server.stop()
    monitor.close()


@pytest.mark.slow
def test_every_page_renders_its_charts_in_chromium(demo_server: Server, tmp_path: Path) -> None:
    expected = {"/": 1, "/segments?column=country": 1,
                "/segments?column=merchant_category&within=country%3DCH": 1, "/drift": 2,
                "/versions": 0}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        for path, charts in expected.items():
            page.goto(demo_server.url + path)
            if charts:
                page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            assert page.locator(".js-plotly-plot").count() == charts, path
            name = path.strip("/").split("?")[0] or "overview"
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        assert page.locator("#versions tr").count() == 2  # a header and the one version
        page.goto(demo_server.url + "/")
        assert "country=CH × merchant_category=restaurants" in page.inner_text("#open-alerts")
        browser.close()
    assert errors == []
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000
               for n in ("overview", "segments", "drift", "versions"))


def test_user_strings_are_escaped_on_the_pages(tmp_path: Path) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text(
        "model: m\nstore: ./s\nsegments: [country]\n"
        "columns: {id: i, timestamp: t, prediction: p, label: y, model_version: v}\n")
    nasty = "<script>alert(1)</script>"
    with Monitor(load_config(config)) as monitor:
        monitor.log_predictions([{"i": "1", "t": "2026-01-01T00:00:00Z", "p": "a",
                                  "country": nasty, "v": nasty}])
        monitor.run(__import__("datetime").date(2026, 1, 1))
        server = Server(monitor, token=None)
        try:
            versions = httpx.get(server.url + "/versions").text
            segments = httpx.get(server.url + "/segments").text
        finally:
            server.stop()
    assert nasty not in versions and "&lt;script&gt;alert(1)&lt;/script&gt;" in versions
    assert nasty not in segments  # inside the chart's JSON too


@pytest.mark.slow
def test_the_static_report_renders_offline_in_chromium(demo_server: Server,
                                                       tmp_path: Path) -> None:
    from hindsight.cli import main

    config = str(Path(demo_server.config_file))
    out = tmp_path / "report.html"
    assert main(["--config", config, "report", "--out", str(out)]) == 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(out.as_uri())
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert page.locator(".js-plotly-plot").count() == 1 + 3 + 1  # overview, 3 segments, drift
        browser.close()
