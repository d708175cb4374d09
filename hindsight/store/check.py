"""``hindsight check``: is the store what hindsight promises it is?

Every visible file opens, the files of a table agree on their columns' types, ids are stored
once (predictions and the reference by id, labels by id and arrival), and every compaction
commit is consistent: its merged file exists, or a later commit merged it again. Each problem
names the file and the repair. Leftovers that the next compaction sweeps (temporary files, merged
files no commit names) are reported as notes, not problems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hindsight.config import Config
from hindsight.errors import StoreError
from hindsight.store import delta
from hindsight.store.compaction import debris
from hindsight.store.partitions import COMMIT_PREFIX, Store, Table, plain_schema
from hindsight.store.schema import ARRIVED_AT

PARTITIONED = (Table.PREDICTIONS, Table.LABELS, Table.METRICS, Table.ALERTS, Table.RUNS,
               Table.DRIFT, Table.CHECKS, Table.VALIDATIONS)
SHOWN_DUPLICATES = 5


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}. Fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class CheckReport:
    files: int = 0  # visible files checked
    rows: dict[str, int] = field(default_factory=dict)  # per table
    problems: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "files": self.files, "rows": self.rows,
                "problems": [{"path": f.path, "problem": f.problem, "fix": f.fix}
                             for f in self.problems], "notes": list(self.notes)}


def check_store(store: Store, config: Config,
                progress: Callable[[Table], None] | None = None) -> CheckReport:
    problems: list[Finding] = []
    notes: list[str] = []
    rows: dict[str, int] = {}
    files = 0
    for table in (*PARTITIONED, Table.REFERENCE):
        found, leftover = _commits(store, table)
        problems += found
        notes += leftover
        try:
            visible = [f.path for f in store.files(table)]
        except StoreError as exc:
            problems.append(Finding(store.table_dir(table), str(exc),
                                    "restore the table's _delta_log from a backup"
                                    if delta.is_delta(store, table) else
                                    "repair the commit marker named, then check again"))
            continue
        opened, found = _open_all(store, visible)
        problems += found
        files += len(visible)
        rows[table.value] = sum(m.num_rows for m in opened.values())
        problems += _schemas(opened)
        keys = _keys(table, config)
        if keys:
            problems += _duplicates(store, table, [p for p in visible if p in opened], keys)
        if progress is not None:
            progress(table)
    return CheckReport(files, rows, tuple(problems), tuple(notes))


def _open_all(store: Store,
              paths: list[str]) -> tuple[dict[str, pq.FileMetaData], list[Finding]]:
    opened: dict[str, pq.FileMetaData] = {}
    problems = []
    for path in paths:
        try:
            opened[path] = store.footer(path)
        except StoreError as exc:
            problems.append(Finding(path, f"cannot be read as Parquet ({exc.__cause__})",
                                    "restore the file from a backup, or move it out of the "
                                    "store (its rows are then lost) and log them again"))
    return opened, problems


def _schemas(opened: dict[str, pq.FileMetaData]) -> list[Finding]:
    """Every file against the types of all before it (not only the first's): a column typed
    one way in most files and another in a few is named in each odd file."""
    union: pa.Schema | None = None
    first: dict[str, str] = {}  # the first file that typed each column
    problems = []
    for path, meta in opened.items():
        schema = plain_schema(meta.schema.to_arrow_schema())  # delta-rs: string_view
        try:
            union = schema if union is None else pa.unify_schemas(
                [union, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            assert union is not None
            odd = next((f.name for f in schema if f.name in union.names
                        and not _unify(union.field(f.name), f)), None)
            against = first.get(odd or "", next(iter(opened)))
            problems.append(Finding(path, f"its column types disagree with {against} "
                                          f"({odd!r}: {exc})" if odd else f"its column types "
                                          f"disagree with the files before it ({exc})",
                                    "rewrite the odd file with the types of the others"))
            continue
        for name in schema.names:
            first.setdefault(name, path)
    return problems


def _unify(a: pa.Field, b: pa.Field) -> bool:
    try:
        pa.unify_schemas([pa.schema([a]), pa.schema([b.with_name(a.name)])],
                         promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return False
    return True


def _keys(table: Table, config: Config) -> list[str]:
    cols = config.columns
    if table in (Table.PREDICTIONS, Table.REFERENCE):
        return [cols.id]
    if table == Table.LABELS:
        return [cols.id, ARRIVED_AT]
    return []


def _duplicates(store: Store, table: Table, paths: list[str],
                keys: list[str]) -> list[Finding]:
    """Keys stored more than once across the visible files, each named with its files."""
    parts = []
    for index, path in enumerate(paths):
        read = store.read(path, keys)
        if read.num_rows and all(k in read.column_names for k in keys):
            parts.append(read.select(keys).append_column(
                "_file", pa.array([index] * read.num_rows, pa.int32())))
    if not parts:
        return []
    combined = pa.concat_tables(parts, promote_options="permissive")
    counted = combined.group_by(keys).aggregate([("_file", "count"), ("_file", "distinct")])
    repeated = counted.filter(pc.greater(counted["_file_count"], 1))
    if not repeated.num_rows:
        return []
    shown = repeated.slice(0, SHOWN_DUPLICATES).to_pylist()
    examples = "; ".join(
        f"{r[keys[0]]!r} in {', '.join(_short(paths[i]) for i in sorted(r['_file_distinct']))}"
        for r in shown)
    return [Finding(store.table_dir(table),
                    f"{repeated.num_rows} value(s) of {'+'.join(keys)} stored more than once "
                    f"(e.g. {examples})",
                    "keep one copy of each: where one file repeats another's rows, move it out "
                    "of the store. Ingest stores an id once while its re-sent rows fall within "
                    "storage.lookup_days of the first and one writer at a time holds the store "
                    "(several processes on one machine do; several machines on one bucket do "
                    "not); a file copied or restored into the store by hand does the same")]


def _exists(store: Store, path: str) -> bool:
    return bool(store.fs.get_file_info(path).type == pafs.FileType.File)


def _short(path: str) -> str:
    """``dt=2026-11-28/part-1.parquet``: enough to find a file in its table."""
    return "/".join(path.rsplit("/", 2)[-2:])


def _commits(store: Store, table: Table) -> tuple[list[Finding], list[str]]:
    """Every commit marker readable; every merged file present or merged again later. Also
    the leftovers of interrupted writes, as notes."""
    listing = store.listing(table)
    existing = {i.path for i in listing}
    commits: dict[str, tuple[str, list[str]]] = {}
    problems = []
    for info in listing:
        if not (info.base_name.startswith(COMMIT_PREFIX) and info.base_name.endswith(".json")):
            continue
        try:
            commits[info.path] = store.read_commit(info.path)
        except StoreError as exc:
            problems.append(Finding(info.path, str(exc).split(". ")[0],
                                    "restore the marker from a backup; if there is none, "
                                    "remove it and check again (its merged file then repeats "
                                    "the rows of the files it replaced: remove the merged one)"))
    merged_again = {p for _, replaced in commits.values() for p in replaced}
    for path, (merged, replaced) in commits.items():
        if merged in existing or merged in merged_again or _exists(store, merged):  # cold
            continue
        lost = [p for p in replaced if p not in existing]
        problems.append(
            Finding(path, f"names {_short(merged)}, which is missing", "remove this marker: "
                    "the files it replaced are all still there and become visible again")
            if not lost else
            Finding(path, f"names {_short(merged)}, which is missing, and {len(lost)} of the "
                          "files it replaced are gone: their rows are lost",
                    "restore the merged file from a backup, or log that day's rows again"))
    claims = Counter(p for _, replaced in commits.values() for p in set(replaced))
    problems += [Finding(path, f"is replaced by {n} compaction commits",
                         "remove the newer commit and its merged file")
                 for path, n in claims.items() if n > 1]
    leftover = debris(store, listing, commits)
    notes = [f"{table.value}: {len(leftover)} file(s) left by an interrupted write or "
             "compaction (invisible to readers; 'hindsight compact' removes them after their "
             "grace)"] if leftover else []
    return problems, notes
