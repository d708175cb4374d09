"""Soak (a benchmark, not a test): the service under steady ingest for minutes, with the daily
job and a compaction run as separate processes every minute.

    python benchmarks/soak.py --seconds 600 --rows-per-second 5000 --batch 1000

Starts ``hindsight serve`` on 127.0.0.1 (its own background compaction on), sends simulated
predictions and their labels at a steady rate (paced; bounded in time), and every
``--every`` seconds starts ``hindsight run`` and ``hindsight compact`` beside it. Reports the
server's memory over time (first and last minute), errors, latency percentiles, the runs'
times, and ``hindsight check`` on the store at the end. Exits non-zero on any error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pyarrow as pa
import yaml
from served import serve

from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rows_of(table: pa.Table) -> list[dict[str, object]]:
    rows = table.to_pylist()
    for row in rows:
        for key, value in row.items():
            if hasattr(value, "isoformat"):
                row[key] = value.isoformat()
    return rows


class Periodic(threading.Thread):
    """Every ``every`` seconds: ``hindsight run`` on the newest day sent, then ``compact``."""

    def __init__(self, command: list[str], every: float, stop: threading.Event,
                 newest: list[date]) -> None:
        super().__init__(daemon=True)
        self.command, self.every, self.stop, self.newest = command, every, stop, newest
        self.runs: list[tuple[float, int]] = []  # (seconds, exit code)
        self.compactions: list[int] = []

    def run(self) -> None:
        while not self.stop.wait(self.every):
            if not self.newest:
                continue
            started = time.monotonic()
            code = subprocess.run([*self.command, "run", "--date", str(self.newest[-1])],
                                  capture_output=True, timeout=600).returncode
            self.runs.append((time.monotonic() - started, code))
            self.compactions.append(subprocess.run([*self.command, "compact"],
                                                   capture_output=True,
                                                   timeout=600).returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rows-per-second", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--per-day", type=int, default=40_000,
                        help="simulated predictions a day (the store ages by days quickly)")
    parser.add_argument("--every", type=float, default=60.0,
                        help="seconds between daily runs and compactions")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hindsight-soak-"))
    config = folder / "hindsight.yaml"
    config.write_text(yaml.safe_dump(demo_config("store")))
    simulator = Simulator(Scenario(per_day=args.per_day, days=365, failure_start=None))
    with Monitor.from_config(config) as monitor:  # a reference set: the runs compute drift too
        monitor.log_reference(simulator.reference())
    command = [sys.executable, "-m", "hindsight.cli", "--config", str(config)]
    server, url = serve(config)
    stop = threading.Event()
    newest: list[date] = []
    periodic = Periodic(command, args.every, stop, newest)
    latencies: list[float] = []
    errors: list[str] = []
    memory: list[tuple[float, float]] = []
    sent_rows = 0
    started = time.monotonic()
    try:
        days = simulator.days()
        interval = args.batch / args.rows_per_second
        periodic.start()
        started = time.monotonic()
        next_send, next_sample = started, started
        with httpx.Client(timeout=60) as client:
            for day in days:
                for kind, table in (("predictions", day.predictions), ("labels", day.labels)):
                    for offset in range(0, table.num_rows, args.batch):
                        now = time.monotonic()
                        if now - started > args.seconds:
                            raise StopIteration
                        if now >= next_sample:
                            memory.append((now - started, rss_mib(server.pid)))
                            next_sample += 5
                        time.sleep(max(0.0, next_send - now))
                        next_send += interval
                        chunk = rows_of(table.slice(offset, args.batch))
                        sent = time.perf_counter()
                        try:
                            answer = client.post(f"{url}/v1/{kind}", json=chunk)
                            if answer.status_code != 200:
                                errors.append(f"{answer.status_code}: {answer.text[:200]}")
                        except httpx.HTTPError as exc:
                            errors.append(repr(exc))
                        latencies.append(time.perf_counter() - sent)
                        sent_rows += len(chunk)
                newest.append(day.day)
    except StopIteration:
        pass
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        periodic.join(timeout=600)
        server.terminate()
        server.wait(timeout=60)
    check = subprocess.run([*command, "check", "--format", "json"], capture_output=True,
                           text=True, timeout=1800)
    shutil.rmtree(folder, ignore_errors=True)
    latencies.sort()
    first = [m for t, m in memory if t < 60]
    last = [m for t, m in memory if t >= elapsed - 60]
    run_seconds = [s for s, _ in periodic.runs]
    failed_runs = sum(code != 0 for _, code in periodic.runs)
    failed_compactions = sum(code != 0 for code in periodic.compactions)
    print(f"{elapsed:.0f} s at {args.rows_per_second:,} rows/s in batches of {args.batch:,}: "
          f"{sent_rows:,} rows in {len(latencies):,} requests, {len(newest)} simulated days")
    print(f"  errors           : {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"  latency p50/p99/max: {statistics.median(latencies) * 1000:.0f} / "
          f"{latencies[int(0.99 * (len(latencies) - 1))] * 1000:.0f} / "
          f"{latencies[-1] * 1000:.0f} ms")
    print(f"  server memory    : first minute median {statistics.median(first):.0f} MiB, "
          f"last minute median {statistics.median(last):.0f} MiB, "
          f"peak {max(m for _, m in memory):.0f} MiB")
    by_minute = {}
    for t, m in memory:
        by_minute.setdefault(int(t // 60), []).append(m)
    print("  memory by minute : " + ", ".join(f"{statistics.median(v):.0f}"
                                             for _, v in sorted(by_minute.items())) + " MiB")
    print(f"  daily runs       : {len(run_seconds)} ({failed_runs} failed), "
          f"median {statistics.median(run_seconds) if run_seconds else float('nan'):.1f} s; "
          f"compactions: {len(periodic.compactions)} ({failed_compactions} failed)")
    report = json.loads(check.stdout) if check.stdout else {"ok": False}
    print(f"  hindsight check  : {'sound' if report['ok'] else 'PROBLEMS'}, "
          f"{report.get('files', 0):,} files, rows {report.get('rows', {})}")
    if errors or failed_runs or failed_compactions or not report["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
