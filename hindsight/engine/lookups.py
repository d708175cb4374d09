"""The rows of small files, kept in memory for ingest's look-ups.

Between compactions a day can hold thousands of small files, one per request, and ingest looks
up every batch's ids in all of them: read from disk each time, 10,000 one-row files cost seconds
a request however few rows they hold. Files are immutable under their names (a compaction
writes new ones, and a listing stops showing the old), so the rows a look-up needs from a small
file are kept by its path once read, and the files a process writes itself are kept without a
read. A look-up then reads only the small files it has not seen. The memory is bounded: past
``budget`` bytes the least recently used files are let go (read again when next needed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import pyarrow as pa

from hindsight.store.partitions import PartitionFile

SMALL_FILE_BYTES = 1 << 20  # on disk: larger files are read by the query each time
BUDGET_BYTES = 64 << 20  # in memory, over all kept files


class SmallFileRows:
    """Rows of small files by path; ``split`` tells a look-up what it still has to read."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._rows: OrderedDict[str, pa.Table] = OrderedDict()
        self._bytes = 0
        self._budget = budget

    def keep(self, path: str, rows: pa.Table) -> None:
        if rows.nbytes > self._budget // 16:
            return  # a file this large in memory would push out many small ones
        if path in self._rows:
            self._bytes -= self._rows.pop(path).nbytes
        self._rows[path] = rows
        self._bytes += rows.nbytes
        while self._bytes > self._budget:
            _, dropped = self._rows.popitem(last=False)
            self._bytes -= dropped.nbytes

    def split(self, files: Sequence[PartitionFile]
              ) -> tuple[list[pa.Table], list[str], list[str]]:
        """(the kept rows of files already seen, small files not seen, the other files)."""
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
