"""One measurement of one tool, in a process of its own:

    python benchmarks/peer_tasks.py TASK DATA_DIR

prints one JSON line: seconds (from reading the Parquet files to the tool's answer, imports
excluded on every side, hindsight's process started as its command starts it; hindsight's
``*-files`` tasks log the files into a new store first, the others read the store
``peer_data`` filled), peak resident memory of the process in MiB, and the values
the tool computed, for the agreement checks. The peer tasks run in the peer's own virtual
environment, where hindsight is not installed: they import only the standard library here and
the peer inside.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory import own_peak_mib

NUMERIC = [f"x{i}" for i in range(10)]
CATEGORICAL = [f"c{i}" for i in range(5)]
FEATURES = NUMERIC + CATEGORICAL
SEGMENTS = ["c0", "c1", "c2"]  # 3 x 8 x 20 values: 755 cells and their crosses, plus all
Values = dict[str, Any]


# ---- hindsight -----------------------------------------------------------------------------

def hindsight_drift(data: Path) -> tuple[float, Values]:
    """Feature drift on 15 features and prediction drift (classes and score), one day."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq
    from peer_data import DAY

    from hindsight.config import load_config
    from hindsight.jobs import drift

    config = load_config(data / "hindsight.yaml")
    needed = ["y_pred", "confidence", *FEATURES]
    started = time.perf_counter()
    reference = pq.read_table(data / "reference.parquet", columns=needed)
    current = pq.read_table(data / "current.parquet", columns=needed)
    cut = drift.slices(current, reference, (), config.min_samples)
    with ThreadPoolExecutor(max_workers=1) as beside:  # as the daily job does
        signals = beside.submit(drift.prediction_signals, cut, config)
        rows = drift.feature_drift(cut, FEATURES)
        predicted = drift.prediction_drift(DAY, signals.result(), config, {})
    seconds = time.perf_counter() - started
    values = {f"{r.target}:{r.method}": r.value for r in rows + list(predicted.rows)}
    return seconds, values


def hindsight_performance(data: Path) -> tuple[float, Values]:
    """Realized performance of the day: the label join and the metrics, from the store."""
    return _hindsight_counts(data, estimate=False)


def hindsight_performance_segments(data: Path) -> tuple[float, Values]:
    """Realized accuracy of every segment value and cross of values: one query."""
    return _hindsight_counts(data, estimate=False, segments=SEGMENTS)


def hindsight_estimate(data: Path) -> tuple[float, Values]:
    """The label-free estimate: calibration from the reference, summed over the day."""
    return _hindsight_counts(data, estimate=True)


def hindsight_performance_files(data: Path) -> tuple[float, Values]:
    """Realized performance from the peers' own Parquet files: ingest into a new store
    (durable, fsynced) included."""
    return _hindsight_from_files(data, estimate=False)


def hindsight_performance_segments_files(data: Path) -> tuple[float, Values]:
    return _hindsight_from_files(data, estimate=False, segments=SEGMENTS)


def hindsight_estimate_files(data: Path) -> tuple[float, Values]:
    return _hindsight_from_files(data, estimate=True)


def _hindsight_from_files(data: Path, estimate: bool,
                          segments: list[str] | None = None) -> tuple[float, Values]:
    """The same answer as from hindsight's store, starting where the peers start: the timer
    covers reading the files, logging predictions, labels (and, for the estimate, the
    reference) into an empty store, and the computation."""
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from hindsight.config import load_config
    from hindsight.monitor import Monitor

    config = load_config(data / "hindsight.yaml")
    cols = config.columns
    store = Path(tempfile.mkdtemp(prefix="hindsight-peers-", dir=data))
    try:
        config = config.model_copy(update={"store": str(store)})
        predicted = [cols.id, cols.timestamp, cols.prediction, str(cols.score), *FEATURES]
        started = time.perf_counter()
        with Monitor(config) as monitor:
            if estimate:
                monitor.log_reference(pq.read_table(data / "reference.parquet"))
            current = pq.read_table(data / "current.parquet")
            monitor.log_predictions(current.select(predicted))
            labels = [cols.id, cols.label, str(cols.label_timestamp)]
            monitor.log_labels(current.select(labels))
        _, values = _hindsight_counts(data, estimate, segments, store=str(store))
        return time.perf_counter() - started, values
    finally:
        shutil.rmtree(store, ignore_errors=True)


def _hindsight_counts(data: Path, estimate: bool, segments: list[str] | None = None,
                      store: str | None = None) -> tuple[float, Values]:
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.compute as pc

    from hindsight.config import load_config
    from hindsight.jobs.drift import calibration_table
    from hindsight.jobs.performance import metric_rows
    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    config = load_config(data / "hindsight.yaml")
    if segments:
        config = config.model_copy(update={"segments": tuple(segments)})
    if store:
        config = config.model_copy(update={"store": store})
    with Monitor(config) as monitor:
        day = monitor.store.partitions(Table.PREDICTIONS)[-1]
        started = time.perf_counter()
        calibration = None
        if estimate:  # the calibration needs three columns of the reference
            cols = config.columns
            reference = pa.concat_tables([
                monitor.store.read(f.path, [cols.prediction, cols.label, str(cols.score)])
                for f in monitor.store.files(Table.REFERENCE)])
            calibration = calibration_table(reference, config)
        # labels that arrived up to the day after: every label of the day
        counts = monitor.engine.cell_counts(day + timedelta(days=1), day, day, calibration)
        metrics = metric_rows(counts, config.task)
        seconds = time.perf_counter() - started
    if segments:
        accuracy = metrics.filter(pc.equal(metrics["metric"], "accuracy"))
        return seconds, dict(zip(accuracy["segment"].to_pylist(),
                                 accuracy["value"].to_pylist(), strict=True))
    return seconds, dict(zip(metrics["metric"].to_pylist(), metrics["value"].to_pylist(),
                             strict=True))


# ---- Evidently ------------------------------------------------------------------------------

def evidently_drift(data: Path) -> tuple[float, Values]:
    """The data-drift preset on the 15 features, the predicted class and the probability."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [*FEATURES, "y_pred", "y_pred_proba"]
    started = time.perf_counter()
    reference, current = _evidently_datasets(data, columns)
    snapshot = Report([DataDriftPreset(columns=columns)]).run(current, reference)
    seconds = time.perf_counter() - started
    return seconds, _evidently_values(snapshot)


def evidently_classification(data: Path) -> tuple[float, Values]:
    """The classification preset on the day (the reference alongside, as users run it)."""
    from evidently import Report
    from evidently.presets import ClassificationPreset

    started = time.perf_counter()
    reference, current = _evidently_datasets(data, ["y_pred", "y_true", "y_pred_proba"])
    snapshot = Report([ClassificationPreset()]).run(current, reference)
    seconds = time.perf_counter() - started
    return seconds, _evidently_values(snapshot)


def _evidently_datasets(data: Path, columns: list[str]) -> tuple[Any, Any]:
    import pandas as pd
    from evidently import BinaryClassification, DataDefinition, Dataset

    definition = DataDefinition(
        numerical_columns=[c for c in columns if c in NUMERIC or c == "y_pred_proba"],
        categorical_columns=[c for c in columns if c in CATEGORICAL or c == "y_pred"],
        classification=[BinaryClassification(target="y_true", prediction_labels="y_pred",
                                              prediction_probas="y_pred_proba")],
    )
    needed = list(dict.fromkeys([*columns, "y_true", "y_pred", "y_pred_proba"]))
    return tuple(  # type: ignore[return-value]
        Dataset.from_pandas(pd.read_parquet(data / f"{name}.parquet", columns=needed),
                            data_definition=definition)
        for name in ("reference", "current"))


def _evidently_values(snapshot: Any) -> Values:
    found: Values = {}
    for metric in snapshot.dict()["metrics"]:
        value = metric["value"]
        if isinstance(value, int | float):
            found[metric["metric_name"]] = float(value)
    return found


# ---- NannyML --------------------------------------------------------------------------------

def nannyml_drift(data: Path) -> tuple[float, Values]:
    """Univariate drift: KS and Wasserstein on numbers, Jensen-Shannon on categories, on the
    15 features and the model's outputs; the reference chunked by day, the current day one
    chunk."""
    import nannyml as nml
    import pandas as pd

    columns = [*FEATURES, "y_pred", "y_pred_proba"]
    started = time.perf_counter()
    reference = pd.read_parquet(data / "reference.parquet", columns=[*columns, "timestamp"])
    current = pd.read_parquet(data / "current.parquet", columns=[*columns, "timestamp"])
    calculator = nml.UnivariateDriftCalculator(
        column_names=columns, treat_as_categorical=["y_pred"], timestamp_column_name="timestamp",
        continuous_methods=["kolmogorov_smirnov", "wasserstein"],
        categorical_methods=["jensen_shannon"], chunk_period="D")
    result = calculator.fit(reference).calculate(current).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    return seconds, _nannyml_values(result)


def nannyml_performance(data: Path) -> tuple[float, Values]:
    import nannyml as nml
    import pandas as pd

    needed = ["timestamp", "y_pred", "y_pred_proba", "y_true"]
    started = time.perf_counter()
    reference = pd.read_parquet(data / "reference.parquet", columns=needed)
    current = pd.read_parquet(data / "current.parquet", columns=needed)
    calculator = nml.PerformanceCalculator(
        y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
        timestamp_column_name="timestamp", problem_type="classification_binary",
        metrics=["accuracy", "f1", "precision", "recall"], chunk_period="D")
    result = calculator.fit(reference).calculate(current).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    return seconds, _nannyml_values(result)


def nannyml_performance_segments(data: Path) -> tuple[float, Values]:
    """The performance calculator once per segment value and cross of values, as a user
    would loop it: each cell fitted on its own reference rows."""
    import itertools
    import json

    import nannyml as nml
    import pandas as pd

    needed = ["timestamp", "y_pred", "y_pred_proba", "y_true", *SEGMENTS]
    started = time.perf_counter()
    reference = pd.read_parquet(data / "reference.parquet", columns=needed)
    current = pd.read_parquet(data / "current.parquet", columns=needed)
    found: Values = {}
    for depth in range(len(SEGMENTS) + 1):
        for columns in itertools.combinations(SEGMENTS, depth):
            groups = current.groupby(list(columns)) if columns else [((), current)]
            for values, rows in groups:
                values = values if isinstance(values, tuple) else (values,)
                mask = pd.Series(True, index=reference.index)
                for column, value in zip(columns, values, strict=True):
                    mask &= reference[column] == value
                if not mask.any():  # nannyml needs reference rows; such a cell is skipped
                    continue
                calculator = nml.PerformanceCalculator(
                    y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
                    timestamp_column_name="timestamp", problem_type="classification_binary",
                    metrics=["accuracy"], chunk_number=1)
                result = calculator.fit(reference[mask]).calculate(rows).filter(
                    period="analysis").to_df()
                key = json.dumps(dict(zip(columns, values, strict=True)), sort_keys=True,
                                 separators=(",", ":"), ensure_ascii=False)
                found[key] = float(result[("accuracy", "value")].iloc[-1])
    return time.perf_counter() - started, found


def nannyml_cbpe(data: Path) -> tuple[float, Values]:
    """CBPE's estimate of the day's accuracy, from the day without its labels."""
    import nannyml as nml
    import pandas as pd

    needed = ["timestamp", "y_pred", "y_pred_proba"]
    started = time.perf_counter()
    reference = pd.read_parquet(data / "reference.parquet", columns=[*needed, "y_true"])
    current = pd.read_parquet(data / "current.parquet", columns=needed)
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
        timestamp_column_name="timestamp", problem_type="classification_binary",
        metrics=["accuracy"], chunk_period="D")
    result = estimator.fit(reference).estimate(current).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    return seconds, _nannyml_values(result)


def _nannyml_values(frame: Any) -> Values:
    """The one analysis chunk's ``value`` of every (column, method) or metric."""
    found: Values = {}
    for key in frame.columns:
        if key[-1] == "value":
            found[":".join(str(k) for k in key[:-1])] = float(frame[key].iloc[-1])
    return found


TASKS: dict[str, Callable[[Path], tuple[float, Values]]] = {
    "hindsight-drift": hindsight_drift,
    "hindsight-performance": hindsight_performance,
    "hindsight-estimate": hindsight_estimate,
    "hindsight-performance-segments": hindsight_performance_segments,
    "hindsight-performance-files": hindsight_performance_files,
    "hindsight-estimate-files": hindsight_estimate_files,
    "hindsight-performance-segments-files": hindsight_performance_segments_files,
    "evidently-drift": evidently_drift,
    "evidently-classification": evidently_classification,
    "nannyml-drift": nannyml_drift,
    "nannyml-performance": nannyml_performance,
    "nannyml-cbpe": nannyml_cbpe,
    "nannyml-performance-segments": nannyml_performance_segments,
}


def main() -> None:
    task, data = sys.argv[1], Path(sys.argv[2])
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    # imports are outside every timer: Parquet's dataset reader (which pandas and
    # ``pq.read_table`` load on their first read), and for hindsight what its command loads
    import pyarrow.dataset  # noqa: F401

    if task.startswith("hindsight"):
        from hindsight.cli import spare_pandas_probe

        spare_pandas_probe()  # pyarrow would import pandas on its first conversion
    seconds, values = TASKS[task](data)
    peak_mib = own_peak_mib()
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "values": values}))


if __name__ == "__main__":
    main()
