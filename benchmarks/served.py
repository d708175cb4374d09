"""``hindsight serve`` as its own process on a free loopback port, for the load benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVE = ["-m", "hindsight.cli"]


def serve(config: Path, entry: list[str] = SERVE) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server (``entry``: how the interpreter runs the CLI) and wait until it
    answers /healthz. Without a token: it binds to loopback only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HINDSIGHT_TOKEN"}
    process = subprocess.Popen([sys.executable, *entry, "--config", str(config), "serve",
                                "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hindsight serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("hindsight serve did not answer /healthz within 120 s")
