from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from hindsight.jobs.performance import metric_rows
from hindsight.monitor import Monitor


def simulate(monitor: Monitor, n: int = 600, seed: int = 1) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        truth = str(rng.choice(["x", "y", "z"]))
        predicted = truth if rng.random() < 0.8 else str(rng.choice(["x", "y", "z"]))
        rows.append({"request_id": f"r{i}", "served_at": f"2026-01-0{1 + i % 2}T08:00:00Z",
                     "country": str(rng.choice(["CH", "DE"])), "tier": "free",
                     "predicted": predicted, "actual": truth,
                     "actual_at": "2026-01-05T00:00:00Z"})
    monitor.log_predictions([{k: v for k, v in r.items() if k not in ("actual", "actual_at")}
                             for r in rows])
    labelled = rows[: n - 50]  # the last 50 never get a label
    monitor.log_labels([{k: r[k] for k in ("request_id", "actual", "actual_at")}
                        for r in labelled])
    return rows


def test_metrics_per_segment_match_sklearn(monitor: Monitor) -> None:
    rows = simulate(monitor)
    table = metric_rows(monitor.engine.cell_counts(date(2026, 1, 6), date(2026, 1, 1),
                                                   date(2026, 1, 2)), "classification")
    got = {(r["day"], r["segment"], r["metric"]): r for r in table.to_pylist()}
    for day in (1, 2):
        for country in ("CH", "DE"):
            cell = [r for r in rows[:550] if r["served_at"].startswith(f"2026-01-0{day}")
                    and r["country"] == country]
            truth = [r["actual"] for r in cell]
            pred = [r["predicted"] for r in cell]
            key = (date(2026, 1, day), json.dumps({"country": country}, separators=(",", ":")))
            assert got[(*key, "accuracy")]["value"] == pytest.approx(accuracy_score(truth, pred))
            assert got[(*key, "macro_f1")]["value"] == pytest.approx(
                f1_score(truth, pred, average="macro"))
            assert got[(*key, "precision[y]")]["value"] == pytest.approx(
                precision_score(truth, pred, labels=["y"], average="macro"))
            assert got[(*key, "recall[z]")]["value"] == pytest.approx(
                recall_score(truth, pred, labels=["z"], average="macro"))
            assert got[(*key, "accuracy")]["n_labelled"] == len(cell)


def test_label_coverage_counts_the_predictions_still_waiting_for_labels(
    monitor: Monitor,
) -> None:
    simulate(monitor)
    table = metric_rows(monitor.engine.cell_counts(date(2026, 1, 6), date(2026, 1, 1),
                                                   date(2026, 1, 2)), "classification")
    overall = [r for r in table.to_pylist() if r["segment"] == "{}" and r["metric"] == "accuracy"]
    assert sum(r["n_predictions"] for r in overall) == 600
    assert sum(r["n_labelled"] for r in overall) == 550


def test_a_cell_with_no_labels_yet_has_no_value_rather_than_zero(monitor: Monitor) -> None:
    simulate(monitor)
    # as of day 2 no label has arrived
    table = metric_rows(monitor.engine.cell_counts(date(2026, 1, 2), date(2026, 1, 1),
                                                   date(2026, 1, 2)), "classification")
    accuracy = [r for r in table.to_pylist() if r["metric"] == "accuracy"]
    assert accuracy and all(r["value"] is None and r["label_coverage"] == 0 for r in accuracy)


def test_regression_metrics_match_numpy(make_config: object) -> None:
    config = make_config(task="regression")  # type: ignore[operator]
    rng = np.random.default_rng(2)
    truth, pred = rng.normal(10, 2, 200), rng.normal(10, 2, 200)
    with Monitor(config, clock=lambda: datetime(2026, 2, 1, tzinfo=UTC)) as m:
        m.log_predictions([{"request_id": f"r{i}", "served_at": "2026-01-01T00:00:00Z",
                            "country": "CH", "tier": "t", "predicted": float(p)}
                           for i, p in enumerate(pred)])
        m.log_labels([{"request_id": f"r{i}", "actual": float(t),
                       "actual_at": "2026-01-02T00:00:00Z"} for i, t in enumerate(truth)])
        table = metric_rows(m.engine.cell_counts(date(2026, 1, 2), date(2026, 1, 1),
                                                 date(2026, 1, 1)), "regression")
    overall = {r["metric"]: r["value"] for r in table.to_pylist() if r["segment"] == "{}"}
    assert overall["mae"] == pytest.approx(np.mean(np.abs(pred - truth)))
    assert overall["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)))


def test_a_cell_without_labels_has_no_accuracy_and_no_f1_not_a_zero(monitor: Monitor) -> None:
    simulate(monitor)
    # as of day 4 no label has arrived: every metric that needs labels is null
    table = metric_rows(monitor.engine.cell_counts(date(2026, 1, 4), date(2026, 1, 1),
                                                   date(2026, 1, 2)), "classification")
    rows = table.to_pylist()
    assert {r["metric"] for r in rows} == {"accuracy", "macro_f1"}
    assert all(r["value"] is None and r["n_labelled"] == 0 and r["n_predictions"] > 0
               for r in rows)
