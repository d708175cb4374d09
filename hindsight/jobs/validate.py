"""The validation gate: a candidate's predictions on the validation set, compared with the
promoted model's on the same rows, overall and per segment, before it serves anyone."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.alerts.hierarchy import describe
from hindsight.config import Config
from hindsight.errors import InputError
from hindsight.jobs.drift import category_counts, segment_cells
from hindsight.stats.drift import CategoryDetector, tail_quantile
from hindsight.stats.intervals import z_value
from hindsight.stats.significance import holm, paired_drop_pvalue
from hindsight.store.identity import identity
from hindsight.store.partitions import Store, Table

# a table of (id, prediction), or a function from the reference rows to predictions
Candidate: TypeAlias = "pa.Table | Callable[[pa.Table], Any]"


@dataclass(frozen=True, slots=True)
class SegmentComparison:
    segment: dict[str, str]
    n: int
    promoted: float  # accuracy of the promoted model on these rows
    candidate: float
    low: float  # 95% interval of candidate - promoted (paired)
    high: float
    p: float  # one-sided: the candidate is worse
    worse: bool

    def as_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "n": self.n, "promoted": self.promoted,
                "candidate": self.candidate, "delta": self.candidate - self.promoted,
                "interval": [self.low, self.high], "p_worse": self.p, "worse": self.worse}


@dataclass(frozen=True, slots=True)
class Validation:
    version: str | None
    rows: int
    agreement: float  # share of rows where candidate and promoted predict the same
    class_shift: float  # total variation between their predicted class shares
    class_shift_noise: float  # its 99th bootstrap percentile at this size
    comparisons: tuple[SegmentComparison, ...]
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "passed": self.passed, "rows": self.rows,
                "agreement": self.agreement, "class_shift": self.class_shift,
                "class_shift_noise": self.class_shift_noise,
                "segments": [c.as_json() for c in self.comparisons],
                "failures": list(self.failures)}


VALIDATION_SCHEMA = pa.schema([
    ("validated_at", pa.timestamp("us", "UTC")), ("version", pa.string()),
    ("passed", pa.bool_()), ("rows", pa.int64()), ("agreement", pa.float64()),
    ("failures", pa.string()),
])


def record(store: Store, result: Validation, at: datetime) -> None:
    """Keep the verdict, so ``hindsight versions`` can show it beside the version."""
    store.write(Table.VALIDATIONS, pa.Table.from_pylist([{
        "validated_at": at, "version": result.version, "passed": result.passed,
        "rows": result.rows, "agreement": result.agreement,
        "failures": json.dumps(list(result.failures)),
    }], schema=VALIDATION_SCHEMA))


def latest_verdicts(store: Store) -> dict[str, tuple[bool, datetime]]:
    """Per validated version: whether its latest validation passed, and when."""
    files = store.files(Table.VALIDATIONS)
    rows = pa.concat_tables([store.read(f.path) for f in files]).to_pylist() if files else []
    verdicts: dict[str, tuple[bool, datetime]] = {}
    for row in sorted(rows, key=lambda r: r["validated_at"]):
        if row["version"] is not None:
            verdicts[row["version"]] = (row["passed"], row["validated_at"])
    return verdicts


def check_version(version: str | None) -> str | None:
    if version is not None and (not version.strip() or not version.isprintable()):
        raise InputError(f"--version {version!r}: use printable characters, e.g. 2026-11-29-a")
    return version


def candidate_predictions(candidate: Candidate, reference: pa.Table, config: Config,
                          source: str) -> pa.Array:
    """The candidate's prediction for every reference row, in the reference's order."""
    cols = config.columns
    if callable(candidate):
        values = pa.array(candidate(reference))
        if len(values) != reference.num_rows:
            raise InputError(f"{source}: returned {len(values)} predictions for "
                             f"{reference.num_rows} reference rows; return one per row")
        return _like_reference(values, reference, config)
    for column in (cols.id, cols.prediction):
        if column not in candidate.column_names:
            raise InputError(f"{source}: missing column {column!r}; a candidate file needs "
                             f"{cols.id!r} and {cols.prediction!r} for each validation row")
    ids = candidate[cols.id].cast(pa.string())
    if len(pc.unique(ids)) != len(ids):
        raise InputError(f"{source}: an id appears twice; give one prediction per id")
    position = pc.index_in(reference[cols.id].cast(pa.string()), value_set=ids)
    missing = pc.is_null(position)
    if pc.any(missing).as_py():
        lost = reference[cols.id].filter(missing)
        examples = ", ".join(str(v) for v in lost.slice(0, 3).to_pylist())
        raise InputError(f"{source}: {len(lost)} of {reference.num_rows} validation ids have "
                         f"no prediction (e.g. {examples}); predict every reference row")
    values = candidate[cols.prediction].take(position)
    return _like_reference(values, reference, config)


def _like_reference(values: pa.Array, reference: pa.Table, config: Config) -> pa.Array:
    """A candidate's predictions as the reference's are stored: classes as their identities
    (a candidate written by another tool spells ``True`` or ``1.0`` its own way)."""
    if config.task == "classification":
        values = identity(values)
    return values.cast(reference[config.columns.prediction].type)


def validate(reference: pa.Table, predicted: pa.Array, config: Config,
             version: str | None = None, min_agreement: float | None = None) -> Validation:
    if config.task != "classification":
        raise InputError("validate compares accuracy: it needs task: classification")
    cols = config.columns
    truth = reference[cols.label]
    before = pc.equal(reference[cols.prediction], truth).to_numpy(zero_copy_only=False)
    after = pc.equal(predicted, truth).to_numpy(zero_copy_only=False)
    cells = [(key, np.asarray(mask.to_numpy(zero_copy_only=False), bool))
             for key, mask in segment_cells(reference, config.segments)]
    cells = [(k, m) for k, m in cells if m.sum() >= config.min_samples or k == "{}"]
    lost = [int(np.sum(before[m] & ~after[m])) for _, m in cells]
    gained = [int(np.sum(~before[m] & after[m])) for _, m in cells]
    p = np.array([paired_drop_pvalue(a, b) for a, b in zip(lost, gained, strict=True)])
    rejected = holm(p, config.alerts.alpha)
    comparisons = []
    for (key, mask), worse_count, better_count, pval, rej in zip(
            cells, lost, gained, p, rejected, strict=True):
        n = int(mask.sum())
        delta = (better_count - worse_count) / n
        # paired difference of proportions: var = (b + c - (b - c)^2 / n) / n^2
        half = z_value(0.95) * np.sqrt(max(better_count + worse_count
                                           - (better_count - worse_count) ** 2 / n, 0)) / n
        comparisons.append(SegmentComparison(
            json.loads(key), n, float(before[mask].mean()), float(after[mask].mean()),
            delta - half, delta + half, float(pval),
            bool(rej) and -delta >= config.alerts.min_effect))
    agreement = float(pc.mean(pc.equal(predicted, reference[cols.prediction]).cast(
        pa.float64())).as_py())
    detector = CategoryDetector.fit(category_counts(reference[cols.prediction]))
    shift = detector.score(category_counts(predicted))
    noise = tail_quantile(detector.bootstrap(len(predicted), reference_size=len(predicted)),
                          config.drift.quantile)
    failures = [f"{describe(c.segment)}: accuracy {c.candidate:.1%} vs {c.promoted:.1%} "
                f"promoted ({c.candidate - c.promoted:+.1%} [{c.low:+.1%}, {c.high:+.1%}], "
                f"n={c.n})" for c in comparisons if c.worse]
    if min_agreement is not None and agreement < min_agreement:
        failures.append(f"agreement with the promoted model {agreement:.1%} < {min_agreement:.0%}")
    return Validation(version, reference.num_rows, agreement, shift, noise,
                      tuple(comparisons), tuple(failures))
