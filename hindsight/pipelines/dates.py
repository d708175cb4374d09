"""Which day a scheduled run counts: the daily job's convention, applied to the time the
scheduler meant to start it rather than to the time it happened to start."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hindsight.errors import ConfigError


def scheduled_run_date(run_date: str, scheduled_time: str) -> date:
    """``run_date`` when given, else the UTC day before ``scheduled_time`` (as ``hindsight run``
    does with the clock). A catch-up run or a retry scheduled for the 3rd counts the 2nd,
    whenever it starts.

    >>> scheduled_run_date("", "2026-03-03T02:30:00Z")
    datetime.date(2026, 3, 2)
    >>> scheduled_run_date("", "2026-03-03T01:30:00.120000+02:00")
    datetime.date(2026, 3, 1)
    >>> scheduled_run_date("2026-01-15", "2026-03-03T02:30:00Z")
    datetime.date(2026, 1, 15)
    """
    if run_date:
        try:
            return date.fromisoformat(run_date)
        except ValueError as exc:
            raise ConfigError(f"run_date {run_date!r} is not a date: use YYYY-MM-DD, or leave "
                              "it empty for the day before the scheduled time") from exc
    try:
        when = datetime.fromisoformat(scheduled_time)
    except ValueError as exc:
        raise ConfigError(
            f"run_date is empty and the scheduled time {scheduled_time!r} is not a time (this "
            "Kubeflow backend did not fill in the pipeline's schedule time): pass run_date "
            "as YYYY-MM-DD") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).date() - timedelta(days=1)
