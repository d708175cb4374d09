"""One piece of work per name (a workspace's models), each in a process of its own.

A model's bad data, a bug, or a hard crash of native code (a segmentation fault, an
out-of-memory kill) ends its own process only: the others go on, and the crash is reported
with the signal that ended it. Each process is forked from the caller, which has already
imported what the work needs: a model costs no interpreter start and no imports, and its peak
memory is its own. ``jobs`` of them run at once.

What a piece of work prints (its stdout and stderr, native code's included) is captured in
files of its own and handed back whole, so the outputs of processes that ran at the same time
never interleave.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

#: the exit code of a process that ended without handing back its result (a crash)
CRASHED = 70
#: what a piece of work returns: its exit code (0: done) and a line for a summary
Work = Callable[[str], tuple[int, str]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one name's work ended."""

    name: str
    code: int  # 0 when it succeeded
    detail: str  # a line for the summary: what it did, or why it failed
    stdout: str
    stderr: str
    seconds: float
    signal: str | None = None  # the signal that killed its process (SIGSEGV, SIGKILL, ...)

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def crashed(self) -> bool:
        return self.code == CRASHED or self.signal is not None


def forking_available() -> bool:
    """Whether work can run in forked processes (not on Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def run_each(names: Sequence[str], work: Work, jobs: int,
             finished: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """``work(name)`` for every name, each in a forked process of its own, ``jobs`` at once;
    the outcomes in the order of ``names``. ``finished`` sees each outcome as soon as it and
    every outcome before it in ``names`` are known (outputs come out in that order). Where
    processes cannot be forked, the work runs here, one name after the other: an exception
    stays with its name, but a crash of native code would end them all."""
    if not forking_available():
        return _in_this_process(names, work, finished)
    context = multiprocessing.get_context("fork")
    outcomes: dict[str, Outcome] = {}
    reported = 0

    def report() -> None:
        nonlocal reported
        while reported < len(names) and names[reported] in outcomes:
            if finished is not None:
                finished(outcomes[names[reported]])
            reported += 1

    with tempfile.TemporaryDirectory(prefix="hindsight-models-") as scratch:
        waiting = list(names)
        running: dict[int, tuple[str, Any, Path, float]] = {}
        sys.stdout.flush()
        sys.stderr.flush()  # nothing buffered here is written again by a child
        while waiting or running:
            while waiting and len(running) < max(jobs, 1):
                name = waiting.pop(0)
                folder = Path(scratch, str(len(outcomes) + len(running)))
                folder.mkdir()
                process = context.Process(target=_child, args=(name, work, folder),
                                          name=f"hindsight-{name}", daemon=False)
                process.start()
                running[process.sentinel] = (name, process, folder, time.perf_counter())
            for sentinel in wait(list(running)):
                name, process, folder, started = running.pop(sentinel)  # type: ignore[arg-type]
                process.join()
                outcomes[name] = _outcome(name, process.exitcode, folder,
                                          time.perf_counter() - started)
                process.close()
            report()
    return [outcomes[name] for name in names]


def _child(name: str, work: Work, folder: Path) -> None:
    """In the forked process: send stdout and stderr (file descriptors and Python streams)
    to files, do the work, leave the result beside them."""
    stdout = (folder / "stdout").open("w", encoding="utf-8", buffering=1)
    stderr = (folder / "stderr").open("w", encoding="utf-8", buffering=1)
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
    sys.stdout, sys.stderr = stdout, stderr
    faulthandler.enable(stderr)  # a native crash leaves its Python stack in the output
    try:
        code, detail = work(name)
    except BaseException as exc:  # anything at all fails this name only
        traceback.print_exc()
        code, detail = 1, f"{type(exc).__name__}: {exc}"
    stdout.flush()
    stderr.flush()
    (folder / "result.json").write_text(json.dumps({"code": code, "detail": detail}),
                                        encoding="utf-8")


def _outcome(name: str, exitcode: int | None, folder: Path, seconds: float) -> Outcome:
    def read(file: str) -> str:
        path = folder / file
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    stdout, stderr, result = read("stdout"), read("stderr"), read("result.json")
    if result and exitcode == 0:
        found = json.loads(result)
        return Outcome(name, int(found["code"]), str(found["detail"]), stdout, stderr, seconds)
    if exitcode is not None and exitcode < 0:
        killed = _signal_name(-exitcode)
        last = _last_line(stderr)
        why = f"crashed: its process was killed by {killed}" + (f" ({last})" if last else "")
        return Outcome(name, CRASHED, why, stdout, stderr, seconds, killed)
    last = _last_line(stderr)
    return Outcome(name, CRASHED, f"crashed: its process exited {exitcode} before it finished"
                   + (f" ({last})" if last else ""), stdout, stderr, seconds)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _in_this_process(names: Sequence[str], work: Work,
                     finished: Callable[[Outcome], None] | None) -> list[Outcome]:
    outcomes = []
    for name in names:
        started = time.perf_counter()
        try:
            code, detail = work(name)
        except Exception as exc:  # this name fails, the others go on
            traceback.print_exc()
            code, detail = 1, f"{type(exc).__name__}: {exc}"
        outcome = Outcome(name, code, detail, "", "", time.perf_counter() - started)
        if finished is not None:
            finished(outcome)
        outcomes.append(outcome)
    return outcomes
