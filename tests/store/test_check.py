from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from hindsight.cli import cli
from hindsight.config import Config
from hindsight.monitor import Monitor
from hindsight.store.compaction import compact
from hindsight.store.partitions import Table
from tests.conftest import label, prediction


@pytest.fixture
def filled(make_config: Callable[..., Config]) -> Monitor:
    monitor = Monitor(make_config())
    for r in range(4):
        monitor.log_predictions([prediction(r * 10 + i, 5, "CH", "a") for i in range(10)])
    monitor.log_labels([label(i, "a", 6) for i in range(20)])
    return monitor


def parts(monitor: Monitor, table: Table = Table.PREDICTIONS) -> list[Path]:
    return [Path(f.path) for f in monitor.store.files(table)]


def test_a_store_written_by_hindsight_is_sound_before_and_after_compaction(
        filled: Monitor) -> None:
    report = filled.check()
    assert report.ok and report.rows["predictions"] == 40 and report.rows["labels"] == 20
    compact(filled.store, grace=timedelta(minutes=10))
    after = filled.check()
    assert after.ok and after.rows == report.rows and after.files < report.files


def test_a_copied_file_is_reported_as_ids_stored_twice_naming_both_files(
        filled: Monitor) -> None:
    first = parts(filled)[0]
    shutil.copy(first, first.with_name("part-copy.parquet"))
    problems = filled.check().problems
    assert len(problems) == 1
    assert "10 value(s) of request_id stored more than once" in problems[0].problem
    assert first.name in problems[0].problem and "part-copy.parquet" in problems[0].problem
    assert "move it out of the store" in problems[0].fix


def test_a_truncated_file_and_a_file_of_other_types_are_named(filled: Monitor) -> None:
    truncated, other = parts(filled)[:2]
    truncated.write_bytes(truncated.read_bytes()[:-20])
    filled.store.write(Table.LABELS, pa.table({"request_id": [1], "actual": [2.5]}),
                       dt=date(2026, 1, 7), name="part-odd.parquet")
    problems = {Path(p.path).name: p for p in filled.check().problems}
    assert "cannot be read as Parquet" in problems[truncated.name].problem
    assert "column types disagree" in problems["part-odd.parquet"].problem
    assert other.name not in problems


def test_a_commit_whose_merged_file_is_gone_says_whether_rows_were_lost(
        filled: Monitor) -> None:
    compact(filled.store, grace=timedelta(minutes=10))
    merged = parts(filled)[0]
    merged.unlink()
    problem = filled.check().problems[0]
    assert "which is missing" in problem.problem and "remove this marker" in problem.fix
    for replaced in merged.parent.glob("part-*.parquet"):
        replaced.unlink()
    problem = filled.check().problems[0]
    assert "rows are lost" in problem.problem and "backup" in problem.fix


def test_the_check_command_exits_4_with_the_problems_and_0_when_sound(
        filled: Monitor, tmp_path: Path) -> None:
    import yaml

    config_file = tmp_path / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump(json.loads(filled.config.model_dump_json(
        exclude_defaults=True))))
    runner = CliRunner()
    sound = runner.invoke(cli, ["--config", str(config_file), "check"])
    assert sound.exit_code == 0 and "The store is sound." in sound.output
    first = parts(filled)[0]
    shutil.copy(first, first.with_name("part-copy.parquet"))
    broken = runner.invoke(cli, ["--config", str(config_file), "check", "--format", "json"])
    assert broken.exit_code == 4
    assert json.loads(broken.stdout)["ok"] is False


def test_two_files_that_disagree_are_named_even_when_the_first_lacks_the_column(
        filled: Monitor) -> None:
    """A feature sent as 1.5 in one batch and "abc" in another: each file agrees with the
    first (which has no such column), so a check against the first alone said sound."""
    day = date(2026, 1, 9)
    filled.store.write(Table.PREDICTIONS, pa.table({"request_id": ["x1"]}), dt=day,
                       name="part-0-first.parquet")
    filled.store.write(Table.PREDICTIONS, pa.table({"request_id": ["x2"], "f": [1.5]}), dt=day,
                       name="part-1-float.parquet")
    filled.store.write(Table.PREDICTIONS, pa.table({"request_id": ["x3"], "f": ["abc"]}),
                       dt=day, name="part-2-text.parquet")
    problems = [p for p in filled.check().problems if "column types" in p.problem]
    assert [Path(p.path).name for p in problems] == ["part-2-text.parquet"]
    assert "part-1-float.parquet" in problems[0].problem and "'f'" in problems[0].problem
