"""What a delivery has sent, made durable one send at a time, and who may send.

The outbox is one Parquet file rewritten whole, too costly to rewrite after every send when
many alerts wait. So a delivery records each outcome here before it starts the next send, and
folds the records into the outbox file under the outbox lock at its start and end (a killed
delivery's records are folded by the next one). On a local disk the journal is one file,
``outbox/delivered.jsonl``, appended and fsynced per send; in a bucket, which cannot append,
each record is its own small object under ``outbox/delivered/``, durable once its upload
returns. Neither is a Parquet file, so no listing of the outbox table sees them.

One delivery sends at a time (``DeliveryLock``, a store lock beside the outbox's): two would
send the same pending alert twice. It is held while sending, the outbox lock only while
reading or folding, so a sink that is slow never holds a run's queueing.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import pyarrow.fs as pafs

from hindsight.errors import StoreError
from hindsight.store.partitions import LOCK_DIR, Store, Table, fsync_path

JOURNAL_FILE = "delivered.jsonl"
JOURNAL_DIR = "delivered"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One send: the outbox id, the attempts it took, and either when it was taken or why
    not."""

    id: str
    attempts: int
    delivered_at: datetime | None
    error: str | None

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "attempts": self.attempts, "error": self.error,
                "delivered_at": None if self.delivered_at is None
                else self.delivered_at.isoformat()}

    @classmethod
    def from_json(cls, body: dict[str, object]) -> Outcome:
        at = body.get("delivered_at")
        return cls(str(body["id"]), int(str(body["attempts"])),
                   None if at is None else datetime.fromisoformat(str(at)),
                   None if body.get("error") is None else str(body["error"]))


@dataclass(frozen=True, slots=True)
class Journal:
    store: Store

    @property
    def _file(self) -> str:
        return f"{self.store.table_dir(Table.OUTBOX)}/{JOURNAL_FILE}"

    @property
    def _dir(self) -> str:
        return f"{self.store.table_dir(Table.OUTBOX)}/{JOURNAL_DIR}"

    def record(self, outcome: Outcome) -> None:
        """Make one outcome durable before returning."""
        line = json.dumps(outcome.as_json()) + "\n"
        try:
            if self.store.is_local:
                append_durably(Path(self._file), line)
            else:
                name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"  # in order
                with self.store.fs.open_output_stream(f"{self._dir}/{name}") as stream:
                    stream.write(line.encode())
        except OSError as exc:
            raise StoreError(f"cannot record the delivery of {outcome.id!r} in "
                             f"{self.store.table_dir(Table.OUTBOX)}: {exc}") from exc

    def read(self) -> tuple[list[Outcome], list[str]]:
        """Every outcome recorded and not yet folded, oldest first, and the files they are in.
        A record cut short by a kill is no record: its send is the one that may repeat."""
        if self.store.is_local:
            paths = [self._file] if Path(self._file).exists() else []
        else:
            listed = self.store.fs.get_file_info(
                pafs.FileSelector(self._dir, allow_not_found=True))
            paths = sorted(i.path for i in listed if i.type == pafs.FileType.File)
        outcomes = []
        for path in paths:
            with self.store.fs.open_input_stream(path) as stream:
                text = stream.read().decode()
            for line in text.splitlines(keepends=True):
                if line.endswith("\n"):
                    outcomes.append(Outcome.from_json(json.loads(line)))
        return outcomes, paths

    def remove(self, paths: list[str]) -> None:
        """Drop files already folded into the outbox."""
        for path in paths:
            self.store.fs.delete_file(path)


def append_durably(path: Path, line: str) -> None:
    """Append a line and fsync it (and the directory, when this creates the file)."""
    created = not path.exists()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_path(path.parent)


class DeliveryLock:
    """The store's ``delivery`` lock (an ``flock`` beside the store's other locks), taken
    waiting or not, and released early if need be. In a bucket there is none, as with
    ``Store.lock``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._handle: IO[str] | None = None

    def acquire(self, wait: bool) -> bool:
        if not self._store.is_local:
            return True
        directory = Path(self._store.root) / LOCK_DIR
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / "delivery.lock", "a")  # noqa: SIM115 (released by release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
