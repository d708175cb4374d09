"""The stored results of a range of days, as the pages read them.

Each run stores the metrics of its whole label window. The days of a range are read from the
newest run on or before its end that covers them, then the runs before it for older days: a
range two months back costs a few run partitions, and the default (no start) just one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.store.partitions import Store, Table

NO_RUN = "no run yet: run 'hindsight run --date YYYY-MM-DD' (or 'hindsight backfill')"
DRIFT_DAYS = 90  # without a start, the drift chart shows this many days up to the end


@dataclass(frozen=True, slots=True)
class Range:
    """The days a page shows: ``start``..``end``, either open (None: the latest run's)."""

    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"from={self.start} is after to={self.end}: swap them")

    @property
    def query(self) -> str:
        """The range as a query string to carry along links ("" when open)."""
        parts = [f"from={self.start}" if self.start else "", f"to={self.end}" if self.end else ""]
        return "&".join(p for p in parts if p)

    def describe(self) -> str:
        if self.start and self.end:
            return f"between {self.start} and {self.end}"
        if self.end:
            return f"up to {self.end}"
        return f"from {self.start}" if self.start else "in the latest run"


def metrics_in(store: Store, days: Range, window_days: int
               ) -> tuple[date | None, pa.Table | None]:
    """The run the range is seen as of, and the metric rows of the days in range, each day
    as the newest run covering it saw it; (None, None) without a run. The range is seen as of
    the run of ``days.end`` (or the first after it whose window of ``window_days`` still
    holds that day; else the latest before it)."""
    runs = store.partitions(Table.METRICS)
    if days.end is not None:
        end = days.end
        after = [r for r in runs if end <= r < end + timedelta(days=window_days)]
        runs = [r for r in runs if r <= (after[0] if after else end)]
    if not runs:
        return None, None
    parts: list[pa.Table] = []
    upto = days.end or runs[-1]
    for run in reversed(runs):
        if days.start is not None and (run < days.start or upto < days.start):
            break
        table = pa.concat_tables([store.read(f.path) for f in store.files(Table.METRICS, run,
                                                                          run)])
        if table.num_rows == 0:
            continue
        keep = pc.less_equal(table["day"], pa.scalar(upto, pa.date32()))
        if days.start is not None:
            keep = pc.and_(keep, pc.greater_equal(table["day"],
                                                  pa.scalar(days.start, pa.date32())))
        parts.append(table.filter(keep))
        if days.start is None:
            break
        first = pc.min(table["day"]).as_py()
        upto = min(upto, first - timedelta(days=1))
    table = pa.concat_tables(parts) if parts else None
    return runs[-1], table


def drift_in(store: Store, days: Range) -> tuple[date | None, pa.Table | None]:
    """The latest drift run on or before ``days.end`` and the drift rows of the runs in
    range (without a start: the ``DRIFT_DAYS`` up to it)."""
    runs = [d for d in store.partitions(Table.DRIFT) if days.end is None or d <= days.end]
    if not runs:
        return None, None
    last = runs[-1]
    start = days.start or last - timedelta(days=DRIFT_DAYS - 1)
    files = store.files(Table.DRIFT, start, last)
    if not files:
        return last, None
    return last, pa.concat_tables([store.read(f.path) for f in files])


def young_days(table: pa.Table, metric: str, threshold: float) -> set[date]:
    """The days whose population's labels cover less than ``threshold`` of its predictions:
    the rule does not test them yet, and their early labels flatter."""
    whole = table.filter(pc.and_(pc.equal(table["segment"], "{}"),
                                 pc.equal(table["metric"], metric)))
    return {r["day"] for r in whole.select(["day", "label_coverage"]).to_pylist()
            if (r["label_coverage"] or 0.0) < threshold}
