"""Replaying alerts against known incidents: detection delay and false alerts, the numbers
needed to tune ``alpha`` and ``min_effect``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from hindsight.alerts.hierarchy import compatible, describe
from hindsight.alerts.model import Alert
from hindsight.errors import InputError
from hindsight.store.identity import identity


class Incident(BaseModel):
    """A known failure: where and when. ``end`` open means still ongoing; a ``segment`` that
    is empty or left out means the whole population. Its values are read as identities
    (``True`` -> ``true``, ``2.0`` -> ``2``), as the stored segment values are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segment: dict[str, str] = Field(default_factory=dict)
    start: dt.date
    end: dt.date | None = None
    name: str | None = None

    @field_validator("segment", mode="before")
    @classmethod
    def _identities(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value  # refused by the type check, with its message
        values = identity(pa.array([None if v is None else str(v) for v in value.values()],
                                   pa.string()))
        return dict(zip(value, values.to_pylist(), strict=True))

    @property
    def label(self) -> str:
        return self.name or describe(self.segment)


@dataclass(frozen=True, slots=True)
class Detection:
    incident: Incident
    alert: Alert | None  # the first alert opened on it, if any

    @property
    def delay_days(self) -> int | None:
        return None if self.alert is None else (self.alert.date - self.incident.start).days

    @property
    def exact(self) -> bool:
        """Whether the alert named the incident's own segment, not a neighbour."""
        return self.alert is not None and self.alert.segment == self.incident.segment

    def as_json(self) -> dict[str, Any]:
        return {"incident": self.incident.label, "start": self.incident.start.isoformat(),
                "detected": self.alert.date.isoformat() if self.alert else None,
                "delay_days": self.delay_days, "exact_segment": self.exact,
                "alert": self.alert.message if self.alert else None}


@dataclass(frozen=True, slots=True)
class Evaluation:
    detections: tuple[Detection, ...]
    false_alerts: tuple[Alert, ...]
    runs: int

    def as_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "detections": [d.as_json() for d in self.detections],
                "false_alerts": [a.as_json() for a in self.false_alerts]}


def load_incidents(path: str | Path) -> list[Incident]:
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{file}: cannot read incidents: {exc}") from exc
    try:
        return TypeAdapter(list[Incident]).validate_python(raw or [])
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(
            f"{file}: incident {where}: {first['msg']}; expected a list of "
            "{segment: {column: value}, start: YYYY-MM-DD, end: YYYY-MM-DD (optional)}"
        ) from exc


def evaluate(alerts: list[Alert], incidents: list[Incident], runs: int) -> Evaluation:
    """An opened alert detects an incident when its segment shares rows with the incident's
    and the predictions it judged overlap the incident's dates; every other one is false."""
    opened = sorted((a for a in alerts if a.state == "opened"), key=lambda a: (a.date, a.key))

    def matches(alert: Alert, incident: Incident) -> bool:
        ends = incident.end or dt.date.max
        return (compatible(alert.segment, incident.segment)
                and alert.window_end >= incident.start and alert.window_start <= ends)

    detections = tuple(
        Detection(incident, next((a for a in opened if matches(a, incident)), None))
        for incident in incidents
    )
    false = tuple(a for a in opened if not any(matches(a, i) for i in incidents))
    return Evaluation(detections, false, runs)
