"""Many writers, one bucket store: four processes logging through the Python API and two
``hindsight serve`` replicas taking HTTP requests, every id sent by at least two of them at
once, while the store compacts and an engine that knows nothing of hindsight reads the Delta
table. No lock server: the writers share the bucket alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
import yaml

from hindsight.config import load_config
from hindsight.monitor import Monitor
from hindsight.store import delta
from hindsight.store.partitions import Table

IDS = 360
BATCH = 20

WRITER = """
import sys
from hindsight.config import load_config
from hindsight.monitor import Monitor
from tests.objectstore.test_delta_writers import batches_of, rows
config, index, acks = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with Monitor(load_config(config)) as monitor, open(acks, "a") as acked:
    for batch in batches_of(index):
        monitor.log_predictions(rows(batch))
        acked.write("".join(f"{i}\\n" for i in batch))
        acked.flush()
"""


def row(i: int) -> dict[str, Any]:
    return {"request_id": f"r{i}", "served_at": "2026-01-05T12:00:00Z",
            "country": ("CH", "DE", "FR")[i % 3], "predicted": ("a", "b")[i % 2]}


def rows(ids: list[int]) -> list[dict[str, Any]]:
    return [row(i) for i in ids]


def batches_of(writer: int) -> list[list[int]]:
    """Every sender sends every id, in the same order: each batch is raced by all of them.
    (``writer`` only names the sender.)"""
    del writer
    return [list(range(i, min(i + BATCH, IDS))) for i in range(0, IDS, BATCH)]


@pytest.mark.slow
def test_writers_on_many_machines_store_every_acknowledged_id_once(
        bucket: str, tmp_path: Path) -> None:
    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump({
        "model": "shared", "store": f"{bucket}/store",
        "columns": {"id": "request_id", "timestamp": "served_at", "prediction": "predicted",
                    "label": "actual"},
        "segments": ["country"], "storage": {"table_format": "delta"}}))
    config = load_config(config_file)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    acks = [tmp_path / f"acked-{w}.txt" for w in range(6)]
    with Monitor(config) as monitor:
        monitor.log_predictions(rows([0]))  # the table exists before the race
        uri = delta.url(monitor.store, Table.PREDICTIONS)
        options = delta.storage_options(monitor.store)
        servers = [subprocess.Popen(
            [sys.executable, "-m", "hindsight.cli", "--config", str(config_file), "serve",
             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, cwd=tmp_path) for _ in range(2)]
        try:
            addresses = []
            for server in servers:
                assert server.stdout is not None
                addresses.append(server.stdout.readline().split()[2])  # once it listens
            writers = [subprocess.Popen(
                [sys.executable, "-c", WRITER,
                 str(config_file), str(w), str(acks[w])], env=env, cwd=os.getcwd())
                for w in range(4)]
            done = threading.Event()
            problems: list[str] = []
            reads: list[int] = []

            def post(replica: int) -> None:
                with httpx.Client(base_url=addresses[replica], timeout=120) as http, \
                        open(acks[4 + replica], "a") as acked:
                    for batch in batches_of(4 + replica):
                        answer = http.post("/v1/predictions", json=rows(batch))
                        if answer.status_code != 200:
                            problems.append(f"{answer.status_code}: {answer.text}")
                            continue
                        acked.write("".join(f"{i}\n" for i in batch))

            def compact() -> None:
                while not done.is_set():
                    report = monitor.compact()
                    if report.failed:
                        problems.append(f"compaction: {report.failed}")

            def read() -> None:
                from deltalake import DeltaTable

                while not done.is_set():
                    ids = DeltaTable(uri, storage_options=options).to_pyarrow_table(
                        columns=["request_id"])["request_id"]
                    if pc.count_distinct(ids).as_py() != len(ids):
                        problems.append(f"a reader counted {len(ids)} rows for "
                                        f"{pc.count_distinct(ids).as_py()} ids")
                    reads.append(len(ids))

            clients = [threading.Thread(target=post, args=(r,)) for r in range(2)]
            upkeep = [threading.Thread(target=compact), threading.Thread(target=read)]
            for thread in [*clients, *upkeep]:
                thread.start()
            for thread in clients:
                thread.join()
            exits = [w.wait(timeout=900) for w in writers]
            done.set()
            for thread in upkeep:
                thread.join()
        finally:
            for server in servers:
                server.terminate()
                server.communicate(timeout=60)
        assert exits == [0, 0, 0, 0]
        assert not problems, problems[:5]
        acknowledged = {f"r{line}" for a in acks for line in a.read_text().split()} | {"r0"}
        assert len(acknowledged) == IDS
        from deltalake import DeltaTable

        table = DeltaTable(uri, storage_options=options)
        stored = table.to_pyarrow_table(columns=["request_id"])["request_id"].to_pylist()
        assert len(stored) == len(set(stored)), "an id stored twice"
        assert set(stored) == acknowledged, "an acknowledged id lost"
        assert len(reads) >= 3
        # hindsight's own listing agrees with the Delta reader, and the store is sound
        assert sum(monitor.store.footer(f.path).num_rows
                   for f in monitor.store.files(Table.PREDICTIONS)) == IDS
        assert monitor.check().ok, monitor.check().problems
