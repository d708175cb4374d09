"""Rules that turn a run's cell counts into performance alerts.

``PerformanceRule`` is the seam: the daily job calls ``evaluate`` and stores what it returns.
``DropRule`` is the first rule:

- each segment is tested once per run, on its *unit*: the newest prediction days whose label
  coverage has reached ``min_label_coverage``, pooled backwards until ``min_samples`` labelled
  rows (see ``cells.pooled_units``);
- against its reference (the reference set's same segment, else the segment's pooled oldest
  ``baseline_days`` of the window) with a one-sided two-sample test;
- the error rate is controlled across all segments tested in the run: by default the chance
  of any false alert (Holm), or the expected share of false alerts (Benjamini-Hochberg); and a
  rejected segment alerts only when its drop is also at least ``min_effect``;
- when overlapping segments fail together, the alert goes to the most specific one that
  explains the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.cells import CellArrays, FloatArray, Units, pooled_units
from hindsight.alerts.headline import choose, related
from hindsight.alerts.hierarchy import compatible, describe, inside
from hindsight.alerts.incidents import groups
from hindsight.alerts.model import Alert, segment_key
from hindsight.stats.intervals import mean_interval, wilson_interval
from hindsight.stats.maturity import debiased_counts, delay_odds_ratio
from hindsight.stats.significance import (
    benjamini_hochberg,
    holm,
    mean_increase_pvalues,
    proportion_drop_pvalues,
)

SHOWN_CONFIDENCE = 0.95
SHOWN_EXPLAINED = 3  # a message names this many covered segments; the alert keeps all
TRAILING, REFERENCE_SET, BOTH = 0, 1, 2
AGREEMENT_LEVEL = 0.05  # two-sided: below it, the trailing days and the reference set differ
# Why a segment with cells was not tested, in the order they are judged:
SKIP_LABEL_DELAY = "label delay beyond the window"  # no day it could be tested on is mature
SKIP_FEW_LABELS = "too few labels"  # under min_samples labelled rows even pooled
SKIP_NO_REFERENCE = "no reference"  # fewer than min_samples labelled rows to compare with
SKIP_REASONS = (SKIP_LABEL_DELAY, SKIP_FEW_LABELS, SKIP_NO_REFERENCE)


@dataclass(frozen=True, slots=True)
class RunWindow:
    """The run of ``as_of`` looks at predictions made on ``first_day..as_of``."""

    as_of: date
    first_day: date

    def date_of(self, offset: int) -> date:
        return self.first_day + timedelta(days=int(offset))


@dataclass(frozen=True, slots=True)
class RuleResult:
    """What a rule found, and what it looked at: ``tested`` are segment keys it tested."""

    alerts: tuple[Alert, ...]
    tested: frozenset[str]
    failing: frozenset[str]  # alerted, or covered by an alert on a more specific segment
    healthy: frozenset[str]  # tested and within half of min_effect of the reference
    skipped: int  # segments with cells but no unit (too few labelled rows, immature labels)
    skipped_by: dict[str, int] = field(default_factory=dict)  # the same, by SKIP_REASONS
    tested_through: tuple[tuple[str, date], ...] = ()  # per tested segment: its newest day


class PerformanceRule(Protocol):
    def evaluate(
        self, window: RunWindow, cells: pa.Table, reference: pa.Table | None,
        open_segments: frozenset[str] = frozenset(), label_ages: pa.Table | None = None,
    ) -> RuleResult:
        """Test the cells of one run; ``reference`` holds the reference set's cells,
        ``open_segments`` the segments of alerts still open from earlier runs and
        ``label_ages`` the population's labels by arrival age (see ``CellCounts``)."""
        ...


@dataclass(frozen=True, slots=True)
class _References:
    """Per segment code: the reference's sufficient statistics and where it came from."""

    total: FloatArray
    squares: FloatArray
    n: FloatArray
    tested_from: np.ndarray  # first day offset that may be tested against it
    source: np.ndarray  # TRAILING, REFERENCE_SET or BOTH (pooled, as they agree)


@dataclass(frozen=True, slots=True)
class DropRule:
    task: str
    min_samples: int
    min_effect: float
    alpha: float
    baseline_days: int
    pool_days: int = 14
    min_label_coverage: float = 0.5
    correction: str = "holm"
    correct_label_delay: bool = True

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mae"

    def evaluate(
        self, window: RunWindow, cells: pa.Table, reference: pa.Table | None,
        open_segments: frozenset[str] = frozenset(), label_ages: pa.Table | None = None,
    ) -> RuleResult:
        names = pc.unique(cells["segment"])
        c = self._debias(CellArrays.from_table(cells, names, window.first_day, self.task),
                         window, label_ages)
        overall = pc.index(names, "{}").as_py()  # the population cell
        refs = self._references(c, len(names), reference, names, window.first_day)
        timely = self._mature_days(c, overall)[c.day] & (c.day >= refs.tested_from[c.segment])
        eligible = timely & (refs.n[c.segment] >= self.min_samples)
        units = pooled_units(c, eligible, self.min_samples, self.pool_days)
        seg = units.segment
        p, material = self._test(units.total, units.squares, units.n,
                                 refs.total[seg], refs.squares[seg], refs.n[seg])
        correct = holm if self.correction == "holm" else benjamini_hochberg
        rejected = correct(p, self.alpha)
        failing = np.nonzero(rejected & material)[0]
        tested = frozenset(names.take(pa.array(seg)).to_pylist())
        healthy = frozenset(names.take(pa.array(seg[self._healthy(units, refs)])).to_pylist())
        skipped_by = self._skipped(c, timely, refs, seg)
        skipped = sum(skipped_by.values())
        through = tuple(zip(names.take(pa.array(seg)).to_pylist(),
                            map(window.date_of, units.last_day), strict=True))
        if failing.size == 0:
            return RuleResult((), tested, frozenset(), healthy, skipped, skipped_by=skipped_by,
                              tested_through=through)
        segments = [json.loads(names[int(seg[u])].as_py()) for u in failing]
        failing_keys = {segment_key(x) for x in segments}
        # Alerts still open from earlier runs explain and cover new failures too, so a
        # failure is alerted once, not again under each neighbour on the following days.
        still_open = [json.loads(k) for k in sorted(open_segments - failing_keys)]
        explainers = segments + still_open
        explained = self._explained(failing, segments, explainers, units, names, c, refs)
        anchored = [segment_key(x) in open_segments for x in segments]
        alerts = []
        for i, (u, segment) in enumerate(zip(failing, segments, strict=True)):
            # An open alert stays the anchor: its new sub-segments fold into it.
            broader = any(j >= len(segments) or anchored[j] or explained[j] is None
                          for j, other in enumerate(explainers)
                          if j != i and inside(segment, other))
            if (explained[i] is not None and not anchored[i]) or broader:
                continue
            covered = sorted(((-float(units.labelled[failing[j]]), describe(other))
                              for j, other in enumerate(segments)
                              if j != i and (explained[j] == i or inside(other, segment))))
            covers = [text for _, text in covered]  # largest first
            alerts.append(self._alert(window, segment, units, int(u), c, refs, covers,
                                      self._aggregate(c, units, int(u), overall)))
        alerts = self._headlines(window, alerts, failing, segments, units, c, refs, overall)
        return RuleResult(tuple(sorted(alerts, key=lambda a: a.key)), tested,
                          frozenset(failing_keys), healthy, skipped, skipped_by=skipped_by,
                          tested_through=through)

    def _skipped(self, c: CellArrays, timely: np.ndarray, refs: _References,
                 tested: np.ndarray) -> dict[str, int]:
        """The segments with cells but no unit, counted by why (``SKIP_REASONS``): no day
        they could be tested on has mature labels; else too few labelled rows on those days,
        even pooled (with a reference or not); else too few rows to compare with."""
        known = c.segment >= 0
        untested = np.setdiff1d(np.unique(c.segment[known]), tested)
        k = refs.n.size
        has_timely = np.zeros(k, dtype=bool)
        has_timely[c.segment[known & timely]] = True
        enough = np.zeros(k, dtype=bool)
        enough[pooled_units(c, timely, self.min_samples, self.pool_days).segment] = True
        late = ~has_timely[untested]
        few = ~late & ~enough[untested]
        counts = {SKIP_LABEL_DELAY: int(late.sum()), SKIP_FEW_LABELS: int(few.sum()),
                  SKIP_NO_REFERENCE: int((~late & ~few).sum())}
        return {reason: n for reason, n in counts.items() if n}

    def baselines(self, window: RunWindow, cells: pa.Table, reference: pa.Table | None
                  ) -> tuple[pa.Array, CellArrays, _References]:
        """The run's segment names, its cells as arrays and each segment's reference, as
        ``evaluate`` derives them (before the label-delay correction): what coverage uses."""
        names = pc.unique(cells["segment"])
        c = CellArrays.from_table(cells, names, window.first_day, self.task)
        return names, c, self._references(c, len(names), reference, names, window.first_day)

    def _headlines(self, window: RunWindow, alerts: list[Alert], failing: np.ndarray,
                   segments: list[dict[str, str]], units: Units, c: CellArrays,
                   refs: _References, overall: int) -> list[Alert]:
        """Each group of overlapping alerts gets a headline (``headline.choose``) among the
        failing cells they relate to; a headline cell without an alert of its own gets one,
        listing the group's alerts as what it explains."""
        keys = [segment_key(s) for s in segments]
        out = list(alerts)
        for group in groups([a.segment for a in alerts]):
            members = [alerts[i].segment for i in group]
            cells = related(members, segments)
            us = [int(failing[keys.index(segment_key(m))]) for m in members]
            days = (c.day >= units.first_day[us].min()) & (c.day <= units.last_day[us].max())
            codes = [int(units.segment[failing[j]]) for j in cells]
            sums = [c.sums(np.nonzero(days & (c.segment == k))[0]) for k in codes]
            rate = [float(refs.total[k] / refs.n[k]) for k in codes]
            # errors beyond the reference rate: correct answers short of it, or absolute
            # error above it
            sign = 1.0 if self.task == "classification" else -1.0
            excess = [sign * (n * r - total) for (total, _, n), r in zip(sums, rate, strict=True)]
            pick = choose([segments[j] for j in cells], excess, [s[2] for s in sums])
            head = segments[cells[pick]]
            share = excess[pick] / max(excess) if max(excess) > 0 else 0.0
            note = (f". Headline of its incident: carries {share:.0%} of the excess errors "
                    f"of its cells ({excess[pick]:.4g} of {max(excess):.4g})")
            others = [describe(m) for m in members if m != head]
            at = next((i for i in group if alerts[i].segment == head), None)
            if at is None:
                u = int(failing[cells[pick]])
                out.append(replace(self._alert(window, head, units, u, c, refs, others,
                                               self._aggregate(c, units, u, overall)),
                                   headline=True))
                out[-1] = replace(out[-1], message=out[-1].message + note)
            else:
                shown = list(dict.fromkeys([*alerts[at].explains, *others]))
                out[at] = replace(alerts[at], headline=True, explains=tuple(shown),
                                  message=alerts[at].message + note)
        return out

    def _debias(self, c: CellArrays, window: RunWindow,
                label_ages: pa.Table | None) -> CellArrays:
        """Divide the early-label odds ratio, measured on the window's oldest (mature) days,
        out of every day's odds of a correct prediction, by the age of its labels."""
        ratio = self.delay_odds(window, label_ages)
        if ratio is None:
            return c
        span = ratio.size
        row_age = np.clip(span - 1 - c.day, 0, span - 1)
        total, n = debiased_counts(c.total, c.n, ratio[row_age])
        return replace(c, total=total, squares=total, n=n)

    def delay_odds(self, window: RunWindow, label_ages: pa.Table | None) -> FloatArray | None:
        """The early-label odds ratio by label age (index 0: the run's own day), measured on
        the window's oldest (mature) days; None where the rule does not correct for it."""
        if (self.task != "classification" or not self.correct_label_delay
                or label_ages is None or label_ages.num_rows == 0):
            return None
        span = (window.as_of - window.first_day).days + 1
        day = pc.days_between(pa.scalar(window.first_day, pa.date32()), label_ages["day"])
        mature = np.asarray(day.to_numpy(zero_copy_only=False)) < self.baseline_days
        age = np.clip(np.asarray(label_ages["age"].to_numpy(zero_copy_only=False)), 0, span - 1)

        def by_age(column: str) -> FloatArray:
            values = np.asarray(label_ages[column].to_numpy(zero_copy_only=False), np.float64)
            return _sum_by(age[mature], values[mature], span)

        return delay_odds_ratio(by_age("n_correct"), by_age("n_wrong"))

    def _healthy(self, units: Units, refs: _References) -> np.ndarray:
        """Units clearly back to normal: worse by less than half of ``min_effect``. Only
        these count towards resolving an alert, so a unit whose early labels flatter it
        (approvals arrive before corrections) does not close a real incident."""
        seg = units.segment
        with np.errstate(divide="ignore", invalid="ignore"):
            value, reference = units.total / units.n, refs.total[seg] / refs.n[seg]
        if self.task == "classification":
            return np.asarray(reference - value < self.min_effect / 2)
        return np.asarray(value - reference < self.min_effect / 2 * reference)

    def _mature_days(self, c: CellArrays, overall: int) -> np.ndarray:
        """Per day offset: whether the whole day's label coverage reached the threshold."""
        whole = c.segment == overall
        length = int(c.day.max()) + 1 if c.day.size else 0
        labelled = np.bincount(c.day[whole], c.labelled[whole], minlength=length)
        predicted = np.bincount(c.day[whole], c.predictions[whole], minlength=length)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(labelled / predicted >= self.min_label_coverage)

    def _references(self, c: CellArrays, k: int, reference: pa.Table | None, names: pa.Array,
                    first_day: date) -> _References:
        base = c.day < self.baseline_days
        refs = _References(
            total=_sum_by(c.segment[base], c.total[base], k),
            squares=_sum_by(c.segment[base], c.squares[base], k),
            n=_sum_by(c.segment[base], c.n[base], k),
            tested_from=np.full(k, self.baseline_days),
            source=np.full(k, TRAILING),
        )
        if reference is None or not reference.num_rows:
            return refs
        given = CellArrays.from_table(reference, names, first_day, self.task)
        use = (given.n >= self.min_samples) & (given.segment >= 0)
        seg = given.segment[use]
        total, squares, n = given.total[use], given.squares[use], given.n[use]
        # Where the trailing days agree with the reference set, pool them: a small validation
        # cell alone has little power. Where they disagree (the segment drifted since
        # promotion), the reference set alone is the anchor, and every day is tested.
        both = refs.n[seg] >= self.min_samples
        worse_now, _ = self._test(refs.total[seg], refs.squares[seg], refs.n[seg],
                                  total, squares, n)
        better_now, _ = self._test(total, squares, n,
                                   refs.total[seg], refs.squares[seg], refs.n[seg])
        pool = both & (2 * np.minimum(worse_now, better_now) > AGREEMENT_LEVEL)
        refs.total[seg] = np.where(pool, refs.total[seg] + total, total)
        refs.squares[seg] = np.where(pool, refs.squares[seg] + squares, squares)
        refs.n[seg] = np.where(pool, refs.n[seg] + n, n)
        refs.tested_from[seg] = np.where(pool, self.baseline_days, 0)
        refs.source[seg] = np.where(pool, BOTH, REFERENCE_SET)
        return refs

    def _test(self, total: FloatArray, squares: FloatArray, n: FloatArray,
              ref_total: FloatArray, ref_squares: FloatArray, ref_n: FloatArray
              ) -> tuple[FloatArray, np.ndarray]:
        """One-sided p-values of "worse than the reference", and whether the effect matters."""
        with np.errstate(divide="ignore", invalid="ignore"):
            value, reference = total / n, ref_total / ref_n
        if self.task == "classification":
            p = proportion_drop_pvalues(total, n, ref_total, ref_n)
            return p, reference - value >= self.min_effect
        p = mean_increase_pvalues(total, squares, n, ref_total, ref_squares, ref_n)
        return p, value - reference >= self.min_effect * reference

    def _explained(self, failing: np.ndarray, segments: list[dict[str, str]],
                   explainers: list[dict[str, str]], units: Units, names: pa.Array,
                   c: CellArrays, refs: _References) -> list[int | None]:
        """For each failing segment, another failing one that explains it: without their
        overlap it would not be materially worse on its unit's days. An ancestor never
        explains a child."""
        code_of = {name: i for i, name in enumerate(names.to_pylist())}
        explained: list[int | None] = [None] * len(segments)
        for i, (u, segment) in enumerate(zip(failing, segments, strict=True)):
            for j, other in enumerate(explainers):
                if j == i or inside(segment, other) or not compatible(segment, other):
                    continue
                overlap = code_of.get(segment_key({**segment, **other}))
                if overlap is not None and not self._remainder_fails(
                        int(u), overlap, units, c, refs):
                    explained[i] = j
                    break
        return explained

    def _remainder_fails(self, u: int, overlap: int, units: Units, c: CellArrays,
                         refs: _References) -> bool:
        """Whether the segment, without its overlap with another, is still materially worse."""
        code = int(units.segment[u])
        days = (c.day >= units.first_day[u]) & (c.day <= units.last_day[u])
        total, squares, n = c.sums(np.nonzero(days & (c.segment == code))[0])
        inner = c.sums(np.nonzero(days & (c.segment == overlap))[0])
        total, squares, n = total - inner[0], squares - inner[1], n - inner[2]
        if n < max(self.min_samples // 4, 1):
            # Too little is left to tell (or the overlap is all of it): keep the broader alert.
            return True
        # Judged on its own, at the run's error rate without multiplicity correction: a
        # single question, asked of a smaller sample.
        p, material = self._test(np.array([total]), np.array([squares]), np.array([n]),
                                 refs.total[[code]], refs.squares[[code]], refs.n[[code]])
        return bool(material[0] and p[0] <= self.alpha)

    def _alert(self, window: RunWindow, segment: dict[str, str], units: Units, u: int,
               c: CellArrays, refs: _References, covers: list[str],
               aggregate: float | None) -> Alert:
        code = int(units.segment[u])
        n, total, squares = float(units.n[u]), float(units.total[u]), float(units.squares[u])
        value, reference = total / n, float(refs.total[code] / refs.n[code])
        labelled = int(units.labelled[u])
        start, end = window.date_of(units.first_day[u]), window.date_of(units.last_day[u])
        shown = self._with_interval(total, squares, n)
        ref_shown = self._with_interval(float(refs.total[code]), float(refs.squares[code]),
                                        float(refs.n[code]))
        trailing = f"trailing days {window.first_day}..{window.date_of(self.baseline_days - 1)}"
        source = {TRAILING: trailing, REFERENCE_SET: "reference set",
                  BOTH: f"reference set + {trailing}"}[int(refs.source[code])]
        days = f"{start}" if start == end else f"{start}..{end} ({int(units.days[u])} days pooled)"
        coverage = labelled / units.predictions[u] if units.predictions[u] else 0.0
        message = (f"{describe(segment)}: {self.metric} {shown} vs {ref_shown} ({source}), "
                   f"n={labelled} labelled ({coverage:.0%} of predictions), predictions of "
                   f"{days}")
        if aggregate is not None:
            message += f"; aggregate {self._format(aggregate)} on the same days"
        if len(covers) > SHOWN_EXPLAINED:
            message += (f". Also explains {len(covers)} failing segments, the largest: "
                        f"{'; '.join(covers[:SHOWN_EXPLAINED])} (all in the alert's details)")
        elif covers:
            message += f". Also explains: {'; '.join(covers)}"
        return Alert(date=window.as_of, kind="performance", segment=segment, metric=self.metric,
                     value=value, reference=reference, n=labelled, message=message,
                     window_start=start, window_end=end, aggregate=aggregate,
                     explains=tuple(covers))

    def _with_interval(self, total: float, squares: float, n: float) -> str:
        """The metric with its 95% interval: Wilson for accuracy, normal for the MAE."""
        if self.task == "classification":
            low, high = (float(x[0]) for x in wilson_interval([total], [n], SHOWN_CONFIDENCE))
        else:
            low, high = (float(x[0]) for x in mean_interval([total], [squares], [n],
                                                            SHOWN_CONFIDENCE))
        return f"{self._format(total / n)} [{self._format(low)}, {self._format(high)}]"

    @staticmethod
    def _aggregate(c: CellArrays, units: Units, u: int, overall: int) -> float | None:
        """The population's metric on the unit's days: "aggregate 94%, this segment 71%"."""
        rows = np.nonzero((c.segment == overall) & (c.day >= units.first_day[u])
                          & (c.day <= units.last_day[u]))[0]
        total, _, n = c.sums(rows)
        return total / n if n else None

    def _format(self, value: float) -> str:
        return f"{value:.1%}" if self.task == "classification" else f"{value:.4g}"


def _sum_by(codes: np.ndarray, values: FloatArray, k: int) -> FloatArray:
    return np.asarray(np.bincount(codes, values, minlength=k), dtype=np.float64)
