"""The benchmark scripts run by hand; here they run at a tiny size so they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark(script: str, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script; when it fails, the failure shows what it printed."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_the_daily_job_benchmark_runs_and_reports_a_ratio(tmp_path: Path) -> None:
    done = benchmark("daily_job.py", "--per-day", "2000", "--days", "8", "--repeat", "1", "--dir",
                     str(tmp_path / "data"), "--processes", timeout=300)
    assert "daily job, the day before's counts" in done.stdout
    assert "ratio, daily job / bare query" in done.stdout
    assert "ratio, hindsight run / bare, as processes" in done.stdout


@pytest.mark.slow
def test_the_alert_quality_benchmark_runs_and_scores_both_scenarios(tmp_path: Path) -> None:
    done = benchmark("alert_quality.py", "--per-day", "3000", "--seeds", "5", "--null-days", "30",
                     "--dir", str(tmp_path / "data"), timeout=600)
    assert "planted failure from" in done.stdout
    assert done.stdout.count("false alerts:") == 2


@pytest.mark.slow
def test_the_bootstrap_benchmark_runs_side_by_side(tmp_path: Path) -> None:
    done = benchmark("bootstrap.py", "--rows", "2000", "--naive-replicates", "20", "--replicates",
                     "200", "--repeat", "1", timeout=300)
    assert "speed-up" in done.stdout and "threshold difference" in done.stdout


@pytest.mark.slow
def test_the_ingest_load_benchmark_runs_against_a_real_server() -> None:
    done = benchmark("ingest_load.py", "--seconds", "2", "--batch", "500", "--max-requests", "20",
                     timeout=300)
    assert "rows/s" in done.stdout and "durability costs" in done.stdout


@pytest.mark.slow
def test_the_soak_benchmark_runs_runs_and_compactions_beside_ingest_and_checks_the_store(
) -> None:
    done = benchmark("soak.py", "--seconds", "12", "--every", "4", "--rows-per-second", "2000",
                     "--batch", "500", "--per-day", "4000", timeout=600)
    assert "errors           : 0" in done.stdout and "hindsight check  : sound" in done.stdout


@pytest.mark.slow
def test_the_peer_benchmark_runs_hindsight_on_the_shared_data(tmp_path: Path) -> None:
    """The peers install from the registry, so CI runs hindsight's side of every comparison
    and the agreement checks against scipy and a direct count."""
    done = benchmark("peers.py", "--rows", "3000", "--repeat", "1", "--peers", "none", "--dir",
                     str(tmp_path / "data"), timeout=300)
    for task in ("hindsight-drift", "hindsight-performance", "hindsight-estimate"):
        assert task in done.stdout
    assert "(spread 0.0e+00)" in done.stdout  # and the run exits 0 only when all agree
    ks = next(line for line in done.stdout.splitlines() if "ks_2samp" in line)
    assert float(ks.rsplit(" ", 1)[1]) < 1e-6


@pytest.mark.slow
def test_the_scaling_benchmark_reports_every_size(tmp_path: Path) -> None:
    done = benchmark("scaling.py", "--sizes", "1000", "2000", "--days", "8", "--repeat", "1",
                     "--dir", str(tmp_path / "data"), timeout=600)
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["1,000", "2,000"]
    assert all(float(r[4]) > 0 for r in rows)  # the ratio to the bare query


@pytest.mark.slow
def test_the_store_age_benchmark_compares_old_and_young_stores_and_checks_they_agree(
    tmp_path: Path,
) -> None:
    done = benchmark("store_age.py", "--per-day", "1000", "--old-days", "30", "--young-days", "22",
                     "--repeat", "1", "--dir", str(tmp_path), timeout=600)
    assert "metric rows are identical" in done.stdout and "daily run" in done.stdout


@pytest.mark.slow
def test_the_scale_out_benchmark_compares_engines_and_a_bucket(tmp_path: Path) -> None:
    engines = benchmark("scale_out.py", "--per-day", "1500", "--repeat", "1", "--dir",
                        str(tmp_path / "data"), timeout=900)
    assert "spark local[2] / duckdb, incremental" in engines.stdout
    bucket = benchmark("scale_out.py", "--bucket", "moto", "--bucket-per-day", "1500", "--repeat",
                       "1", "--dir", str(tmp_path / "data"), timeout=900)
    assert "bucket" in bucket.stdout and "x" in bucket.stdout.splitlines()[-1]


@pytest.mark.slow
def test_the_backfill_benchmark_compares_shared_and_per_day_work(tmp_path: Path) -> None:
    done = benchmark("backfill.py", "--per-day", "800", "--days", "6", "--dir",
                     str(tmp_path / "data"), timeout=600)
    assert "per-day / backfill" in done.stdout
    # side by side with a source tree (here this one): the same results, to the bit
    against = benchmark("backfill.py", "--per-day", "800", "--days", "6", "--dir",
                        str(tmp_path / "data"), "--against", str(BENCHMARKS.parent), timeout=600)
    assert "to the bit" in against.stdout and against.stdout.count("CPU-s") == 2


@pytest.mark.slow
def test_the_cells_benchmark_agrees_with_a_cube_and_pandas(tmp_path: Path) -> None:
    done = benchmark("cells.py", "--per-day", "1000", "--repeat", "1", "--dir",
                     str(tmp_path / "data"), timeout=600)
    assert "all three give the same" in done.stdout


@pytest.mark.slow
def test_the_intraday_benchmark_times_checks_and_ingest_beside_them(tmp_path: Path) -> None:
    done = benchmark("intraday.py", "--per-day", "20000", "--seconds", "2", "--repeat", "1",
                     "--dir", str(tmp_path / "data"), timeout=600)
    assert "each later check: median" in done.stdout
    assert "checks back to back beside" in done.stdout


@pytest.mark.slow
def test_the_detection_benchmark_pages_on_the_break_on_every_schedule() -> None:
    done = benchmark("detection.py", "--per-day", "20000", "--break-at", "9", "--every", "1h",
                     timeout=600)
    assert done.stdout.count("after the break") == 2


@pytest.mark.slow
def test_the_workspace_benchmark_measures_every_way_of_running_the_models(tmp_path: Path
                                                                          ) -> None:
    done = benchmark("workspace.py", "--models", "4", "--smallest", "300", "--largest", "1000",
                     "--days", "8", "--repeat", "1", "--dir", str(tmp_path / "data"),
                     timeout=600)
    assert "the daily job of 4 models" in done.stdout
    assert "4 separate processes, one after the other" in done.stdout
    assert "workspace command, --jobs 2" in done.stdout and "MiB" in done.stdout


@pytest.mark.slow
def test_the_sources_benchmark_runs_and_the_three_sides_agree(tmp_path: Path) -> None:
    done = benchmark("sources.py", "--per-day", "1000", "--days", "10", "--repeat", "1",
                     "--dir", str(tmp_path / "data"), timeout=600)
    assert "all three store the same" in done.stdout
    assert done.stdout.count("MiB from") == 6


@pytest.mark.slow
def test_the_table_formats_benchmark_reads_the_same_ids_from_the_store_delta_and_iceberg(
    tmp_path: Path,
) -> None:
    """The script itself fails when the three read different ids, an id twice, or when Delta's
    MERGE or Iceberg's retried upsert lose or repeat an id under concurrent writers."""
    done = benchmark("table_formats.py", "--per-day", "1500", "--days", "4", "--batches", "3",
                     "--batch", "40", "--writers", "2", "--rounds", "2", "--repeat", "1",
                     "--dir", str(tmp_path / "data"), timeout=600)
    assert "all three read the same ids, each once" in done.stdout
    verdicts = {line.split(":")[0].strip(): line.rsplit("->", 1)[1].strip()
                for line in done.stdout.splitlines() if "acknowledged and lost" in line}
    assert verdicts["delta"] == "exactly once" and verdicts["iceberg-own"] == "exactly once"
    assert "0 counted a row twice" in done.stdout
    assert "PUT If-None-Match: *" in done.stdout  # Delta's commits: S3's conditional write


@pytest.mark.slow
def test_the_store_formats_benchmark_runs_hindsight_on_both_table_formats_and_they_agree(
    tmp_path: Path,
) -> None:
    """The script itself fails unless every store (Parquet and Delta, local and in the bucket,
    and the migrated one) holds each id once and the same metrics, alerts and drift."""
    done = benchmark("store_formats.py", "--per-day", "1500", "--days", "8", "--batches", "3",
                     "--batch", "40", "--dir", str(tmp_path / "data"), timeout=600)
    assert "once, and the same" in done.stdout and "migrate (hindsight storage migrate)" in (
        done.stdout)
    runs = [line for line in done.stdout.splitlines() if line.startswith(("  nightly", "  cold"))]
    assert len(runs) == 10 and sum("MiB served" in line for line in runs) == 4
    ingest = done.stdout.split("\ningest of", 1)[1].splitlines()[1:]
    assert [line.split(":")[0].strip() for line in ingest] == [
        "parquet, local", "delta, local", "parquet, bucket", "delta, bucket"]
    assert "PUT If-None-Match: *" in ingest[3]  # Delta's commits: S3's conditional write
