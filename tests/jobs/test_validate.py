from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from hindsight.cli import main
from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.jobs.validate import latest_verdicts
from hindsight.monitor import Monitor


def reference(n: int = 6000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["a", "b", "c"], n)
    right = rng.random(n) < 0.92
    predicted = np.where(right, truth, np.where(truth == "a", "b", "a"))
    return pa.table({
        "request_id": [f"val-{i}" for i in range(n)],
        "served_at": ["2026-01-01T00:00:00Z"] * n,
        "country": rng.choice(["CH", "DE", "FR"], n, p=[0.45, 0.45, 0.1]),
        "tier": rng.choice(["free", "pro"], n),
        "predicted": predicted, "actual": truth,
    })


def candidate(ref: pa.Table, seed: int, broken_country: str | None = None) -> pa.Table:
    """An equivalent model (different mistakes, same rate), optionally worse in one country."""
    rng = np.random.default_rng(seed)
    truth = ref["actual"].to_numpy(zero_copy_only=False)
    rate = np.where(ref["country"].to_numpy(zero_copy_only=False) == broken_country, 0.7, 0.92)
    right = rng.random(ref.num_rows) < rate
    predicted = np.where(right, truth, np.where(truth == "a", "c", "a"))
    return pa.table({"request_id": ref["request_id"], "predicted": predicted})


@pytest.fixture
def monitor(make_config: Callable[..., Config]) -> Monitor:
    m = Monitor(make_config())
    m.log_reference(reference())
    return m


def test_an_equivalent_candidate_passes(monitor: Monitor) -> None:
    result = monitor.validate(candidate(reference(), 1), version="v2")
    assert result.passed, result.failures
    assert len(result.comparisons) == 1 + 3 + 2  # everyone, three countries, two tiers
    assert 0.8 < result.agreement < 0.95


def test_a_candidate_worse_in_one_segment_fails_and_names_it(monitor: Monitor) -> None:
    result = monitor.validate(candidate(reference(), 2, broken_country="FR"))
    assert not result.passed
    assert [c.segment for c in result.comparisons if c.worse] == [{"country": "FR"}]
    assert any(f.startswith("country=FR: accuracy") for f in result.failures)
    assert all(not c.worse for c in result.comparisons if c.segment.get("country") == "DE")


def test_a_callable_over_the_reference_rows_is_a_candidate(monitor: Monitor) -> None:
    result = monitor.validate(lambda rows: rows["predicted"])  # the promoted model itself
    assert result.passed and result.agreement == 1.0 and result.class_shift == 0.0


def test_missing_validation_ids_are_named(monitor: Monitor) -> None:
    partial = candidate(reference(), 3).slice(0, 5000)
    with pytest.raises(InputError, match=r"1000 of 6000 validation ids have no prediction "
                                         r"\(e.g. val-5000, val-5001, val-5002\)"):
        monitor.validate(partial)


def test_odd_version_strings_are_refused(monitor: Monitor) -> None:
    with pytest.raises(InputError, match="printable"):
        monitor.validate(candidate(reference(), 1), version="v2\n; rm -rf /")


def test_the_cli_gate_exits_non_zero_on_failure(
    monitor: Monitor, make_config: Callable[..., Config], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = make_config()
    (tmp_path / "hindsight.yaml").write_text(
        f"model: m\nstore: {config.store}\nmin_samples: 20\nsegments: [country, tier]\n"
        "columns: {id: request_id, timestamp: served_at, prediction: predicted, "
        "label: actual}\n")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    pacsv.write_csv(candidate(reference(), 1), good)
    pacsv.write_csv(candidate(reference(), 2, broken_country="FR"), bad)
    args = ["--config", str(tmp_path / "hindsight.yaml"), "validate", "--candidate"]
    assert main([*args, str(good)]) == 0
    assert main([*args, str(bad)]) == 5
    assert "FAILED: country=FR" in capsys.readouterr().out
    # a batch-scoring job's output: part files, here split by the candidate's prediction
    parts = tmp_path / "bad-parts"
    pq.write_to_dataset(candidate(reference(), 2, broken_country="FR"), parts,
                        partition_cols=["predicted"])
    assert main([*args, str(parts)]) == 5
    assert "FAILED: country=FR" in capsys.readouterr().out


def test_the_verdict_is_kept_for_the_versions_listing(monitor: Monitor) -> None:
    monitor.validate(candidate(reference(), 2, broken_country="FR"), version="v3")
    monitor.validate(candidate(reference(), 1), version="v3")
    verdict = latest_verdicts(monitor.store)["v3"]
    assert verdict[0] is True
