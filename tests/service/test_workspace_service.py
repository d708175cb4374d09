"""One service for a workspace of three models of different tasks, each with its own column
names: a multi-class ticket router, a binary fraud classifier with a score, a regression of
prices. Ingest goes through HTTP to each; each is run; only fraud fails (in one country)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from hindsight.monitor import Monitor
from hindsight.service.access import Keys, Scope
from hindsight.service.app import create_workspace_app
from hindsight.service.signin import COOKIE
from hindsight.workspace import Workspace, load_workspace
from tests.service.test_pages import CHROMIUM, CHROMIUM_ARGS

TEAM, FRAUD_ONLY = "team-token", "fraud-token"
NASTY = "CH & <li>"  # the country whose fraud labels go wrong from January 8
RUN = date(2026, 1, 15)
ROUTER = {"columns": {"id": "ticket", "timestamp": "opened", "prediction": "queue",
                      "label": "true_queue", "label_timestamp": "routed_at"},
          "segments": ["language"], "features": ["words"]}
FRAUD = {"columns": {"id": "txn", "timestamp": "at", "prediction": "flagged", "score": "p",
                     "label": "chargeback", "label_timestamp": "reported"},
         "segments": ["country"], "features": ["amount"],
         "service": {"token_env": "FRAUD_TOKEN"}}
PRICE = {"task": "regression",
         "columns": {"id": "listing", "timestamp": "listed", "prediction": "price_hat",
                     "label": "price", "label_timestamp": "sold"},
         "segments": ["city"], "features": ["rooms"]}
QUEUES = ["billing", "tech", "sales"]


def _stamp(day: int) -> str:
    return f"2026-01-{day:02d}T12:00:00Z"


def _rows(model: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """14 days of 80 predictions, half in each group, labels the next day; 5 % wrong, and
    for fraud in NASTY from the 8th on, half."""
    rows, labels = [], []
    for i in range(1, 1121):
        day = 1 + (i - 1) // 80
        group = i % 2
        wrong = i % 40 < 2 or (model == "fraud" and day > 7 and group and i % 40 < 21)
        if model == "router":
            queue = QUEUES[i % 3]
            rows.append({"ticket": f"t{i}", "opened": _stamp(day), "queue": queue,
                         "language": ["de", "fr"][group], "words": float(i % 90)})
            labels.append({"ticket": f"t{i}", "routed_at": _stamp(day + 1),
                           "true_queue": QUEUES[(i + 1) % 3] if wrong else queue})
        elif model == "fraud":
            flagged = "yes" if i % 10 == 0 else "no"
            rows.append({"txn": f"x{i}", "at": _stamp(day), "flagged": flagged,
                         "p": 0.9 if flagged == "yes" else 0.1,
                         "country": [ "DE", NASTY][group], "amount": float(i % 70)})
            truth = ({"yes": "no", "no": "yes"}[flagged]) if wrong else flagged
            labels.append({"txn": f"x{i}", "reported": _stamp(day + 1), "chargeback": truth})
        else:
            guess = 100.0 + i % 50
            rows.append({"listing": f"l{i}", "listed": _stamp(day), "price_hat": guess,
                         "city": ["Bern", "Genf"][group], "rooms": float(i % 5)})
            labels.append({"listing": f"l{i}", "sold": _stamp(day + 1),
                           "price": guess + (i % 5 - 2)})
    return rows, labels


def write_workspace(folder: Path, models: dict[str, Any],
                    service: dict[str, Any] | None = None) -> Path:
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "models" / "price.yaml").write_text(yaml.safe_dump(PRICE), encoding="utf-8")
    file = folder / "hindsight.yaml"
    file.write_text(yaml.safe_dump({
        "store": "data", "min_samples": 20,
        "service": {"token_env": "TEAM_TOKEN", "max_rows": 1000,
                    "max_body_bytes": 400_000, **(service or {})},
        "models": models}, sort_keys=False), encoding="utf-8")
    return file


class Served:
    """An app under uvicorn on 127.0.0.1, on a free port."""

    def __init__(self, app: FastAPI) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def client(self, token: str | None = TEAM) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def keys_of(workspace: Workspace, **environ: str) -> Keys:
    return Keys.of(workspace, environ.get)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    folder = tmp_path_factory.mktemp("workspace")
    return load_workspace(write_workspace(folder, {
        "router": ROUTER, "fraud": FRAUD, "price": {"include": "models/price.yaml"},
        "legacy": {"columns": {"timestamp": "t", "prediction": "p", "label": "y"}}}))


@pytest.fixture(scope="module")
def live(workspace: Workspace) -> Iterator[Served]:
    """The service of the workspace, fed through HTTP, then each model run as of RUN."""
    served = Served(create_workspace_app(
        workspace, keys_of(workspace, TEAM_TOKEN=TEAM, FRAUD_TOKEN=FRAUD_ONLY)))
    try:
        with served.client() as http:
            for model in ("router", "fraud", "price"):
                rows, labels = _rows(model)
                for table, batch in (("predictions", rows), ("labels", labels)):
                    for start in range(0, len(batch), 560):
                        answer = http.post(f"/v1/models/{model}/{table}",
                                           json=batch[start:start + 560])
                        assert answer.status_code == 200, (model, table, answer.text)
                        assert answer.json()["stored"] == 560
        # the daily job of every model, as cron runs it, beside the live service: the
        # broken model is named, and the other three run
        done = subprocess.run([sys.executable, "-m", "hindsight", "--config", workspace.source,
                               "run", "--date", RUN.isoformat()],
                              capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 7, done.stdout + done.stderr
        assert "1 of 4 models failed: legacy" in done.stderr, done.stderr
        assert "3 of 4 models succeeded" in done.stdout, done.stdout
        yield served
    finally:
        served.stop()


def test_each_model_stores_under_its_own_prefix_and_only_fraud_alerts(
        live: Served, workspace: Workspace) -> None:
    with live.client() as http:
        alerts = {m: http.get(f"/v1/models/{m}/alerts", params={"state": "open"}).json()
                  for m in ("router", "fraud", "price")}
        # the same row sent to another model is refused by that model's columns
        wrong = http.post("/v1/models/price/predictions", json=_rows("router")[0][:3])
    assert [a["segment"] for a in alerts["fraud"] if a["kind"] == "performance"] == [
        {"country": NASTY}]
    assert alerts["router"] == [] and alerts["price"] == []
    assert wrong.status_code == 422 and "listing" in wrong.json()["error"]
    for model in ("router", "fraud", "price"):
        store = Path(workspace.store) / "models" / model
        assert any((store / "predictions").rglob("*.parquet")), model


def test_the_alert_of_one_model_shows_on_its_page_and_not_on_the_others(
        live: Served) -> None:
    with live.client() as http:
        pages = {m: http.get(f"/models/{m}/").text for m in ("router", "fraud", "price")}
        key = http.get("/v1/models/fraud/alerts", params={"state": "open"}).json()[0]["key"]
        alert = http.get("/models/fraud/alert", params={"key": key})
        elsewhere = http.get("/models/router/alert", params={"key": key})
    assert "/models/fraud/alert?key=" in pages["fraud"] and "CH &amp; &lt;li&gt;" in pages[
        "fraud"]
    for other in ("router", "price"):
        assert "/alert?key=" not in pages[other] and "None." in pages[other]
    assert NASTY not in pages["fraud"]  # escaped everywhere, chart data included
    assert alert.status_code == 200 and elsewhere.status_code == 404
    # every link of a model's page stays within the model, the date range carried
    links = [part.split('"')[0] for part in alert.text.split('href="')[1:]]
    inside = [link for link in links if link != "/" and not link.startswith("/static")]
    assert inside and all(link.startswith("/models/fraud/") for link in inside), inside


def test_a_model_only_token_opens_its_model_and_nothing_else(live: Served) -> None:
    with live.client(FRAUD_ONLY) as http:
        assert http.get("/v1/models/fraud/alerts").status_code == 200
        refused = http.post("/v1/models/router/predictions", json=_rows("router")[0][:1])
        assert refused.status_code == 403 and "fraud" in refused.json()["detail"]
        assert http.get("/v1/models/price/alerts").status_code == 403
        assert http.get("/models/router/").status_code == 403
        assert [m["model"] for m in http.get("/v1/models").json()] == ["fraud"]
        spec = http.get("/openapi.json").json()["paths"]
        exposition = http.get("/metrics").text
    assert "/v1/models/fraud/predictions" in spec and "/v1/models/router/labels" not in spec
    models = {s.labels["model"] for f in text_string_to_metric_families(exposition)
              for s in f.samples}
    assert models == {"fraud"}
    with live.client(None) as http:
        assert http.get("/v1/models/fraud/alerts").status_code == 401
        assert http.get("/metrics").status_code == 401


def test_a_session_opened_with_a_model_only_token_sees_that_model_alone(
        live: Served) -> None:
    with httpx.Client(base_url=live.url) as http:
        answer = http.post("/signin", data={"token": FRAUD_ONLY, "next": "/"})
        assert answer.status_code == 303 and COOKIE in answer.cookies
        browser = {"Accept": "text/html"}
        listing = http.get("/", headers=browser)
        fraud = http.get("/models/fraud/drift", headers=browser)
        router = http.get("/models/router/", headers=browser)
        api = http.get("/v1/models/fraud/alerts")  # a session never opens the API
    assert listing.status_code == 200
    assert 'data-model="fraud"' in listing.text and 'data-model="router"' not in listing.text
    assert "legacy" not in listing.text  # a broken model's reason is the workspace's
    assert fraud.status_code == 200 and router.status_code == 403
    assert api.status_code == 401


def test_unknown_and_broken_models_are_answered_by_name(live: Served) -> None:
    with live.client() as http:
        unknown = http.post("/v1/models/pricing/predictions", json=[])
        page = http.get("/models/pricing/")
        broken = http.post("/v1/models/legacy/predictions", json=[])
        listing = http.get("/v1/models").json()
        served = http.get("/v1/models/router/alerts")
    assert unknown.status_code == 404 and page.status_code == 404
    assert "no model 'pricing'" in unknown.json()["detail"]
    assert "router, fraud, price" in unknown.json()["detail"]
    assert broken.status_code == 503
    assert "legacy" in broken.json()["detail"] and "columns.id" in broken.json()["detail"]
    assert [(m["model"], m["status"]) for m in listing] == [
        ("router", "ok"), ("fraud", "ok"), ("price", "ok"), ("legacy", "broken")]
    assert served.status_code == 200


def test_one_registry_shows_each_models_series_once(live: Served) -> None:
    with live.client() as http:
        exposition = http.get("/metrics").text
    # one family each, every model inside it (the parser would merge a repeated family:
    # Prometheus refuses it, so count the text's own headers)
    helps = [line.split()[2] for line in exposition.splitlines() if line.startswith("# HELP")]
    assert helps and len(helps) == len(set(helps))
    families = list(text_string_to_metric_families(exposition))
    series = [(s.name, tuple(sorted(s.labels.items()))) for f in families for s in f.samples]
    assert len(series) == len(set(series))
    by_name = {f.name: f for f in families}
    for family in families:
        for sample in family.samples:
            assert "model" in sample.labels, sample
    up = {s.labels["model"]: s.value for s in by_name["hindsight_model_up"].samples}
    assert up == {"router": 1, "fraud": 1, "price": 1, "legacy": 0}
    headline = {(s.labels["model"], s.labels["metric"])
                for s in by_name["hindsight_metric"].samples}
    assert headline == {("router", "accuracy"), ("fraud", "accuracy"), ("price", "mae")}
    ingested = [(s.labels["model"], s.labels["table"]) for s in
                by_name["hindsight_ingested_rows"].samples if s.name.endswith("_total")]
    assert sorted(ingested) == sorted(set(ingested))
    assert {m for m, _ in ingested} == {"router", "fraud", "price"}
    alerted = {s.labels["model"] for s in by_name["hindsight_alerted_segment_value"].samples}
    assert alerted == {"fraud"}


def test_requests_to_models_not_served_add_no_series(live: Served) -> None:
    with live.client() as http:
        before = _series(http.get("/metrics").text)
        for i in range(40):
            http.post(f"/v1/models/m{i}/predictions", json=[{"x": i}])
            http.post("/v1/models/legacy/labels", json=[{"x": i}])
        after = _series(http.get("/metrics").text)
    assert {labels["model"] for _, labels, _ in after} == {"router", "fraud", "price", "legacy"}
    assert len(after) == len(before)


def test_segment_values_and_query_strings_are_escaped_on_every_page_of_a_model(
        live: Served) -> None:
    from urllib.parse import quote

    hostile = "<script>alert(1)</script>"
    with live.client() as http:
        key = http.get("/v1/models/fraud/alerts", params={"state": "open"}).json()[0]["key"]
        paths = ["/", f"/alert?key={quote(key)}", "/segments?column=country",
                 f"/segments?column=country&within={quote('country=' + NASTY)}",
                 "/drift", "/drift?feature=amount", "/coverage", "/versions",
                 f"/segments?column={quote(hostile)}", f"/drift?feature={quote(hostile)}",
                 f"/coverage?rows={quote(hostile)}"]
        answers = {path: http.get(f"/models/fraud{path}") for path in paths}
    for path, answer in answers.items():
        assert answer.status_code in (200, 400, 404, 422), (path, answer.status_code)
        assert NASTY not in answer.text and hostile not in answer.text, path
    assert "CH &amp; &lt;li&gt;" in answers["/segments?column=country"].text


def test_the_model_list_in_chromium(live: Served, tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live.url + "/")
        assert page.url.startswith(live.url + "/signin")
        page.fill("input[name=token]", TEAM)
        page.click("button[type=submit]")
        page.wait_for_url(live.url + "/")
        rows = {page.locator("#models tr[data-model]").nth(i).get_attribute("data-model"):
                page.locator("#models tr[data-model]").nth(i).inner_text()
                for i in range(page.locator("#models tr[data-model]").count())}
        assert list(rows) == ["router", "fraud", "price", "legacy"]
        assert "accuracy 0.95" in rows["router"] and "mae" in rows["price"]
        assert "100%" in rows["fraud"] and str(RUN) in rows["fraud"]
        assert "performance" in rows["fraud"] and "performance" not in rows["router"]
        assert "not served" in rows["legacy"] and "columns.id" in rows["legacy"]
        page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
        page.click("#models tr[data-model=fraud] a")
        page.wait_for_url(live.url + "/models/fraud/")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert NASTY in page.inner_text("#open-alerts")  # shown as text, not markup
        page.click("nav a:has-text('Segments')")
        page.wait_for_url(live.url + "/models/fraud/segments")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.click("#models-link")
        page.wait_for_url(live.url + "/")
        page.click("#models tr[data-model=router] a")
        page.wait_for_url(live.url + "/models/router/")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        assert page.locator("#open-alerts").count() == 0
        assert "Open alerts after the run of" in page.inner_text("main")
        assert "None." in page.inner_text("main") and NASTY not in page.inner_text("main")
        browser.close()
    assert errors == []
    assert (tmp_path / "models.png").stat().st_size > 10_000


def test_one_broken_model_is_reported_while_the_other_two_serve(tmp_path: Path) -> None:
    file = write_workspace(tmp_path, {"router": ROUTER, "fraud": FRAUD,
                                      "price": {"include": "models/price.yaml"}})
    (tmp_path / "models" / "price.yaml").write_text("columns: [unclosed\n", encoding="utf-8")
    workspace = load_workspace(file)
    assert list(workspace.broken) == ["price"]
    served = Served(create_workspace_app(workspace, keys_of(workspace, TEAM_TOKEN=TEAM)))
    try:
        with served.client() as http:
            for model in ("router", "fraud"):
                answer = http.post(f"/v1/models/{model}/predictions",
                                   json=_rows(model)[0][:50])
                assert answer.json()["stored"] == 50, answer.text
            refused = http.post("/v1/models/price/predictions", json=_rows("price")[0][:5])
            listing = http.get("/").text
    finally:
        served.stop()
    assert refused.status_code == 503 and "not valid YAML" in refused.json()["detail"]
    assert "price.yaml" in refused.json()["detail"]
    assert 'data-model="price"' in listing and "not valid YAML" in listing
    assert listing.count("no run yet") == 2


def test_a_one_model_workspace_answers_at_the_root_too(tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(tmp_path, {"router": ROUTER}))
    served = Served(create_workspace_app(workspace, keys_of(workspace)))
    try:
        with served.client(None) as http:
            rows = _rows("router")[0]
            assert http.post("/v1/predictions", json=rows[:10]).json()["stored"] == 10
            assert http.post("/v1/models/router/predictions",
                             json=rows[10:20]).json()["stored"] == 10
            root, inside = http.get("/"), http.get("/models/router/")
    finally:
        served.stop()
    assert root.status_code == inside.status_code == 200
    assert "Models</a>" not in root.text  # no list to go back to
    assert 'href="/segments' in root.text and 'href="/models/router/segments' in inside.text


def test_a_one_model_workspace_whose_model_is_broken_says_why_at_the_root(
        tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(tmp_path, {"legacy": {"columns": {"id": "i"}}}))
    served = Served(create_workspace_app(workspace, keys_of(workspace, TEAM_TOKEN=TEAM)))
    try:
        with served.client() as http:
            root = http.post("/v1/predictions", json=[])
            inside = http.post("/v1/models/legacy/predictions", json=[])
            listing = http.get("/")
    finally:
        served.stop()
    assert root.status_code == inside.status_code == 503
    assert root.json() == inside.json() and "columns.timestamp" in root.json()["detail"]
    assert 'data-model="legacy"' in listing.text and "columns.timestamp" in listing.text


def test_models_without_a_token_while_others_have_one_are_refused(tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(tmp_path, {"router": ROUTER, "fraud": FRAUD}))
    with pytest.raises(Exception, match=r"TEAM_TOKEN.*router would be opened by no token"):
        keys_of(workspace, FRAUD_TOKEN=FRAUD_ONLY)


def test_serving_only_one_model_of_a_workspace(workspace: Workspace) -> None:
    from hindsight.errors import ConfigError

    keys = keys_of(workspace, TEAM_TOKEN=TEAM)
    with pytest.raises(ConfigError, match=r"models\.legacy.*columns\.id"):
        create_workspace_app(workspace, keys, only="legacy")
    with pytest.raises(ConfigError, match="has no model 'pricing'"):
        create_workspace_app(workspace, keys, only="pricing")
    served = Served(create_workspace_app(workspace, keys, only="price"))
    try:
        with served.client() as http:
            root = http.get("/v1/alerts")
            inside = http.get("/v1/models/price/alerts")
            other = http.get("/v1/models/router/alerts")
            listing = http.get("/v1/models").json()
    finally:
        served.stop()
    assert root.status_code == inside.status_code == 200
    assert other.status_code == 404 and "its models: price" in other.json()["detail"]
    assert listing == [{"model": "price", "status": "ok", "error": None}]


def test_a_model_served_alone_needs_only_its_own_token(tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(tmp_path, {"router": ROUTER, "fraud": FRAUD}))
    with pytest.raises(Exception, match="router would be opened by no token"):
        keys_of(workspace, FRAUD_TOKEN=FRAUD_ONLY)
    keys = Keys.of(workspace, {"FRAUD_TOKEN": FRAUD_ONLY}.get, only="fraud")
    assert keys.scope_of(FRAUD_ONLY) == Scope(frozenset({"fraud"}))
    # serving router alone, fraud's token opens nothing: no token at all, loopback only
    assert not Keys.of(workspace, {"FRAUD_TOKEN": FRAUD_ONLY}.get, only="router").required


def test_serve_model_serves_one_model_of_a_workspace(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import subprocess
    import sys

    from hindsight.cli import main

    file = write_workspace(tmp_path, {"router": ROUTER, "fraud": FRAUD,
                                      "legacy": {"columns": {"id": "i"}}})
    assert main(["--config", str(file), "serve", "--model", "legacy", "--port", "0"]) != 0
    assert "models.legacy" in capsys.readouterr().err
    assert main(["--config", str(file), "serve", "--model", "pricing", "--port", "0"]) != 0
    assert "no model 'pricing'; its models: router, fraud, legacy" in capsys.readouterr().err
    env = {**os.environ, "FRAUD_TOKEN": FRAUD_ONLY, "PYTHONPATH": os.getcwd()}
    env.pop("TEAM_TOKEN", None)
    with subprocess.Popen([sys.executable, "-m", "hindsight.cli", "--config", str(file),
                           "serve", "--model", "fraud", "--port", "0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=tmp_path) as serving:
        try:
            assert serving.stdout is not None
            line = serving.stdout.readline()
            address = line.split()[2]
            assert "bearer token required" in line, line
            fraud = {"Authorization": f"Bearer {FRAUD_ONLY}"}
            stored = httpx.post(address + "/v1/predictions", headers=fraud,
                                json=_rows("fraud")[0][:5]).json()
            inside = httpx.get(address + "/v1/models/fraud/alerts", headers=fraud)
            router = httpx.get(address + "/v1/models/router/alerts", headers=fraud)
            listing = httpx.get(address + "/v1/models", headers=fraud).json()
        finally:
            serving.terminate()
            _, errors = serving.communicate(timeout=60)
    assert stored["stored"] == 5 and inside.status_code == 200
    assert router.status_code == 404 and "its models: fraud" in router.json()["detail"]
    assert listing == [{"model": "fraud", "status": "ok", "error": None}]
    assert "legacy" not in errors  # the models not served are not reported


def _fed_and_run(workspace: Workspace, rows_of: dict[str, str]) -> None:
    """Each model given its rows and labels (``rows_of``: model -> whose rows), then run."""
    for model, rows in rows_of.items():
        predictions, labels = _rows(rows)
        with Monitor(workspace.config(model)) as monitor:
            monitor.log_predictions(predictions)
            monitor.log_labels(labels)
            monitor.run(RUN)


def _series(exposition: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(exposition)
            for s in f.samples]


def test_metrics_series_do_not_grow_with_a_models_segment_values(tmp_path: Path) -> None:
    """Two regressions alike but for their cities: 2 against 300. Per-segment series exist
    only for cells with an open alert, so each exports as many series as the other."""
    workspace = load_workspace(write_workspace(tmp_path, {
        "price": {"include": "models/price.yaml"},
        "wide": {"include": "models/price.yaml"}}))
    _fed_and_run(workspace, {"price": "price"})
    predictions, labels = _rows("price")
    with Monitor(workspace.config("wide")) as monitor:
        monitor.log_predictions([{**r, "city": f"c{i % 300}"}
                                 for i, r in enumerate(predictions)])
        monitor.log_labels(labels)
        monitor.run(RUN)
        _, cells = monitor.metrics(date(2026, 1, 10))
        assert len({m.segment["city"] for m in cells if "city" in m.segment}) == 80
    served = Served(create_workspace_app(workspace, keys_of(workspace)))
    try:
        with served.client(None) as http:
            series = _series(http.get("/metrics").text)
    finally:
        served.stop()
    per_model = {m: [(n, {k: v for k, v in labels.items() if k != "model"})
                     for n, labels, _ in series if labels["model"] == m]
                 for m in ("price", "wide")}
    assert per_model["price"] and per_model["price"] == per_model["wide"]
    assert not any("segment" in labels for _, labels, _ in series)


def test_a_model_whose_store_cannot_be_read_is_shown_with_why_and_the_other_serves(
        tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(
        tmp_path, {"router": ROUTER, "price": {"include": "models/price.yaml"}}))
    _fed_and_run(workspace, {"router": "router", "price": "price"})
    for run in (Path(workspace.store) / "models" / "price" / "runs").rglob("*.parquet"):
        run.write_bytes(b"not parquet")
    served = Served(create_workspace_app(workspace, keys_of(workspace)))
    try:
        with served.client(None) as http:
            listing = http.get("/").text
            stored = http.post("/v1/models/router/predictions",
                               json=[{**r, "ticket": f"new-{r['ticket']}"}
                                     for r in _rows("router")[0][:5]]).json()
            router_page = http.get("/models/router/")
            series = _series(http.get("/metrics").text)
    finally:
        served.stop()
    price_row = listing.split('data-model="price"')[1].split("</tr>")[0]
    router_row = listing.split('data-model="router"')[1].split("</tr>")[0]
    assert "its store could not be read" in price_row and "runs" in price_row
    assert "accuracy 0.950" in router_row and str(RUN) in router_row
    assert stored["stored"] == 5 and router_page.status_code == 200
    up = {labels["model"]: value for name, labels, value in series
          if name == "hindsight_model_up"}
    assert up == {"router": 1, "price": 0}
    values = {(n, labels["model"]) for n, labels, _ in series}
    assert ("hindsight_metric", "router") in values
    assert ("hindsight_metric", "price") not in values


def test_user_strings_on_the_model_list_are_escaped(tmp_path: Path) -> None:
    hostile = '"><img src=x onerror=alert(1)>'
    file = write_workspace(tmp_path, {"router": ROUTER, hostile: PRICE,
                                      "odd": {"include": "models/odd.yaml"}})
    (tmp_path / "models" / "odd.yaml").write_text("columns: {id: '<script>x</script>'\n",
                                                  encoding="utf-8")
    workspace = load_workspace(file)
    assert set(workspace.broken) == {hostile, "odd"}
    served = Served(create_workspace_app(workspace, keys_of(workspace)))
    try:
        with served.client(None) as http:
            listing = http.get("/").text
            models = http.get("/v1/models").json()
    finally:
        served.stop()
    assert "<img src=x" not in listing and "<script>x" not in listing
    assert 'data-model="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in listing
    assert "&lt;script&gt;" in listing  # the YAML error quotes the file
    assert [m["model"] for m in models] == ["router", hostile, "odd"]


def test_a_single_models_config_is_served_at_the_root_only(tmp_path: Path) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text(yaml.safe_dump({"model": "price", "store": "data", "min_samples": 20,
                                      **PRICE}), encoding="utf-8")
    workspace = load_workspace(config)
    _fed_and_run(workspace, {"price": "price"})
    served = Served(create_workspace_app(workspace, keys_of(workspace)))
    try:
        with served.client(None) as http:
            stored = http.post("/v1/labels", json=_rows("price")[1][:5]).json()
            alerts = http.get("/v1/alerts")
            overview = http.get("/")
            nested = http.get("/v1/models/price/alerts")
            series = _series(http.get("/metrics").text)
    finally:
        served.stop()
    assert stored["rows"] == 5 and alerts.status_code == 200
    assert overview.status_code == 200 and 'id="models"' not in overview.text
    assert "Models</a>" not in overview.text and 'href="/segments' in overview.text
    assert nested.status_code == 404
    assert {labels["model"] for _, labels, _ in series} == {"price"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_intra_day_checks_run_for_every_model_that_has_them_and_one_failing_stops_none(
        tmp_path: Path) -> None:
    drift = {"drift": {"every": "1h"}}
    file = write_workspace(tmp_path, {"router": {**ROUTER, **drift},
                                      "fraud": {**FRAUD, **drift}, "price": PRICE})
    workspace = load_workspace(file)
    for model in ("router", "fraud"):
        rows, labels = _rows(model)
        truth = {next(iter(r.values())): r for r in labels}
        with Monitor(workspace.config(model)) as monitor:
            label = workspace.config(model).columns.label
            monitor.log_reference([{**r, label: truth[next(iter(r.values()))][label]}
                                   for r in rows[:400]])
    # fraud's reference set cannot be read: its checks fail, router's go on
    for broken in (Path(workspace.store) / "models" / "fraud").rglob("*.parquet"):
        broken.write_bytes(b"not parquet")
    clock = Clock(datetime(2026, 1, 3, 0, 0, tzinfo=UTC))
    app = create_workspace_app(workspace, keys_of(workspace), clock=clock)
    served = Served(app)
    try:
        watches = {n: m.watch for n, m in app.state.served.items()}
        assert watches["price"] is None and watches["router"] and watches["fraud"]
        at = datetime(2026, 1, 3, 1, 0, tzinfo=UTC)
        clock.now = at + timedelta(seconds=31)
        for watch in (watches["router"], watches["fraud"]):
            watch.poke()
        assert watches["router"].wait_for(at, timeout=120)
        _wait(lambda: watches["fraud"].failures > 0)
        with served.client(None) as http:
            exposition = http.get("/metrics").text
            assert http.get("/models/router/").status_code == 200
    finally:
        served.stop()
    gauges = {(s.name, s.labels.get("model")): s.value
              for f in text_string_to_metric_families(exposition) for s in f.samples}
    assert gauges[("hindsight_drift_check_timestamp_seconds", "router")] == at.timestamp()
    assert gauges[("hindsight_drift_check_failures", "fraud")] >= 1
    assert gauges[("hindsight_drift_check_failures", "router")] == 0
    assert ("hindsight_drift_check_failures", "price") not in gauges


def _wait(check: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"


def test_every_grafana_panel_selects_by_model_and_reads_series_the_service_exports(
        live: Served) -> None:
    import json
    import re

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "model"]
    assert variable["multi"] and variable["includeAll"]
    with live.client() as http:
        exported = {s.name for f in text_string_to_metric_families(http.get("/metrics").text)
                    for s in f.samples}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) == len(dashboard["panels"]) >= 8
    for expr in exprs:
        names = re.findall(r"\b(hindsight_[a-z_]+)(\{[^}]*\})?", expr)
        assert names, expr
        for name, selector in names:
            assert selector == '{model=~"$model"}', expr
            assert name in exported, f"{expr}: {name} is not exported"


def test_the_workspace_spec_documents_each_model_with_its_own_columns(live: Served) -> None:
    with live.client() as http:
        spec = http.get("/openapi.json").json()
    paths = spec["paths"]

    def columns(model: str) -> set[str]:
        body = paths[f"/v1/models/{model}/predictions"]["post"]["requestBody"]
        schema = body["content"]["application/json"]["schema"]["items"]
        return set(schema["properties"])

    assert {"ticket", "queue", "language"} <= columns("router")
    assert {"txn", "flagged", "p", "country"} <= columns("fraud")
    assert {"listing", "price_hat", "city"} <= columns("price")
    post = paths["/v1/models/fraud/predictions"]["post"]
    assert {"200", "401", "403", "413", "422", "429", "503"} <= set(post["responses"])
    assert post["tags"] == ["fraud"]
    assert {"/models/fraud/", "/models/fraud/segments", "/v1/models/price/alerts",
            "/v1/models", "/metrics", "/", "/healthz"} <= set(paths)
    assert not any("legacy" in path or "{model}" in path for path in paths)


def test_the_date_range_is_carried_within_a_models_pages(live: Served) -> None:
    with live.client() as http:
        page = http.get("/models/price/", params={"from": "2026-01-05", "to": "2026-01-12"})
    assert 'href="/models/price/segments?from=2026-01-05&amp;to=2026-01-12"' in page.text
    assert 'href="/models/price/drift?from=2026-01-05&amp;to=2026-01-12"' in page.text
    assert 'action="/models/price/"' in page.text


def test_each_model_compacts_its_own_small_files_in_the_background(tmp_path: Path) -> None:
    workspace = load_workspace(write_workspace(
        tmp_path, {"router": ROUTER, "price": {"include": "models/price.yaml"}},
        service={"compact_every_writes": 3}))
    app = create_workspace_app(workspace, keys_of(workspace))
    served = Served(app)
    try:
        with served.client(None) as http:
            for model in ("router", "price"):
                rows = _rows(model)[0][:30]
                for start in range(0, 30, 10):
                    assert http.post(f"/v1/models/{model}/predictions",
                                     json=rows[start:start + 10]).status_code == 200
            for model in app.state.served.values():
                model.compactor.wait(timeout=120)
            exposition = http.get("/metrics").text
    finally:
        served.stop()
    merged = {s.labels["model"]: s.value for f in text_string_to_metric_families(exposition)
              if f.name == "hindsight_compacted_files" for s in f.samples
              if s.name.endswith("_total")}
    assert merged["router"] >= 2 and merged["price"] >= 2


def test_serve_serves_a_workspace(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    file = write_workspace(tmp_path, {"router": ROUTER, "fraud": FRAUD,
                                      "legacy": {"columns": {"id": "i"}}})
    env = {**os.environ, "TEAM_TOKEN": TEAM, "FRAUD_TOKEN": FRAUD_ONLY,
           "PYTHONPATH": os.getcwd()}
    with subprocess.Popen([sys.executable, "-m", "hindsight.cli", "--config", str(file),
                           "serve", "--port", "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) as serving:
        try:
            assert serving.stdout is not None
            line = serving.stdout.readline()
            address = line.split()[2]
            assert "bearer token required" in line
            team = {"Authorization": f"Bearer {TEAM}"}
            listing = httpx.get(address + "/v1/models", headers=team).json()
            fraud_only = httpx.get(address + "/v1/models/router/alerts",
                                   headers={"Authorization": f"Bearer {FRAUD_ONLY}"})
        finally:
            serving.terminate()
            _, errors = serving.communicate(timeout=60)
    assert [(m["model"], m["status"]) for m in listing] == [
        ("router", "ok"), ("fraud", "ok"), ("legacy", "broken")]
    assert fraud_only.status_code == 403
    assert "Model legacy is not served" in errors


@pytest.mark.slow
def test_every_answer_of_the_workspace_is_one_its_spec_promises(live: Served) -> None:
    """Last in the module: it writes generated rows into the models."""
    from tests.service.test_openapi import operations_answer_as_promised

    tested = operations_answer_as_promised(live.url, TEAM, examples=8)
    assert len(tested) >= 3 * 9 + 3, tested
