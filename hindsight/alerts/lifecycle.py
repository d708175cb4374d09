"""An alert's life across runs: opened once, ongoing while its condition holds, resolved when
its segment is tested again and found clearly healthy in several consecutive runs. Sinks send
only openings and resolutions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hindsight.alerts.model import Alert, segment_key
from hindsight.alerts.rules import RuleResult

OPEN_STATES = ("opened", "ongoing")


def open_segments(alerts: list[Alert]) -> frozenset[str]:
    return frozenset(segment_key(a.segment) for a in alerts if a.state in OPEN_STATES)


def advance(previous: list[Alert], result: RuleResult, as_of: date,
            resolve_after: int = 3) -> list[Alert]:
    """This run's alert rows, given the alerts of the run before it. An open alert resolves
    after ``resolve_after`` consecutive runs that found its segment healthy, so a borderline
    segment does not flap."""
    still_open = {a.key: a for a in previous if a.state in OPEN_STATES}
    rows = []
    for alert in result.alerts:
        earlier = still_open.pop(alert.key, None)
        if earlier is None:
            rows.append(replace(alert, state="opened", opened_on=as_of))
        else:
            rows.append(replace(alert, state="ongoing", opened_on=earlier.opened_on,
                                passing_runs=0))
    for alert in still_open.values():
        segment = segment_key(alert.segment)
        passed = segment in result.healthy and segment not in result.failing
        if not passed:  # still failing under a neighbour's alert, or not testable today
            rows.append(replace(alert, date=as_of, state="ongoing", passing_runs=0))
        elif alert.passing_runs + 1 >= resolve_after:
            rows.append(replace(alert, date=as_of, state="resolved", passing_runs=0,
                                message=f"resolved: not worse than its reference in "
                                        f"{resolve_after} runs. Was: {alert.message}"))
        else:
            rows.append(replace(alert, date=as_of, state="ongoing",
                                passing_runs=alert.passing_runs + 1))
    return sorted(rows, key=lambda a: a.key)
