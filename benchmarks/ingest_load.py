"""Load test (a benchmark, not a test): sustained HTTP ingest on loopback.

    python benchmarks/ingest_load.py --seconds 20 --batch 5000 --format arrow

Starts ``hindsight serve`` as its own process on 127.0.0.1, then sends batches of simulated
predictions back to back (one client; bounded in time and count) and reports rows per second
and the latency percentiles.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import yaml

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--format", choices=["arrow", "json"], default="arrow")
    parser.add_argument("--requests-per-day", type=int, default=10,
                        help="each simulated day arrives in this many requests")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hindsight-load-"))
    (folder / "hindsight.yaml").write_text(yaml.safe_dump(demo_config("store")))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "HINDSIGHT_TOKEN"}
    server = subprocess.Popen([sys.executable, "-m", "hindsight.cli", "--config",
                              str(folder / "hindsight.yaml"), "serve", "--port", str(port)],
                             env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
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
        server.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"{len(latencies)} requests of {args.batch:,} rows ({args.format}) in {elapsed:.1f} s:")
    print(f"  sustained ingest : {rows / elapsed:10,.0f} rows/s")
    print(f"  latency p50/p99  : {statistics.median(latencies) * 1000:6.0f} / "
          f"{p99 * 1000:.0f} ms")
    print(f"  files read by queries: {visible:,} for {len(latencies)} writes (background "
          "compaction every 200 writes)")


if __name__ == "__main__":
    main()
