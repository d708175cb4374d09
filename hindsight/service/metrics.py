"""Prometheus exposition: ingest counters and latencies, and gauges read from the store at
scrape time (the latest run and the alerts open after it). Every series has a ``model`` label,
and one registry serves every model of a workspace: each family is written once, with one
series per model. Series per segment exist only for segments with an open alert, so
cardinality stays bounded however many cells there are (and models are as many as the
config names). One model whose store cannot be read at a scrape loses its gauges for that
scrape (``hindsight_model_up`` 0), not the others'."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hindsight.alerts.hierarchy import describe
from hindsight.alerts.lifecycle import OPEN_STATES
from hindsight.alerts.model import segment_key
from hindsight.jobs.results import read_alerts
from hindsight.store.partitions import Store, Table

if TYPE_CHECKING:
    from hindsight.jobs.intraday import CheckResult

log = logging.getLogger(__name__)
ALERT_KINDS = ("performance", "prediction_drift", "feature_drift", "model_version", "data")


class IngestMetrics:
    """Ingest and compaction counters of every model (by the ``model`` label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter("hindsight_ingested_rows", "Rows stored through HTTP ingest",
                            ["model", "table"], registry=registry)
        self.refused = Counter("hindsight_ingest_refused_requests",
                               "Ingest requests refused, by reason",
                               ["model", "table", "reason"], registry=registry)
        self.seconds = Histogram("hindsight_ingest_seconds", "Ingest request latency",
                                 ["model", "table"], registry=registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.compacted = Counter("hindsight_compacted_files",
                                 "Small ingest files merged by background compaction",
                                 ["model"], registry=registry)
        self.compaction_failures = Counter("hindsight_compaction_failures",
                                           "Background compactions that failed (see the log)",
                                           ["model"], registry=registry)
        self.uncompactable = Gauge("hindsight_uncompactable_partitions",
                                   "Partitions the latest background compaction left as they "
                                   "were ('hindsight check' names the files and the fix)",
                                   ["model"], registry=registry)


class StoreCollector(Collector):
    """Gauges from each model's latest run and the alerts open after it; ``broken``: the
    models whose config could not be read (``hindsight_model_up`` 0, nothing else)."""

    def __init__(self, stores: Mapping[str, Store], broken: tuple[str, ...] = ()) -> None:
        self._stores = dict(stores)
        self._broken = broken

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["model"]
        up = GaugeMetricFamily("hindsight_model_up", "1 when the model's config is valid and "
                               "its store was read at this scrape, else 0 (see the log, or "
                               "the model list page)", labels=labels)
        overall = GaugeMetricFamily("hindsight_metric", "The headline metric over the label "
                                    "window of the latest run", labels=[*labels, "metric"])
        coverage = GaugeMetricFamily("hindsight_label_coverage",
                                     "Share of the window's predictions with a label",
                                     labels=labels)
        seconds = GaugeMetricFamily("hindsight_job_seconds", "Duration of the latest run",
                                    labels=labels)
        run_date = GaugeMetricFamily("hindsight_last_run_timestamp_seconds",
                                     "The date the latest run was as of (UTC midnight)",
                                     labels=labels)
        open_alerts = GaugeMetricFamily("hindsight_open_alerts", "Alerts open after the "
                                        "latest run", labels=[*labels, "kind"])
        segment_value = GaugeMetricFamily(
            "hindsight_alerted_segment_value", "The metric of each segment with an open alert",
            labels=[*labels, "kind", "metric", "segment"])
        families = (overall, coverage, seconds, run_date, open_alerts, segment_value)
        for model, store in self._stores.items():
            try:  # read whole before adding: a failed read leaves no half of a model
                added = _latest(store, model)
            except Exception:  # one model's unreadable store must not hide the others
                log.exception("the store of model %s could not be read for /metrics", model)
                up.add_metric([model], 0)
                continue
            up.add_metric([model], 1)
            for family, values, value in added:
                families[family].add_metric(values, value)
        for model in self._broken:
            up.add_metric([model], 0)
        yield from (up, *families)


def _latest(store: Store, model: str) -> list[tuple[int, list[str], float]]:
    """The samples of one model's latest run: (family's index, label values, value)."""
    runs = store.files(Table.RUNS)
    if not runs:
        return []
    row = store.read(runs[-1].path).to_pylist()[0]
    found: list[tuple[int, list[str], float]] = []
    if row["overall"] is not None:
        found.append((0, [model, row["metric"]], row["overall"]))
    if row["label_coverage"] is not None:
        found.append((1, [model], row["label_coverage"]))
    found.append((2, [model], row["seconds"]))
    midnight = datetime.combine(row["as_of"], time(), tzinfo=UTC)
    found.append((3, [model], midnight.timestamp()))
    counts: dict[str, int] = {}
    for alert in read_alerts(store, row["as_of"], row["as_of"]):
        if alert.state in OPEN_STATES:
            counts[alert.kind] = counts.get(alert.kind, 0) + 1
            found.append((5, [model, alert.kind, alert.metric, describe(alert.segment)],
                          alert.value))
    found += [(4, [model, kind], counts.get(kind, 0)) for kind in ALERT_KINDS]
    return found


class DriftWatched:
    """What ``/metrics`` reads of one model's intra-day checks."""

    def __init__(self, latest: Callable[[], CheckResult | None],
                 failures: Callable[[], int]) -> None:
        self.latest, self.failures = latest, failures


class DriftCollector(Collector):
    """Gauges from each model's latest intra-day check: when it ran, and each signal's
    distance and alerting threshold for the segments it left with an open prediction drift
    alert."""

    def __init__(self, watched: Mapping[str, DriftWatched]) -> None:
        self._watched = dict(watched)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["model", "segment", "signal"]
        checked = GaugeMetricFamily("hindsight_drift_check_timestamp_seconds",
                                    "The instant of the latest intra-day drift check",
                                    labels=["model"])
        failed = GaugeMetricFamily("hindsight_drift_check_failures",
                                   "Intra-day drift checks that failed since the start (see "
                                   "the log)", labels=["model"])
        distance = GaugeMetricFamily("hindsight_drift_distance", "Distance of the latest "
                                     "check's window from the reference, per segment with an "
                                     "open prediction drift alert", labels=labels)
        threshold = GaugeMetricFamily("hindsight_drift_threshold", "The distance beyond which "
                                      "the latest check alerts (noise quantile, corrected for "
                                      "every test of the day)", labels=labels)
        for model, watched in self._watched.items():
            failed.add_metric([model], watched.failures())
            result = watched.latest()
            if result is None:
                continue
            checked.add_metric([model], result.at.timestamp())
            still_open = {segment_key(a.segment) for a in result.alerts
                          if a.state in OPEN_STATES}
            for found in result.measured:
                if found.segment not in still_open:
                    continue
                where = describe(json.loads(found.segment))
                for signal in found.signals:
                    distance.add_metric([model, where, signal.name], signal.score)
                    threshold.add_metric([model, where, signal.name], signal.threshold)
        yield from (checked, failed, distance, threshold)
