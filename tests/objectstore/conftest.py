"""S3-compatible servers on 127.0.0.1 for the object-store tests, started by the tests: moto's
server mode and Ceph's radosgw (Debian's packages, installed by ``.ci/run``)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ACCESS_KEY, SECRET_KEY = "hindsight-test", "hindsight-test-secret"
# No client may probe an instance-metadata address or a real account. radosgw (Ceph 16)
# refuses the checksums newer AWS SDKs send by default: only when required.
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


@pytest.fixture(scope="session", params=["moto", "radosgw"])
def s3_endpoint(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint of a running S3 server; the environment points every client at it."""
    start = _moto if request.param == "moto" else _radosgw
    with start(tmp_path_factory.mktemp(request.param)) as endpoint, pointed_at(endpoint):
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A new, empty bucket: ``s3://name``."""
    return new_bucket(s3_endpoint, "hindsight")


@contextmanager
def pointed_at(endpoint: str) -> Iterator[None]:
    """Every S3 client of this process pointed at ``endpoint`` with the test's keys, and the
    environment as it was afterwards."""
    saved = {key: os.environ.get(key) for key in [*ENVIRONMENT, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def new_bucket(endpoint: str, prefix: str) -> str:
    """A new, empty bucket on the server at ``endpoint``: ``s3://<prefix>-<random>``."""
    import boto3

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                 aws_secret_access_key=SECRET_KEY,
                 region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


class _AtomicConditionalWrites:
    """moto's application with conditional writes (``If-None-Match``, ``If-Match``) made one
    at a time, as S3 makes them: moto checks the condition and writes in two steps, so two
    writers racing for one key could both be told they created it."""

    def __init__(self, app: Any) -> None:
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] not in ("PUT", "POST") or not (
                "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))


@contextmanager
def _moto(directory: Path) -> Iterator[str]:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    app = _AtomicConditionalWrites(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join()


@contextmanager
def _radosgw(directory: Path) -> Iterator[str]:
    missing = [t for t in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin")
               if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: .ci/run installs Debian's radosgw, "
                    "ceph-mon and ceph-osd (apt-get install radosgw ceph-mon ceph-osd)")
    port, monitor_port = _free_port(), _free_port()
    cluster = directory / "ceph"
    try:
        started = subprocess.run([str(HERE / "ceph.sh"), str(cluster), str(port),
                                  str(monitor_port)], capture_output=True, text=True,
                                 timeout=300, check=False)
        if started.returncode:
            logs = "".join(f"\n--- {log.name}\n" + log.read_text()[-2000:]
                           for log in sorted((cluster / "log").glob("*.log")))
            pytest.fail(f"ceph.sh failed ({started.returncode}): {started.stderr}{logs}")
        endpoint = f"http://127.0.0.1:{port}"
        _wait_for_http(endpoint, deadline=time.monotonic() + 300)
        subprocess.run(["radosgw-admin", "-c", str(cluster / "ceph.conf"), "user", "create",
                        "--uid=hindsight", "--display-name=hindsight",
                        f"--access-key={ACCESS_KEY}", f"--secret={SECRET_KEY}"],
                       check=True, capture_output=True, timeout=300)
        yield endpoint
    finally:
        for pid_file in (cluster / "run").glob("*.pid"):
            with suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_http(url: str, deadline: float) -> None:
    import httpx

    while True:
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
