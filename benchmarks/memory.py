"""The peak memory of this process alone.

``getrusage(RUSAGE_SELF).ru_maxrss`` survives ``exec``: a measurement process started by one
that had used more memory reports its parent's high-water mark. ``VmHWM`` in /proc belongs to
this process's own address space, so each measurement counts only what it used.
"""

from __future__ import annotations

from pathlib import Path


def own_peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory cannot be measured here")
