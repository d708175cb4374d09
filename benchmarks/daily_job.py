"""Benchmark: the daily job against a bare DuckDB join + group-by over the same files.

Run by hand (not part of the test suite's timings):

    python benchmarks/daily_job.py                      # 500,000 predictions/day, 21-day join
    python benchmarks/daily_job.py --per-day 50000      # smaller
    python benchmarks/daily_job.py --per-day 40000 --processes   # also as whole processes

It simulates ``--days`` days into a store (kept in ``--dir`` for reuse), then alternates the
measurements, each in a fresh process so that peak memory is its own, and prints medians and
the ratio. The job is measured as it runs day after day (the day before's run, in a process of
its own, carried its counts; each measurement starts from a copy of them) and cold (nothing
carried: a first run, or one after the past changed).

With ``--processes`` it also times whole processes from the outside, as a scheduler sees them:
``hindsight run`` (the command, interpreter start and imports included, from the day before's
counts) against a process that imports only DuckDB, lists the window's files by their date
folders and runs the bare query. Both processes' rows are checked: the bare process must count
exactly the predictions the in-process bare query counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import yaml
from child import in_own_process
from memory import own_peak_mib

HERE = Path(__file__).resolve()
KINDS = {
    "job": "daily job, the day before's counts",
    "job-cold": "daily job, nothing carried",
    "job-no-rule": "daily job without alert statistics",
    "bare": "bare DuckDB join + group-by",
}
PROCESS_KINDS = {
    "run-process": "hindsight run, a whole process",
    "bare-process": "bare query, a whole process",
}
CARRIED_ASIDE = "counts-of-the-day-before"
BARE_SQL = (
    "WITH l AS (SELECT prediction_id, arg_max(true_category, _hindsight_arrived_at) AS label "
    "FROM read_parquet($labels) GROUP BY 1) "
    "SELECT CAST(predicted_at AS DATE) AS day, merchant_category, country, customer_tier, "
    "count(*) AS n, count(label) AS n_labelled, count_if(predicted_category = label) AS n_right "
    "FROM read_parquet($predictions) p LEFT JOIN l USING (prediction_id) GROUP BY ALL")
# What a user writes by hand: DuckDB alone, the files found by their date folders.
BARE_PROCESS = """
import glob, sys, duckdb
store, first, last = sys.argv[1:4]
def day(path): return path.split("dt=")[1][:10]
predictions = sorted(p for p in glob.glob(store + "/predictions/dt=*/*.parquet")
                     if first <= day(p) <= last)
labels = sorted(p for p in glob.glob(store + "/labels/dt=*/*.parquet") if day(p) <= last)
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
counted = con.sql(sys.argv[4], params={"labels": labels, "predictions": predictions})
print(sum(counted.to_arrow_table()["n"].to_pylist()))
"""


def prepare(directory: Path, per_day: int, days: int) -> Path:
    from hindsight.config import load_config
    from hindsight.monitor import Monitor
    from hindsight.simulate import Scenario, Simulator, demo_config

    config_file = directory / "hindsight.yaml"
    stamp = directory / "prepared.json"
    wanted = {"per_day": per_day, "days": days}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return config_file
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    config_file.write_text(yaml.safe_dump(demo_config("store"), sort_keys=False))
    scenario = Scenario(per_day=per_day, days=days, failure_start=days - 7)
    simulator = Simulator(scenario)
    started = time.perf_counter()
    with Monitor(load_config(config_file)) as monitor:
        monitor.log_reference(simulator.reference())
        for day in simulator.days():
            monitor.log_predictions(day.predictions)
            if day.labels.num_rows:
                monitor.log_labels(day.labels)
            print(f"  logged {day.day}", file=sys.stderr, flush=True)
    print(f"prepared {days} x {per_day:,} predictions in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    stamp.write_text(json.dumps(wanted))
    return config_file


def measure(kind: str, config_file: Path) -> dict[str, float]:
    from hindsight.cli import spare_pandas_probe
    from hindsight.config import load_config
    from hindsight.engine.duck import DuckDBEngine
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    spare_pandas_probe()  # as the ``hindsight`` command does
    config = load_config(config_file)
    counts = Path(config.store) / Table.COUNTS
    shutil.rmtree(counts, ignore_errors=True)
    if kind in ("job", "job-no-rule"):  # as the day before's run left the store
        shutil.copytree(config_file.parent / CARRIED_ASIDE, counts)
    changes: list[object] = []  # whether the job counted from the carried counts
    original = DuckDBEngine._count_change
    DuckDBEngine._count_change = (  # type: ignore[method-assign]
        lambda self, *a: changes.append(a) or original(self, *a))
    with Monitor(config, rule=_NoAlerts() if kind == "job-no-rule" else None) as monitor:
        as_of = monitor.store.partitions(Table.PREDICTIONS)[-1]
        started = time.perf_counter()
        if kind == "day-before":
            monitor.run(as_of - timedelta(days=1))
        elif kind.startswith("job"):
            monitor.run(as_of)
        else:
            rows = _bare_query(monitor, as_of,
                               as_of - timedelta(days=config.label_window_days - 1))
        seconds = time.perf_counter() - started
    peak_mib = own_peak_mib()
    assert bool(changes) == (kind in ("job", "job-no-rule")), f"{kind}: carried counts unused"
    found = {"seconds": seconds, "peak_mib": peak_mib}
    return {**found, "rows": rows} if kind == "bare" else found


def measure_process(kind: str, config_file: Path) -> dict[str, float]:
    """One whole process timed from the outside: its wall time, and its own peak memory
    (``wait4`` gives that child's usage alone)."""
    from hindsight.config import load_config

    config = load_config(config_file)
    store = Path(config.store)
    as_of = max(p.name.removeprefix("dt=") for p in (store / "predictions").glob("dt=*"))
    if kind == "run-process":
        shutil.rmtree(store / "counts", ignore_errors=True)
        shutil.copytree(config_file.parent / CARRIED_ASIDE, store / "counts")
        command = [sys.executable, "-m", "hindsight", "--config", str(config_file), "run",
                   "--date", as_of, "--delivery-seconds", "0"]
    else:
        first = (date.fromisoformat(as_of) - timedelta(days=config.label_window_days - 1))
        command = [sys.executable, "-c", BARE_PROCESS, str(store), first.isoformat(), as_of,
                   BARE_SQL]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    out, err = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} exited {status}:\n{out}\n{err}")
    found = {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}
    if kind == "bare-process":
        found["rows"] = int(out.strip())
    else:
        assert f"as of {as_of}" in out, out
    return found


def carry_day_before(config_file: Path) -> None:
    """Run the day before the last, in a process of its own, and keep the counts it carried
    aside: each measurement of the job as it runs daily starts from a copy of them."""
    from hindsight.config import load_config

    in_own_process(HERE, "--measure", "day-before", "--dir", str(config_file.parent))
    aside = config_file.parent / CARRIED_ASIDE
    shutil.rmtree(aside, ignore_errors=True)
    shutil.copytree(Path(load_config(config_file).store) / "counts", aside)


class _NoAlerts:
    """The daily job minus the alert statistics: what they add is the difference."""

    def evaluate(self, *args: object, **kwargs: object) -> object:
        from hindsight.alerts.rules import RuleResult

        return RuleResult((), frozenset(), frozenset(), frozenset(), 0)


def _bare_query(monitor: object, as_of: object, first: object) -> int:
    """The least any engine must do: join the window with the labels in force and count per
    finest cell. No rollups, no metrics, no alerts, no writes."""
    import duckdb

    from hindsight.store.partitions import Table

    store = monitor.store  # type: ignore[attr-defined]
    predictions = [f.path for f in store.files(Table.PREDICTIONS, first, as_of)]
    labels = [f.path for f in store.files(Table.LABELS, None, as_of)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    counted = con.sql(BARE_SQL, params={"labels": labels, "predictions": predictions})
    return int(sum(counted.to_arrow_table()["n"].to_pylist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/daily_job"))
    parser.add_argument("--processes", action="store_true",
                        help="also time hindsight run and the bare query as whole processes")
    parser.add_argument("--measure", choices=[*KINDS, "day-before"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.dir / "hindsight.yaml")))
        return
    config_file = prepare(args.dir.resolve(), args.per_day, args.days)
    carry_day_before(config_file)
    kinds = {**KINDS, **(PROCESS_KINDS if args.processes else {})}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeat):
        for kind in kinds:  # alternate, so drift on a shared machine hits all alike
            results[kind].append(
                measure_process(kind, config_file) if kind in PROCESS_KINDS else
                json.loads(in_own_process(HERE, "--measure", kind, "--dir",
                                          str(config_file.parent))))
    counted = {r["rows"] for k in ("bare", "bare-process") for r in results.get(k, [])}
    assert len(counted) == 1, f"the bare query in and out of hindsight counted {counted}"
    seconds = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    peak = {k: max(r["peak_mib"] for r in v) for k, v in results.items()}
    rows = args.per_day * min(args.days, 21)
    print(f"daily job, {args.per_day:,} predictions/day, {rows:,} predictions in the label "
          f"window, median of {args.repeat}:")
    for kind, label in kinds.items():
        print(f"  {label:34}: {seconds[kind]:6.2f} s   peak {peak[kind]:6.0f} MiB")
    print(f"  ratio, daily job / bare query     : {seconds['job'] / seconds['bare']:6.2f} x")
    print(f"  ratio, nothing carried / bare     : {seconds['job-cold'] / seconds['bare']:6.2f} x")
    extra = seconds["job"] / seconds["job-no-rule"] - 1
    print(f"  alert statistics add              : {extra:6.1%}")
    if args.processes:
        ratio = seconds["run-process"] / seconds["bare-process"]
        print(f"  ratio, hindsight run / bare, as processes: {ratio:6.2f} x")


if __name__ == "__main__":
    main()
