"""Logging predictions, labels and the reference set into the store.

Every batch is checked whole before anything is written: a bad file stores nothing. Writes are
idempotent by id: a prediction already stored is skipped, a label that changes nothing is
skipped, so re-sending a batch changes no count. The look-up of what is stored and the write
of what is new happen under the store's lock for that table, so idempotency holds across
threads and processes, not only within one call.

The look-up reads the partitions within ``storage.lookup_days`` of the batch's own days, so
its cost follows the batch, not the store's age. A re-sent row keeps its timestamp and lands in
its own day, so re-sending is always recognised; an id re-sent with a timestamp further than
that from its first would be stored again (``hindsight check`` reports such ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.config import Config
from hindsight.engine.base import LABEL_LEAD_DAYS, Engine
from hindsight.errors import InputError, StoreError
from hindsight.jobs.versions import unpinned
from hindsight.store import delta
from hindsight.store.admission import admit, refuse_expired
from hindsight.store.inputs import Batch
from hindsight.store.partitions import Store, Table, plain_schema
from hindsight.store.schema import ARRIVED_AT, normalize_labels, normalize_predictions

_ORIGIN = "_hindsight_origin"  # "batch#row" while checking; never stored


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What a log call did. ``orphans``: labels whose id has no stored prediction (yet)."""

    rows: int
    stored: int
    already_stored: int
    orphans: int = 0
    early: int = 0  # labels stamped before their prediction's day by more than the lead
    unpinned: tuple[str, ...] = ()  # versions that are not pinned, dated snapshots
    # labels none of whose values is among their predictions' classes: (labels, classes)
    disjoint: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    # with no label_timestamp: labels for predictions older than the label window when they
    # were logged, (how many, the oldest prediction day, label_window_days)
    unstamped: tuple[int, date, int] | None = None

    def summary(self, what: str) -> str:
        text = (f"{what}: {self.rows} rows read, {self.stored} stored, "
                f"{self.already_stored} already stored")
        if self.orphans:
            text += (f", {self.orphans} for ids with no prediction stored within "
                     "storage.lookup_days of their arrival (kept, counted as orphans)")
        if self.early:
            text += (f", {self.early} stamped more than {LABEL_LEAD_DAYS} day before their "
                     "prediction's day (kept, but no run joins them: check the clocks)")
        if self.disjoint:
            said, classes = (", ".join(repr(v) for v in side) for side in self.disjoint)
            text += (f". Warning: no label is among its predictions' classes: labels say "
                     f"{said}; predictions say {classes} (are both the same column, written "
                     "the same way? see \"A value's identity\" in docs/data.md)")
        if self.unstamped:
            count, oldest, days = self.unstamped
            text += (f". Note: columns.label_timestamp is not mapped, so a label counts as "
                     f"arriving when it is logged; {count} are for predictions made before the "
                     f"last {days} days (the oldest on {oldest}): no run or backfill as of an "
                     "earlier date sees them, and runs from now on join them only within "
                     "label_window_days. If they arrived earlier, map columns.label_timestamp "
                     "to the column that says when and log them again")
        if self.unpinned:
            text += (f". Unpinned: {', '.join(self.unpinned)} (an alias can move under you: "
                     "log a dated version, or list it in versions.pinned)")
        return text


def refuse_read_in_place(config: Config, kind: str) -> None:
    """Refuse to store rows of a table the config reads in place (``predictions:`` or
    ``labels:``): they would land in the store's own table, which nothing reads."""
    source = config.predictions if kind == "predictions" else config.labels
    if source is not None:
        raise InputError(
            f"model {config.model!r} reads its {kind} in place from the {source.describe()} "
            f"({kind}: in {config.source}): write them there, where the runs read them; "
            f"nothing was stored (logging into the store is for a model without {kind}: "
            "in its config)")


def log_predictions(batches: Sequence[Batch], config: Config, store: Store,
                    engine: Engine, today: date | None = None) -> IngestReport:
    """``today``: rows older than the retention keeps as of this day are refused."""
    refuse_read_in_place(config, "predictions")
    cols = config.columns
    for batch in batches:
        admit(batch, config, "predictions")
    normalized = [normalize_predictions(b, config) for b in batches]
    if today is not None:
        for batch, typed in zip(batches, normalized, strict=True):
            refuse_expired(typed, cols.timestamp, batch.source.name, config, "predictions",
                           today)
    table, origins = _combine(batches, normalized)
    table, origins = _unique_by(table, origins, [cols.id], cols.prediction, "prediction")
    with store.lock(Table.PREDICTIONS.value):
        table = _as_stored(table, origins, store, Table.PREDICTIONS)
        span = _lookup_span(pc.cast(table[cols.timestamp], pa.date32()), config)
        new = _fresh_predictions(table, origins, config, engine, span)
        stored = _store_new(store, engine, config, Table.PREDICTIONS, new,
                            pc.cast(new[cols.timestamp], pa.date32()), [cols.id])
    flagged = unpinned(config, {c: pc.unique(table[c]).drop_null().to_pylist()
                                for c in cols.versions()})
    return replace(_report(batches, stored), unpinned=tuple(flagged))


def _as_stored(table: pa.Table, origins: Origins, store: Store, kind: Table) -> pa.Table:
    """``table`` with each column the store already holds read as the type it holds it as
    (the newest file's), so that every file of a table agrees; a value that cannot be read
    so refuses the batch, naming its row, column and both types."""
    files = store.newest_files(kind)
    if not files:
        return table
    stored = plain_schema(store.footer(files[-1].path).schema.to_arrow_schema())
    for index, name in enumerate(table.column_names):
        held = stored.field(name).type if name in stored.names else None
        column = table[name]
        if held is None or column.type == held or pa.types.is_null(held) \
                or pa.types.is_null(column.type):
            continue
        try:
            table = table.set_column(index, name, column.cast(held))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            row, value = _first_unreadable(column, held)
            raise InputError(
                f"{origins[row]}: column {name!r} has {value!r}, which cannot be read as "
                f"{held}, the type the store holds it as (this batch's column is {column.type})"
                "; fix the value, or send it under another column name") from exc
    return table


def _first_unreadable(column: pa.ChunkedArray, target: pa.DataType) -> tuple[int, object]:
    # Only on the error path: find the culprit one value at a time.
    for row, value in enumerate(column.to_pylist()):
        try:
            pa.array([value], column.type).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return row, value
    return 0, None


def _lookup_span(days: pa.ChunkedArray, config: Config) -> tuple[date | None, date | None]:
    """The partitions ingest looks in for what a batch made on ``days`` may repeat."""
    reach = config.storage.lookup_days
    first, last = pc.min_max(days).values()
    if reach is None or not first.is_valid:
        return None, None
    return first.as_py() - timedelta(days=reach), last.as_py() + timedelta(days=reach)


def _fresh_predictions(table: pa.Table, origins: Origins, config: Config, engine: Engine,
                       span: tuple[date | None, date | None]) -> pa.Table:
    """The rows whose id is not stored yet; an id stored with another prediction is refused."""
    cols = config.columns
    stored = engine.stored_predictions(table[cols.id].combine_chunks(), *span)
    if not stored.num_rows:
        return table
    matched = _numbered(table, {"id": cols.id, "value": cols.prediction}).join(
        stored.select(["id", "prediction"]), "id", join_type="inner", use_threads=False)
    first = _first_disagreement(matched, "value", "prediction")
    if first is not None:
        raise InputError(
            f"{origins[first['_row']]}: id {first['id']!r} is already stored with prediction "
            f"{first['prediction']!r}, not {first['value']!r}; a prediction cannot change. "
            "Give the new one its own id")
    return _without(table, matched["_row"])


def _numbered(table: pa.Table, columns: dict[str, str]) -> pa.Table:
    """The given columns of ``table`` under new names, with each row's index as ``_row``."""
    return pa.table({**{name: table[column] for name, column in columns.items()},
                     "_row": pa.array(np.arange(table.num_rows, dtype=np.int64))})


def _first_disagreement(matched: pa.Table, new: str, stored: str) -> dict[str, Any] | None:
    """The earliest row (by ``_row``) of a join whose new value is not the stored one."""
    changed = matched.filter(pc.fill_null(pc.not_equal(_text(matched[new]),
                                                       _text(matched[stored])), True))
    if not changed.num_rows:
        return None
    earliest = changed.take(pc.sort_indices(changed["_row"])).slice(0, 1)
    first: dict[str, Any] = earliest.to_pylist()[0]
    return first


def _text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def _without(table: pa.Table, rows: pa.ChunkedArray) -> pa.Table:
    """``table`` minus the rows at the given indices, in its order."""
    keep = np.ones(table.num_rows, dtype=bool)
    keep[np.asarray(rows.to_numpy(), np.int64)] = False
    return table.filter(pa.array(keep))


def log_labels(batches: Sequence[Batch], config: Config, store: Store, engine: Engine,
               received_at: datetime) -> IngestReport:
    refuse_read_in_place(config, "labels")
    cols = config.columns
    for batch in batches:
        admit(batch, config, "labels")
    normalized = [normalize_labels(b, config, received_at) for b in batches]
    for batch, typed in zip(batches, normalized, strict=True):
        refuse_expired(typed, ARRIVED_AT, batch.source.name, config, "labels",
                       received_at.date())
    table, origins = _combine(batches, normalized)
    table, origins = _unique_by(table, origins, [cols.id, ARRIVED_AT], cols.label, "label")
    span = _lookup_span(pc.cast(table[ARRIVED_AT], pa.date32()), config)
    with store.lock(Table.LABELS.value):
        new = _fresh_labels(table, origins, config, engine, span)
        stored = _store_new(store, engine, config, Table.LABELS, new,
                            pc.cast(new[ARRIVED_AT], pa.date32()), [cols.id, ARRIVED_AT])
    # without an arrival column, a label arrives when it is logged: its prediction may be of
    # any age, so it is looked for in the whole store
    unstamped = cols.label_timestamp is None
    known = engine.stored_predictions(pc.unique(new[cols.id].combine_chunks()),
                                      *((None, None) if unstamped else span))
    orphans = new.num_rows - int(pc.sum(pc.is_in(new[cols.id], known["id"])).as_py() or 0)
    return replace(_report(batches, stored, orphans), early=_early(new, known, config),
                   disjoint=_disjoint(new, known, config),
                   unstamped=_before_window(new, known, config) if unstamped else None)


def _before_window(labels: pa.Table, predictions: pa.Table,
                   config: Config) -> tuple[int, date, int] | None:
    """The labels for predictions older than the label window of the day they arrived, and
    the oldest such prediction's day."""
    if not predictions.num_rows:
        return None
    joined = labels.select([config.columns.id, ARRIVED_AT]).join(
        predictions.select(["id", "at"]), config.columns.id, "id", use_threads=False)
    made = pc.cast(joined["at"], pa.date32())
    first = pc.subtract(pc.cast(pc.cast(joined[ARRIVED_AT], pa.date32()), pa.int32()),
                        config.label_window_days - 1)
    old = pc.less(pc.cast(made, pa.int32()), first)
    count = int(pc.sum(old).as_py() or 0)
    if not count:
        return None
    return count, pc.min(made.filter(old)).as_py(), config.label_window_days


def _disjoint(labels: pa.Table, predictions: pa.Table,
              config: Config) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The label values and the predicted classes of their ids (a few of each), when no
    label value is among those classes: two spellings of the classes, or another column."""
    if config.task != "classification" or not predictions.num_rows:
        return None
    matched = labels.filter(pc.is_in(labels[config.columns.id], predictions["id"]))
    said = pc.unique(matched[config.columns.label]).drop_null()
    classes = pc.unique(predictions["prediction"].cast(pa.string())).drop_null()
    if not len(said) or pc.any(pc.is_in(said, classes)).as_py():
        return None
    return (tuple(sorted(said.to_pylist())[:5]), tuple(sorted(classes.to_pylist())[:5]))


def _early(labels: pa.Table, predictions: pa.Table, config: Config) -> int:
    """Labels that arrived before ``LABEL_LEAD_DAYS`` ahead of their prediction's day: the
    runs read labels from that day on, so these are never joined."""
    if not predictions.num_rows:
        return 0
    joined = labels.select([config.columns.id, ARRIVED_AT]).join(
        predictions.select(["id", "at"]), config.columns.id, "id", use_threads=False)
    first = pc.subtract(pc.cast(pc.cast(joined["at"], pa.date32()), pa.int32()), LABEL_LEAD_DAYS)
    arrived = pc.cast(pc.cast(joined[ARRIVED_AT], pa.date32()), pa.int32())
    return int(pc.sum(pc.less(arrived, first)).as_py() or 0)


def _fresh_labels(table: pa.Table, origins: Origins, config: Config, engine: Engine,
                  span: tuple[date | None, date | None]) -> pa.Table:
    """The rows that change a label in force; the same id and instant with another label is
    refused (a correction needs a later timestamp)."""
    cols = config.columns
    stored = engine.stored_labels(table[cols.id].combine_chunks(), *span)
    if not stored.num_rows:
        return table
    stored = pa.table({"id": stored["id"], "label": stored["label"],
                       "arrived_at": stored["arrived_at"].cast(table[ARRIVED_AT].type)})
    rows = _numbered(table, {"id": cols.id, "new": cols.label, "at": ARRIVED_AT})
    same_instant = rows.join(stored, ["id", "at"], ["id", "arrived_at"], join_type="inner",
                             use_threads=False)
    first = _first_disagreement(same_instant, "new", "label")
    if first is not None:
        raise InputError(
            f"{origins[first['_row']]}: id {first['id']!r} already has label "
            f"{first['label']!r} at {first['at']}, not {first['new']!r}; a correction needs "
            "a later label timestamp")
    # the label in force per id: the latest arrival (ties: the greatest label)
    ordered = stored.sort_by([("id", "ascending"), ("arrived_at", "descending"),
                              ("label", "descending")])
    ids = ordered["id"].combine_chunks()
    first_of_id = np.ones(len(ids), dtype=bool)
    if len(ids) > 1:
        first_of_id[1:] = np.asarray(
            pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(
                zero_copy_only=False), bool)
    in_force = ordered.filter(pa.array(first_of_id)).rename_columns(
        ["id", "in_force", "since"])
    against = rows.join(in_force, "id", join_type="inner", use_threads=False)
    resent = against.filter(pc.and_(pc.equal(_text(against["new"]), _text(against["in_force"])),
                                    pc.greater(against["at"], against["since"])))
    # re-sent: the label in force already says this; nothing changes
    return _without(table, pa.chunked_array(
        [same_instant["_row"].combine_chunks(), resent["_row"].combine_chunks()],
        pa.int64()))


def log_reference(batches: Sequence[Batch], config: Config, store: Store) -> IngestReport:
    """Replace the reference set: the labelled validation predictions at promotion."""
    cols = config.columns
    for batch in batches:
        admit(batch, config, "reference")
    tables = [normalize_predictions(b, config, with_label=True) for b in batches]
    table, origins = _combine(batches, tables)
    table, _ = _unique_by(table, origins, [cols.id], cols.prediction, "prediction")
    store.write(Table.REFERENCE, table, name="data.parquet")
    return _report(batches, table.num_rows)


@dataclass(frozen=True, slots=True)
class Origins:
    """Where each row of a combined table came from ("file: row 7"), named only when an
    error needs it: a million rows need no million strings."""

    batches: tuple[Batch, ...]
    starts: np.ndarray  # the first combined row of each batch
    rows: np.ndarray | None = None  # after a take: the combined row of each row

    def __getitem__(self, index: int) -> str:
        row = int(index if self.rows is None else self.rows[index])
        which = int(np.searchsorted(self.starts, row, side="right")) - 1
        source = self.batches[which].source
        return f"{source.name}: {source.row(row - int(self.starts[which]))}"

    def take(self, indices: np.ndarray) -> Origins:
        return Origins(self.batches, self.starts,
                       indices if self.rows is None else self.rows[indices])


def _combine(batches: Sequence[Batch], tables: list[pa.Table]) -> tuple[pa.Table, Origins]:
    sizes = np.array([t.num_rows for t in tables], np.int64)
    origins = Origins(tuple(batches), np.cumsum(sizes) - sizes)
    try:
        combined = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        names = ", ".join(b.source.name for b in batches)
        raise InputError(f"{names}: the files disagree on column types ({exc}); "
                         "log them separately or make the types agree") from exc
    return combined, origins


def _unique_by(table: pa.Table, origins: Origins, keys: list[str], value: str,
               what: str) -> tuple[pa.Table, Origins]:
    """Drop exact repeats of ``keys``; refuse repeats that disagree on ``value``."""
    if pc.count_distinct(table[keys[0]]).as_py() == table.num_rows:
        return table, origins  # the first key alone is unique: nothing repeats (the usual case)
    indexed = table.append_column(_ORIGIN, pa.array(range(table.num_rows), pa.int64()))
    groups = indexed.group_by(keys, use_threads=False).aggregate(
        [(_ORIGIN, "min"), (_ORIGIN, "max"), (value, "count_distinct")]
    )
    conflicts = groups.filter(pc.greater(groups[f"{value}_count_distinct"], 1))
    if conflicts.num_rows:
        first = conflicts.slice(0, 1).to_pylist()[0]
        a, b = first[f"{_ORIGIN}_min"], first[f"{_ORIGIN}_max"]
        raise InputError(
            f"{origins[a]} and {origins[b]}: the same id {first[keys[0]]!r} has two different "
            f"{what}s ({table[value][a].as_py()!r}, {table[value][b].as_py()!r}); "
            "remove one of them"
        )
    keep = pc.sort_indices(groups[f"{_ORIGIN}_min"])
    first_rows = pc.take(groups[f"{_ORIGIN}_min"], keep)
    return table.take(first_rows), origins.take(
        np.asarray(first_rows.to_numpy(zero_copy_only=False), np.int64))


def _report(batches: Sequence[Batch], stored: int, orphans: int = 0) -> IngestReport:
    rows = sum(b.table.num_rows for b in batches)
    return IngestReport(rows=rows, stored=stored, already_stored=rows - stored, orphans=orphans)


def _store_new(store: Store, engine: Engine, config: Config, kind: Table, table: pa.Table,
               days: pa.ChunkedArray, keys: list[str]) -> int:
    """Store the rows the look-up found new; returns how many were stored. In a Delta table
    the look-up is made again, in the rows' own days, inside the commit (another writer may
    have stored some of them since), so what is stored may be fewer."""
    if delta.is_delta(store, kind):
        return delta.insert_absent(store, kind, table, days.combine_chunks(), keys)
    if config.storage.table_format == "delta" and table.num_rows:
        if store.partitions(kind):
            raise StoreError(
                f"{store.table_dir(kind)} holds Parquet files, not a Delta table, and "
                "storage.table_format says delta: run 'hindsight storage migrate' to make it "
                "one (nothing is lost), or set storage.table_format: parquet; nothing was "
                "stored")
        return delta.insert_absent(store, kind, table, days.combine_chunks(), keys)
    _write_by_day(store, engine, kind, table, days)
    return int(table.num_rows)


def _write_by_day(store: Store, engine: Engine, kind: Table, table: pa.Table,
                  days: pa.ChunkedArray) -> None:
    for day in pc.unique(days).to_pylist():
        rows = table.filter(pc.equal(days, day))
        engine.remember(kind, store.write(kind, rows, dt=day), rows)
