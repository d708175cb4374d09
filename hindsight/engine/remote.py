"""DuckDB reads an object store through the store's own pyarrow filesystem.

DuckDB's Python client accepts fsspec filesystems; fsspec wraps any pyarrow filesystem. Paths
handed to DuckDB carry a scheme of our own, so they never reach DuckDB's built-in S3 or HTTP
handling. DuckDB asks for a file's details many times while it plans one scan, and each
question would be a request: they are answered once per query (``forget`` between queries, as
a fixed-name file such as the reference set may be replaced between them).
"""

from __future__ import annotations

from typing import Any, ClassVar

from fsspec.implementations.arrow import ArrowFSWrapper


class StoreFileSystem(ArrowFSWrapper):  # type: ignore[misc]
    protocol: ClassVar[str] = "hindsight-store"
    prefix: ClassVar[str] = "hindsight-store://"

    def __init__(self, fs: Any, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self._details: dict[str, dict[str, Any]] = {}

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        return (text[len(cls.prefix):] if text.startswith(cls.prefix) else text).rstrip("/")

    def forget(self) -> None:
        self._details.clear()

    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        key = self._strip_protocol(path)
        if key not in self._details:
            self._details[key] = super().info(key, **kwargs)
        return self._details[key]

    def modified(self, path: Any) -> Any:
        return self.info(path)["mtime"]
