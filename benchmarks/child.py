"""A measurement in a fresh interpreter of its own (so its time and peak memory are its own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def in_own_process(script: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``script`` with ``args`` and return what it printed. When it fails, stop with its
    error output: captured for the figures, it would otherwise be lost with the failure."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        raise SystemExit(f"{Path(script).name} {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stdout}\n{done.stderr}")
    return done.stdout
