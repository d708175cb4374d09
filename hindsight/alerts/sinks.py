"""Where alerts go: Slack incoming webhooks, generic JSON webhooks, Alertmanager, a log file.

A sink sends one alert or raises ``DeliveryError``; retries, backoff and dedupe live in
``delivery``. Only openings and resolutions are sent: an ongoing alert is not news. Each send
carries the delivery's idempotency key, the same on every try of one alert: as an
``Idempotency-Key`` header on every HTTP sink, and in the body of a webhook's JSON and of a log
line, for a receiver to drop the one repeat a killed delivery may leave (Alertmanager already
merges alerts by their labels). The log sink writes a line at most once: a line is fsynced
before the send returns, and a key already on the file's last line is not written again.
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
from hindsight.alerts.journal import append_durably
from hindsight.alerts.model import Alert
from hindsight.config import SinkSettings
from hindsight.errors import ConfigError, HindsightError

TIMEOUT_SECONDS = 5.0


class DeliveryError(HindsightError):
    """A sink could not take an alert; it stays pending and is retried."""


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, alert: Alert, model: str, key: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> None: ...


def _post(url: str, body: dict[str, Any] | list[dict[str, Any]], what: str, key: str | None,
          timeout: float) -> None:
    headers = {} if key is None else {"Idempotency-Key": key}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
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

    def send(self, alert: Alert, model: str, key: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> None:
        _post(self.url, {"text": f"*{_title(alert, model)}*\n{alert.message}"},
              f"sink {self.name!r}", key, timeout)


@dataclass(frozen=True, slots=True)
class WebhookSink:
    name: str
    url: str

    def send(self, alert: Alert, model: str, key: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> None:
        _post(self.url, _record(alert, model, key), f"sink {self.name!r}", key, timeout)


@dataclass(frozen=True, slots=True)
class AlertmanagerSink:
    """Alertmanager's API (v2): one alert per incident (its labels: the kind, the model and
    the ``incident`` id; segment and metric are annotations), so the incident's one
    resolution ends it; a route may ``group_by: [incident]``. A resolution sets ``endsAt``."""

    name: str
    url: str  # e.g. http://127.0.0.1:9093

    def send(self, alert: Alert, model: str, key: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> None:
        now = datetime.now(UTC)
        ends = now if alert.state == "resolved" else now + timedelta(days=2)
        where = {"metric": alert.metric, "segment": describe(alert.segment)}
        labels = {"alertname": f"hindsight_{alert.kind}", "model": model}
        annotations = {"summary": _title(alert, model), "description": alert.message}
        if alert.incident is None:
            labels |= where
        else:  # the incident is the alert: its resolution ends its opening, whichever member
            labels["incident"] = alert.incident
            annotations |= where
        body = [{"labels": labels, "annotations": annotations,
                 "startsAt": datetime.combine(alert.opened_on or alert.date, datetime.min.time(),
                                              tzinfo=UTC).isoformat(),
                 "endsAt": ends.isoformat()}]
        _post(f"{self.url.rstrip('/')}/api/v2/alerts", body, f"sink {self.name!r}", key,
              timeout)


@dataclass(frozen=True, slots=True)
class LogSink:
    """Appends one JSON line per alert to a file, fsynced before it returns."""

    name: str
    path: str

    def send(self, alert: Alert, model: str, key: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> None:
        path = Path(self.path)
        try:
            if key is not None and _last_key(path) == key:
                return  # written by a delivery killed before it could record it
            append_durably(path, json.dumps(_record(alert, model, key)) + "\n")
        except OSError as exc:
            raise DeliveryError(f"sink {self.name!r}: cannot write {self.path}: {exc}") from exc


def _record(alert: Alert, model: str, key: str | None) -> dict[str, Any]:
    body = {"model": model, **alert.as_json()}
    return body if key is None else {**body, "idempotency_key": key}


def _last_key(path: Path, tail: int = 65_536) -> str | None:
    """The idempotency key on a log file's last line, if any."""
    if not path.exists():
        return None
    with path.open("rb") as log:
        log.seek(max(0, log.seek(0, os.SEEK_END) - tail))
        lines = log.read().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None  # a line cut short, or not ours
    key = last.get("idempotency_key") if isinstance(last, dict) else None
    return None if key is None else str(key)


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
