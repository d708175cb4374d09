"""The command line's output for people and for pipes: plain narrow columns when piped,
``--format json|csv``, the whole population first, drift one row per feature per day,
progress only on a terminal, ``--config`` before or after the sub-command."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from hindsight.cli import main
from hindsight.config import load_config
from hindsight.demo import run_demo
from hindsight.listing import plain_columns
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario

BOXES = set("│┃━─┏┓┗┛┡┩└┘╇╈┼")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small demo store: 21 days, three features, a planted failure, alerts."""
    folder = tmp_path_factory.mktemp("listing") / "demo"
    run_demo(folder, Scenario(per_day=1500, days=21, failure_start=7, seed=5,
                              reference_rows=3000))
    return str(folder / "hindsight.yaml")


def output(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_plain_columns_pad_every_column_but_the_last_to_its_widest_cell() -> None:
    text = plain_columns(("a", "bb", "note"), [("xyz", "1", "long\ntext"), ("q", "22", "")])
    assert text.splitlines() == ["a    bb  note", "xyz  1   long text", "q    22"]


@pytest.mark.parametrize(("command", "head"), [
    (["alerts"], "date"), (["drift"], "date"), (["coverage"], "segment"),
    (["versions"], "column"), (["storage", "status"], "table"),
    (["metrics", "--date", "2026-10-15"], "segment")])
def test_piped_tables_are_plain_columns_without_boxes_or_padding(
    demo: str, capsys: pytest.CaptureFixture[str], command: list[str], head: str,
) -> None:
    lines = output(capsys, "--config", demo, *command).splitlines()
    assert lines and not BOXES & set("".join(lines)), command
    assert all(line == line.rstrip() for line in lines)
    lines = lines[[line.startswith(head + " ") for line in lines].index(True):]
    # each column as wide as its widest cell; only the last (free text) column grows
    last = lines[0].split("  ")[-1].strip()
    start = lines[0].index(last)
    assert start <= 160, (command, start)
    assert all(line[start - 2:start] == "  " for line in lines[1:] if len(line) > start)


def test_piped_alerts_are_one_line_each_as_wide_as_their_message(
    demo: str, capsys: pytest.CaptureFixture[str],
) -> None:
    found = json.loads(output(capsys, "--config", demo, "alerts", "--format", "json"))
    lines = output(capsys, "--config", demo, "alerts").splitlines()
    assert lines[0].split() == ["date", "at", "kind", "state", "alert"]
    assert len(lines) == 1 + len(found)
    for line, alert in zip(lines[1:], found, strict=True):
        assert line.endswith(alert["message"]) and len(line) <= len(alert["message"]) + 50


def test_drift_is_one_row_per_feature_per_day_with_the_stores_figures(
    demo: str, capsys: pytest.CaptureFixture[str],
) -> None:
    rows = json.loads(output(capsys, "--config", demo, "drift", "--format", "json"))
    with Monitor(load_config(demo)) as monitor:
        stored = monitor.drift()
        days = len(monitor.runs())
    assert len(rows) == days * 3  # three features
    assert len({(r["date"], r["feature"]) for r in rows}) == len(rows)
    for long in stored:
        row = next(r for r in rows if (r["date"], r["feature"]) == (long.date.isoformat(),
                                                                   long.feature))
        assert row[long.method] == pytest.approx(long.value)
    first_day = [r for r in rows if r["date"] == rows[0]["date"]]
    assert [r["psi"] for r in first_day] == sorted((r["psi"] for r in first_day), reverse=True)
    lines = output(capsys, "--config", demo, "drift").splitlines()
    assert len(lines) == 1 + days * 3
    assert lines[0].split()[:3] == ["date", "feature", "psi"]
    table = list(csv.DictReader(io.StringIO(output(capsys, "--config", demo, "drift",
                                                   "--format", "csv"))))
    assert len(table) == len(rows)
    assert float(table[0]["psi"]) == pytest.approx(rows[0]["psi"])
    assert table[0]["ks"] == "" or float(table[0]["ks"]) == pytest.approx(rows[0]["ks"])


def test_metrics_put_the_whole_population_first_in_every_format(
    demo: str, capsys: pytest.CaptureFixture[str],
) -> None:
    day = "2026-10-15"
    rows = json.loads(output(capsys, "--config", demo, "metrics", "--date", day,
                             "--format", "json"))
    with Monitor(load_config(demo)) as monitor:
        _, stored = monitor.metrics(date.fromisoformat(day))
    assert len(rows) == len(stored) > 100
    whole = [r for r in rows if not r["segment"]]
    assert whole and rows[:len(whole)] == whole
    assert [len(r["segment"]) for r in rows] == sorted(len(r["segment"]) for r in rows)
    expected = {(json.dumps(m.segment, sort_keys=True), m.metric): m.value for m in stored}
    assert {(json.dumps(r["segment"], sort_keys=True), r["metric"]): r["value"]
            for r in rows} == expected
    lines = output(capsys, "--config", demo, "metrics", "--date", day).splitlines()
    assert lines[1].startswith("(all)")
    table = list(csv.DictReader(io.StringIO(output(capsys, "--config", demo, "metrics",
                                                   "--date", day, "--format", "csv"))))
    assert table[0]["segment"] == "" and len(table) == len(rows)
    assert table[0]["metric"] == rows[0]["metric"]
    assert float(table[0]["n_predictions"]) == rows[0]["n_predictions"]


@pytest.mark.parametrize("command", [
    ["alerts"], ["versions"], ["storage", "status"], ["coverage"], ["storage", "retention"]])
def test_csv_output_parses_and_matches_the_json(
    demo: str, capsys: pytest.CaptureFixture[str], command: list[str],
) -> None:
    text = output(capsys, "--config", demo, *command, "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    if command == ["storage", "retention"]:
        assert parsed == []  # no retention configured: an empty table, still csv
        return
    found = json.loads(output(capsys, "--config", demo, *command, "--format", "json"))
    records = found["cells"] if command == ["coverage"] else found
    assert len(parsed) == len(records) > 0
    for key, value in records[0].items():
        if isinstance(value, str):
            assert parsed[0][key] == value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert float(parsed[0][key]) == pytest.approx(value)


def test_progress_is_shown_only_on_a_terminal(
    demo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert main(["--config", demo, "check"]) == 0
    assert main(["--config", demo, "compact"]) == 0
    streams = capsys.readouterr()
    for text in (streams.out, streams.err):
        assert "━" not in text and "checking" not in text and "compacting" not in text


def test_the_config_option_is_taken_before_or_after_the_sub_command(
    demo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no hindsight.yaml here
    before = output(capsys, "--config", demo, "alerts", "--format", "json")
    assert output(capsys, "alerts", "--config", demo, "--format", "json") == before
    assert output(capsys, "alerts", "--format", "json", f"--config={demo}") == before
    assert json.loads(output(capsys, "storage", "status", "--config", demo, "--format",
                             "json"))
    assert main(["log", "predictions", "--config", demo, str(tmp_path / "none.csv")]) == 3
    assert "none.csv" in capsys.readouterr().err


def test_a_piped_command_prints_no_colour_and_its_title_on_stderr(demo: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "FORCE_COLOR": "", "TERM": "xterm"}
    env.pop("FORCE_COLOR")
    done = subprocess.run([sys.executable, "-m", "hindsight.cli", "versions", "--config",
                           demo], capture_output=True, text=True, env=env, check=True)
    assert "\x1b[" not in done.stdout and "\x1b[" not in done.stderr
    assert done.stdout.splitlines()[0].split()[:2] == ["column", "value"]
    assert done.stderr.startswith("versions up to ")  # for the person, not the pipe
