"""Where alerts go: Slack incoming webhooks, generic JSON webhooks, Alertmanager, a log file.

A sink sends one alert or raises ``DeliveryError``; retries, backoff and dedupe live in
``delivery``. Only openings and resolutions are sent: an ongoing alert is not news.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from hindsight.alerts.hierarchy import describe
from hindsight.alerts.model import Alert
from hindsight.config import SinkSettings
from hindsight.errors import ConfigError, HindsightError

TIMEOUT_SECONDS = 5.0


class DeliveryError(HindsightError):
    """A sink could not take an alert; it stays pending and is retried."""


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, alert: Alert, model: str) -> None: ...


def _post(url: str, body: dict[str, Any] | list[dict[str, Any]], what: str) -> None:
    try:
        response = httpx.post(url, json=body, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what}: {exc}") from exc
    if response.status_code >= 300:
        raise DeliveryError(f"{what}: HTTP {response.status_code}: {response.text[:200]}")


def _title(alert: Alert, model: str) -> str:
    verb = "resolved" if alert.state == "resolved" else "alert"
    return f"[hindsight {verb}] {model}: {alert.kind} in {describe(alert.segment)}"


@dataclass(frozen=True, slots=True)
class SlackSink:
    name: str
    url: str

    def send(self, alert: Alert, model: str) -> None:
        _post(self.url, {"text": f"*{_title(alert, model)}*\n{alert.message}"},
              f"sink {self.name!r}")


@dataclass(frozen=True, slots=True)
class WebhookSink:
    name: str
    url: str

    def send(self, alert: Alert, model: str) -> None:
        _post(self.url, {"model": model, **alert.as_json()}, f"sink {self.name!r}")


@dataclass(frozen=True, slots=True)
class AlertmanagerSink:
    """Alertmanager's API (v2): one alert per key; a resolution sets ``endsAt``."""

    name: str
    url: str  # e.g. http://127.0.0.1:9093

    def send(self, alert: Alert, model: str) -> None:
        now = datetime.now(UTC)
        ends = now if alert.state == "resolved" else now + timedelta(days=2)
        labels = {"alertname": f"hindsight_{alert.kind}", "model": model,
                  "metric": alert.metric, "segment": describe(alert.segment)}
        body = [{"labels": labels,
                 "annotations": {"summary": _title(alert, model), "description": alert.message},
                 "startsAt": datetime.combine(alert.opened_on or alert.date, datetime.min.time(),
                                              tzinfo=UTC).isoformat(),
                 "endsAt": ends.isoformat()}]
        _post(f"{self.url.rstrip('/')}/api/v2/alerts", body, f"sink {self.name!r}")


@dataclass(frozen=True, slots=True)
class LogSink:
    """Appends one JSON line per alert to a file."""

    name: str
    path: str

    def send(self, alert: Alert, model: str) -> None:
        try:
            with Path(self.path).open("a", encoding="utf-8") as log:
                log.write(json.dumps({"model": model, **alert.as_json()}) + "\n")
        except OSError as exc:
            raise DeliveryError(f"sink {self.name!r}: cannot write {self.path}: {exc}") from exc


def make_sink(settings: SinkSettings, environ: Mapping[str, str] | None = None,
              config_file: str = "hindsight.yaml") -> Sink:
    """Build a sink from its settings; a URL may come from the environment."""
    env = os.environ if environ is None else environ
    url = settings.url
    if url is None and settings.url_env is not None:
        url = env.get(settings.url_env)
        if not url:
            raise ConfigError(f"{config_file}: sinks: {settings.name!r} reads its URL from "
                              f"${settings.url_env}, which is not set")
    if settings.type == "log":
        return LogSink(settings.name, str(settings.path))
    assert url is not None  # the config checked that one of url and url_env is given
    kinds: dict[str, type[SlackSink] | type[WebhookSink] | type[AlertmanagerSink]] = {
        "slack": SlackSink, "webhook": WebhookSink, "alertmanager": AlertmanagerSink}
    return kinds[settings.type](settings.name, url)
