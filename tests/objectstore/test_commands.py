"""Every command on a store in a bucket (moto's S3 server on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml

from hindsight.cli import main
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, Simulator, demo_config
from tests.service.test_app import TOKEN, Server

pytestmark = pytest.mark.slow

SCENARIO = Scenario(per_day=800, days=6, failure_start=None, reference_rows=2_000, seed=5)


def test_every_command_works_on_a_bucket(bucket: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    raw = demo_config(f"{bucket}/expense")
    raw.update(min_samples=20, label_window_days=4, alerts={"baseline_days": 2})
    (tmp_path / "hindsight.yaml").write_text(yaml.safe_dump(raw))
    simulator = Simulator(SCENARIO)
    pq.write_table(simulator.reference(), tmp_path / "reference.parquet")
    days = list(simulator.days())
    for i, day in enumerate(days):
        pq.write_table(day.predictions, tmp_path / f"predictions-{i}.parquet")
        pq.write_table(day.labels, tmp_path / f"labels-{i}.parquet")
    monkeypatch.chdir(tmp_path)
    last = SCENARIO.end.isoformat()
    commands = [
        ["reference", "reference.parquet"],
        ["log", "predictions", *[f"predictions-{i}.parquet" for i in range(len(days))]],
        ["log", "labels", *[f"labels-{i}.parquet" for i in range(len(days))]],
        ["backfill", "--start", SCENARIO.start.isoformat(), "--end", last],
        ["run", "--date", last],
        ["metrics", "--date", last, "--format", "json"],
        ["alerts", "--format", "json"],
        ["drift", "--format", "json"],
        ["versions", "--format", "json"],
        ["compact", "--grace-minutes", "0"],
        ["check", "--format", "json"],
        ["storage", "status", "--format", "json"],
        ["report", "--out", "report.html"],
    ]
    printed = {}
    for command in commands:
        capsys.readouterr()
        code = main(command)
        printed[command[0]] = capsys.readouterr()
        assert code == 0, (command, printed[command[0]])
    assert json.loads(printed["check"].out)["ok"] is True
    assert json.loads(printed["metrics"].out)
    status = {t["table"]: t for t in json.loads(printed["storage"].out)}
    assert status["predictions"]["rows"] == sum(d.predictions.num_rows for d in days)
    assert (tmp_path / "report.html").stat().st_size > 0
    assert not (tmp_path / "expense").exists()  # nothing went to a local directory
    # the service ingests into the bucket and answers from it
    with Monitor.from_config(tmp_path / "hindsight.yaml") as monitor:
        server = Server(monitor, TOKEN)
        try:
            rows = days[-1].predictions.slice(0, 50).to_pylist()
            for row in rows:
                row["predicted_at"] = row["predicted_at"].isoformat()
            with httpx.Client(base_url=server.url, timeout=60,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                answer = http.post("/v1/predictions", json=rows)
                assert answer.status_code == 200, answer.text
                assert answer.json()["already_stored"] == 50
                assert http.get("/metrics").status_code == 200
        finally:
            server.stop()
    # the same store made of Delta tables answers the same
    for command in (["storage", "migrate"], ["run", "--date", last],
                    ["metrics", "--date", last, "--format", "json"], ["check", "--format", "json"],
                    ["log", "predictions", "predictions-0.parquet"]):
        capsys.readouterr()
        code = main(command)
        printed[f"delta {command[0]}"] = capsys.readouterr()
        assert code == 0, (command, printed[f"delta {command[0]}"])
    assert json.loads(printed["delta metrics"].out) == json.loads(printed["metrics"].out)
    assert json.loads(printed["delta check"].out)["ok"] is True
    assert "0 stored" in printed["delta log"].out + printed["delta log"].err
