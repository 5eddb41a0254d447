"""The diskcache Disk the response cache opens diskcache with: raw bytes only (never a
pickle), answers stored as files owner-only. Imported where diskcache is opened
(store.py), which a run answered wholly by the cache never does."""

from __future__ import annotations

import os
from typing import Any

import diskcache

from pipeline.cache.disk import MODE_BINARY, MODE_RAW, inside, private_directory, private_file

_WRITE_ATTEMPTS = 10  # as diskcache: another process may remove a directory in between


class UnsafeEntry(Exception):
    """A stored entry that is not plain bytes; reading it could run code."""


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache Disk that never pickles or unpickles, and writes owner-only files."""

    def get(self, key: Any, raw: bool) -> Any:
        # Keys we write are str, stored raw; a non-raw key would be a pickle.
        if not raw:
            raise UnsafeEntry("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"the response cache stores bytes, not {type(value).__name__}")
        return super().store(value, read, key)

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None) -> int:
        """As diskcache writes an answer's file (`store` calls it), but owner-only."""
        if mode != "xb":
            raise TypeError("the response cache writes bytes only")
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            private_directory(os.path.dirname(full_path))
            try:
                fd = private_file(full_path, os.O_WRONLY | os.O_EXCL)
            except FileNotFoundError:
                if attempt == _WRITE_ATTEMPTS:
                    raise
                continue
            with os.fdopen(fd, "wb") as writer:
                return sum(writer.write(chunk) for chunk in iterator)
        raise AssertionError("unreachable")

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        # Raw bytes in the row, or a file (values of 32 KB and more). Anything
        # else is text or a pickle, which we never wrote.
        if mode not in (MODE_RAW, MODE_BINARY) or read:
            raise UnsafeEntry(f"refusing a cache entry stored in mode {mode}")
        if mode == MODE_BINARY and not inside(filename):
            raise UnsafeEntry(f"refusing a cache file outside the cache: {filename!r}")
        return super().fetch(mode, filename, value, read)
