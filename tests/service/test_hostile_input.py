"""The service against hostile or unlucky clients: every refusal is a 4xx naming the problem,
nothing is stored, limits hold while the body is still arriving, and the event loop stays free
while writers wait."""

from __future__ import annotations

import gzip
import io
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.service import views
from hindsight.store.partitions import Table
from tests.conftest import prediction
from tests.service.test_app import TOKEN, Server, client


@pytest.fixture
def service_settings() -> dict[str, Any]:
    return {"max_body_bytes": 1 << 20, "write_wait_seconds": 0.2}


def post_raw(server: Server, body: bytes) -> httpx.Response:
    with client(server) as http:
        return http.post("/v1/predictions", content=body,
                         headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("body, named", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'[{"request_id": "\\ud800", "served_at": "2026-01-01T00:00:00Z", "predicted": "a",'
     b' "country": "CH", "tier": "free"}]', "column 'request_id'"),
    (json.dumps([{**prediction(1, 1, "CH", "a"), "request_id": 2**70}]).encode(),
     "column 'request_id' has 1180591620717411303424"),
    (json.dumps([{**prediction(1, 1, "CH", "a"), "amount": 2**70}]).encode(),
     "column 'amount'"),
    (b'[{"request_id": " ", "served_at": "2026-01-01T00:00:00Z", "predicted": "a",'
     b' "country": "CH", "tier": "free"}]', "column 'request_id' is empty"),
    (json.dumps([{**prediction(1, 1, "CH", "a"), "served_at": "0000-01-01T00:00:00Z"}]
                ).encode(), "column 'served_at'"),
])
def test_hostile_bodies_are_refused_with_a_4xx_naming_the_problem(
    server: Server, monitor: Monitor, body: bytes, named: str,
) -> None:
    answer = post_raw(server, body)
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_a_chunked_body_is_refused_at_the_limit_not_after_reading_it_whole(
    server: Server,
) -> None:
    """1 GiB offered in 1 MiB chunks against a 1 MiB limit: the server answers 413 once the
    limit is passed, and the client never gets to send more than a few MiB."""
    address = urlsplit(server.url)
    chunk = b"x" * (1 << 20)
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\n"
                     + f"Authorization: Bearer {TOKEN}\r\n".encode()
                     + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        answer = b""
        for _ in range(1024):
            try:
                conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except OSError:
                break  # the server closed the connection after answering
            sent += len(chunk)
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break
        conn.settimeout(30)
        while b"\r\n\r\n" not in answer:
            piece = conn.recv(65536)
            if not piece:
                break
            answer += piece
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 << 20, f"the client sent {sent >> 20} MiB before the refusal"


def test_a_waiting_writer_gets_429_with_retry_after_and_health_checks_stay_fast(
    server: Server, monitor: Monitor,
) -> None:
    """While another process holds the store's write lock, the request that got the writer
    waits on a worker thread; the other is told 429 after write_wait_seconds, and the event
    loop still answers /healthz at once."""
    answers: list[httpx.Response] = []

    def send(i: int) -> None:
        with client(server) as http:
            answers.append(http.post("/v1/predictions", json=[prediction(i, 1, "CH", "a")]))

    with monitor.store.lock(Table.PREDICTIONS.value):
        writers = [threading.Thread(target=send, args=(i,)) for i in (1, 2)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 60
        while not answers and time.monotonic() < deadline:  # the one without the writer
            time.sleep(0.01)
        assert len(answers) == 1, "neither request was refused while the other waited"
        busy = answers[0]
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
        assert "busy" in busy.json()["error"]
        with httpx.Client(base_url=server.url, timeout=5) as health:
            assert health.get("/healthz").json() == {"status": "ok"}
        assert len(answers) == 1  # the other still waits for the lock
    for writer in writers:
        writer.join(timeout=30)
    assert answers[1].status_code == 200 and answers[1].json()["stored"] == 1


def test_the_schema_is_a_read_like_any_other_and_no_page_loads_from_a_cdn(
    server: Server,
) -> None:
    with client(server, token=None) as http:
        assert http.get("/openapi.json").status_code == 401
        assert http.get("/docs").status_code == 404
        assert http.get("/redoc").status_code == 404
    with client(server) as http:
        assert http.get("/openapi.json").json()["info"]["title"] == "hindsight"


def test_the_bearer_scheme_is_case_insensitive(server: Server) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        with httpx.Client(base_url=server.url,
                          headers={"Authorization": f"{scheme} {TOKEN}"}) as http:
            assert http.get("/v1/alerts").status_code == 200
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Basic {TOKEN}"}) as http:
        assert http.get("/v1/alerts").status_code == 401


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False),
                                            ("::", False)])
def test_ipv6_and_ipv4_loopback_are_recognised(host: str, loopback: bool) -> None:
    from hindsight.cli import _loopback_only

    assert _loopback_only(host) is loopback


def test_segment_values_are_shown_as_text_not_as_live_html_in_charts(monitor: Monitor) -> None:
    link = '<a href="https://evil.example">x</a>'
    rows = [prediction(i, 1 + i % 3, link if i % 2 else "CH", "a") for i in range(60)]
    monitor.log_predictions(rows)
    monitor.log_labels([{"request_id": f"r{i}", "actual": "a",
                         "actual_at": "2026-01-05T00:00:00Z"} for i in range(60)])
    monitor.run(date(2026, 1, 5))
    chart = views.segments(monitor, "country", {}).chart
    assert chart is not None and "&lt;a href" in chart and "<a href" not in chart


ROW = prediction(1, 1, "CH", "a")


def arrow_stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue()


def arrow_with(name: str, values: pa.Array, replace: bool = False) -> bytes:
    table = pa.Table.from_pylist([ROW])
    if replace:
        return arrow_stream(table.set_column(table.schema.get_field_index(name), name, values))
    return arrow_stream(table.append_column(name, values))


ROW_TEXT = json.dumps(ROW)[1:-1].encode()  # the row's fields, without its braces
NDJSON = "application/x-ndjson"


@pytest.mark.parametrize("content_type, body, named", [
    ("application/json", b'[{' + ROW_TEXT + b', "amount": ' + b"7" * 5000 + b"}]",
     "a whole number of 5000 digits"),
    (NDJSON, b'{' + ROW_TEXT + b', "amount": ' + b"7" * 5000 + b"}", "line 1: a whole number"),
    ("application/json", b'[{' + ROW_TEXT + b', "note": "caf\xe9"}]', "is not UTF-8"),
    (NDJSON, b'{' + ROW_TEXT + b', "note": "caf\xe9"}', "line 1: byte"),
    ("application/json", json.dumps([{**ROW, "_hindsight_origin": i} for i in (1, 2)]).encode(),
     "column '_hindsight_origin' is reserved"),
    ("application/vnd.apache.arrow.stream", arrow_with("country", pa.array(["DE"])),
     "the column 'country' appears 2 times"),
    ("application/vnd.apache.arrow.stream",
     arrow_with("gap", pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())),
     "column 'gap' has type month_day_nano_interval"),
    ("application/vnd.apache.arrow.stream",
     arrow_with("served_at", pa.array([2**62], pa.timestamp("s", "UTC")), replace=True),
     "column 'served_at' has 4611686018427387904 s since 1970"),
    ("application/vnd.apache.arrow.stream",
     arrow_with("served_at", pa.array([2**62], pa.date64()), replace=True),
     "column 'served_at' has 4611686018427387904 ms since 1970"),
    ("application/vnd.apache.arrow.stream",
     arrow_with("seen", pa.array([-(2**62)], pa.timestamp("s"))), "column 'seen' has"),
    ("application/vnd.apache.arrow.stream",
     arrow_with("country", pa.array([b"\xff"], pa.binary()).view(pa.string()), replace=True),
     "column 'country' holds text that is not valid UTF-8"),
])
def test_bodies_that_used_to_answer_500_are_refused_with_422_naming_the_column(
    server: Server, monitor: Monitor, content_type: str, body: bytes, named: str,
) -> None:
    with client(server) as http:
        answer = http.post("/v1/predictions", content=body,
                           headers={"Content-Type": content_type})
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_a_gzip_body_is_inflated_and_stored(server: Server, monitor: Monitor) -> None:
    with client(server) as http:
        answer = http.post("/v1/predictions", content=gzip.compress(json.dumps([ROW]).encode()),
                           headers={"Content-Type": "application/json",
                                    "Content-Encoding": "gzip"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1


@pytest.mark.parametrize("encoding, body, status, named", [
    ("gzip", gzip.compress(b"[" + b" " * (4 << 20) + b"]"), 413, "inflates to over the limit"),
    ("gzip", b"not gzip at all", 422, "not valid gzip"),
    ("gzip", gzip.compress(json.dumps([ROW]).encode())[:-12], 422, "cut short"),
    ("br", b"[]", 415, "Content-Encoding 'br'"),
])
def test_a_gzip_bomb_or_an_unknown_encoding_is_refused(
    server: Server, monitor: Monitor, encoding: str, body: bytes, status: int, named: str,
) -> None:
    with client(server) as http:
        answer = http.post("/v1/predictions", content=body,
                           headers={"Content-Type": "application/json",
                                    "Content-Encoding": encoding})
    assert answer.status_code == status, answer.text
    assert named in answer.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


@pytest.fixture
def tight(make_config: Callable[..., Config]) -> Iterator[tuple[Server, Monitor]]:
    """A server that reads one body at a time and lets it decode to 4 MiB at most."""
    config = make_config(service={"max_body_bytes": 1 << 20, "max_decoded_bytes": 4 << 20,
                                  "max_concurrent_bodies": 1, "write_wait_seconds": 0.2})
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        server = Server(monitor, TOKEN)
        yield server, monitor
        server.stop()


def parquet_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@pytest.mark.parametrize("content_type, body", [
    ("application/vnd.apache.parquet", parquet_body(pa.Table.from_pylist(
        [{**prediction(i, 1, "CH", "a"), "note": "x" * 100_000} for i in range(100)]))),
    ("application/vnd.apache.arrow.stream", arrow_stream(pa.Table.from_pylist(
        [{**prediction(i, 1, "CH", "a"), "note": "x" * 100_000} for i in range(100)]).cast(
        pa.schema([*pa.Table.from_pylist([ROW]).schema,
                   pa.field("note", pa.dictionary(pa.int32(), pa.string()))])))),
])
def test_a_small_body_that_decodes_to_more_than_the_limit_is_refused_before_it_is_stored(
    tight: tuple[Server, Monitor], content_type: str, body: bytes,
) -> None:
    """100 rows of one repeated 100 kB value: a few kB on the wire, 10 MB decoded."""
    server, monitor = tight
    assert len(body) < 1 << 20
    with client(server) as http:
        answer = http.post("/v1/predictions", content=body,
                           headers={"Content-Type": content_type})
    assert answer.status_code == 413, answer.text
    assert "service.max_decoded_bytes" in answer.json()["error"]
    assert monitor.store.files(Table.PREDICTIONS) == []


def test_bodies_beyond_the_concurrent_limit_get_503_while_one_is_still_arriving(
    tight: tuple[Server, Monitor],
) -> None:
    server, _ = tight
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as slow:
        slow.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + f"Authorization: Bearer {TOKEN}\r\n".encode()
                     + b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
        with client(server) as http:
            deadline = time.monotonic() + 60
            while True:  # until the server holds the slow body (its reading has begun)
                answer = http.post("/v1/predictions", json=[ROW])
                if answer.status_code != 200 or time.monotonic() > deadline:
                    break
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
    with client(server) as http:  # the slow one gone, bodies are read again
        assert http.post("/v1/predictions", json=[ROW]).status_code == 200


def test_a_row_of_thousands_of_columns_is_typed_in_linear_time(
    make_config: Callable[..., Config],
) -> None:
    """8,000 columns held the writer for a minute (a list of names rebuilt per column)."""
    config = make_config(ingest={"max_columns": 10_000})
    row = {**ROW, **{f"f{i}": float(i) for i in range(8000)}}
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        started = time.perf_counter()
        assert monitor.log_predictions([row]).stored == 1
        assert time.perf_counter() - started < 30
