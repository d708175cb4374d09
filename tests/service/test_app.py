from __future__ import annotations

import html
import io
import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.service.app import create_app
from hindsight.store.partitions import Table
from tests.conftest import COLUMNS, label, prediction

TOKEN = "s3cret"


class Server:
    """The real app under uvicorn on 127.0.0.1, on a free port."""

    def __init__(self, monitor: Monitor, token: str | None,
                 clock: Callable[[], datetime] | None = None) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.app = create_app(monitor, token, clock)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120  # a busy machine starts slowly
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        self.config_file = ""

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def client(server: Server, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def collapse_rows() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    rows, labels = [], []
    for i in range(1, 1121):
        day, country = 1 + (i - 1) // 80, "CH" if i % 2 else "DE"
        rows.append(prediction(i, day, country, "a"))
        wrong = (i % 40 < 2) or (day > 7 and country == "CH" and i % 40 < 21)
        labels.append(label(i, "b" if wrong else "a", day + 1))
    return rows, labels


def test_ingest_over_http_then_the_run_then_the_alert_in_the_api(
    server: Server, monitor: Monitor,
) -> None:
    rows, labels = collapse_rows()
    with client(server) as http:
        for start in range(0, len(rows), 500):
            answer = http.post("/v1/predictions", json=rows[start:start + 500])
            assert answer.status_code == 200, answer.text
        for start in range(0, len(labels), 600):
            ndjson = "\n".join(json.dumps(r) for r in labels[start:start + 600])
            answer = http.post("/v1/labels", content=ndjson,
                               headers={"Content-Type": "application/x-ndjson"})
            assert answer.json()["stored"] == len(labels[start:start + 600])
        again = http.post("/v1/predictions", json=rows[:500])
        assert again.json() == {"rows": 500, "stored": 0, "already_stored": 500, "orphans": 0,
                                "early": 0, "unpinned": []}
        monitor.run(date(2026, 1, 15))
        found = http.get("/v1/alerts", params={"state": "open"}).json()
        assert {"country": "CH"} in [a["segment"] for a in found]
        exposition = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert families["hindsight_ingested_rows"].samples[0].value >= len(rows)
    open_alerts = {s.labels["kind"]: s.value for s in families["hindsight_open_alerts"].samples}
    assert open_alerts["performance"] >= 1
    segments = [s.labels["segment"] for s in families["hindsight_alerted_segment_value"].samples]
    assert "country=CH" in segments


def test_open_alerts_are_those_open_after_the_latest_run_one_row_each(
    server: Server, monitor: Monitor,
) -> None:
    rows, labels = collapse_rows()
    monitor.log_predictions(rows)
    monitor.log_labels(labels)
    monitor.backfill(date(2026, 1, 10), date(2026, 1, 18))
    with client(server) as http:
        found = http.get("/v1/alerts", params={"state": "open"}).json()
        history = http.get("/v1/alerts").json()
        earlier = http.get("/v1/alerts", params={"state": "open", "end": "2026-01-17"}).json()
        page = http.get("/").text
    keys = [a["key"] for a in found]
    assert found and len(keys) == len(set(keys))
    assert {a["date"] for a in found} == {"2026-01-18"}
    assert len(history) > len(found)  # every run an alert stayed open has its row
    assert {a["date"] for a in earlier} == {"2026-01-17"}
    # the overview lists the same, one entry per incident
    assert page.count("/alert?key=") == len({a["incident"] for a in found})


def test_a_score_sent_as_text_among_numbers_is_a_422_naming_its_row_and_column(
    make_config: Callable[..., Config],
) -> None:
    with Monitor(make_config(columns={**COLUMNS, "score": "confidence"})) as monitor:
        server = Server(monitor, TOKEN)
        try:
            with client(server) as http:
                answer = http.post("/v1/predictions", json=[
                    {**prediction(1, 1, "CH", "a"), "confidence": 0.8},
                    {**prediction(2, 1, "CH", "a"), "confidence": "0.9"}])
        finally:
            server.stop()
    assert answer.status_code == 422
    assert "row 2: column 'confidence' has '0.9' (text)" in answer.json()["error"]


def test_per_class_probabilities_over_http_are_documented_and_checked_by_row_and_column(
    make_config: Callable[..., Config],
) -> None:
    scores = {"a": "p_a", "b": "p_b"}
    with Monitor(make_config(columns={**COLUMNS, "scores": scores})) as monitor:
        server = Server(monitor, TOKEN)
        try:
            with client(server) as http:
                spec = http.get("/openapi.json").json()
                good = http.post("/v1/predictions", json=[
                    {**prediction(1, 1, "CH", "a"), "p_a": 0.8, "p_b": 0.2}])
                bad = http.post("/v1/predictions", json=[
                    {**prediction(2, 1, "CH", "a"), "p_a": 0.8, "p_b": 0.2},
                    {**prediction(3, 1, "CH", "b"), "p_a": 0.1, "p_b": 90.0}])
        finally:
            server.stop()
    body = spec["paths"]["/v1/predictions"]["post"]["requestBody"]
    row = body["content"]["application/json"]["schema"]["items"]
    assert {"p_a", "p_b"} <= set(row["required"])
    assert good.status_code == 200, good.text
    assert bad.status_code == 422
    assert "row 2: column 'p_b' has 90.0, which is not a probability in [0, 1]" in \
        bad.json()["error"]


def arrow_body(table: pa.Table) -> bytes:
    """A table as an Arrow IPC stream, the body of an Arrow ingest request."""
    stream = io.BytesIO()
    with ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    return stream.getvalue()


def test_arrow_and_parquet_bodies_are_accepted(server: Server) -> None:
    table = pa.Table.from_pylist([prediction(i, 1, "CH", "a") for i in range(10)])
    parquet = io.BytesIO()
    pq.write_table(table.slice(0, 5).rename_columns(
        ["request_id", "served_at", "country", "tier", "predicted", "amount"]), parquet)
    with client(server) as http:
        arrow = http.post("/v1/predictions", content=arrow_body(table),
                          headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        assert arrow.json()["stored"] == 10
        again = http.post("/v1/predictions", content=parquet.getvalue(),
                          headers={"Content-Type": "application/vnd.apache.parquet"})
        assert again.json()["already_stored"] == 5


def test_small_writes_are_merged_in_the_background_and_no_row_is_lost_or_doubled(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(service={"compact_every_writes": 5})
    with Monitor(config) as monitor:
        server = Server(monitor, TOKEN)
        try:
            with client(server) as http:
                for r in range(12):
                    batch = [prediction(r * 3 + i, 1 + i, "CH", "a") for i in range(3)]
                    assert http.post("/v1/predictions", json=batch).json()["stored"] == 3
                    if r == 4:  # reads during the first compaction see every row once
                        seen = monitor.engine.stored_predictions(
                            pa.array([f"r{i}" for i in range(15)]))
                        assert seen.num_rows == 15
                server.app.state.compactor.wait(timeout=30)
                exposition = http.get("/metrics").text
        finally:
            server.stop()
        files = monitor.store.files(Table.PREDICTIONS)
        stored = monitor.engine.stored_predictions(pa.array([f"r{i}" for i in range(36)]))
    # 12 writes x 3 days; compactions start after writes 5 and 10 and take in whatever has
    # landed by then: at most the merged file and writes 11 and 12 are left per day
    assert len(files) <= 3 * 3
    assert stored.num_rows == 36 and len(set(stored["id"].to_pylist())) == 36
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    assert families["hindsight_compacted_files"].samples[0].value >= 3 * 5 + 3 * 2


def test_an_unauthenticated_write_gets_401(server: Server) -> None:
    with client(server, token=None) as http:
        assert http.post("/v1/predictions", json=[prediction(1, 1, "CH", "a")]).status_code \
            == 401
    with client(server, token="wrong") as http:
        assert http.get("/v1/alerts").status_code == 401


def test_an_oversize_body_gets_413_and_too_many_rows_too(server: Server) -> None:
    with client(server) as http:
        big = http.post("/v1/predictions", content=b"[" + b" " * 300_000 + b"]",
                        headers={"Content-Type": "application/json"})
        assert big.status_code == 413
        many = http.post("/v1/predictions",
                         json=[prediction(i, 1, "CH", "a") for i in range(1001)])
        assert many.status_code == 413 and "1001 rows" in many.json()["error"]


def test_a_malformed_row_gets_422_naming_it_and_nothing_of_the_batch_is_kept(
    server: Server, monitor: Monitor,
) -> None:
    rows = [prediction(i, 1, "CH", "a") for i in range(5)]
    rows[3]["served_at"] = "not a time"
    with client(server) as http:
        answer = http.post("/v1/predictions", json=rows)
    assert answer.status_code == 422
    assert "row 4: column 'served_at' has 'not a time'" in answer.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_an_object_in_a_feature_column_is_refused_naming_it_and_a_strange_type_gets_415(
    server: Server, monitor: Monitor,
) -> None:
    row = prediction(1, 1, "CH", "a") | {"extra": {"nested": 1}}
    with client(server) as http:
        nested = http.post("/v1/predictions", json=[row])
        assert nested.status_code == 422
        assert "column 'extra' holds objects or lists" in nested.json()["error"]
        odd = http.post("/v1/predictions", content=b"a,b", headers={"Content-Type": "text/csv"})
        assert odd.status_code == 415 and "'text/csv' is not supported" in odd.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_serve_without_a_token_refuses_to_leave_loopback(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from pathlib import Path

    from hindsight.cli import main

    folder = Path(str(tmp_path))
    (folder / "hindsight.yaml").write_text(
        "model: m\nstore: ./s\ncolumns: {id: i, timestamp: t, prediction: p, label: y}\n")
    monkeypatch.delenv("HINDSIGHT_TOKEN", raising=False)
    assert main(["--config", str(folder / "hindsight.yaml"), "serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to serve on 0.0.0.0" in capsys.readouterr().err


def test_one_alert_is_shown_whole_on_its_own_page(server: Server, monitor: Monitor) -> None:
    rows, labels = collapse_rows()
    monitor.log_predictions(rows)
    monitor.log_labels(labels)
    monitor.run(date(2026, 1, 15))
    with client(server) as http:
        alert = http.get("/v1/alerts", params={"state": "open"}).json()[0]
        page = http.get("/alert", params={"key": alert["key"], "date": alert["date"]})
        assert page.status_code == 200
        shown = html.unescape(page.text)
        assert alert["message"].split(":")[0] in shown and alert["key"] in shown
        overview = http.get("/").text
        assert "/alert?key=" in overview
        assert http.get("/alert", params={"key": "nope"}).status_code == 404


def test_the_service_tiers_and_retires_old_days_once_a_day_after_a_compaction(
    make_config: Callable[..., Config], tmp_path: object,
) -> None:
    from pathlib import Path

    cold = Path(str(tmp_path)) / "cold"
    config = make_config(service={"compact_every_writes": 1}, label_window_days=7,
                         alerts={"baseline_days": 3},
                         storage={"hot_days": 10, "cold_store": str(cold),
                                  "delete_after_days": {"predictions": 30}})
    batch = [prediction(i, 1 + i % 31, "CH", "a") for i in range(62)]
    with Monitor(config, clock=lambda: datetime(2026, 1, 20, tzinfo=UTC)) as earlier:
        # stored while January 1 was within retention
        earlier.log_predictions(batch[0::31])
    # the monitor's clock says 2026-02-01: January 1 is past retention, 2..21 go cold
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        server = Server(monitor, TOKEN)
        try:
            with client(server) as http:
                recent = [row for row in batch if row not in batch[0::31]]
                assert http.post("/v1/predictions", json=recent).json()["stored"] == 60
            server.app.state.compactor.wait(timeout=120)
        finally:
            server.stop()
        days = monitor.store.partitions(Table.PREDICTIONS)
        files = monitor.store.files(Table.PREDICTIONS, date(2026, 1, 5), date(2026, 1, 5))
    assert days[0] == date(2026, 1, 2)  # retention: before 2026-01-02 deleted
    assert len(files) == 1 and files[0].path.startswith(str(cold))  # tiered
