from __future__ import annotations

from pathlib import Path

import pytest

from hindsight.demo import MARKER, prepare_directory, run_demo
from hindsight.errors import ConfigError
from hindsight.simulate import Scenario


@pytest.mark.slow
def test_benign_input_drift_without_a_failure_raises_no_performance_alert(
    tmp_path: Path,
) -> None:
    scenario = Scenario(per_day=8000, days=35, failure_start=None, benign_drift_start=12,
                        seed=11)
    result = run_demo(tmp_path / "demo", scenario)
    assert [a.message for a in result.opened] == []
    last = result.runs[-1]
    assert last.segments_tested > 100 and last.segments_failing == 0
    assert not (tmp_path / "demo" / "incidents.yaml").exists()


def test_the_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a hindsight demo directory"):
        prepare_directory(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_the_demo_reuses_its_own_directory(tmp_path: Path) -> None:
    prepare_directory(tmp_path / "d")
    (tmp_path / "d" / "old.parquet").write_text("x")
    prepare_directory(tmp_path / "d")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [MARKER]
