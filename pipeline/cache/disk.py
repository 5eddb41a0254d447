"""The response cache's files: raw bytes only (never pickles), owner-only whatever the umask.

diskcache creates its files with the umask's mode (0644 under the usual 022) and
unpickles what it reads. Answers can be private, and a planted pickle would run
code, so the cache goes through `BytesOnlyDisk` and the helpers below: the
database is created 0600 before SQLite opens it (SQLite gives its WAL and
shared-memory files the database's mode), answers stored as files are created
0600 and their directories 0700. A cache directory that already exists keeps its
mode: it may be one the user chose to share, but nothing in it is readable by
anyone else.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import diskcache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW

_SQLITE_COMPANIONS = ("-wal", "-shm")
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


def inside(filename: str | None) -> bool:
    """A planted row could name ../../secret; only relative paths below the directory."""
    if not filename or os.path.isabs(filename):
        return False
    return not os.path.normpath(filename).startswith(os.pardir)


def private_directory(path: str) -> None:
    """Create `path`, and its missing parents, 0700 whatever the umask; a directory
    already there is left as it is."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        private_directory(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # made by another process meanwhile (or a file: opening will say)
    os.chmod(path, 0o700)  # mkdir's mode was cut by the umask


def private_file(path: str, flags: int) -> int:
    """Open `path` (created if missing, never through a symlink), made 0600."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with contextlib.suppress(OSError):  # not ours to change: opening it will say if unusable
        os.fchmod(fd, 0o600)
    return fd


def private_database(directory: str) -> bool:
    """Create the database owner-only before SQLite does, and tighten one an older
    sluice left (with its WAL and shared-memory files). True when it is new (empty)."""
    path = os.path.join(directory, DBNAME)
    fd = private_file(path, os.O_RDWR)
    try:
        new = os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
    for suffix in _SQLITE_COMPANIONS:
        _tighten(path + suffix)
    return new


def _tighten(path: str) -> None:
    """Make a file that may be there 0600 (never through a symlink; a FIFO does not block)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
