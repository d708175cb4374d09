"""Incidents: the alerts of one cause, paged once.

Two alerts of one kind *overlap* when one segment contains the other or they share a
``column=value`` pair: the same drop seen from different crosses. Alerts that open in the same
run and overlap (directly or through others) are one incident; an alert that opens later and
overlaps an incident still open (or one of the last ``alerts.incident_span_days`` days) joins
it. An incident's id is a digest of its headline alert's key and the day it opened, so a replay
or a backfill gives the same ids. Its headline is the alert the rule chose to name the cause
(``rules.DropRule``), else its most general member. Sinks get one page per incident: its
headline when it opens, and one resolution when its last open alert resolves; an alert that
joins an incident is not paged again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from hindsight.alerts.hierarchy import inside
from hindsight.alerts.model import OPEN_STATES, Alert

SENT_STATES = ("opened", "resolved")


def overlap(segment: dict[str, str], other: dict[str, str]) -> bool:
    """Whether two segments may show one cause: one holds the other, or they share a value.

    >>> overlap({"country": "CH", "tier": "free"}, {"tier": "free", "merchant": "food"})
    True
    >>> overlap({"country": "CH"}, {"country": "DE", "tier": "free"})
    False
    >>> overlap({}, {"country": "DE"})
    True
    """
    return (inside(segment, other) or inside(other, segment)
            or any(other.get(k) == v for k, v in segment.items()))


def incident_id(alert: Alert) -> str:
    """The id of the incident ``alert`` names: stable across replays.

    >>> import datetime as dt
    >>> a = Alert(dt.date(2026, 1, 9), "performance", {"country": "CH"}, "accuracy", 0.5,
    ...           0.95, 40, "", dt.date(2026, 1, 8), dt.date(2026, 1, 8))
    >>> incident_id(a)
    'e893390e50947221'
    """
    text = f"{alert.key}|{alert.opened_on or alert.date}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def assign(rows: Sequence[Alert], known: Sequence[Alert]) -> list[Alert]:
    """This run's rows with their incidents. ``known``: rows of earlier runs whose incidents a
    new opening may join (the open ones of the run before, and those of the span)."""
    out = [r if r.state == "opened" or r.incident else
           replace(r, incident=incident_id(r), headline=True) for r in rows]
    joinable = [a for a in known if a.incident] + [r for r in out if r.state != "opened"]
    fresh: list[int] = []
    for i, row in enumerate(out):
        if row.state != "opened":
            continue
        match = [a for a in joinable
                 if _family(a.kind) == _family(row.kind) and overlap(a.segment, row.segment)]
        if match:
            first = min(match, key=lambda a: (a.opened_on or a.date, str(a.incident)))
            out[i] = replace(row, incident=first.incident, headline=False)
        else:
            fresh.append(i)
    for part in groups([out[i].segment for i in fresh], [_family(out[i].kind) for i in fresh]):
        group = [fresh[i] for i in part]
        head = min(group, key=lambda i: (not out[i].headline, len(out[i].segment),
                                         -out[i].n, out[i].key))
        name = incident_id(out[head])
        for i in group:
            out[i] = replace(out[i], incident=name, headline=i == head)
    return out


def pages(rows: Sequence[Alert]) -> list[Alert]:
    """What a run sends: each new incident's headline, and one resolution per incident whose
    last open alert resolved (its headline's, if that resolved in this run). Rows without an
    incident are sent as they are."""
    still_open = {r.incident for r in rows if r.state in OPEN_STATES}
    sent: list[Alert] = []
    closing: dict[str, list[Alert]] = {}
    for row in rows:
        if row.state not in SENT_STATES:
            continue
        if row.incident is None or (row.state == "opened" and row.headline):
            sent.append(row)
        elif row.state == "resolved" and row.incident not in still_open:
            closing.setdefault(row.incident, []).append(row)
    for members in closing.values():
        sent.append(min(members, key=lambda a: (not a.headline, a.key)))
    return sent


def _family(kind: str) -> str:
    """Kinds whose alerts may share an incident: an estimated warning and the performance
    alert that confirms it."""
    return "performance" if kind == "estimated" else kind


def groups(segments: Sequence[dict[str, str]],
           kinds: Sequence[str] | None = None) -> list[list[int]]:
    """Indices of segments (of one kind) that overlap, directly or through others.

    >>> groups([{"country": "CH"}, {"tier": "b"}, {"country": "CH", "tier": "a"}])
    [[0, 2], [1]]
    """
    parent = list(range(len(segments)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, segment in enumerate(segments):
        for j in range(i):
            if (kinds is None or kinds[i] == kinds[j]) and overlap(segment, segments[j]):
                parent[root(i)] = root(j)
    found: dict[int, list[int]] = {}
    for i in range(len(segments)):
        found.setdefault(root(i), []).append(i)
    return list(found.values())


def headlines(alerts: Sequence[Alert]) -> list[tuple[Alert, int]]:
    """One entry per incident, in the order of its first alert: its headline (else its most
    general alert) and how many of ``alerts`` it holds."""
    members: dict[str, list[Alert]] = {}
    for a in alerts:
        members.setdefault(a.incident or incident_id(a), []).append(a)
    return [(min(group, key=lambda a: (not a.headline, len(a.segment), a.key)), len(group))
            for group in members.values()]
