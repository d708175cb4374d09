"""Benchmark: what intra-day prediction drift checks cost.

    python benchmarks/intraday.py --per-day 500000 --seconds 20 --repeat 2

1. One check: a store with two days of day-and-night traffic at ``--per-day`` (kept in
   ``--dir`` for reuse); a fresh process runs the check of every hour of the second day in turn
   (the first also reads the reference set and fits its detectors) and reports the seconds per
   check and its own peak memory.
2. Ingest beside checks: ``hindsight serve`` on a copy of that store, sent batches of
   predictions back to back for ``--seconds``, alternating two servers that differ in one
   thing: in one, a thread runs the noon check of the second day again and again for the whole
   run (hourly checks cost a small fraction of that); in the other, no check runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from child import in_own_process
from ingest_load import body
from served import SERVE, serve

HERE = Path(__file__).resolve()
DAYS = 2

# The server with a thread that checks the second day's noon window back to back, counting
# its checks into a file: the only difference from the shipped server.
CHECKING = """
import sys, threading
from datetime import datetime, UTC
from pathlib import Path
from hindsight.config import load_config
from hindsight.monitor import Monitor
from hindsight.cli import main

config_file, at, count_file = sys.argv[1:4]
del sys.argv[1:4]

def checks():
    with Monitor(load_config(config_file)) as monitor:
        done = 0
        while True:
            monitor.check_drift(datetime.fromisoformat(at))
            done += 1
            Path(count_file).write_text(str(done))

threading.Thread(target=checks, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""


def prepare(directory: Path, per_day: int) -> Path:
    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.simulate import Scenario, Simulator, demo_config

    config_file = directory / "hindsight.yaml"
    stamp = directory / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()) == {"per_day": per_day}:
        return config_file
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    config = {**demo_config("store"), "drift": {"every": "1h"}}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    simulator = Simulator(Scenario(per_day=per_day, days=DAYS, failure_start=None,
                                   daily_cycle=True))
    with Monitor(load_config(config_file)) as monitor:
        monitor.log_reference(simulator.reference())
        for day in simulator.days():
            monitor.log_predictions(day.predictions)
    stamp.write_text(json.dumps({"per_day": per_day}))
    return config_file


def measure_checks(config_file: Path) -> dict[str, float]:
    """In this (fresh) process: every hourly check of the second simulated day."""
    from datetime import UTC, datetime, timedelta

    from memory import own_peak_mib

    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.simulate import Scenario

    second_day = Scenario().start + timedelta(days=DAYS - 1)
    midnight = datetime.combine(second_day, datetime.min.time(), UTC)
    seconds, rows = [], []
    with Monitor(load_config(config_file)) as monitor:
        for hour in range(1, 24):
            started = time.perf_counter()
            result = monitor.check_drift(midnight + timedelta(hours=hour))
            seconds.append(time.perf_counter() - started)
            assert result is not None and result.measured, "a check scored nothing"
            rows.append(result.n)
    return {"first_s": seconds[0], "median_s": statistics.median(seconds[1:]),
            "max_s": max(seconds[1:]), "median_rows": statistics.median(rows),
            "peak_mib": own_peak_mib()}


def measure_ingest(config_file: Path, checking: bool, seconds: float,
                   batch: int) -> dict[str, float]:
    from datetime import timedelta

    from hindsight.simulate import Scenario, Simulator

    folder = Path(tempfile.mkdtemp(prefix="hindsight-intraday-"))
    try:
        shutil.copytree(config_file.parent / "store", folder / "store")
        shutil.copy(config_file, folder / "hindsight.yaml")
        count_file = folder / "checks.txt"
        noon = (Scenario().start + timedelta(days=DAYS - 1)).isoformat() + "T12:00:00+00:00"
        entry = (["-c", CHECKING, str(folder / "hindsight.yaml"), noon, str(count_file)]
                 if checking else SERVE)
        server, url = serve(folder / "hindsight.yaml", entry)
        try:
            later = Scenario(start=Scenario().start + timedelta(days=DAYS), days=400,
                             per_day=batch * 10, failure_start=None, seed=11)
            batches = (d.predictions.slice(i * batch, batch)
                       for d in Simulator(later).days() for i in range(10))
            payloads = [body(next(batches), "arrow")[0] for _ in range(200)]
            rows, sent = 0, 0
            started = time.monotonic()
            with httpx.Client(timeout=60) as client:
                while time.monotonic() - started < seconds and sent < len(payloads):
                    answer = client.post(f"{url}/v1/predictions", content=payloads[sent],
                                         headers={"Content-Type":
                                                  "application/vnd.apache.arrow.stream"})
                    answer.raise_for_status()
                    rows += answer.json()["stored"]
                    sent += 1
            elapsed = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        checks = int(count_file.read_text()) if count_file.exists() else 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if checking and checks == 0:
        raise RuntimeError("the checking server ran no check during the run")
    return {"rows_per_s": rows / elapsed, "checks": checks, "requests": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2, help="ingest runs of each side")
    parser.add_argument("--dir", type=Path, default=HERE.parent / ".data" / "intraday")
    parser.add_argument("--measure-checks", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_checks:
        print(json.dumps(measure_checks(args.measure_checks)))
        return
    config_file = prepare(args.dir, args.per_day)
    fresh = in_own_process(HERE, "--measure-checks", str(config_file))
    checks = json.loads(fresh.strip().splitlines()[-1])
    print(f"{args.per_day:,} predictions a day with a daily cycle, hourly checks of the second "
          f"day ({checks['median_rows']:,.0f} predictions in the median window):")
    print(f"  first check (reads the reference, fits its detectors): {checks['first_s']:.2f} s")
    print(f"  each later check: median {checks['median_s']:.3f} s, max {checks['max_s']:.3f} s;"
          f" peak memory of the checking process {checks['peak_mib']:,.0f} MiB")
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for checking in (False, True):
            runs[checking].append(measure_ingest(config_file, checking, args.seconds,
                                                 args.batch))
    off = statistics.median(r["rows_per_s"] for r in runs[False])
    on = statistics.median(r["rows_per_s"] for r in runs[True])
    done = statistics.median(r["checks"] for r in runs[True])
    print(f"HTTP ingest, batches of {args.batch:,} (Arrow), {args.seconds:.0f} s per run, "
          f"medians of {args.repeat}:")
    print(f"  no checks:                  {off:9,.0f} rows/s")
    print(f"  checks back to back beside: {on:9,.0f} rows/s ({done:.0f} checks in the run)")
    print(f"  ingest beside continuous checks: {on / off:.2f}x the throughput without; hourly "
          f"checks occupy {checks['median_s'] / 3600:.4%} of an hour")


if __name__ == "__main__":
    main()
