"""The rows of small files, kept in memory for ingest's look-ups.

Between compactions a day can hold thousands of small files, one per request, and ingest looks
up every batch's ids in all of them: read from disk each time, 10,000 one-row files cost seconds
a request however few rows they hold. Files are immutable under their names (a compaction
writes new ones, and a listing stops showing the old), so the rows a look-up needs from a small
file are kept by its path once read, and the files a process writes itself are kept without a
read. A look-up then reads only the small files it has not seen.

The memory is bounded: past ``budget`` bytes the least recently used files are let go (read
again when next needed). A kept file costs its buffers and, beside them, the objects that hold
them (``ENTRY_BYTES``): for a one-row file the objects are a hundred times the rows, so a budget
that counted only the buffers was never reached and the kept files grew with every request. A
kept file that a listing of its partition no longer shows has been merged away by a compaction
and is never read again: it is let go at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import pyarrow as pa

from hindsight.store.partitions import PartitionFile

SMALL_FILE_BYTES = 1 << 20  # on disk: larger files are read by the query each time
BUDGET_BYTES = 64 << 20  # in memory, over all kept files
# what a kept table costs beside its buffers (its Python and Arrow objects): measured at about
# 4.6 KiB of resident memory for a one-row table of three columns
ENTRY_BYTES = 4 << 10


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


class SmallFileRows:
    """Rows of small files by path; ``split`` tells a look-up what it still has to read."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._rows: OrderedDict[str, pa.Table] = OrderedDict()
        self._folders: dict[str, set[str]] = {}  # the kept paths by partition folder
        self._bytes = 0
        self._budget = budget

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def bytes(self) -> int:
        """What the kept files cost, as counted against the budget."""
        return self._bytes

    def keep(self, path: str, rows: pa.Table) -> None:
        if _cost(rows) > self._budget // 16:
            return  # a file this large in memory would push out many small ones
        self._drop(path)
        self._rows[path] = rows
        self._folders.setdefault(_folder(path), set()).add(path)
        self._bytes += _cost(rows)
        while self._bytes > self._budget:
            self._drop(next(iter(self._rows)))

    def split(self, files: Sequence[PartitionFile]
              ) -> tuple[list[pa.Table], list[str], list[str]]:
        """(the kept rows of files already seen, small files not seen, the other files).
        Kept files of the listed partitions that ``files`` no longer holds are let go."""
        self._forget_merged(files)
        kept: list[pa.Table] = []
        unseen: list[str] = []
        others: list[str] = []
        for f in files:
            rows = self._rows.get(f.path)
            if rows is not None:
                self._rows.move_to_end(f.path)
                kept.append(rows)
            elif not f.cold and f.size is not None and f.size <= SMALL_FILE_BYTES:
                unseen.append(f.path)
            else:
                others.append(f.path)
        return kept, unseen, others

    def _forget_merged(self, files: Sequence[PartitionFile]) -> None:
        listed = {f.path for f in files}
        for folder in {_folder(path) for path in listed}:
            for path in self._folders.get(folder, set()) - listed:
                self._drop(path)

    def _drop(self, path: str) -> None:
        rows = self._rows.pop(path, None)
        if rows is None:
            return
        self._bytes -= _cost(rows)
        folder = self._folders[_folder(path)]
        folder.discard(path)
        if not folder:
            del self._folders[_folder(path)]


def _cost(rows: pa.Table) -> int:
    return int(rows.nbytes) + ENTRY_BYTES
