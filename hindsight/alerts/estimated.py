"""Estimated-performance warnings: the label-free estimate, judged the day predictions arrive.

With a score calibrated on the reference set, each prediction carries its chance of being
right, and a cell's *estimated accuracy* is their mean. A run compares each segment's estimate
on its date with the same segment's estimate on the window's baseline days (estimate against
estimate: a calibration offset cancels out), with the performance rule's one-sided test, Holm
correction across segments, ``alpha`` and ``min_effect``. A segment is judged only where the
estimate is known to hold: on the baseline days, its labelled accuracy and its estimate differ
by less than half of ``min_effect`` (and it has ``min_samples`` labels there), and so do they
on its newest day whose labels are mature (``min_label_coverage``): a segment whose scores
stopped telling the truth is not judged by them. Of overlapping failing segments, one is
warned about, chosen as an incident's headline is (``headline.choose``). A warning (kind
``estimated``) joins the incident of the performance alerts it overlaps; labels confirm it (a
performance alert on it opens: the warning closes, its incident stays open) or withdraw it
(the labelled test found the segment healthy on days up to the warning's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.headline import choose
from hindsight.alerts.hierarchy import describe
from hindsight.alerts.incidents import groups, overlap
from hindsight.alerts.model import OPEN_STATES, Alert, segment_key
from hindsight.alerts.rules import RuleResult, RunWindow
from hindsight.stats.significance import holm, proportion_drop_pvalues

KIND = "estimated"
METRIC = "estimated_accuracy"
NOTHING = RuleResult((), frozenset(), frozenset(), frozenset(), 0)


@dataclass(frozen=True, slots=True)
class EstimateRule:
    min_samples: int
    min_effect: float
    alpha: float
    baseline_days: int
    min_label_coverage: float = 0.5

    def evaluate(self, window: RunWindow, cells: pa.Table) -> RuleResult:
        if "expected_correct" not in cells.column_names or not cells.num_rows:
            return NOTHING
        names = pc.unique(cells["segment"])
        code = np.asarray(pc.index_in(cells["segment"], names).to_numpy(zero_copy_only=False))
        day = np.asarray(pc.fill_null(pc.days_between(
            pa.scalar(window.first_day, pa.date32()), cells["day"]), -1).to_numpy(
            zero_copy_only=False))
        today = day == (window.as_of - window.first_day).days
        base = (day >= 0) & (day < self.baseline_days)

        columns: dict[str, np.ndarray] = {}  # each converted once, for all its sums

        def summed(column: str, rows: np.ndarray) -> np.ndarray:
            values = columns.get(column)
            if values is None:
                values = columns[column] = np.asarray(pc.fill_null(cells[column], 0).to_numpy(
                    zero_copy_only=False), np.float64)
            return np.bincount(code[rows], values[rows], minlength=len(names))

        now, n_now = summed("expected_correct", today), summed("n_scored", today)
        ref, n_ref = summed("expected_correct", base), summed("n_scored", base)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate, reference = now / n_now, ref / n_ref
        reliable = self._agrees(summed, base) & self._agrees(summed, self._latest(
            cells, code, day, len(names)))
        unit = np.nonzero((n_now >= self.min_samples) & (n_ref >= self.min_samples)
                          & reliable)[0]
        p = proportion_drop_pvalues(now[unit], n_now[unit], ref[unit], n_ref[unit])
        drop = reference[unit] - estimate[unit]
        failing = unit[holm(p, self.alpha) & (drop >= self.min_effect)]
        keys = names.to_pylist()
        found = [json.loads(keys[k]) for k in failing]
        alerts = []
        for group in groups(found):  # one warning per cause: the simplest cell carrying it
            pick = group[choose([found[i] for i in group],
                                [float(n_now[k] * (reference[k] - estimate[k]))
                                 for k in failing[group]], [float(n_now[k])
                                                            for k in failing[group]])]
            k = failing[pick]
            alerts.append(self._alert(window.as_of, found[pick], float(estimate[k]),
                                      float(reference[k]), int(n_now[k])))
        return RuleResult(tuple(alerts), frozenset(keys[k] for k in unit),
                          frozenset(keys[k] for k in failing),
                          frozenset(keys[k] for k in unit[drop < self.min_effect / 2]), 0)

    def _agrees(self, summed: Callable[[str, np.ndarray], np.ndarray],
                rows: np.ndarray) -> np.ndarray:
        """Per segment: whether on ``rows`` it has ``min_samples`` labels and its estimate is
        within half of ``min_effect`` of its labelled accuracy."""
        right, labelled = summed("n_correct", rows), summed("n_labelled", rows)
        expected, scored = summed("expected_correct", rows), summed("n_scored", rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.abs(right / labelled - expected / scored)
        return np.asarray((labelled >= self.min_samples) & (gap < self.min_effect / 2))

    def _latest(self, cells: pa.Table, code: np.ndarray, day: np.ndarray,
                k: int) -> np.ndarray:
        """Rows of each segment's newest day labelled to ``min_label_coverage``."""
        labelled, predicted = (np.asarray(pc.fill_null(cells[c], 0).to_numpy(
            zero_copy_only=False), np.float64) for c in ("n_labelled", "n_predictions"))
        mature = (day >= 0) & (labelled > 0) & (labelled >= self.min_label_coverage * predicted)
        newest = np.full(k, -1)
        np.maximum.at(newest, code[mature], day[mature])
        return np.asarray(mature & (day == newest[code]))

    @staticmethod
    def _alert(as_of: date, segment: dict[str, str], value: float, reference: float,
               n: int) -> Alert:
        message = (f"{describe(segment)}: estimated accuracy {value:.1%} vs {reference:.1%} on "
                   f"the baseline days (label-free, from the calibrated score; {n} predictions "
                   f"of {as_of}); labels will confirm or withdraw it")
        return Alert(date=as_of, kind=KIND, segment=segment, metric=METRIC, value=value,
                     reference=reference, n=n, message=message, window_start=as_of,
                     window_end=as_of)


def settle(warnings: list[Alert], labelled: list[Alert], result: RuleResult) -> list[Alert]:
    """The run's warning rows once the labels had their say: an open warning closes as
    confirmed when a performance alert on an overlapping segment is open (none is raised
    then), and as withdrawn when the labelled test found its segment healthy on days up to
    the one it opened on."""
    open_labelled = [a for a in labelled if a.state in OPEN_STATES]
    out = []
    for warning in warnings:
        key = segment_key(warning.segment)
        confirmed = next((a for a in open_labelled if overlap(a.segment, warning.segment)),
                         None)
        through = dict(result.tested_through).get(key)
        if warning.state not in OPEN_STATES:
            out.append(warning)
        elif confirmed is not None and warning.state == "opened":
            continue  # the labels already tell: no warning
        elif confirmed is not None:
            out.append(replace(warning, state="resolved", message=(
                f"confirmed by labels: {confirmed.message}. Was: {warning.message}")))
        elif (key in result.healthy and through is not None
              and through >= (warning.opened_on or warning.window_end)):
            out.append(replace(warning, state="resolved", message=(
                f"withdrawn: labels up to {through} show {describe(warning.segment)} healthy. "
                f"Was: {warning.message}")))
        else:
            out.append(warning)
    return out
