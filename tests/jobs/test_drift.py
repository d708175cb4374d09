from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import date

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from hindsight.config import Config
from hindsight.jobs.drift import (
    PredictionDrift,
    Slice,
    calibration_table,
    feature_drift,
    prediction_drift,
    prediction_signals,
    slices,
    top_moved,
)
from hindsight.stats.drift import WassersteinDetector
from tests.conftest import COLUMNS

DAY = date(2026, 3, 1)
SCORED = {**COLUMNS, "score": "confidence"}


def predictions(n: int, seed: int, score_shift: float = 0.0, flip: float = 0.0,
                amount_shift: float = 0.0, label: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    classes = np.array(["meals", "travel", "fuel"])
    predicted = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    flipped = rng.random(n) < flip  # a broken upstream: some predictions forced to one class
    predicted = np.where(flipped, 2, predicted)
    columns = {
        "predicted": classes[predicted],
        "confidence": np.clip(rng.normal(0.8 + score_shift, 0.1, n), 0, 1),
        "country": rng.choice(["CH", "DE"], n),
        "tier": rng.choice(["free", "pro"], n),
        "amount": rng.lognormal(3.5 + amount_shift, 1.0, n),
        "constant": np.ones(n),
        "empty": pa.nulls(n, pa.float64()),
        "channel": np.full(n, "web"),
    }
    if label:
        correct = rng.random(n) < columns["confidence"]
        columns["actual"] = np.where(correct, columns["predicted"], "other")
    return pa.table(columns)


def cut(now: pa.Table, then: pa.Table, config: Config) -> list[Slice]:
    return slices(now, then, config.segments, min(config.min_samples, config.drift.min_samples))


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(columns=SCORED, features=["amount", "constant", "empty", "channel"],
                       drift={"min_samples": 500})


def drifted(today: pa.Table, reference: pa.Table, config: Config) -> PredictionDrift:
    return prediction_drift(DAY, prediction_signals(cut(today, reference, config), config),
                            config, {})


def test_an_upstream_break_alerts_on_its_first_day(config: Config) -> None:
    reference = predictions(40_000, 1)
    broken = predictions(40_000, 2, flip=0.15, score_shift=-0.05)
    found = prediction_drift(DAY, prediction_signals(cut(broken, reference, config), config),
                             config, {"{}": ["amount (PSI 0.30)"]})
    assert [a.segment for a in found.result.alerts] == [{}]  # the whole population, once
    alert = found.result.alerts[0]
    assert alert.kind == "prediction_drift" and alert.date == DAY
    assert "× the 99% quantile of baseline noise" in alert.message
    assert "Top moved features: amount (PSI 0.30)" in alert.message


def test_a_small_constant_offset_from_the_validation_set_stays_quiet(config: Config) -> None:
    # production runs a point less confident and 2% more "fuel" than the validation set
    reference = predictions(40_000, 3)
    for seed in range(4, 8):
        today = predictions(40_000, seed, score_shift=-0.01, flip=0.02)
        assert drifted(today, reference, config).result.alerts == ()


def test_a_tiny_shift_at_scale_fools_ks_and_raw_bootstrap_noise_but_not_the_rule() -> None:
    rng = np.random.default_rng(9)
    reference, shifted = rng.normal(0, 1, 500_000), rng.normal(0.01, 1, 500_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert stats.ks_2samp(reference, shifted).pvalue < 0.01  # KS would page
    detector = WassersteinDetector.fit(reference)
    score = detector.score(shifted)
    assert score > detector.noise(500_000)  # so would noise alone
    assert score / detector.spread < 0.2  # but the shift is 0.01 sd: under min_shift
    big = detector.score(rng.normal(0.3, 1, 500_000))
    assert big > detector.noise(500_000) and big / detector.spread > 0.2


def test_benign_feature_drift_ranks_the_moved_feature_first_without_prediction_alerts(
    config: Config,
) -> None:
    reference, today = predictions(30_000, 10), predictions(30_000, 11, amount_shift=0.5)
    rows = feature_drift(cut(today, reference, config), list(config.features or ()))
    assert top_moved(rows, "{}")[0].startswith("amount (PSI")
    assert drifted(today, reference, config).result.alerts == ()


def test_degenerate_features_give_numbers_not_crashes(config: Config) -> None:
    reference, today = predictions(2_000, 12), predictions(2_000, 13)
    rows = {(r.target, r.method): r.value
            for r in feature_drift(cut(today, reference, config), list(config.features or ()))
            if r.segment == "{}"}
    assert rows[("constant", "wasserstein_sd")] == 0.0
    assert rows[("constant", "psi")] == 0.0
    assert rows[("empty", "missing_rate")] == 1.0 and ("empty", "psi") not in rows
    assert rows[("channel", "jensen_shannon")] == 0.0
    assert all(np.isfinite(v) for v in rows.values())


def test_an_empty_window_gives_no_rows_and_no_alerts(config: Config) -> None:
    reference = predictions(2_000, 14)
    empty = reference.slice(0, 0)
    assert feature_drift(cut(empty, reference, config), ["amount"]) == []
    assert drifted(empty, reference, config).result.alerts == ()


def test_the_label_free_estimate_tracks_accuracy_when_calibrated(config: Config) -> None:
    reference = predictions(20_000, 15, label=True)
    steps = calibration_table(reference, config)
    assert steps is not None
    today = predictions(20_000, 16, label=True)
    lower = steps["lower"].to_numpy()
    probability = steps["probability"].to_numpy()
    score = today["confidence"].to_numpy()
    estimate = probability[np.searchsorted(lower, score, side="right") - 1].mean()
    realized = np.mean(today["predicted"].to_numpy(zero_copy_only=False)
                       == today["actual"].to_numpy(zero_copy_only=False))
    assert estimate == pytest.approx(realized, abs=0.01)


def test_non_finite_numbers_stored_before_ingest_refused_them_never_crash_a_run(
    make_config: Callable[..., Config],
) -> None:
    """A store written by an older version (or by hand) may hold a NaN score in the reference
    and an infinite one among the predictions: the run ignores them, and nothing it stores or
    prints is non-finite."""
    import json
    from datetime import UTC, datetime

    import pyarrow.compute as pc

    from hindsight.monitor import Monitor
    from hindsight.store.partitions import Table

    config = make_config(columns=SCORED, features=["amount"], drift={"min_samples": 300})
    with Monitor(config) as monitor:
        reference = predictions(2000, 1, label=True).append_column(
            "request_id", pa.array([f"v{i}" for i in range(2000)])).append_column(
            "served_at", pa.array([datetime(2026, 2, 1, tzinfo=UTC)] * 2000))
        monitor.log_reference(reference)
        today = predictions(400, 2).append_column(
            "request_id", pa.array([f"p{i}" for i in range(400)])).append_column(
            "served_at", pa.array([datetime(2026, 3, 1, 12, tzinfo=UTC)] * 400))
        monitor.log_predictions(today)
        stored_ref = monitor.store.files(Table.REFERENCE)[0].path
        poisoned = monitor.store.read(stored_ref)
        score = poisoned["confidence"].to_pylist()
        score[0] = float("nan")
        poisoned = poisoned.set_column(poisoned.schema.get_field_index("confidence"),
                                       "confidence", pa.array(score))
        monitor.store.write(Table.REFERENCE, poisoned, name="data.parquet")
        extra = monitor.store.read(monitor.store.files(Table.PREDICTIONS)[0].path).slice(0, 1)
        extra = extra.set_column(extra.schema.get_field_index("request_id"), "request_id",
                                 pa.array(["inf-row"]))
        extra = extra.set_column(extra.schema.get_field_index("confidence"), "confidence",
                                 pa.array([float("inf")]))
        monitor.store.write(Table.PREDICTIONS, extra, dt=DAY)

        summary = monitor.run(DAY)

        assert not any("inf" in a.message for a in summary.alerts)
        json.dumps([a.as_json() for a in monitor.alerts()], allow_nan=False)
        drift = pa.concat_tables([monitor.store.read(f.path)
                                  for f in monitor.store.files(Table.DRIFT)])
        values = pc.drop_null(drift["value"])
        assert pc.all(pc.is_finite(values)).as_py()
