"""The filesystem DuckDB reads a bucket through: one handle, several threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.fs as pafs

from hindsight.engine.remote import StoreFileSystem


def test_threads_sharing_a_handle_each_read_at_their_own_position(tmp_path: Path) -> None:
    """DuckDB's threads share a handle and read as seek, then read. One thread seeks, another
    seeks elsewhere before the first reads: each still gets the bytes at its own position
    (a shared position handed the first thread the second's bytes)."""
    data = bytes(range(256)) * 4
    (tmp_path / "f.bin").write_bytes(data)
    fs = StoreFileSystem(pafs.LocalFileSystem())
    handle = fs.open(f"{StoreFileSystem.prefix}{tmp_path}/f.bin")
    first_sought, second_sought = threading.Event(), threading.Event()
    got: dict[str, bytes] = {}

    def first() -> None:
        handle.seek(10)
        first_sought.set()
        second_sought.wait()
        got["first"] = handle.read(5)

    def second() -> None:
        first_sought.wait()
        handle.seek(700)
        second_sought.set()
        got["second"] = handle.read(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == {"first": data[10:15], "second": data[700:705]}
    handle.seek(-3, 2)
    assert (handle.read(), handle.read(), handle.tell()) == (data[-3:], b"", len(data))
    handle.close()
