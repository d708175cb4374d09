from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from hindsight.cli import main
from hindsight.simulate import Scenario


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "hindsight.yaml").write_text(
        "model: churn\nstore: ./store\nmin_samples: 20\n"
        "columns: {id: id, timestamp: ts, prediction: pred, label: truth, "
        "label_timestamp: truth_at}\nsegments: [country]\n")
    lines = ["id,ts,pred,country"] + [
        f"{i:04d},2026-01-0{1 + i % 3}T10:00:00,{'yes' if i % 4 else 'no'},"
        f"{'CH' if i % 2 else 'DE'}" for i in range(300)]
    (tmp_path / "predictions.csv").write_text("\n".join(lines) + "\n")
    labels = [json.dumps({"id": f"{i:04d}", "truth": "yes", "truth_at": "2026-01-05T00:00:00Z"})
              for i in range(300)]
    (tmp_path / "labels.jsonl").write_text("\n".join(labels) + "\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_log_run_and_read_metrics_as_json(project: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    assert main(["log", "predictions", "predictions.csv"]) == 0
    assert main(["log", "labels", "labels.jsonl"]) == 0
    assert main(["run", "--date", "2026-01-05"]) == 0
    capsys.readouterr()
    assert main(["metrics", "--date", "2026-01-01", "--segment", "country=CH",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    accuracy = next(r for r in rows if r["metric"] == "accuracy")
    ids = [i for i in range(300) if i % 3 == 0 and i % 2 == 1]
    assert accuracy["segment"] == {"country": "CH"}
    assert accuracy["n_labelled"] == len(ids)
    assert accuracy["value"] == pytest.approx(sum(1 for i in ids if i % 4) / len(ids))
    assert set(rows[0]) == {"date", "segment", "metric", "value", "n_predictions",
                            "n_labelled", "label_coverage"}


def test_alerts_json_has_the_documented_fields(project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    main(["log", "predictions", "predictions.csv"])
    main(["log", "labels", "labels.jsonl"])
    main(["backfill", "--start", "2026-01-01", "--end", "2026-01-05"])
    capsys.readouterr()
    assert main(["alerts", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert isinstance(found, list)
    for alert in found:
        assert {"date", "kind", "segment", "metric", "value", "reference", "n",
                "message"} <= set(alert)


def test_bad_input_exits_with_the_input_error_code_and_names_the_file(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "broken.csv").write_text("id,ts,pred\n1,2026-01-01T00:00:00,yes\n")
    assert main(["log", "predictions", "broken.csv"]) == 3
    assert "broken.csv: missing column 'country'" in capsys.readouterr().err


def test_a_config_error_exits_with_code_two(project: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (project / "hindsight.yaml").write_text("model: m\nstore: s\n")
    assert main(["alerts"]) == 2
    assert "columns is missing" in capsys.readouterr().err


def test_a_bad_date_is_a_usage_error(project: Path) -> None:
    assert main(["run", "--date", "01/05/2026"]) == 2


@pytest.mark.slow
def test_demo_finds_the_planted_failure_first_and_nothing_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    scenario = Scenario(per_day=8000, days=28, failure_start=14)
    code = main(["demo", "--dir", str(tmp_path / "demo"), "--per-day", str(scenario.per_day),
                 "--days", str(scenario.days)])
    output = capsys.readouterr().out
    assert code == 0
    assert "Detected on the run of" in output and ", 0 elsewhere." in output
    assert main(["--config", str(tmp_path / "demo" / "hindsight.yaml"), "alerts",
                 "--format", "json"]) == 0
    opened = [a for a in json.loads(capsys.readouterr().out) if a["state"] == "opened"]
    first = opened[0]
    assert first["segment"] == {"country": "CH", "merchant_category": "restaurants"}
    onset = scenario.start + timedelta(days=14)
    assert date.fromisoformat(first["date"]) - onset <= timedelta(days=10)
    # At this small scale the planted cell is 3% of traffic and drags its neighbours down
    # too; those may alert, but nothing that does not share rows with it.
    for alert in opened[1:]:
        assert all(alert["segment"].get(k, v) == v for k, v in first["segment"].items())
    assert main(["--config", str(tmp_path / "demo" / "hindsight.yaml"), "evaluate",
                 "--incidents", str(tmp_path / "demo" / "incidents.yaml"),
                 "--format", "json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["runs"] == scenario.days
    assert scored["detections"][0]["delay_days"] <= 10
    assert scored["detections"][0]["exact_segment"] is True
    assert scored["false_alerts"] == []
    config = str(tmp_path / "demo" / "hindsight.yaml")
    end = (scenario.start + timedelta(days=scenario.days - 1)).isoformat()
    assert main(["--config", config, "drift", "--start", end, "--format", "json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert {r["feature"] for r in ranked} == {"amount", "vat_rate", "language"}
    assert ranked[0]["method"] == "psi"
    assert main(["--config", config, "metrics", "--date", end, "--format", "json"]) == 0
    overall = {r["metric"]: r for r in json.loads(capsys.readouterr().out) if not r["segment"]}
    # before any label arrives, the confidence-based estimate is already there
    assert overall["estimated_accuracy"]["value"] == pytest.approx(0.95, abs=0.02)
