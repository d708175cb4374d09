from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from hindsight.alerts.rules import DropRule, RunWindow
from hindsight.cli import main
from hindsight.config import parse_config
from hindsight.jobs.coverage import blind_note, coverage_of, measure, run_blind_note
from hindsight.monitor import Monitor
from hindsight.simulate import Scenario, demo_config
from tests.conftest import log_simulation

SCENARIO = Scenario(per_day=2_000, days=12, failure_start=None, reference_rows=3_000, seed=4)
RAW = {"label_window_days": 10, "alerts": {"baseline_days": 3}, "min_samples": 100,
       "drift": {"min_samples": 500}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("coverage")
    raw = {**demo_config(str(directory / "store")), **RAW}
    (directory / "hindsight.yaml").write_text(json.dumps(raw))
    log_simulation(Monitor(parse_config(raw)), SCENARIO).close()
    return directory


def test_every_cell_says_its_smallest_drop_and_delay_or_why_it_is_blind(store: Path) -> None:
    with Monitor.from_config(store / "hindsight.yaml") as monitor:
        assert isinstance(monitor.rule, DropRule)
        report = coverage_of(SCENARIO.end, monitor.config, monitor.store, monitor.engine,
                             monitor.rule, 0.1, 0.1)
    whole = report.cells[0]
    assert whole.segment == {} and whole.reason is None
    # min_effect (0.05) with power to spare, but an observed drop must reach it too
    assert whole.min_detectable_drop is not None and 0.05 < whole.min_detectable_drop < 0.06
    assert whole.days_to_detect == report.maturity_age
    assert whole.drift_reason is None and whole.drift_days_to_detect == 0
    for cell in report.cells:
        assert (cell.min_detectable_drop is None) == (cell.reason is not None)
        if cell.reason is None:
            assert cell.min_detectable_drop is not None and cell.min_detectable_drop > 0.05
    blind = [c for c in report.cells if c.reason is not None]
    assert blind and {c.reason for c in blind} <= {"too few labels", "no reference",
                                                   "label delay beyond the window"}
    crosses = [c for c in report.cells if len(c.segment) > 1]
    assert all(c.drift_reason is not None and "single segment" in c.drift_reason
               for c in crosses)
    assert 0 < sum(report.blind[3].values()) <= 1


def test_smaller_cells_can_only_see_larger_drops(store: Path) -> None:
    with Monitor.from_config(store / "hindsight.yaml") as monitor:
        assert isinstance(monitor.rule, DropRule)
        report = coverage_of(SCENARIO.end, monitor.config, monitor.store, monitor.engine,
                             monitor.rule, 0.1, 0.1)
    seen = [c for c in report.cells if c.min_detectable_drop is not None
            and len(c.segment) == 1 and c.predictions_per_day >= 100]
    by_size = sorted(seen, key=lambda c: c.predictions_per_day)
    assert by_size[0].min_detectable_drop > by_size[-1].min_detectable_drop  # type: ignore[operator]


def test_the_coverage_command_gives_one_object_per_cell_as_json(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(store)
    assert main(["coverage", "--date", str(SCENARIO.end), "--drop", "0.2",
                 "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["drop"] == 0.2 and found["cells"][0]["segment"] == {}
    assert {"segment", "min_detectable_drop", "days_to_detect", "reason",
            "drift"} <= set(found["cells"][0])
    assert main(["coverage", "--date", str(SCENARIO.end)]) == 0
    text = capsys.readouterr().out
    assert "smallest detectable drop" in text and "(all)" in text


def test_the_run_summary_says_what_share_of_predictions_no_cell_can_test(store: Path) -> None:
    with Monitor.from_config(store / "hindsight.yaml") as monitor:
        summary = monitor.run(SCENARIO.end)
        assert isinstance(monitor.rule, DropRule)
        report = coverage_of(SCENARIO.end, monitor.config, monitor.store, monitor.engine,
                             monitor.rule, 0.1, 0.1)
    line = next(n for n in summary.notes if n.startswith("coverage: "))
    crosses = sum(report.blind[3].values())
    assert f"crosses of 3 {crosses:.1%} (too few labels" in line
    assert "'hindsight coverage' shows each cell" in line


def test_the_run_summary_line_is_the_full_reports_line_to_the_bit(store: Path) -> None:
    """A run computes its coverage line without the rest of the report: the same shares."""
    with Monitor.from_config(store / "hindsight.yaml") as monitor:
        rule = monitor.rule
        assert isinstance(rule, DropRule)
        config = monitor.config
        reference = monitor.engine.reference_counts()
        assert reference is not None
        for as_of in (SCENARIO.end - timedelta(days=3), SCENARIO.end):
            window = RunWindow(as_of, as_of - timedelta(days=config.label_window_days - 1))
            counts = monitor.engine.cell_counts(as_of, window.first_day, as_of, None)
            report = measure(window, counts.cells, reference.cells, None, config, rule,
                             rule.min_effect, 0.0, counts.label_ages, with_drift=False)
            line = run_blind_note(window, counts.cells, reference.cells, rule,
                                  counts.label_ages)
            assert line is not None and line == blind_note(report)
            assert "crosses of 2" in line and "crosses of 3" in line
