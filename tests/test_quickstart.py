"""The README's quick start works as written, for a user with data of their own.

Its shell and YAML blocks are run in order in an empty folder: the example files it makes (with
other column names and segment values than the simulator's), the config, the log, the reference,
the backfill, the alerts and the dashboard.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hindsight.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- --8<-- [start:quickstart] -->", "<!-- --8<-- [end:quickstart] -->"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def quickstart_blocks() -> list[tuple[str, str]]:
    """The fenced blocks between the quick start's markers: (language, text), in order."""
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README.md lost the quick start's markers"
    section = text.split(START, 1)[1].split(END, 1)[0]
    return [(m[1], m[2]) for m in FENCE.finditer(section)]


def test_the_quick_start_has_a_config_and_the_commands_from_log_to_dashboard() -> None:
    blocks = quickstart_blocks()
    shell = "\n".join(text for kind, text in blocks if kind == "bash")
    for step in ("hindsight log predictions", "hindsight log labels", "hindsight reference",
                 "hindsight backfill", "hindsight alerts", "hindsight serve"):
        assert step in shell
    configs = [text for kind, text in blocks if kind == "yaml"]
    assert len(configs) == 1
    parse_config(yaml.safe_load(configs[0]))


def test_the_readme_links_only_to_files_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README points into the documentation"
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_the_annotated_config_in_the_reference_is_a_valid_config() -> None:
    page = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
    annotated = [m[2] for m in FENCE.finditer(page) if m[1] == "yaml"]
    assert len(annotated) == 2  # the minimal one and the one with every section
    for text in annotated:
        parse_config(yaml.safe_load(text))


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """``hindsight`` and ``python3`` on PATH as this checkout's, without a token."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, target in [("hindsight", f'"{sys.executable}" -m hindsight.cli'),
                         ("python3", f'"{sys.executable}"')]:
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("HINDSIGHT_TOKEN", "HINDSIGHT_CONFIG")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serving() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=60)


def _serve(command: str, folder: Path, env: dict[str, str],
           started: list[subprocess.Popen[bytes]]) -> str:
    """Start the dashboard block's server on a free port; its overview page once it answers."""
    port = _free_port()
    command = command.replace("--port 8080", f"--port {port}")
    process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=folder, env=env,
                               stderr=subprocess.DEVNULL)
    started.append(process)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until it answers, however busy the machine
        assert process.poll() is None, "hindsight serve exited during start-up"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                page = httpx.get(f"{url}/", timeout=60)
                assert page.status_code == 200
                return page.text
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("hindsight serve did not answer")


@pytest.mark.slow
def test_the_quick_start_reaches_a_first_alert_and_the_dashboard_on_data_of_its_own(
        tmp_path: Path, shell_env: dict[str, str],
        serving: list[subprocess.Popen[bytes]]) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    outputs: list[str] = []
    overview = ""
    for kind, text in quickstart_blocks():
        if kind == "yaml":
            (folder / "hindsight.yaml").write_text(text, encoding="utf-8")
        elif text.startswith("hindsight serve"):
            overview = _serve(text.strip(), folder, shell_env, serving)
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=folder,
                                  env=shell_env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{text}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
    assert sorted(p.name for p in folder.glob("*.csv")) == [
        "labels.csv", "predictions.csv", "validation.csv"]
    alerts = outputs[-1]
    assert "performance" in alerts
    assert "channel=app × region=south" in alerts
    assert "region=south" in overview
