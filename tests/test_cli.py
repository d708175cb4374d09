from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from hindsight.cli import main
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario
from tests.conftest import COLUMNS
from tests.jobs.test_daily import seed_collapse


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
    assert ranked[0]["psi"] == max(r["psi"] for r in ranked if r["date"] == end)
    assert main(["--config", config, "metrics", "--date", end, "--format", "json"]) == 0
    overall = {r["metric"]: r for r in json.loads(capsys.readouterr().out) if not r["segment"]}
    # before any label arrives, the confidence-based estimate is already there
    assert overall["estimated_accuracy"]["value"] == pytest.approx(0.95, abs=0.02)


@pytest.fixture
def versioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose versions, classes and segment values look like rich markup."""
    (tmp_path / "good.yaml").write_text(
        "model: m\nstore: ./store\nmin_samples: 5\nlabel_window_days: 3\n"
        "alerts: {baseline_days: 1}\n"
        "columns: {id: id, timestamp: ts, prediction: pred, label: truth, "
        "label_timestamp: truth_at, model_version: version}\nsegments: [region]\n")
    lines = ["id,ts,pred,region,version"] + [
        f"{i},2026-01-0{1 + i % 3}T10:00:00,{'[bird]' if i % 4 else 'cat'},"
        f"{'[/x]' if i % 2 else 'north'},{'[/v2]' if i % 5 else 'm-2026.02.14'}"
        for i in range(60)]
    (tmp_path / "predictions.csv").write_text("\n".join(lines) + "\n")
    labels = [json.dumps({"id": str(i), "truth": "[bird]", "truth_at": "2026-01-08T00:00:00Z"})
              for i in range(60)]
    (tmp_path / "labels.jsonl").write_text("\n".join(labels) + "\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HINDSIGHT_CONFIG", "good.yaml")
    return tmp_path


def test_user_strings_that_look_like_markup_are_printed_as_they_are(
        versioned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "predictions", "predictions.csv"]) == 0
    assert main(["log", "labels", "labels.jsonl"]) == 0
    assert main(["run", "--date", "2026-01-08"]) == 6  # its window, 01-06..01-08, is empty
    capsys.readouterr()
    assert main(["versions"]) == 0
    shown = capsys.readouterr().out
    assert "[/v2]" in shown and "2026-01-03 10:00" in shown  # piped: whole, not cut at 80
    assert main(["metrics", "--date", "2026-01-03", "--as-of", "2026-01-08"]) == 0
    shown = capsys.readouterr().out
    assert "precision[[bird]]" in shown and "region=[/x]" in shown


def test_a_dotted_date_is_a_pinned_version(versioned: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "predictions", "predictions.csv"]) == 0
    said = capsys.readouterr().out
    assert "version=[/v2]" in said and "m-2026.02.14" not in said


@pytest.mark.parametrize("segment, named", [
    ("regoin=north", "'regoin' is not a segment column (did you mean 'region'?)"),
    ("region=south", "no predictions of that day have region='south'; values seen: [/x], north"),
    ("region", "expected COLUMN=VALUE"),
])
def test_a_segment_that_does_not_exist_is_a_usage_error_naming_what_does(
        versioned: Path, capsys: pytest.CaptureFixture[str], segment: str, named: str) -> None:
    main(["log", "predictions", "predictions.csv"])
    main(["run", "--date", "2026-01-03"])
    capsys.readouterr()
    assert main(["metrics", "--date", "2026-01-03", "--segment", segment]) == 2
    assert named in " ".join(capsys.readouterr().err.split())


def test_metrics_of_a_day_outside_a_runs_window_are_computed_as_of_that_run(
        versioned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """label_window_days is 3: the run of 01-08 covers days 6-8 only. Asking for day 1 as of
    01-08 joins that day now with every label known by then."""
    main(["log", "predictions", "predictions.csv"])
    main(["log", "labels", "labels.jsonl"])
    main(["run", "--date", "2026-01-08"])
    capsys.readouterr()
    assert main(["metrics", "--date", "2026-01-01", "--as-of", "2026-01-08",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    accuracy = next(r for r in rows if r["metric"] == "accuracy" and r["segment"] == {})
    day_one = [i for i in range(60) if i % 3 == 0]
    assert accuracy["n_labelled"] == len(day_one)
    assert accuracy["value"] == pytest.approx(sum(1 for i in day_one if i % 4) / len(day_one))
    assert main(["metrics", "--date", "2026-01-01", "--as-of", "2026-01-04",
                 "--format", "json"]) == 0
    early = json.loads(capsys.readouterr().out)
    assert next(r for r in early if r["metric"] == "accuracy" and r["segment"] == {}
                )["n_labelled"] == 0  # no label had arrived by then


def test_errors_name_the_config_file_in_use(versioned: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (versioned / "nolabel.csv").write_text("id,ts,pred,region\n1,2026-01-01T00:00:00,a,north\n")
    assert main(["log", "labels", "nolabel.csv"]) == 3
    assert "mapped in good.yaml" in capsys.readouterr().err
    assert main(["alerts", "test-sink", "nope"]) == 2
    assert "good.yaml: no sink named 'nope'" in capsys.readouterr().err


def test_an_empty_store_says_so_instead_of_none(versioned: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["versions"]) == 0
    shown = capsys.readouterr().out
    assert "None" not in shown and "No predictions stored yet" in shown
    assert main(["drift"]) == 0
    assert "no reference set" in capsys.readouterr().out


def test_a_bad_json_line_is_named_by_its_line_with_the_fix(
        versioned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (versioned / "bad.jsonl").write_text('{"id": "1", "truth": "a"}\n{"id": "2", truth}\n')
    assert main(["log", "labels", "bad.jsonl"]) == 3
    said = " ".join(capsys.readouterr().err.split())
    assert "bad.jsonl: line 2 is not valid JSON" in said and "one JSON object per line" in said


def test_evaluate_with_no_false_alert_prints_no_stray_alert_table(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["log", "predictions", "predictions.csv"])
    main(["backfill", "--start", "2026-01-01", "--end", "2026-01-03"])
    (project / "incidents.yaml").write_text(
        "- {segment: {country: CH}, start: 2026-01-02}\n")
    capsys.readouterr()
    assert main(["evaluate", "--incidents", "incidents.yaml"]) == 0
    shown = capsys.readouterr().out
    assert "False alerts: 0" in shown and "No alerts." not in shown


def test_the_command_line_starts_without_loading_what_a_command_does_not_use(
        project: Path) -> None:
    """--help loads neither the engine, the HTTP client nor Arrow; reading alerts loads Arrow
    but not the engine or the HTTP client; no command loads pandas (installed here), which
    pyarrow would import on its first conversion (0.3-0.5 s), and a run's results are the
    same as in a process that loaded it."""
    import subprocess
    import sys

    probe = ("import sys; from hindsight.cli import main; sys.argv[0] = 'hindsight'; "
             "code = main(); "
             "print(' '.join(m for m in ('duckdb', 'httpx', 'pyarrow', 'uvicorn', 'pandas') "
             "if m in sys.modules)); sys.exit(code)")
    loaded = {}
    for args in (["--help"], ["alerts"], ["log", "predictions", "predictions.csv"],
                 ["log", "labels", "labels.jsonl"], ["run", "--date", "2026-01-05"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                              text=True, check=True, cwd=project)
        loaded[args[0]] = set(done.stdout.split("\n")[-2].split())
    assert loaded["--help"] == set()
    assert loaded["alerts"] == {"pyarrow"}
    assert loaded["log"] == {"pyarrow", "duckdb"}
    assert "pandas" not in loaded["run"] and {"pyarrow", "duckdb"} <= loaded["run"]
    import pyarrow.parquet as pq

    spared = pq.read_table(project / "store" / "metrics").sort_by([("segment", "ascending"),
                                                                   ("metric", "ascending")])
    import pandas  # noqa: F401  # as a caller's process may have it

    assert main(["run", "--date", "2026-01-05"]) == 0
    again = pq.read_table(project / "store" / "metrics").sort_by([("segment", "ascending"),
                                                                  ("metric", "ascending")])
    assert spared.num_rows > 0 and spared.equals(again)


def test_drift_says_when_runs_had_no_predictions_to_compare(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["v1", "v2"], "ts": ["2026-01-01T00:00:00"] * 2,
                             "pred": ["yes", "no"], "truth": ["yes", "no"],
                             "country": ["CH", "DE"]}), project / "reference.parquet")
    assert main(["reference", "reference.parquet"]) == 0
    assert main(["run", "--date", "2026-01-01"]) == 6  # no prediction logged: says so
    capsys.readouterr()
    assert main(["drift", "--start", "2026-01-01", "--end", "2026-01-01"]) == 0
    assert "had no predictions of their day to compare" in capsys.readouterr().out


@pytest.mark.parametrize("name, content, named", [
    ("bad.jsonl", b'{"id": "0001", "ts": "2026-01-01T10:00:00", "pred": "yes", '
                  b'"country": "CH\xff"}\n', "line 1: column 'country' holds text that is not"),
    ("bad.csv", b"id,ts,pred,country\n0001,2026-01-01T10:00:00,yes,CH\xff\n", "invalid UTF8"),
    ("name.csv", b"id,ts,pred,country,\xff\n0001,2026-01-01T10:00:00,yes,CH,x\n",
     "a column name is not UTF-8"),
    ("twice.csv", b"id,ts,pred,country,country\n0001,2026-01-01T10:00:00,yes,CH,DE\n",
     "the column 'country' appears 2 times"),
    ("reserved.csv", b"id,ts,pred,country,_hindsight_file\n0001,2026-01-01T10:00:00,yes,CH,x\n"
                     b"0001,2026-01-01T10:00:00,yes,CH,y\n", "'_hindsight_file' is reserved"),
    ("deep.jsonl", b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"\n",
     "line 1 is nested too deeply (50000 levels"),
    ("deeper.jsonl", b'{"id": "0001", "note": "[[[[{{{{"}\n' + b"[" * 50_000 + b"]" * 50_000,
     "line 2 is nested too deeply"),
    ("null.jsonl", b"null", "line 1 is not a JSON object (it starts with b'null')"),
    ("nulls.jsonl", b"\xef\xbb\xbf\n  null\n{\"id\": \"0001\"}\n",
     "line 2 is not a JSON object"),
    ("list.jsonl", b'{"id": "0001", "ts": "2026-01-01T10:00:00", "pred": "yes"}\n[1, 2]\n',
     "line 2 is not a JSON object (it starts with b'[1, 2]')"),
])
def test_bad_files_exit_3_naming_the_problem_and_never_crash(
        project: Path, name: str, content: bytes, named: str) -> None:
    """In a process of its own: a parser that recursed without bound would end it."""
    import subprocess
    import sys

    (project / name).write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "hindsight.cli", "log", "predictions", name],
                          capture_output=True, text=True, cwd=project, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert named in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert not (project / "store" / "predictions").exists()


def test_alerts_state_open_lists_what_is_open_after_the_latest_run_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "hindsight.yaml"
    config.write_text(yaml.safe_dump({
        "model": "m", "store": str(tmp_path / "store"), "columns": COLUMNS,
        "segments": ["country", "tier"], "min_samples": 20}))
    with Monitor.from_config(config) as monitor:
        seed_collapse(monitor)
        monitor.backfill(date(2026, 1, 9), date(2026, 1, 18))
    capsys.readouterr()
    assert main(["--config", str(config), "alerts", "--state", "open", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and {a["date"] for a in found} == {"2026-01-18"}
    assert len({a["key"] for a in found}) == len(found)
    assert {"country": "CH"} in [a["segment"] for a in found]


def test_a_run_over_a_window_without_predictions_says_so_and_exits_six(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["log", "predictions", "predictions.csv"]) == 0
    assert main(["run", "--date", "2026-01-03"]) == 0
    capsys.readouterr()
    assert main(["run", "--date", "2026-03-01"]) == 6
    said = capsys.readouterr()
    assert "no predictions from 2026-02-09 to 2026-03-01" in said.err
    assert "feed stopped" in said.err


def test_storage_migrate_makes_delta_tables_and_changes_no_answer(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "predictions", "predictions.csv"]) == 0
    assert main(["log", "labels", "labels.jsonl"]) == 0
    assert main(["run", "--date", "2026-01-05"]) == 0
    capsys.readouterr()
    assert main(["metrics", "--date", "2026-01-01", "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["storage", "migrate"]) == 0
    said = capsys.readouterr().out
    assert "predictions" in said and "300" in said and "table_format: delta" in said
    assert (project / "store" / "predictions" / "_delta_log").is_dir()
    assert main(["log", "predictions", "predictions.csv"]) == 0  # nothing new, nothing twice
    assert main(["run", "--date", "2026-01-05"]) == 0
    capsys.readouterr()
    assert main(["metrics", "--date", "2026-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == before
    assert main(["check"]) == 0
