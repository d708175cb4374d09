"""A simulator of the seed scenario: an expense classifier with delayed labels and one planted
silent failure (a Swiss VAT category whose accuracy collapses while everything else holds).

Deterministic for a seed. Used by ``hindsight demo``, the tests and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CLASSES = ("meals", "lodging", "travel", "fuel", "software", "telecom", "office", "training")
COUNTRIES = ("CH", "DE", "FR", "IT", "AT", "NL", "BE", "ES", "GB", "US", "SE", "DK", "NO", "FI",
             "PL", "CZ", "PT", "IE", "LU", "LI", "HU", "RO", "GR", "SK", "SI", "HR", "EE", "LV",
             "LT", "CA")
NAMED_MERCHANTS = ("restaurants", "hotels", "airlines", "rail", "taxis", "fuel-stations",
                   "software", "telecom", "office-supplies", "training", "catering", "car-rental")
MERCHANTS = NAMED_MERCHANTS + tuple(
    f"mcc-{5000 + 37 * i}" for i in range(50 - len(NAMED_MERCHANTS)))
TIERS = ("free", "starter", "team", "business", "enterprise")
LANGUAGES = ("de", "fr", "it")
MODEL_VERSION = "expense-clf-2026-09-15"
_TIER_SHARE = (0.35, 0.25, 0.2, 0.12, 0.08)  # customer tiers' shares of traffic


@dataclass(frozen=True, slots=True)
class Scenario:
    start: date = date(2026, 10, 1)
    days: int = 42
    per_day: int = 40_000
    base_accuracy: float = 0.951
    failure_start: int | None = 28  # day index; None plants no failure
    failure_segment: tuple[tuple[str, str], ...] = (
        ("country", "CH"), ("merchant_category", "restaurants"))
    failure_cell_per_day: int = 250
    failure_accuracy: float = 0.71
    label_share: float = 0.97
    label_delay_median_days: float = 4.0
    label_delay_p95_days: float = 21.0
    # Corrections arrive later than approvals: a wrong prediction's label takes this much
    # longer, so a day's early labels look better than the day will end up.
    correction_delay_factor: float = 1.5
    # From this day index: benign input drift (a large customer onboards, amounts and
    # languages shift); the model's accuracy per segment does not change.
    benign_drift_start: int | None = None
    reference_rows: int = 30_000
    # Traffic by hour of day (UTC): few predictions at night, and another mix then (travel
    # merchants, North American customers, free tiers by night; the rest by day). The
    # reference set has the same daily cycle, so a whole day's mix is the reference's.
    daily_cycle: bool = False
    # From this instant on, the serving path returns garbage: confidences fall and a third of
    # the answers become one class (a broken feature pipeline).
    break_at: datetime | None = None
    break_until: datetime | None = None  # when the serving path is repaired; None: never
    seed: int = 7
    segments: tuple[str, ...] = field(default=("merchant_category", "country", "customer_tier"))

    @property
    def failure_day(self) -> date | None:
        return None if self.failure_start is None else self.start + timedelta(self.failure_start)

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)


def demo_config(store: str) -> dict[str, object]:
    """The hindsight.yaml that maps the simulator's columns."""
    return {
        "model": "expense-classifier",
        "store": store,
        "columns": {
            "id": "prediction_id", "timestamp": "predicted_at",
            "prediction": "predicted_category", "score": "confidence",
            "label": "true_category", "label_timestamp": "labeled_at",
            "model_version": "model_version",
        },
        "segments": ["merchant_category", "country", "customer_tier"],
        "features": ["amount", "vat_rate", "language"],
    }


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    predictions: pa.Table
    labels: pa.Table  # the labels that arrived on ``day``


class Simulator:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        rng = np.random.default_rng(scenario.seed)
        country_w = _zipf(len(COUNTRIES), 1.1, rng)
        merchant_w = _zipf(len(MERCHANTS), 0.9, rng)
        self._pairs = np.outer(country_w, merchant_w).ravel()
        self._failure_pair = COUNTRIES.index("CH") * len(MERCHANTS) + MERCHANTS.index(
            "restaurants")
        self._merchant_class = rng.integers(0, len(CLASSES), len(MERCHANTS))
        self._merchant_offset = rng.normal(0.0, 0.015, len(MERCHANTS))
        self._tier_offset = np.array([-0.01, -0.005, 0.0, 0.005, 0.01])

    @property
    def planted_accuracy(self) -> float:
        """The planted cell's expected accuracy before its failure (over the tiers' shares
        before any benign drift): its drop is this minus ``failure_accuracy``."""
        merchant = MERCHANTS.index("restaurants")
        accuracy = np.clip(self.scenario.base_accuracy + self._merchant_offset[merchant]
                           + self._tier_offset, 0.5, 0.995)
        return float(np.dot(accuracy, _TIER_SHARE))

    def reference(self) -> pa.Table:
        """Labelled validation predictions at promotion (before any failure)."""
        rng = np.random.default_rng(self.scenario.seed + 1)
        table, truth = self._predict(rng, self.scenario.reference_rows,
                                     self.scenario.start - timedelta(days=14), failing=False,
                                     drifted=False, id_prefix="val")
        return table.append_column("true_category", truth)

    def days(self) -> Iterator[Day]:
        s = self.scenario
        pending: dict[date, list[pa.Table]] = {}
        for index in range(s.days):
            day = s.start + timedelta(days=index)
            rng = np.random.default_rng([s.seed, index])
            failing = s.failure_start is not None and index >= s.failure_start
            drifted = s.benign_drift_start is not None and index >= s.benign_drift_start
            predictions, truth = self._predict(rng, s.per_day, day, failing, drifted,
                                               id_prefix=day.strftime("%Y%m%d"))
            for arrival, labels in self._labels(rng, predictions, truth):
                pending.setdefault(arrival, []).append(labels)
            arrived = pending.pop(day, [])
            labels = pa.concat_tables(arrived) if arrived else _empty_labels()
            yield Day(day, predictions, labels)

    def _predict(self, rng: np.random.Generator, n: int, day: date, failing: bool,
                 drifted: bool, id_prefix: str) -> tuple[pa.Table, pa.Array]:
        s = self.scenario
        p = self._pairs.copy()
        if drifted:  # a large Dutch enterprise customer onboards
            p.reshape(len(COUNTRIES), len(MERCHANTS))[COUNTRIES.index("NL")] *= 4.0
        # the planted cell's share of traffic, the same in the reference as in production
        share = min(s.failure_cell_per_day / max(s.per_day, 1), 0.5)
        p[self._failure_pair] = 0.0
        p *= (1.0 - share) / p.sum()
        p[self._failure_pair] = share
        tier_share = [0.25, 0.2, 0.18, 0.12, 0.25] if drifted else list(_TIER_SHARE)
        if s.daily_cycle:
            seconds, pair, tier = self._cycle(rng, n, p, tier_share)
        else:
            pair = rng.choice(p.size, size=n, p=p)
            tier = rng.choice(len(TIERS), size=n, p=tier_share)
        country, merchant = np.divmod(pair, len(MERCHANTS))
        dominant = self._merchant_class[merchant]
        truth = np.where(rng.random(n) < 0.8, dominant, rng.integers(0, len(CLASSES), n))
        accuracy = np.clip(s.base_accuracy + self._merchant_offset[merchant]
                           + self._tier_offset[tier], 0.5, 0.995)
        confidence = np.clip(accuracy + rng.normal(0.0, 0.03, n), 0.05, 0.999)
        if failing:  # silent: accuracy collapses, confidence does not move
            accuracy = np.where(pair == self._failure_pair, s.failure_accuracy, accuracy)
        correct = rng.random(n) < accuracy
        wrong = (truth + rng.integers(1, len(CLASSES), n)) % len(CLASSES)
        predicted = np.where(correct, truth, wrong)
        if not s.daily_cycle:
            seconds = np.sort(rng.integers(0, 86_400, n))
        if s.break_at is not None:
            made = np.datetime64(day.isoformat(), "s") + seconds.astype("timedelta64[s]")
            broken = made >= _instant(s.break_at)
            if s.break_until is not None:
                broken &= made < _instant(s.break_until)
            predicted = np.where(broken & (rng.random(n) < 1 / 3), 0, predicted)
            confidence = np.where(broken, np.clip(confidence - 0.15, 0.05, 0.999), confidence)
        midnight = np.datetime64(day.isoformat(), "us")
        seconds = seconds.astype("timedelta64[s]")
        is_ch = country == COUNTRIES.index("CH")
        hotels = merchant == MERCHANTS.index("hotels")
        vat = np.where(is_ch, np.where(hotels, 0.038, 0.081), 0.2)
        classes = np.array(CLASSES)
        english = rng.random(n) < (0.45 if drifted else 0.2)
        language = np.where(english, "en", np.array(LANGUAGES)[country % len(LANGUAGES)])
        amount = rng.lognormal(3.9, 1.1, n) if drifted else rng.lognormal(3.5, 1.0, n)
        table = pa.table({
            "prediction_id": pc.binary_join_element_wise(
                id_prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "-"),
            "predicted_at": pa.array(midnight + seconds).cast(pa.timestamp("us", "UTC")),
            "merchant_category": pa.array(np.array(MERCHANTS)[merchant]),
            "country": pa.array(np.array(COUNTRIES)[country]),
            "customer_tier": pa.array(np.array(TIERS)[tier]),
            "amount": pa.array(np.round(amount, 2)),
            "vat_rate": pa.array(vat),
            "language": pa.array(language),
            "predicted_category": pa.array(classes[predicted]),
            "confidence": pa.array(np.round(confidence, 4)),
            "model_version": pa.array([MODEL_VERSION] * n, pa.string()),
        })
        return table, pa.array(classes[truth])

    def _cycle(self, rng: np.random.Generator, n: int, pairs: np.ndarray,
               tier_share: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Seconds after midnight (sorted), country-merchant pairs and tiers of ``n``
        predictions with the daily cycle: a day hour carries up to 6x a night hour."""
        hour = np.arange(24)
        traffic = 0.2 + np.clip(np.sin(np.pi * (hour - 6) / 14), 0, None)
        hours = np.sort(rng.choice(24, size=n, p=traffic / traffic.sum()))
        seconds = hours * 3600 + rng.integers(0, 3600, n)
        night = (hours < 6) | (hours >= 20)
        by_night = pairs.reshape(len(COUNTRIES), len(MERCHANTS)).copy()
        for country in ("US", "CA"):
            by_night[COUNTRIES.index(country)] *= 12.0
        for merchant in ("hotels", "airlines", "taxis", "car-rental"):
            by_night[:, MERCHANTS.index(merchant)] *= 6.0
        by_night = by_night.ravel() / by_night.sum()
        pair = np.where(night, rng.choice(pairs.size, size=n, p=by_night),
                        rng.choice(pairs.size, size=n, p=pairs))
        night_tiers = np.array(tier_share) * [3.0, 1.0, 1.0, 0.5, 0.3]
        tier = np.where(night, rng.choice(len(TIERS), size=n, p=night_tiers / night_tiers.sum()),
                        rng.choice(len(TIERS), size=n, p=tier_share))
        return seconds, pair, tier

    def _labels(self, rng: np.random.Generator, predictions: pa.Table,
                truth: pa.Array) -> Iterator[tuple[date, pa.Table]]:
        s = self.scenario
        n = predictions.num_rows
        sigma = np.log(s.label_delay_p95_days / s.label_delay_median_days) / 1.6448536
        delay = rng.lognormal(np.log(s.label_delay_median_days), sigma, n)
        wrong = pc.not_equal(predictions["predicted_category"], truth).to_numpy(
            zero_copy_only=False)
        delay = np.where(wrong, delay * s.correction_delay_factor, delay)
        keep = rng.random(n) < s.label_share
        predicted_at = predictions["predicted_at"].to_numpy().astype("datetime64[us]")
        labeled_at = predicted_at + (delay * 86_400e6).astype("timedelta64[us]")
        arrival_day = labeled_at.astype("datetime64[D]")
        labels = pa.table({
            "prediction_id": predictions["prediction_id"],
            "true_category": truth,
            "labeled_at": pa.array(labeled_at).cast(pa.timestamp("us", "UTC")),
        })
        for day in np.unique(arrival_day[keep]):
            mask = keep & (arrival_day == day)
            yield day.astype(date), labels.filter(pa.array(mask))


def _instant(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "s")


def _zipf(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def _empty_labels() -> pa.Table:
    return pa.table({
        "prediction_id": pa.array([], pa.string()),
        "true_category": pa.array([], pa.string()),
        "labeled_at": pa.array([], pa.timestamp("us", "UTC")),
    })
