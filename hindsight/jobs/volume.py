"""Data alerts: a feed that stopped or fell far below its usual volume for a day. Predictions
are counted by the day they were made, labels by the day they arrived, from the files' footers
(no data is read); each day is judged against the same weekday of the weeks before it
(``stats.seasonal``), so weekends and holidays are no news."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from hindsight.alerts.model import Alert
from hindsight.alerts.rules import RuleResult
from hindsight.config import Config
from hindsight.stats.seasonal import Volume, volume
from hindsight.store.partitions import Store, Table

KIND = "data"
FEEDS = {"predictions": (Table.PREDICTIONS, "made"), "labels": (Table.LABELS, "arrived")}
WHOLE = "{}"
EXPLAINED_DAYS = 7  # labels missing this long after predictions fell are theirs


def daily_counts(store: Store, table: Table, first: date, last: date) -> dict[date, int]:
    """Rows per partition day from ``first`` to ``last``, from the footers; a day without a
    partition counts 0 once the table has any earlier partition (before it, no entry: the feed
    had not started, or its days were moved out of the store)."""
    files = store.files(table, None, last)
    if not files:
        return {}
    start = max(first, min(f.dt for f in files if f.dt is not None))
    counts = {start + timedelta(days=d): 0 for d in range((last - start).days + 1)}
    for f in files:
        if f.dt is not None and f.dt >= start:
            counts[f.dt] += store.footer(f.path).num_rows
    return counts


# rows per day of a table read in place (see DuckDBEngine.daily_rows); None: not one
RowsPerDay = Callable[[Table, date, date], "dict[date, int] | None"]


def data_results(as_of: date, config: Config, store: Store,
                 rows_per_day: RowsPerDay | None = None) -> dict[str, RuleResult]:
    """Per feed (metric ``predictions`` or ``labels``): the day's verdict as a rule result.
    Labels are not judged in the ``EXPLAINED_DAYS`` after predictions fell: the labels that
    did not come are those of the predictions that were not made, one alert says it. A
    table read in place is counted by ``rows_per_day``."""
    weeks = config.data.weeks
    found = {}
    fell = False
    for metric, (table, verb) in FEEDS.items():
        first = as_of - timedelta(days=7 * weeks + EXPLAINED_DAYS)
        in_place = rows_per_day(table, first, as_of) if rows_per_day is not None else None
        counts = in_place if in_place is not None else daily_counts(store, table, first, as_of)
        judged = None if fell else _judged(counts, as_of, weeks, config.data.min_share)
        if metric == "predictions":
            fell = any(v is not None and v.low for v in (
                _judged(counts, as_of - timedelta(days=d), weeks, config.data.min_share)
                for d in range(EXPLAINED_DAYS + 1)))
        if judged is None:
            found[metric] = RuleResult((), frozenset(), frozenset(), frozenset(), 0)
        elif judged.low:
            found[metric] = RuleResult((_alert(as_of, metric, verb, judged),),
                                       frozenset({WHOLE}), frozenset({WHOLE}), frozenset(), 0)
        else:
            found[metric] = RuleResult((), frozenset({WHOLE}), frozenset(),
                                       frozenset({WHOLE}), 0)
    return found


def _judged(counts: dict[date, int], day: date, weeks: int, min_share: float) -> Volume | None:
    if day not in counts:
        return None
    history = [counts[d] for d in (day - timedelta(days=7 * k) for k in range(1, weeks + 1))
               if d in counts]
    return volume(counts[day], history, min_share)


def _alert(as_of: date, metric: str, verb: str, judged: Volume) -> Alert:
    weekday = f"{as_of:%A}"
    usual = (f"a usual {weekday} has {judged.usual:,.0f} (median of the last {judged.history} "
             f"{weekday}s)")
    if judged.count == 0:
        message = f"{metric} stopped: none {verb} on {as_of}; {usual}"
    else:
        message = (f"{metric} fell to {judged.count:,.0f} {verb} on {as_of}, {judged.share:.0%} "
                   f"of usual; {usual}")
    return Alert(date=as_of, kind=KIND, segment={}, metric=metric, value=judged.count,
                 reference=judged.usual, n=judged.history, message=message,
                 window_start=as_of, window_end=as_of)
