"""Each newly opened performance alert carries the features that moved most in its segment
and window, so an investigation starts with a query instead of a backfill."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.model import Alert
from hindsight.config import Config, feature_columns
from hindsight.engine.base import MISSING_SEGMENT_VALUE, Engine
from hindsight.jobs.drift import DriftRow, feature_drift, slices, top_moved
from hindsight.jobs.sketches import Sketched, sketch_columns


class Explainer:
    def __init__(self, config: Config, engine: Engine, reference: pa.Table | None,
                 drift_rows: Sequence[DriftRow]) -> None:
        self._config = config
        self._engine = engine
        self._reference = reference
        self._rows = drift_rows

    def __call__(self, alert: Alert) -> Alert:
        if alert.state != "opened" or self._reference is None:
            return alert
        moved = self._top_moved(alert)
        if not moved:
            return alert
        return replace(alert, message=f"{alert.message}. Top moved features: {', '.join(moved)}")

    def _top_moved(self, alert: Alert) -> list[str]:
        assert self._reference is not None
        features = feature_columns(self._config, self._reference.column_names)
        if not features:
            return []
        sketch = self._engine.drift_sketch(
            alert.window_start, alert.window_end, [],
            *sketch_columns(self._config, self._reference.schema, features, signals=False),
            within=alert.segment)
        current: pa.Table | Sketched
        if sketch is not None:  # summarized where the rows are
            current = Sketched.of(sketch)
        else:
            columns = list(dict.fromkeys([*self._config.segments, *features]))
            current = _inside(self._engine.predictions(alert.window_start, alert.window_end,
                                                       columns), alert.segment)
        reference = _inside(self._reference, alert.segment)
        if reference.num_rows < self._config.min_samples:
            reference = self._reference  # too small a slice: compare with the whole reference
        # the segment's own slice, compared as one population ("{}")
        cut = slices(current, reference, (), self._config.min_samples)
        return top_moved(feature_drift(cut, features), "{}")


def _inside(table: pa.Table, segment: dict[str, str]) -> pa.Table:
    for column, value in segment.items():
        table = table.filter(pc.equal(pc.fill_null(table[column], MISSING_SEGMENT_VALUE), value))
    return table
