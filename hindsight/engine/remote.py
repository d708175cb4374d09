"""DuckDB reads an object store through the store's own pyarrow filesystem.

DuckDB's Python client accepts fsspec filesystems; fsspec wraps any pyarrow filesystem. Paths
handed to DuckDB carry a scheme of our own, so they never reach DuckDB's built-in S3 or HTTP
handling. DuckDB asks for a file's details many times while it plans one scan, and each
question would be a request: they are answered once per query (``forget`` between queries, as
a fixed-name file such as the reference set may be replaced between them).
"""

from __future__ import annotations

import io
import threading
from typing import Any, ClassVar

from fsspec.implementations.arrow import ArrowFSWrapper


class StoreFileSystem(ArrowFSWrapper):  # type: ignore[misc]
    protocol: ClassVar[str] = "hindsight-store"
    prefix: ClassVar[str] = "hindsight-store://"

    def __init__(self, fs: Any, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self._details: dict[str, dict[str, Any]] = {}
        self.bytes_read: dict[str, int] = {}  # by path: what queries read, for measurements

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        return (text[len(cls.prefix):] if text.startswith(cls.prefix) else text).rstrip("/")

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            return super()._open(path, mode, **kwargs)
        return PositionalFile(self.fs.open_input_file(path), path, self.bytes_read)

    def forget(self) -> None:
        self._details.clear()

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        key = self._strip_protocol(path)
        if key not in self._details:
            self._details[key] = super().info(key, **kwargs)
        return self._details[key]

    def modified(self, path: Any) -> Any:
        return self.info(path)["mtime"]


def store_filesystem(protocol: str) -> type[StoreFileSystem]:
    """A filesystem class like ``StoreFileSystem`` under its own scheme, for a second
    filesystem registered with the same DuckDB connection (a table read in place)."""
    return type(f"FileSystem_{protocol.replace('-', '_')}", (StoreFileSystem,),
                {"protocol": protocol, "prefix": f"{protocol}://"})


class PositionalFile(io.RawIOBase):
    """A stored file that several threads read at once. DuckDB shares one handle between its
    threads and reads at a place as ``seek`` then ``read``; Arrow's read lets go of the GIL,
    so another thread's ``seek`` could move a shared position in between and the read would
    return other bytes (a Parquet footer read as garbage: "don't know what type"). Here each
    thread keeps its own position, and every read is Arrow's ``read_at``, which is safe from
    any thread."""

    def __init__(self, stream: Any, path: str = "", tally: dict[str, int] | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._path, self._tally = path, tally
        self._size = int(stream.size())
        self._local = threading.local()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(getattr(self._local, "position", 0))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}[whence]
        position = base + offset
        self._local.position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        position = self.tell()
        wanted = self._size - position if size is None or size < 0 else size
        data = bytes(self._stream.read_at(max(min(wanted, self._size - position), 0), position))
        self._local.position = position + len(data)
        if self._tally is not None:  # a lost update between threads only skews a measurement
            self._tally[self._path] = self._tally.get(self._path, 0) + len(data)
        return data

    def close(self) -> None:
        self._stream.close()
        super().close()
