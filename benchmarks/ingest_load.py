"""Load test (a benchmark, not a test): sustained HTTP ingest on loopback.

    python benchmarks/ingest_load.py --seconds 20 --batch 5000 --format arrow --repeat 2

Starts ``hindsight serve`` as its own process on 127.0.0.1, then sends batches of simulated
predictions back to back (one client; bounded in time and count) and reports rows per second
and the latency percentiles. Side by side, alternating, in one run: the server as shipped
(each file fsynced, renamed, its directory fsynced before the answer) and the same server
with fsync patched out in its process, so the price of durability is measured, not guessed.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import yaml
from served import SERVE, serve

from hindsight.simulate import Scenario, Simulator, demo_config
from hindsight.store.partitions import Store, Table


def body(table: pa.Table, kind: str) -> tuple[bytes, str]:
    if kind == "arrow":
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue(), "application/vnd.apache.arrow.stream"
    rows = table.to_pylist()
    for row in rows:
        row["predicted_at"] = row["predicted_at"].isoformat()
    return json.dumps(rows).encode(), "application/json"


# The server with fsync patched out: the only difference from the shipped one.
WITHOUT_FSYNC = ("import sys, hindsight.store.partitions as p; p._fsync = lambda path: None; "
                 "from hindsight.cli import main; sys.exit(main(sys.argv[1:]))")


def measure(args: argparse.Namespace, fsync: bool) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="hindsight-load-"))
    (folder / "hindsight.yaml").write_text(yaml.safe_dump(demo_config("store")))
    server, url = serve(folder / "hindsight.yaml", SERVE if fsync else ["-c", WITHOUT_FSYNC])
    try:
        days = Simulator(Scenario(per_day=args.batch * args.requests_per_day, days=400,
                                  failure_start=None)).days()
        batches = (day.predictions.slice(i * args.batch, args.batch)
                   for day in days for i in range(args.requests_per_day))
        latencies, rows = [], 0
        started = time.monotonic()
        with httpx.Client(timeout=60) as client:
            while (time.monotonic() - started < args.seconds
                   and len(latencies) < args.max_requests):
                payload, kind = body(next(batches), args.format)
                sent = time.perf_counter()
                answer = client.post(f"{url}/v1/predictions", content=payload,
                                     headers={"Content-Type": kind})
                latencies.append(time.perf_counter() - sent)
                answer.raise_for_status()
                rows += answer.json()["stored"]
        elapsed = time.monotonic() - started
        time.sleep(2)  # a background compaction under way finishes
        visible = len(Store.open(folder / "store").files(Table.PREDICTIONS))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    latencies.sort()
    return {"requests": len(latencies), "rows_per_s": rows / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
            "files": visible}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--format", choices=["arrow", "json"], default="arrow")
    parser.add_argument("--requests-per-day", type=int, default=10,
                        help="each simulated day arrives in this many requests")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating")
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for _ in range(args.repeat):
        for fsync in (True, False):
            results[fsync].append(measure(args, fsync))
    print(f"batches of {args.batch:,} rows ({args.format}), {args.seconds:.0f} s per run, "
          f"medians of {args.repeat} run(s):")
    for fsync, label in ((True, "fsync (shipped)"), (False, "fsync patched out")):
        runs = results[fsync]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"  {label:18s}: {med['rows_per_s']:9,.0f} rows/s, p50 {med['p50_ms']:5.0f} ms, "
              f"p99 {med['p99_ms']:5.0f} ms, {med['requests']:.0f} requests, "
              f"{med['files']:.0f} files read by queries after compaction")
    cost = 1 - (statistics.median(r["rows_per_s"] for r in results[True])
                / statistics.median(r["rows_per_s"] for r in results[False]))
    print(f"  durability costs {cost:.1%} of the throughput")


if __name__ == "__main__":
    main()
