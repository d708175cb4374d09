"""Benchmark: accuracy of every cell and cross, hindsight against what a user writes by hand.

    python benchmarks/cells.py --repeat 3                   # the daily_job store, 10.5 M rows

The same files, the same question: for each prediction day of the 21-day window and each
combination of the segments (the population, each segment, each pair, the triple), the
labelled predictions and the correct ones, with the labels in force at the end of the last day.
Each side runs in a fresh process and starts from the Parquet files:

- ``hindsight``: the engine's ``cell_counts`` (which also counts per class, label ages and the
  calibrated expectation — more than asked) and the accuracy rows made from it (``metric_rows``);
- ``duckdb-cube``: one hand-written DuckDB query, the join then ``GROUP BY day, CUBE(...)``;
- ``pandas``: ``read_parquet``, the latest label per id, a merge, then one ``groupby`` per
  combination of segments.

All three must give the same labelled and correct counts for every cell: the benchmark fails
otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from datetime import timedelta
from itertools import combinations
from pathlib import Path

from child import in_own_process
from daily_job import prepare
from memory import own_peak_mib

HERE = Path(__file__).resolve()
SIDES = ("hindsight", "duckdb-cube", "pandas")


def _inputs(config_file: Path) -> tuple[object, list[str], list[str], object, object]:
    from hindsight.config import load_config
    from hindsight.store.partitions import Store, Table

    config = load_config(config_file)
    store = Store.open(config.store)
    last = store.partitions(Table.PREDICTIONS)[-1]
    first = last - timedelta(days=config.label_window_days - 1)
    predictions = [f.path for f in store.files(Table.PREDICTIONS, first, last)]
    labels = [f.path for f in store.files(Table.LABELS, None, last)]
    return config, predictions, labels, first, last


def measure(side: str, config_file: Path, out: Path) -> dict[str, float]:
    from hindsight.config import load_config

    # every side counts from the files: none from the counts a daily run carried
    shutil.rmtree(Path(load_config(config_file).store) / "counts", ignore_errors=True)
    started = time.perf_counter()
    config, predictions, labels, first, last = _inputs(config_file)
    segments = list(config.segments)  # type: ignore[attr-defined]
    if side == "hindsight":
        from hindsight.cli import spare_pandas_probe
        from hindsight.monitor import Monitor

        spare_pandas_probe()  # as the ``hindsight`` command does

        with Monitor(config) as monitor:  # type: ignore[arg-type]
            counts = monitor.engine.cell_counts(last, first, last)  # type: ignore[arg-type]
            from hindsight.jobs.performance import metric_rows

            metric_rows(counts, "classification")
        cells = counts.cells.select(["day", "segment", "n_labelled", "n_correct"])
        rows = [(str(d), s, int(n), int(c)) for d, s, n, c in zip(
            *(cells[c].to_pylist() for c in cells.column_names), strict=True)]
    elif side == "duckdb-cube":
        rows = _cube(predictions, labels, segments, last)
    else:
        rows = _pandas(predictions, labels, segments, last)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps(sorted(rows)))
    return {"seconds": seconds, "peak_mib": own_peak_mib()}


def _key(segments: list[str], values: dict[str, object]) -> str:
    from hindsight.alerts.model import segment_key

    return segment_key({s: str(values[s]) for s in segments if values.get(s) is not None})


def _cube(predictions: list[str], labels: list[str], segments: list[str],
          last: object) -> list[tuple[str, str, int, int]]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cube = ", ".join(segments)
    table = con.sql(
        "WITH l AS (SELECT prediction_id, arg_max(true_category, _hindsight_arrived_at) "
        "AS label FROM read_parquet($labels) WHERE _hindsight_arrived_at < $stop GROUP BY 1) "
        f"SELECT CAST(predicted_at AS DATE) AS day, {cube}, count(label) AS n_labelled, "
        "coalesce(count_if(predicted_category = label), 0) AS n_correct "
        "FROM read_parquet($predictions) p LEFT JOIN l USING (prediction_id) "
        f"GROUP BY day, CUBE ({cube})",
        params={"labels": labels, "predictions": predictions,
                "stop": f"{last + timedelta(days=1)} 00:00:00+00"},  # type: ignore[operator]
    ).to_arrow_table()
    return [(str(r["day"]), _key(segments, r), int(r["n_labelled"]), int(r["n_correct"]))
            for r in table.to_pylist()]


def _pandas(predictions: list[str], labels: list[str], segments: list[str],
            last: object) -> list[tuple[str, str, int, int]]:
    import pandas as pd

    stop = pd.Timestamp(f"{last + timedelta(days=1)}", tz="UTC")  # type: ignore[operator]
    found = pd.concat([pd.read_parquet(p) for p in labels], ignore_index=True)
    found = found[found["_hindsight_arrived_at"] < stop]
    in_force = (found.sort_values("_hindsight_arrived_at")
                .drop_duplicates("prediction_id", keep="last")[["prediction_id",
                                                                "true_category"]])
    made = pd.concat([pd.read_parquet(p, columns=["prediction_id", "predicted_at",
                                                  "predicted_category", *segments])
                      for p in predictions], ignore_index=True)
    joined = made.merge(in_force, on="prediction_id", how="left")
    joined["day"] = joined["predicted_at"].dt.date.astype(str)
    joined["labelled"] = joined["true_category"].notna()
    joined["correct"] = joined["predicted_category"] == joined["true_category"]
    rows = []
    for k in range(len(segments) + 1):
        for combo in combinations(segments, k):
            grouped = joined.groupby(["day", *combo], observed=True)[
                ["labelled", "correct"]].sum().reset_index()
            for record in grouped.to_dict("records"):
                rows.append((record["day"], _key(list(combo), record),
                             int(record["labelled"]), int(record["correct"])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-day", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/.data/daily_job"))
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        side, config_file, out = args.measure
        print(json.dumps(measure(side, Path(config_file), Path(out))))
        return
    config_file = prepare(args.dir.resolve(), args.per_day, 21)
    timings: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(args.repeat):
        for side in SIDES:  # alternate: a noisy machine hits all alike
            timings[side].append(json.loads(in_own_process(
                HERE, "--measure", side, str(config_file),
                str(config_file.parent / f"{side}.json"))))
    answers = {side: json.loads((config_file.parent / f"{side}.json").read_text())
               for side in SIDES}
    assert answers["hindsight"] == answers["duckdb-cube"], "hindsight and the CUBE disagree"
    assert answers["hindsight"] == answers["pandas"], "hindsight and pandas disagree"
    print(f"accuracy of every cell and cross, {args.per_day:,} predictions a day, 21 days; "
          f"medians of {args.repeat}; all three give the same {len(answers['pandas']):,} cells:")
    for side in SIDES:
        seconds = statistics.median(t["seconds"] for t in timings[side])
        peak = max(t["peak_mib"] for t in timings[side])
        print(f"  {side:12}: {seconds:7.2f} s   peak {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
