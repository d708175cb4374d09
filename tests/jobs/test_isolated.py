"""Work per name in processes of their own: a crash of one ends its own process only."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from hindsight.jobs.isolated import CRASHED, Outcome, run_each


def _work(name: str) -> tuple[int, str]:
    print(f"{name} starts")
    print(f"{name} warns", file=sys.stderr)
    if name == "segfault":
        ctypes.string_at(0)  # a real segmentation fault in native code
    if name == "killed":
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
    if name == "exits":
        os._exit(3)  # ends without a result, as a native library that calls exit() would
    if name == "raises":
        raise ValueError("a bug")
    if name == "fails":
        return 4, "the store needs a repair"
    return 0, f"{name} done in process {os.getpid()}"


def test_each_name_runs_apart_and_a_crash_stops_only_its_own() -> None:
    names = ["a", "segfault", "b", "killed", "exits", "raises", "fails", "c"]
    seen: list[str] = []
    outcomes = run_each(names, _work, jobs=2, finished=lambda o: seen.append(o.name))
    assert seen == names == [o.name for o in outcomes]  # reported in order
    by = {o.name: o for o in outcomes}
    for ok in ("a", "b", "c"):
        assert by[ok].ok and by[ok].stdout == f"{ok} starts\n"
        assert by[ok].stderr == f"{ok} warns\n"
        assert by[ok].detail.startswith(f"{ok} done in process ")
    pids = {by[n].detail.rsplit(" ", 1)[1] for n in ("a", "b", "c")}
    assert len(pids) == 3 and str(os.getpid()) not in pids
    assert by["segfault"].code == CRASHED and by["segfault"].signal == "SIGSEGV"
    assert "killed by SIGSEGV" in by["segfault"].detail
    assert "Fatal Python error: Segmentation fault" in by["segfault"].stderr
    assert by["killed"].crashed and by["killed"].signal == "SIGKILL"
    assert by["exits"].code == CRASHED and "exited 3 before it finished" in by["exits"].detail
    assert by["raises"].code == 1 and by["raises"].detail == "ValueError: a bug"
    assert "Traceback" in by["raises"].stderr
    assert by["fails"] == Outcome("fails", 4, "the store needs a repair", "fails starts\n",
                                  "fails warns\n", by["fails"].seconds)
    assert not by["fails"].crashed
