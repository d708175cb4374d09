"""Versions as pipeline changes: a new model version, provider model id or serving variant is
alerted on the day it first serves, with the share of traffic it took; an alias that is not a
pinned, dated snapshot is flagged as soon as it is logged."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from hindsight.alerts.model import Alert, segment_key
from hindsight.alerts.rules import RuleResult
from hindsight.config import Config

# a dated snapshot: 2024-08-06, 2024.08.06, 2024_08_06, 20240806 or 2408 style suffixes
# count as pinned by date
_DATED = re.compile(r"(19|20)\d{2}[-._]?\d{2}[-._]?\d{2}|\d{4}$")


def unpinned(config: Config, values: dict[str, Iterable[str]]) -> list[str]:
    """``column=value`` for each model version or provider model id that is neither in
    ``versions.pinned`` nor, without such a list, a dated snapshot.

    >>> from hindsight.config import parse_config
    >>> config = parse_config({"model": "m", "store": "/s", "columns": {
    ...     "id": "i", "timestamp": "t", "prediction": "p", "label": "y",
    ...     "provider_model": "llm"}})
    >>> unpinned(config, {"llm": ["gpt-4o", "gpt-4o-2024-08-06", "m-2026.02.14"]})
    ['llm=gpt-4o']
    """
    cols = config.columns
    checked = {c for c in (cols.model_version, cols.provider_model) if c}
    pinned = set(config.versions.pinned)
    found = []
    for column, seen in values.items():
        if column not in checked:
            continue
        for value in sorted(set(seen)):
            if (value not in pinned) if pinned else not _DATED.search(value):
                found.append(f"{column}={value}")
    return found


@dataclass(frozen=True, slots=True)
class VersionSeen:
    column: str
    value: str
    first_seen: datetime
    last_seen: datetime
    today: int  # predictions on the run date
    total: int
    pinned: bool | None  # None: no pinned list for this column
    share: float = 0.0  # of the run date's predictions, within its column
    validation: str | None = None  # "passed 2026-11-29" / "failed ...", if it was validated

    def as_json(self) -> dict[str, Any]:
        return {"column": self.column, "value": self.value,
                "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
                "share_of_last_day": self.share, "predictions": self.total,
                "pinned": self.pinned, "validation": self.validation}


def versions_seen(history: pa.Table, config: Config,
                  verdicts: dict[str, tuple[bool, datetime]] | None = None) -> list[VersionSeen]:
    pinned = set(config.versions.pinned)
    checked = {c for c in (config.columns.model_version, config.columns.provider_model) if c}

    def verdict(value: str) -> str | None:
        found = (verdicts or {}).get(value)
        return None if found is None else (
            f"{'passed' if found[0] else 'failed'} {found[1]:%Y-%m-%d}")

    rows = history.to_pylist()
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["column"]] = totals.get(r["column"], 0) + r["today"]
    return [
        VersionSeen(r["column"], r["value"], r["first_seen"], r["last_seen"], r["today"],
                    r["total"], (r["value"] in pinned) if pinned and r["column"] in checked
                    else None, r["today"] / totals[r["column"]] if totals[r["column"]] else 0.0,
                    verdict(r["value"]))
        for r in rows
    ]


def version_changes(as_of: date, seen: list[VersionSeen]) -> RuleResult:
    """Alert on each value first seen on ``as_of`` (when the column had history before it),
    and on unpinned values still serving."""
    started: dict[str, date] = {}
    for v in seen:
        started[v.column] = min(started.get(v.column, as_of), v.first_seen.date())
    alerts, tested, failing = [], set(), set()
    for v in seen:
        key = segment_key({v.column: v.value})
        tested.add(key)
        new = v.first_seen.date() == as_of and started[v.column] < as_of
        stray = v.pinned is False and v.today > 0
        if not (new or stray):
            continue
        failing.add(key)
        share = v.share
        what = "new" if new else "unpinned"
        message = (f"{what} {v.column} {v.value!r}: first seen {v.first_seen:%Y-%m-%d %H:%M:%S} "
                   f"UTC, {share:.1%} of {as_of}'s predictions ({v.today:,})")
        if v.pinned is False:
            message += "; not in versions.pinned: a change nobody promoted"
        alerts.append(Alert(date=as_of, kind="model_version", segment={v.column: v.value},
                            metric="traffic_share", value=share, reference=0.0, n=v.today,
                            message=message, window_start=v.first_seen.date(),
                            window_end=as_of))
    return RuleResult(tuple(alerts), frozenset(tested), frozenset(failing),
                      frozenset(tested - failing), 0)
