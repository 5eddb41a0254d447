"""The response cache's files: raw bytes only (never pickles), owner-only whatever the umask.

diskcache creates its files with the umask's mode (0644 under the usual 022) and
unpickles what it reads. Answers can be private, and a planted pickle would run
code, so the cache goes through `BytesOnlyDisk` (bytes_disk.py) and the helpers below: the
database is created 0600 before SQLite opens it (SQLite gives its WAL and
shared-memory files the database's mode), answers stored as files are created
0600 and their directories 0700. A cache directory that already exists keeps its
mode: it may be one the user chose to share, but nothing in it is readable by
anyone else.
"""

from __future__ import annotations

import contextlib
import os

# diskcache's own names and sizes, here so that a run the cache answers never imports it
# (~5 ms of its start; the store reads and writes diskcache's table itself).
# tests/unit/test_cache_schema.py holds them equal to diskcache's.
DBNAME = "cache.db"
MODE_RAW = 1  # the answer is the row's value
MODE_BINARY = 2  # the answer is the file the row names
SQLITE_CACHE_PAGES = 8192  # as diskcache sizes its connections' page cache
SQLITE_MMAP_BYTES = 2**26  # and their memory map

_SQLITE_COMPANIONS = ("-wal", "-shm")


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
