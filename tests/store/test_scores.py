"""Per-class probabilities (``columns.scores``): the predicted class's probability is the
score everywhere it is read, the same as a hand-made max-probability ``score`` column."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hindsight.config import Config, load_config
from hindsight.jobs import drift
from hindsight.jobs.intraday import CheckResult
from hindsight.monitor import Monitor
from hindsight.store.partitions import Store, Table
from hindsight.store.scores import PREDICTED_PROBABILITY, with_score
from tests.conftest import COLUMNS

CLASSES = ("approve", "reject", "review")
PROBABILITIES = {name: f"p_{name}" for name in CLASSES}
START = date(2026, 1, 1)
DAYS = 8


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _rows(rng: np.random.Generator, n: int, sharpness: float, first: int,
          served: date | None) -> dict[str, Any]:
    """A 3-class model's answers: one probability column per class, the argmax as the
    prediction, its probability as a hand-made ``confidence``, and a true class drawn from
    the probabilities (the model is calibrated)."""
    probs = np.round(_softmax(rng.normal(0, sharpness, (n, len(CLASSES)))), 4)
    predicted = probs.argmax(axis=1)
    truth = [int(rng.choice(len(CLASSES), p=p / p.sum())) for p in probs]
    hours = rng.integers(0, 24, n)
    data: dict[str, Any] = {
        "request_id": [f"r{first + i}" for i in range(n)],
        "country": rng.choice(["CH", "DE"], n).tolist(),
        "tier": rng.choice(["free", "pro"], n).tolist(),
        "predicted": [CLASSES[k] for k in predicted],
        **{column: probs[:, k] for k, column in enumerate(PROBABILITIES.values())},
        "confidence": probs.max(axis=1),
        "amount": rng.normal(50, 10, n),
        "actual": [CLASSES[k] for k in truth],
    }
    if served is not None:
        data["served_at"] = [f"{served}T{h:02d}:15:00Z" for h in hours]
    return data


def _scenario(seed: int = 3) -> tuple[pa.Table, list[pa.Table], list[pa.Table]]:
    """A reference set, then DAYS days of predictions (less confident from the fifth day) and
    their labels, arriving one to three days later."""
    rng = np.random.default_rng(seed)
    reference = pa.table(_rows(rng, 1500, 2.0, 10**6, None))
    predictions, labels = [], []
    for day in range(DAYS):
        served = START + timedelta(days=day)
        rows = pa.table(_rows(rng, 400, 2.0 if day < 4 else 1.2, day * 1000, served))
        predictions.append(rows.drop_columns(["actual"]))
        late = rng.integers(1, 4, rows.num_rows)
        labels.append(pa.table({
            "request_id": rows["request_id"], "actual": rows["actual"],
            "actual_at": [f"{served + timedelta(days=int(d))}T23:00:00Z" for d in late]}))
    return reference, predictions, labels


def _table(store: Store, table: Table) -> list[dict[str, Any]]:
    rows = [r for f in store.files(table) for r in store.read(f.path).to_pylist()]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = pytest.approx(value, rel=1e-9, nan_ok=True)
    return sorted(rows, key=repr)


def _signals(check: CheckResult) -> list[tuple[Any, ...]]:
    return [(found.segment, found.n, [(s.name, s.method, pytest.approx(s.score),
                                       pytest.approx(s.threshold)) for s in found.signals])
            for found in check.measured]


def _monitored(config: Config) -> tuple[Monitor, list[CheckResult]]:
    reference, predictions, labels = _scenario()
    monitor = Monitor(config, clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    monitor.log_reference(reference)
    for batch in predictions:
        monitor.log_predictions(batch)
    for batch in labels:
        monitor.log_labels(batch)
    checks: list[CheckResult] = []
    monitor.backfill(START, START + timedelta(days=DAYS - 1), every=timedelta(hours=6),
                     checked=checks.append)
    return monitor, checks


def test_per_class_probabilities_score_as_a_hand_made_max_probability_column(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    """The same 3-class data, scored once by its probability columns and once by a column
    of each row's largest probability made by hand: the same calibration on the reference,
    the same label-free estimate per segment, the same drift on scores and the same
    intra-day checks."""
    common = {"features": ["amount"], "label_window_days": 4, "alerts": {"baseline_days": 2},
              "drift": {"min_samples": 100}}
    by_class = make_config(store=str(tmp_path / "by-class"),
                           columns={**COLUMNS, "scores": PROBABILITIES}, **common)
    by_hand = make_config(store=str(tmp_path / "by-hand"),
                          columns={**COLUMNS, "score": "confidence"}, **common)
    (mapped, mapped_checks), (made, made_checks) = _monitored(by_class), _monitored(by_hand)
    with mapped, made:
        calibrations = [drift.calibration_table(drift.read_reference(m.store, m.config),
                                                m.config) for m in (mapped, made)]
        assert calibrations[0] is not None
        assert calibrations[0].equals(calibrations[1])
        metrics = _table(mapped.store, Table.METRICS)
        assert any(r["metric"] == "estimated_accuracy" and r["segment"] == '{"country":"CH"}'
                   for r in metrics)
        assert metrics == _table(made.store, Table.METRICS)
        drifted = _table(mapped.store, Table.DRIFT)
        assert any(r["target"] == "score" for r in drifted)
        assert drifted == _table(made.store, Table.DRIFT)
        assert [_signals(c) for c in mapped_checks] == [_signals(c) for c in made_checks]
        assert any(s[0] == "score" for c in mapped_checks for f in _signals(c) for s in f[2])
        assert _table(mapped.store, Table.ALERTS) == _table(made.store, Table.ALERTS)


def test_the_score_is_the_predicted_classs_probability_matched_under_the_identity_rule(
    make_config: Callable[..., Config],
) -> None:
    """Classes named 1 and 0 in the config (numbers in YAML) are the probabilities of
    predictions written 1.0 and 0.0, or true; a class without a column scores nothing."""
    config = make_config(columns={**COLUMNS, "scores": {1: "p1", 0.0: "p0", "TRUE": "pt"}})
    table = pa.table({"predicted": [1.0, 0.0, None], "p1": [0.9, 0.2, 0.5],
                      "p0": [0.1, 0.8, 0.5], "pt": [0.3, 0.3, 0.3]})
    assert with_score(table, config)[PREDICTED_PROBABILITY].to_pylist() == [0.9, 0.8, None]
    flags = pa.table({"predicted": ["True", "1"], "p1": [0.6, 0.7], "p0": [0.4, 0.3],
                      "pt": [0.55, 0.0]})
    assert with_score(flags, config)[PREDICTED_PROBABILITY].to_pylist() == [0.55, 0.7]


@pytest.mark.slow
def test_sparks_counts_score_per_class_probabilities_as_duckdbs(
    make_config: Callable[..., Config], tmp_path: Path,
) -> None:
    spark = {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4,
                                            "spark.driver.extraJavaOptions":
                                            "-XX:TieredStopAtLevel=1"}}
    common = {"columns": {**COLUMNS, "scores": PROBABILITIES}, "features": ["amount"],
              "label_window_days": 4, "alerts": {"baseline_days": 2}}
    duck = make_config(store=str(tmp_path / "duck"), **common)
    on_spark = make_config(store=str(tmp_path / "spark"), engine="spark", spark=spark, **common)
    reference, predictions, labels = _scenario()
    for config in (duck, on_spark):
        with Monitor(config) as monitor:
            monitor.log_reference(reference)
            for batch in predictions:
                monitor.log_predictions(batch)
            for batch in labels:
                monitor.log_labels(batch)
            monitor.backfill(START, START + timedelta(days=DAYS - 1))
    with Monitor(duck) as a, Monitor(on_spark) as b:
        metrics = _table(a.store, Table.METRICS)
        assert any(r["metric"] == "estimated_accuracy" for r in metrics)
        assert metrics == _table(b.store, Table.METRICS)


def _digits(tmp_path: Path) -> dict[str, Path]:
    """A 10-class model (sklearn's logistic regression on the handwritten digits sklearn
    ships) trained on 500 images: its validation set and three days of predictions with
    predict_proba's columns named after the classes, written by pandas as CSV. The
    predicted digit is a float column (1.0): pandas writes it so beside a missing value."""
    pd = pytest.importorskip("pandas")
    datasets = pytest.importorskip("sklearn.datasets")
    linear = pytest.importorskip("sklearn.linear_model")
    x, y = datasets.load_digits(return_X_y=True)
    x = x / 16.0
    model = linear.LogisticRegression(max_iter=2000).fit(x[:500], y[:500])

    def frame(rows: slice, served: list[str] | None) -> Any:
        probs = model.predict_proba(x[rows])
        df = pd.DataFrame(probs, columns=[str(c) for c in model.classes_])
        df.insert(0, "request_id", [f"d{i}" for i in range(rows.start, rows.stop)])
        df["predicted"] = model.classes_[probs.argmax(axis=1)].astype(float)
        df["tier"] = ["free" if i % 3 else "pro" for i in range(rows.start, rows.stop)]
        df["confidence"] = probs.max(axis=1)  # the column a user derives by hand
        if served is not None:
            df["served_at"] = served
        return df

    files = {}
    reference = frame(slice(500, 1100), None)
    reference["actual"] = y[500:1100]
    reference.to_csv(files.setdefault("reference", tmp_path / "reference.csv"), index=False)
    stop = len(y)
    served = [f"{START + timedelta(days=i % 3)}T{i % 24:02d}:00:00Z"
              for i in range(stop - 1100)]
    frame(slice(1100, stop), served).to_csv(
        files.setdefault("predictions", tmp_path / "predictions.csv"), index=False)
    pd.DataFrame({"request_id": [f"d{i}" for i in range(1100, stop)], "actual": y[1100:],
                  "actual_at": [f"{START + timedelta(days=3)}T08:00:00Z"] * (stop - 1100)}
                 ).to_csv(files.setdefault("labels", tmp_path / "labels.csv"), index=False)
    return files


def test_sklearn_predict_proba_written_by_pandas_scores_as_its_max_probability(
    tmp_path: Path,
) -> None:
    """A case the simulator did not make: the columns of predict_proba named 0..9 (mapped
    under YAML's number keys), the prediction written 3.0, the labels 3: the same estimate
    and calibration as the same rows with a max-probability column made by hand."""
    files = _digits(tmp_path)
    mapping = "\n".join(f'    {k}: "{k}"' for k in range(10))
    found = []
    for name, score in (("by-class", f"  scores:\n{mapping}"), ("by-hand", "  score: confidence")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"model: digits\nstore: ./{name}\ncolumns:\n  id: request_id\n"
            "  timestamp: served_at\n  prediction: predicted\n  label: actual\n"
            f"  label_timestamp: actual_at\n{score}\nsegments: [tier]\nfeatures: []\n"
            "min_samples: 20\nlabel_window_days: 4\nalerts: {baseline_days: 2}\n",
            encoding="utf-8")
        with Monitor(load_config(path)) as monitor:
            monitor.log_reference_files([files["reference"]])
            monitor.log_prediction_files([files["predictions"]])
            monitor.log_label_files([files["labels"]])
            monitor.backfill(START, START + timedelta(days=3))
            reference = drift.read_reference(monitor.store, monitor.config)
            found.append((drift.calibration_table(reference, monitor.config),
                          _table(monitor.store, Table.METRICS)))
    (calibration, metrics), (by_hand, by_hand_metrics) = found
    assert calibration is not None and calibration.equals(by_hand)
    estimates = [r for r in metrics if r["metric"] == "estimated_accuracy"]
    assert estimates and all(0.8 < r["value"].expected < 1.0 for r in estimates)
    assert metrics == by_hand_metrics
