"""The command line over a workspace: --model before or after the sub-command, and the
commands that cover every model, each in a process of its own."""

from __future__ import annotations

import json
import random
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from hindsight.cli import MODELS_FAILED, main
from hindsight.monitor import Monitor
from hindsight.store.partitions import Table

RUN_DATE = "2026-01-05"
# three tasks, each with columns of its own
MODELS: dict[str, dict[str, Any]] = {
    "router": {"task": "classification", "segments": ["language"],
               "columns": {"id": "ticket", "timestamp": "opened", "prediction": "queue",
                           "label": "true_queue", "label_timestamp": "routed_at"}},
    "fraud": {"segments": ["country"],
              "columns": {"id": "txn", "timestamp": "at", "prediction": "flagged",
                          "score": "p_fraud", "label": "chargeback",
                          "label_timestamp": "charged_at"}},
    "price": {"task": "regression", "segments": ["region"],
              "columns": {"id": "listing", "timestamp": "listed", "prediction": "price_hat",
                          "label": "price", "label_timestamp": "sold_at"}},
}


def _rows(model: str, i: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """One prediction of ``model`` and its label."""
    at = f"2026-01-0{1 + i % 4}T10:00:00"
    if model == "router":
        queue = rng.choice(["billing", "tech", "sales"])
        truth = queue if rng.random() < 0.8 else "tech"
        return ({"ticket": f"t{i}", "opened": at, "queue": queue,
                 "language": rng.choice(["de", "fr"])},
                {"ticket": f"t{i}", "true_queue": truth, "routed_at": "2026-01-05T00:00:00"})
    if model == "fraud":
        score = rng.random()
        return ({"txn": f"x{i}", "at": at, "flagged": int(score > 0.5), "p_fraud": score,
                 "country": rng.choice(["CH", "DE"])},
                {"txn": f"x{i}", "chargeback": int(rng.random() < score),
                 "charged_at": "2026-01-05T00:00:00"})
    price = rng.uniform(100, 500)
    return ({"listing": f"l{i}", "listed": at, "price_hat": price * rng.uniform(0.9, 1.1),
             "region": rng.choice(["north", "south"])},
            {"listing": f"l{i}", "price": price, "sold_at": "2026-01-05T00:00:00"})


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace of three models, each with a day's files to log (not logged yet)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "price.yaml").write_text(yaml.safe_dump(MODELS["price"]))
    (tmp_path / "hindsight.yaml").write_text(yaml.safe_dump({
        "store": "store", "min_samples": 20,
        "models": {"router": MODELS["router"], "fraud": MODELS["fraud"],
                   "price": {"include": "models/price.yaml"}}}, sort_keys=False))
    rng = random.Random(3)
    for model in MODELS:
        pairs = [_rows(model, i, rng) for i in range(400)]
        _write_jsonl(tmp_path / f"{model}-predictions.jsonl", [p for p, _ in pairs])
        _write_jsonl(tmp_path / f"{model}-labels.jsonl", [label for _, label in pairs])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HINDSIGHT_MODEL", raising=False)
    monkeypatch.delenv("HINDSIGHT_CONFIG", raising=False)
    return tmp_path


def _log_all(capsys: pytest.CaptureFixture[str]) -> None:
    # --model before the sub-command for predictions, after it for labels
    for model in MODELS:
        assert main(["--model", model, "log", "predictions", f"{model}-predictions.jsonl"]) == 0
        assert main(["log", "labels", f"{model}-labels.jsonl", "--model", model]) == 0
    capsys.readouterr()


def _summary(output: str) -> dict[str, list[str]]:
    """The summary table after a command over every model: model -> [outcome, exit code]."""
    table = output.split("models succeeded:\n")[1].splitlines()
    assert table[0].split()[:5] == ["model", "outcome", "exit", "seconds", "detail"]
    return {line.split()[0]: line.split()[1:3] for line in table[1:] if line.strip()}


def _runs(workspace: Path, model: str) -> list[date]:
    with Monitor.from_config(workspace / "hindsight.yaml", model) as monitor:
        return monitor.runs()


def test_model_before_or_after_the_sub_command_logs_into_that_model_s_store(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    for model in MODELS:
        store = workspace / "store" / "models" / model
        assert list(store.glob("predictions/dt=*/*.parquet")), model
    # another model's columns are refused, naming the file and the column
    assert main(["--model", "price", "log", "predictions", "fraud-predictions.jsonl"]) == 3
    assert "missing column 'listing'" in capsys.readouterr().err
    # a command that needs one model says so, and lists them
    assert main(["alerts"]) == 2
    assert ("holds 3 models (router, fraud, price): name one with --model NAME"
            in capsys.readouterr().err)
    assert main(["alerts", "--model", "pricing"]) == 2
    assert "has no model 'pricing'; its models: router, fraud, price" in capsys.readouterr().err


def test_the_model_may_come_from_the_environment_and_the_command_line_wins(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _log_all(capsys)
    monkeypatch.setenv("HINDSIGHT_MODEL", "fraud")
    assert main(["run", "--date", RUN_DATE]) == 0
    assert "aggregate accuracy" in capsys.readouterr().out
    assert main(["--model", "price", "run", "--date", RUN_DATE]) == 0
    # an error in the label's units, not a share
    assert re.search(r"aggregate mae [\d.,]+ over", capsys.readouterr().out)
    assert _runs(workspace, "fraud") == _runs(workspace, "price") == [date(2026, 1, 5)]
    assert _runs(workspace, "router") == []


def test_run_without_a_model_runs_every_model_and_sums_them_up(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    assert main(["run", "--date", RUN_DATE, "--jobs", "2"]) == 0
    output = capsys.readouterr().out
    # each model's own output, whole, in the workspace's order, then the summary
    assert output.index("== router ==") < output.index("== fraud ==") < output.index(
        "== price ==") < output.index("3 of 3 models succeeded")
    assert output.count("Run as of 2026-01-05") == 3
    assert list(_summary(output).items()) == [
        ("router", ["ok", "0"]), ("fraud", ["ok", "0"]), ("price", ["ok", "0"])]
    for model in MODELS:
        assert _runs(workspace, model) == [date(2026, 1, 5)]
    assert main(["--model", "router", "metrics", "--date", "2026-01-02", "--format",
                 "json"]) == 0
    metrics = {r["metric"] for r in json.loads(capsys.readouterr().out)}
    assert "macro_f1" in metrics


def test_one_model_s_corrupt_data_is_reported_while_the_others_run(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    broken = sorted((workspace / "store" / "models" / "fraud").glob(
        "predictions/dt=2026-01-02/*.parquet"))[0]
    broken.write_bytes(b"PAR1 this is no parquet file PAR1")
    code = main(["run", "--date", RUN_DATE])
    captured = capsys.readouterr()
    assert code == MODELS_FAILED
    assert "2 of 3 models succeeded" in captured.out
    summary = _summary(captured.out)
    assert summary["fraud"][0] == "failed" and summary["fraud"][1] != "0"
    assert summary["router"] == summary["price"] == ["ok", "0"]
    assert "error: 1 of 3 models failed: fraud (exit" in captured.err
    assert "fraud: " in captured.err  # its own error output, named
    assert _runs(workspace, "router") == _runs(workspace, "price") == [date(2026, 1, 5)]
    assert _runs(workspace, "fraud") == []
    # the store check names it too, and the other stores are sound
    assert main(["check"]) == MODELS_FAILED
    out = capsys.readouterr().out
    assert str(broken.name) in out
    assert {model: row[0] for model, row in _summary(out).items()} == {
        "router": "ok", "fraud": "failed", "price": "ok"}


def test_one_model_s_broken_config_is_reported_while_the_others_run(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    (workspace / "models" / "price.yaml").write_text(
        yaml.safe_dump({**MODELS["price"], "min_samples": -1}))
    assert main(["run", "--date", RUN_DATE]) == MODELS_FAILED
    captured = capsys.readouterr()
    assert _summary(captured.out)["price"] == ["failed", "2"]
    price = next(line for line in captured.out.splitlines() if line.startswith("price "))
    assert "min_samples" in price and "models/price.yaml" in price
    assert "error: 1 of 3 models failed: price (exit 2)" in captured.err
    assert _runs(workspace, "router") == _runs(workspace, "fraud") == [date(2026, 1, 5)]
    # the broken model itself, named, fails as a single command does
    assert main(["run", "--model", "price", "--date", RUN_DATE]) == 2


def test_backfill_and_store_upkeep_cover_every_model(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    assert main(["backfill", "--start", "2026-01-03", "--end", RUN_DATE, "--jobs", "1"]) == 0
    assert "3 of 3 models succeeded" in capsys.readouterr().out
    for model in MODELS:
        assert _runs(workspace, model) == [date(2026, 1, d) for d in (3, 4, 5)]
    for command in (["compact", "--grace-minutes", "0"], ["check"], ["deliver"],
                    ["storage", "retention", "--dry-run"]):
        assert main(command) == 0, command
        assert "3 of 3 models succeeded" in capsys.readouterr().out
    with Monitor.from_config(workspace / "hindsight.yaml", "price") as monitor:
        assert len(monitor.store.files(Table.PREDICTIONS)) == 4  # one file a day, compacted
    # machine formats: one document for every model
    assert main(["check", "--format", "json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["outcome"], r["exit"]) for r in checked] == [
        ("router", "ok", 0), ("fraud", "ok", 0), ("price", "ok", 0)]
    assert all(r["result"]["ok"] is True for r in checked)
    assert main(["storage", "retention", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "model,table,date,files,bytes\n"


def test_a_single_model_config_runs_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HINDSIGHT_MODEL", raising=False)
    (tmp_path / "hindsight.yaml").write_text(yaml.safe_dump(
        {"model": "router", "store": "store", "min_samples": 20, **MODELS["router"]}))
    rng = random.Random(5)
    pairs = [_rows("router", i, rng) for i in range(200)]
    _write_jsonl(tmp_path / "p.jsonl", [p for p, _ in pairs])
    _write_jsonl(tmp_path / "l.jsonl", [label for _, label in pairs])
    assert main(["log", "predictions", "p.jsonl"]) == 0
    assert main(["log", "labels", "l.jsonl", "--model", "router"]) == 0  # its own name
    assert main(["run", "--date", RUN_DATE]) == 0
    output = capsys.readouterr().out
    assert "Run as of 2026-01-05" in output and "models succeeded" not in output
    assert (tmp_path / "store" / "runs").is_dir()  # the store as it was: no models/ folder
    assert main(["--model", "fraud", "alerts"]) == 2
    assert "has no model 'fraud'; its models: router" in capsys.readouterr().err


def test_an_unknown_model_is_refused_by_every_command_naming_the_models(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for command in (["run", "--date", RUN_DATE], ["check"], ["backfill", "--start", RUN_DATE,
                                                            "--end", RUN_DATE]):
        assert main(["--model", "pricing", *command]) == 2, command
        assert ("has no model 'pricing'; its models: router, fraud, price"
                in capsys.readouterr().err)
    monkeypatch.setenv("HINDSIGHT_MODEL", "pricing")  # from the environment too
    assert main(["run", "--date", RUN_DATE]) == 2
    assert "has no model 'pricing'" in capsys.readouterr().err
    assert not (workspace / "store" / "models" / "pricing").exists()


def test_a_broken_model_is_named_in_the_json_document_of_every_model(
    workspace: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _log_all(capsys)
    (workspace / "models" / "price.yaml").write_text("columns: [not, a, mapping]\n")
    assert main(["check", "--format", "json"]) == MODELS_FAILED
    captured = capsys.readouterr()
    records = {r["model"]: r for r in json.loads(captured.out)}
    assert [records[m]["outcome"] for m in MODELS] == ["ok", "ok", "failed"]
    assert records["price"]["exit"] == 2 and "price.yaml" in records["price"]["detail"]
    assert records["price"]["result"] is None
    assert "error: 1 of 3 models failed: price (exit 2)" in captured.err
