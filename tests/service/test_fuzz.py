"""Fuzzing every entry: ingest routes in every body format (and gzip), and the file readers.
Whatever arrives, the answer is never a 500 and the process never crashes; whatever is
stored, the next run and ``hindsight check`` read it."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.monitor import Monitor
from tests.service.test_app import TOKEN, Server

NAMES = ["request_id", "served_at", "predicted", "country", "tier", "amount", "dt",
         "_hindsight_file", "Amount", "", "actual"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59", "r1", "CH"]),
)
ROWS = st.lists(st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=4)),
                                VALUES, max_size=8), max_size=6)
FORMATS = ["json", "ndjson", "arrow", "parquet", "raw"]


def good_row(i: int) -> dict[str, Any]:
    return {"request_id": f"g{i}", "served_at": "2026-01-01T00:00:00Z", "predicted": "a",
            "country": "CH", "tier": "free", "amount": 1.0}


def encode(rows: list[dict[str, Any]], kind: str, raw: bytes) -> tuple[bytes, str]:
    if kind == "json":
        return json.dumps(rows).encode(), "application/json"
    if kind == "ndjson":
        return b"\n".join(json.dumps(r).encode() for r in rows), "application/x-ndjson"
    if kind == "raw":
        return raw, "application/json"
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, OverflowError, UnicodeError):
        return raw, "application/vnd.apache.parquet"
    sink = io.BytesIO()
    if kind == "arrow":
        with ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        return sink.getvalue(), "application/vnd.apache.arrow.stream"
    try:
        pq.write_table(table, sink)
    except (pa.ArrowException, ValueError):
        return raw, "application/vnd.apache.parquet"
    return sink.getvalue(), "application/vnd.apache.parquet"


def readable(monitor: Monitor) -> None:
    monitor.run(date(2026, 1, 2))
    assert monitor.check().ok


def fuzz_routes(make_config: Callable[..., Config], examples: int) -> None:
    config = make_config(service={"max_body_bytes": 1 << 20, "write_wait_seconds": 5})
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor:
        server = Server(monitor, TOKEN)
        try:
            with httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as http:

                @settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                @given(rows=ROWS, kind=st.sampled_from(FORMATS), raw=st.binary(max_size=64),
                       zipped=st.booleans(), route=st.sampled_from(["predictions", "labels"]))
                def send(rows: list[dict[str, Any]], kind: str, raw: bytes, zipped: bool,
                         route: str) -> None:
                    body, content_type = encode(rows, kind, raw)
                    headers = {"Content-Type": content_type}
                    if zipped:
                        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
                    answer = http.post(f"/v1/{route}", content=body, headers=headers)
                    assert answer.status_code in (200, 413, 415, 422), answer.text

                send()
                assert http.post("/v1/predictions", json=[good_row(1)]).status_code == 200
        finally:
            server.stop()
        readable(monitor)


def fuzz_files(make_config: Callable[..., Config], examples: int) -> None:
    with Monitor(make_config(), clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as monitor, \
            tempfile.TemporaryDirectory() as scratch:

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(rows=ROWS, suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
               raw=st.binary(max_size=64), use_raw=st.booleans())
        def log(rows: list[dict[str, Any]], suffix: str, raw: bytes, use_raw: bool) -> None:
            file = Path(scratch) / f"batch{suffix}"
            if use_raw or suffix == ".jsonl":
                file.write_bytes(raw if use_raw else
                                 b"\n".join(json.dumps(r).encode() for r in rows))
            else:
                try:
                    table = pa.Table.from_pylist(rows)
                    (pacsv.write_csv if suffix == ".csv" else pq.write_table)(table, str(file))
                except (pa.ArrowException, OverflowError, UnicodeError, ValueError):
                    file.write_bytes(raw)
            with contextlib.suppress(InputError):
                monitor.log_prediction_files([file])

        log()
        readable(monitor)


def test_no_body_in_any_format_gets_a_500_and_what_is_stored_stays_readable(
        make_config: Callable[..., Config]) -> None:
    fuzz_routes(make_config, 40)


def test_no_file_crashes_the_reader_and_what_is_stored_stays_readable(
        make_config: Callable[..., Config]) -> None:
    fuzz_files(make_config, 40)


@pytest.mark.slow
def test_many_more_bodies_and_files_change_nothing_of_that(
        make_config: Callable[..., Config]) -> None:
    fuzz_routes(make_config, 600)
    fuzz_files(make_config, 600)
