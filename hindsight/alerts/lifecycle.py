"""An alert's life across runs: opened once, ongoing while its condition holds, resolved when
its segment is tested again and found clearly healthy in several consecutive runs. An alert
whose segment its run did not test is *stale*: still open, but no longer confirmed; once its
evidence (the days it was found on) has left the window the run looks at, nothing can confirm
or clear it any more, and it is resolved with that reason. Sinks send only openings and
resolutions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hindsight.alerts.model import OPEN_STATES, Alert, segment_key
from hindsight.alerts.rules import RuleResult

__all__ = ["OPEN_STATES", "advance", "open_segments"]


def open_segments(alerts: list[Alert]) -> frozenset[str]:
    return frozenset(segment_key(a.segment) for a in alerts if a.state in OPEN_STATES)


def advance(previous: list[Alert], result: RuleResult, as_of: date,
            resolve_after: int = 3, window_start: date | None = None) -> list[Alert]:
    """This run's alert rows, given the alerts of the run before it. An open alert resolves
    after ``resolve_after`` consecutive runs that found its segment healthy, so a borderline
    segment does not flap. ``window_start``: the first day this run looks at; an open alert
    it did not test goes stale, and a stale one whose evidence ends before ``window_start``
    is resolved. Without it (the intra-day checks, whose windows are hours), an untested
    alert stays ongoing."""
    still_open = {a.key: a for a in previous if a.state in OPEN_STATES}
    rows = []
    for alert in result.alerts:
        earlier = still_open.pop(alert.key, None)
        if earlier is None:
            rows.append(replace(alert, state="opened", opened_on=as_of))
        else:
            rows.append(replace(alert, state="ongoing", opened_on=earlier.opened_on,
                                passing_runs=0, incident=earlier.incident,
                                headline=earlier.headline))
    for alert in still_open.values():
        rows.append(_carried(replace(alert, date=as_of), result, resolve_after, window_start))
    return sorted(rows, key=lambda a: a.key)


def _carried(alert: Alert, result: RuleResult, resolve_after: int,
             window_start: date | None) -> Alert:
    """An open alert its run did not find again."""
    segment = segment_key(alert.segment)
    untested = segment not in result.tested and segment not in result.failing
    if untested and window_start is not None:
        if alert.state == "stale" and alert.window_end < window_start:
            return replace(alert, state="resolved", passing_runs=0,
                           message=f"resolved: no longer tested, its evidence "
                                   f"({alert.window_start} to {alert.window_end}) left the "
                                   f"window (from {window_start}). Was: {alert.message}")
        return replace(alert, state="stale", passing_runs=0)
    if segment not in result.healthy or segment in result.failing:
        # still failing under a neighbour's alert, borderline, or not testable right now
        return replace(alert, state="ongoing", passing_runs=0)
    if alert.passing_runs + 1 >= resolve_after:
        return replace(alert, state="resolved", passing_runs=0,
                       message=f"resolved: not worse than its reference in {resolve_after} "
                               f"runs. Was: {alert.message}")
    return replace(alert, state="ongoing", passing_runs=alert.passing_runs + 1)
