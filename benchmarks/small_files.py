"""Benchmark: a one-row ingest on a store holding many small files (a file per request,
between compactions), as a long-lived service does it and as a new process does it.

    python benchmarks/small_files.py --files 10000 --repeat 5

The store's ``--files`` one-row files are written straight into the Parquet layout over 28
days (building them through ingest would measure the builder). Then, in one run, side by side:

- ``new process``: each ingest on a new monitor (what ``hindsight log`` does, and what every
  ingest did before look-ups kept small files' rows): every small file in the look-up span is
  read;
- ``service``: one monitor for all ingests (``hindsight serve``): after its first look-up it
  reads only files it has not seen, and its own writes never;
- ``compacted``: a new monitor each time, after ``hindsight compact`` (one file a day).

Each ingest stores one new row, and the benchmark fails unless every side's answers agree.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from hindsight.config import Config, parse_config
from hindsight.monitor import Monitor
from hindsight.store.inputs import from_memory
from hindsight.store.partitions import Store, Table
from hindsight.store.schema import normalize_predictions

COLUMNS = {"id": "request_id", "timestamp": "served_at", "prediction": "predicted",
           "label": "actual"}
FIRST = date(2026, 1, 1)


def row(i: int, day: date) -> dict[str, object]:
    return {"request_id": f"r{i}", "served_at": f"{day}T12:00:00Z", "country": "CH",
            "predicted": "a", "amount": float(i)}


def fill(config: Config, files: int) -> None:
    for i in range(files):
        day = FIRST + timedelta(days=i % 28)
        table = normalize_predictions(from_memory([row(i, day)], "fill"), config)
        directory = Path(config.store) / "predictions" / f"dt={day}"
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, directory / f"part-{uuid.uuid4().hex}.parquet", compression="zstd")


def ingest(monitor: Monitor, i: int) -> tuple[float, int]:
    started = time.perf_counter()
    stored = monitor.log_predictions([row(10**7 + i, FIRST + timedelta(days=5))]).stored
    return time.perf_counter() - started, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config({"model": "small-files", "store": f"{folder}/store",
                               "columns": COLUMNS, "segments": ["country"]})
        fill(config, args.files)
        seconds: dict[str, list[float]] = {"new process": [], "service": []}
        answers: dict[str, list[int]] = {"new process": [], "service": [], "compacted": []}
        service = Monitor(config)
        ingest(service, -1)  # the service's first look-up reads every file, once
        for k in range(args.repeat):  # alternating, so both see the same machine
            with Monitor(config) as fresh:
                took, stored = ingest(fresh, 2 * k)
            seconds["new process"].append(took)
            answers["new process"].append(stored)
            took, stored = ingest(service, 2 * k + 1)
            seconds["service"].append(took)
            answers["service"].append(stored)
        service.close()
        shutil.copytree(config.store, f"{folder}/compacted")
        compacted = config.model_copy(update={"store": f"{folder}/compacted"})
        with Monitor(compacted) as monitor:
            monitor.compact()
        seconds["compacted"] = []
        for k in range(args.repeat):
            with Monitor(compacted) as fresh:
                took, stored = ingest(fresh, 1000 + k)
            seconds["compacted"].append(took)
            answers["compacted"].append(stored)
        assert all(stored == [1] * args.repeat for stored in answers.values()), answers
        files = len(Store.open(config.store).files(Table.PREDICTIONS))
        print(f"{files:,} files in the look-up span; one-row ingest, median of {args.repeat}:")
        for side, taken in seconds.items():
            print(f"  {side:12s} {statistics.median(taken):7.3f} s   "
                  f"(min {min(taken):.3f}, max {max(taken):.3f})")


if __name__ == "__main__":
    main()
