"""Prometheus exposition: ingest counters and latencies, and gauges read from the store at
scrape time (the latest run and the alerts open after it). Series per segment exist only for
segments with an open alert, so cardinality stays bounded however many cells there are."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
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


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter("hindsight_ingested_rows", "Rows stored through HTTP ingest",
                            ["table"], registry=registry)
        self.refused = Counter("hindsight_ingest_refused_requests",
                               "Ingest requests refused, by reason", ["table", "reason"],
                               registry=registry)
        self.seconds = Histogram("hindsight_ingest_seconds", "Ingest request latency",
                                 ["table"], registry=registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.compacted = Counter("hindsight_compacted_files",
                                 "Small ingest files merged by background compaction",
                                 registry=registry)
        self.compaction_failures = Counter("hindsight_compaction_failures",
                                           "Background compactions that failed (see the log)",
                                           registry=registry)
        self.uncompactable = Gauge("hindsight_uncompactable_partitions",
                                   "Partitions the latest background compaction left as they "
                                   "were ('hindsight check' names the files and the fix)",
                                   registry=registry)


class StoreCollector(Collector):
    """Gauges from the latest run and the alerts open after it."""

    def __init__(self, store: Store, model: str) -> None:
        self._store = store
        self._model = model

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = self._store.files(Table.RUNS)
        latest = runs[-1] if runs else None
        labels = ["model"]
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
        if latest is not None:
            row = self._store.read(latest.path).to_pylist()[0]
            if row["overall"] is not None:
                overall.add_metric([self._model, row["metric"]], row["overall"])
            if row["label_coverage"] is not None:
                coverage.add_metric([self._model], row["label_coverage"])
            seconds.add_metric([self._model], row["seconds"])
            midnight = datetime.combine(row["as_of"], time(), tzinfo=UTC)
            run_date.add_metric([self._model], midnight.timestamp())
            counts: dict[str, int] = {}
            for alert in read_alerts(self._store, row["as_of"], row["as_of"]):
                if alert.state in OPEN_STATES:
                    counts[alert.kind] = counts.get(alert.kind, 0) + 1
                    segment_value.add_metric([self._model, alert.kind, alert.metric,
                                              describe(alert.segment)], alert.value)
            for kind in ("performance", "prediction_drift", "feature_drift", "model_version",
                         "data"):
                open_alerts.add_metric([self._model, kind], counts.get(kind, 0))
        yield from (overall, coverage, seconds, run_date, open_alerts, segment_value)


class DriftCollector(Collector):
    """Gauges from the latest intra-day check: when it ran, and each signal's distance and
    alerting threshold for the segments it left with an open prediction drift alert."""

    def __init__(self, latest: Callable[[], CheckResult | None], model: str,
                 failures: Callable[[], int]) -> None:
        self._latest, self._model, self._failures = latest, model, failures

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
        failed.add_metric([self._model], self._failures())
        result = self._latest()
        if result is not None:
            checked.add_metric([self._model], result.at.timestamp())
            still_open = {segment_key(a.segment) for a in result.alerts
                          if a.state in OPEN_STATES}
            for found in result.measured:
                if found.segment not in still_open:
                    continue
                where = describe(json.loads(found.segment))
                for signal in found.signals:
                    distance.add_metric([self._model, where, signal.name], signal.score)
                    threshold.add_metric([self._model, where, signal.name], signal.threshold)
        yield from (checked, failed, distance, threshold)
