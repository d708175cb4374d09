"""The data every peer comparison runs on: a binary classifier at the seed's scale.

A reference set (the model's labelled predictions at promotion, spread over 14 days) and one
current day, each ``rows`` long, with 15 features: 10 numeric of different shapes and 5
categorical from 3 to 50 values. The current day has real covariate shift (two numeric
features and one categorical mix move) while P(label | features) stays the same, so the
model's probabilities stay calibrated and a label-free estimate has a right answer: the day's
realized accuracy, which differs from the reference's.

Written as Parquet, readable by every peer: ``reference.parquet``, ``current.parquet`` (with
labels, for realized performance) and a hindsight store over the same rows.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUMERIC = tuple(f"x{i}" for i in range(10))
CATEGORICAL = tuple(f"c{i}" for i in range(5))
FEATURES = NUMERIC + CATEGORICAL
LEVELS = (3, 8, 20, 50, 5)
DAY = date(2026, 11, 2)


def generate(rows: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """(reference, current), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    effects = [rng.normal(0.0, 0.6, n) for n in LEVELS]
    weights = rng.normal(0.0, 0.5, len(NUMERIC))
    reference = _sample(rng, rows, effects, weights, shifted=False, first_id=0,
                        start=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
                        - timedelta(days=14), span_days=14)
    current = _sample(rng, rows, effects, weights, shifted=True, first_id=rows,
                      start=datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC), span_days=1)
    return reference, current


def _sample(rng: np.random.Generator, n: int, effects: list[np.ndarray], weights: np.ndarray,
            shifted: bool, first_id: int, start: datetime, span_days: int) -> pa.Table:
    shift = 0.6 if shifted else 0.0
    numeric = {
        "x0": rng.normal(shift, 1.0, n),
        "x1": rng.normal(0.0, 1.0 + shift / 2, n),
        "x2": rng.normal(0.0, 1.0, n),
        "x3": rng.lognormal(3.0, 0.8, n),
        "x4": rng.exponential(2.0, n),
        "x5": rng.uniform(0.0, 10.0, n),
        "x6": rng.poisson(4.0, n).astype(np.float64),
        "x7": rng.beta(2.0, 5.0, n),
        "x8": rng.normal(100.0, 15.0, n),
        "x9": rng.gamma(2.0, 1.5, n),
    }
    codes = []
    for i, levels in enumerate(LEVELS):
        share = 1.0 / np.arange(1, levels + 1)
        if shifted and i == 1:  # the mix of c1 moves towards its rarer values
            share = share[::-1]
        codes.append(rng.choice(levels, n, p=share / share.sum()))
    standardized = np.column_stack([
        numeric["x0"], numeric["x1"], numeric["x2"], np.log(numeric["x3"]) - 3.0,
        numeric["x4"] - 2.0, numeric["x5"] / 5.0 - 1.0, numeric["x6"] / 2.0 - 2.0,
        numeric["x7"] * 5.0 - 1.4, (numeric["x8"] - 100.0) / 15.0, numeric["x9"] / 2.0 - 1.5])
    logit = 0.4 + 1.2 * numeric["x0"] + standardized @ weights + sum(
        effect[code] for effect, code in zip(effects, codes, strict=True))
    probability = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(n) < probability).astype(np.int64)
    predicted = (probability >= 0.5).astype(np.int64)
    seconds = rng.uniform(0, span_days * 86_400, n)
    timestamps = np.datetime64(start.replace(tzinfo=None), "us") + (seconds * 1e6).astype(
        "timedelta64[us]")
    columns: dict[str, pa.Array] = {
        "id": pa.array(np.arange(first_id, first_id + n)),
        "timestamp": pa.array(timestamps, pa.timestamp("us", tz="UTC")),
    }
    columns |= {name: pa.array(values) for name, values in numeric.items()}
    columns |= {name: pa.array([f"{name}-{c}" for c in range(levels)]).take(pa.array(code))
                for name, levels, code in zip(CATEGORICAL, LEVELS, codes, strict=True)}
    columns |= {
        "y_pred_proba": pa.array(probability),
        "confidence": pa.array(np.maximum(probability, 1.0 - probability)),
        "y_pred": pa.array(predicted),
        "y_true": pa.array(label),
        "labeled_at": pa.array(timestamps + np.timedelta64(3600, "s"),
                               pa.timestamp("us", tz="UTC")),
    }
    return pa.table(columns)


def hindsight_config(store: str) -> dict[str, object]:
    return {
        "model": "peer-benchmark",
        "store": store,
        "columns": {"id": "id", "timestamp": "timestamp", "prediction": "y_pred",
                    "score": "confidence", "label": "y_true", "label_timestamp": "labeled_at"},
        "segments": [],
        "features": list(FEATURES),
    }


def prepare(directory: Path, rows: int) -> Path:
    """Write the data once per size; a second call with the same size reuses it."""
    stamp = directory / "prepared.json"
    if stamp.exists() and json.loads(stamp.read_text()) == {"rows": rows}:
        return directory
    import shutil

    import yaml

    from hindsight.config import load_config
    from hindsight.monitor import Monitor

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    reference, current = generate(rows)
    pq.write_table(reference, directory / "reference.parquet")
    pq.write_table(current, directory / "current.parquet")
    config_file = directory / "hindsight.yaml"
    config_file.write_text(yaml.safe_dump(hindsight_config(str(directory / "store")),
                                          sort_keys=False))
    with Monitor(load_config(config_file)) as monitor:
        monitor.log_reference(reference)
        monitor.log_predictions(current.drop_columns(["y_true", "labeled_at"]))
        monitor.log_labels(current.select(["id", "y_true", "labeled_at"]))
    stamp.write_text(json.dumps({"rows": rows}))
    return directory
