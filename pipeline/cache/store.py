"""A memo of answers on disk, keyed by exactly what was sent (keys.py).

The store is diskcache (SQLite in WAL mode plus files for large values). Three
rules shape this module:

* The cache is a memo, never a source of truth: any error while reading is a
  miss, any error while writing is a skipped write. A run never fails, and never
  returns a wrong answer, because of the cache.
* Answers can be private: every file the cache creates (the database, its WAL
  and shared-memory files, answers stored as files) is owner-only (0600), and
  every directory it creates 0700, whatever the umask or the mode of a cache
  directory that already existed (disk.py).
* Nothing read from the cache directory is ever unpickled. diskcache pickles
  every value that is not bytes/str/number and unpickles on read, so a planted
  entry could run code; `BytesOnlyDisk` stores and returns raw bytes only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from pipeline.cache.disk import (
    DBNAME,
    MODE_BINARY,
    MODE_RAW,
    SQLITE_CACHE_PAGES,
    SQLITE_MMAP_BYTES,
    inside,
    private_database,
    private_directory,
)

if TYPE_CHECKING:
    import diskcache


_KEYS_PER_QUERY = 500  # well under SQLite's limit on bound parameters
FILE_MIN_BYTES = 2**15  # answers from 32 KB up are stored as files
DEFAULT_SIZE_LIMIT = 5 * 1000**3  # of a new cache; a cache keeps the limit it was last given
CULL_EVERY = 4096  # answers stored between checks of the size limit
WRITE_WAIT = 5.0  # seconds to wait for another process writing the same cache
# diskcache's own table, written and read with our SQL (see put_many and get_many for why:
# Cache.set and Cache.get per item cost more than the rest of a cached run). These are
# private to diskcache, so pyproject.toml pins diskcache to 5.x, and
# tests/unit/test_cache_schema.py fails if an upgrade changes the columns used here.
_CACHE_COLUMNS = (
    "store_time", "expire_time", "access_time", "access_count", "tag", "size",
    "mode", "filename", "value", "key", "raw",
)  # fmt: skip
# One statement a row, new or replaced (diskcache's unique index is on key and raw): a
# row whose key holds a file is left as it is, and changes nothing (rowcount 0).
_UPSERT_ROW = (
    f"INSERT INTO Cache ({', '.join(_CACHE_COLUMNS)}) VALUES (?, ?, ?, 0, ?, 0, ?, NULL, ?, ?, 1)"
    " ON CONFLICT (key, raw) DO UPDATE SET store_time = excluded.store_time,"
    " expire_time = excluded.expire_time, access_time = excluded.access_time,"
    " access_count = 0, tag = excluded.tag, size = 0, mode = excluded.mode,"
    " value = excluded.value WHERE filename IS NULL"
)


# Another connection holds a lock (SQLITE_BUSY and SQLITE_LOCKED, and their extended codes).
_BUSY_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_BUSY_RECOVERY,
        sqlite3.SQLITE_BUSY_SNAPSHOT,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_LOCKED_SHAREDCACHE,
    }
)


def _store_errors() -> tuple[type[BaseException], ...]:
    """What the store raises when the disk or another process is in the way (diskcache's
    Timeout among them: imported only when one is caught, by then imported)."""
    import diskcache

    return (sqlite3.Error, OSError, diskcache.Timeout)


class _WouldWait(Exception):
    """put_now met an answer it cannot write without diskcache (and its waits)."""


class CacheUnavailable(Exception):
    """The cache directory or its database cannot be opened; run without a cache."""


class CacheStats(NamedTuple):
    directory: str
    entries: int
    size_bytes: int
    size_limit: int


class ResponseCache:
    """Answer bytes by `cache_key`, younger than `ttl` seconds when a ttl is given."""

    def __init__(
        self,
        directory: str,
        size_limit: int | None,
        ttl: float | None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """`size_limit=None` keeps the limit the cache was last given (a new one gets 5 GB)."""
        self.directory = directory
        self._ttl = ttl
        self._now = now
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None  # may wait for a lock (put_many)
        self._writer_now: sqlite3.Connection | None = None  # never waits (put_now)
        self._since_cull = 0
        self._diskcache_open: diskcache.Cache | None = None  # opened when first needed
        # Settings passed here are written into the database and win over
        # whatever a previous (or planted) database holds.
        settings: dict[str, Any] = {
            "eviction_policy": "least-recently-stored",
            "disk_min_file_size": FILE_MIN_BYTES,
        }
        try:
            # Answers can be private: only the owner may read them.
            private_directory(directory)
            new = private_database(directory)
            if new and size_limit is None:
                size_limit = DEFAULT_SIZE_LIMIT
            if size_limit is not None:
                settings["size_limit"] = size_limit
            self._settings = settings
            if new or not self._holds_settings():
                self._diskcache()
        except _store_errors() as error:
            message = f"cannot open the response cache in {directory}: {error}"
            raise CacheUnavailable(message) from error

    def _holds_settings(self) -> bool:
        """Whether the database is one diskcache made, in WAL mode, holding our settings.
        Opening diskcache would then change nothing: it writes every setting again (a
        write transaction at every start), after ~5 ms of importing it. So it is opened
        only when an answer needs it (one stored as a file, a cull), and a run the
        cache answers wholly reads the table it made without it."""
        try:
            reader = self._reading()
            ((journal,),) = reader.execute("PRAGMA journal_mode").fetchall()
            names, marks = list(self._settings), ",".join("?" * len(self._settings))
            query = f"SELECT key, value FROM Settings WHERE key IN ({marks})"
            held = dict(reader.execute(query, names).fetchall())
        except (sqlite3.Error, ValueError):
            return False  # diskcache will say what is wrong with it
        return journal == "wal" and held == self._settings

    @property
    def opened_diskcache(self) -> bool:
        return self._diskcache_open is not None

    def _diskcache(self) -> diskcache.Cache:
        """diskcache on the directory, opened (with our settings) on first use."""
        if self._diskcache_open is None:
            import diskcache

            from pipeline.cache.bytes_disk import BytesOnlyDisk

            self._diskcache_open = diskcache.Cache(
                self.directory, disk=BytesOnlyDisk, **self._settings
            )
        return self._diskcache_open

    def get(self, key: str) -> bytes | None:
        """The stored answer, or None. Never raises: a damaged entry is a miss."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored answers among `keys`; one query for a whole batch.

        Reads diskcache's table directly: a lookup per item through `Cache.get`
        cost more than everything else on a cached run put together. Only rows
        our Disk could have written are used (raw str keys, bytes in the row or
        in a file inside the cache); anything else is a miss, never unpickled.
        """
        found: dict[str, bytes] = {}
        ttl = self._ttl
        try:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                rows = (
                    self._reading()
                    .execute(
                        "SELECT key, mode, filename, value, tag FROM Cache WHERE raw = 1 AND "
                        f"key IN ({marks}) AND (expire_time IS NULL OR expire_time > ?)",
                        (*chunk, time.time()),  # diskcache itself expires by the real clock
                    )
                    .fetchall()
                )
                for key, mode, filename, value, stored_at in rows:
                    # An answer in its row, as nearly all are, is taken without a call.
                    if mode == MODE_RAW and type(value) is bytes:
                        payload: bytes | None = value
                    else:
                        payload = self._file_payload(mode, filename)
                    if payload is not None and (ttl is None or self._young_enough(stored_at)):
                        found[key] = payload
        except sqlite3.ProgrammingError:
            raise  # our own misuse, not a damaged cache
        except sqlite3.Error:
            return {}  # a damaged or locked database: every lookup is a miss
        return found

    def _reading(self) -> sqlite3.Connection:
        """Our own connection for lookups, opened on first use (and again after close)."""
        if self._reader is None:
            # Lookups run where batches are read (read/reader_thread.py), one thread at a time.
            database = os.path.join(self.directory, DBNAME)
            reader = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            # As diskcache sizes its own connections: pages read through a memory map and
            # kept in a larger cache, not a system call each (a fifth off every look-up).
            reader.execute(f"PRAGMA cache_size = {SQLITE_CACHE_PAGES}")
            reader.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
            self._reader = reader
        return self._reader

    def _file_payload(self, mode: Any, filename: Any) -> bytes | None:
        """An answer stored as a file inside the cache; None for any row our Disk could
        not have written."""
        if mode != MODE_BINARY or not isinstance(filename, str) or not inside(filename):
            return None
        try:
            with open(os.path.join(self.directory, filename), "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def _young_enough(self, stored_at: Any) -> bool:
        # The age is checked when reading, so --cache-ttl means "answers
        # younger than this" even for entries written without a ttl.
        if self._ttl is None:
            return True
        if not isinstance(stored_at, int | float):
            return False
        return self._now() - stored_at <= self._ttl

    def put(self, key: str, payload: bytes) -> bool:
        """Store an answer; False when the disk refused (full, read-only, locked)."""
        return self.put_many([(key, payload)]) == 1

    def put_many(self, answers: list[tuple[str, bytes]]) -> int:
        """Store answers in one transaction; how many were stored (0 when the disk refused).

        Rows are written with SQL of our own into diskcache's table, as diskcache
        itself would write them: `Cache.set` costs ~170 us an answer (a transaction
        and a cull check each), a third of the event loop's time at latency 0. Its
        triggers keep the entry count and size; the size limit is enforced by
        `cull` every CULL_EVERY answers and on close. Answers too large for a row,
        and rows that hold a file, go through `Cache.set` as usual.
        """
        if any(type(payload) is not bytes for _, payload in answers):
            raise TypeError("the response cache stores bytes only")
        through_diskcache = [entry for entry in answers if len(entry[1]) >= FILE_MIN_BYTES]
        rows = [entry for entry in answers if len(entry[1]) < FILE_MIN_BYTES]
        try:
            through_diskcache += self._insert(rows)
            for key, payload in through_diskcache:
                self._diskcache().set(key, payload, expire=self._ttl, tag=int(self._now()))
        except _store_errors():
            return 0
        self._since_cull += len(answers)
        if self._since_cull >= CULL_EVERY:
            self._cull()
        return len(answers)

    def put_now(self, answers: list[tuple[str, bytes]]) -> int | None:
        """`put_many` if it needs no wait: None when it would (another process holds the
        write lock, an answer needs a file, the size limit is due for a check); then
        nothing was written, and `put_many` in a thread that may wait is the way.

        This is the common case, cheap enough for the event loop: one short
        transaction on a connection that never waits for a lock and never
        checkpoints the WAL (an fsync); `put_many`'s connection does that.
        """
        if self._since_cull >= CULL_EVERY:
            return None
        if any(
            type(payload) is not bytes or len(payload) >= FILE_MIN_BYTES for _, payload in answers
        ):
            return None
        try:
            self._insert(answers, self._writing_now(), all_or_nothing=True)
        except _WouldWait:
            return None
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode in _BUSY_CODES:
                return None
            return 0
        except (sqlite3.Error, OSError):
            return 0
        self._since_cull += len(answers)  # may race with put_many's: only delays a cull
        return len(answers)

    def _insert(
        self,
        rows: list[tuple[str, bytes]],
        database: sqlite3.Connection | None = None,
        all_or_nothing: bool = False,
    ) -> list[tuple[str, bytes]]:
        """Write rows in one transaction; those whose key holds a file are returned
        (with `all_or_nothing`, _WouldWait is raised instead and nothing is written)."""
        if not rows:
            return []
        database = database or self._writing()
        now, tag = time.time(), int(self._now())  # diskcache's own times are the real clock's
        expire = None if self._ttl is None else now + self._ttl
        holding_files = []
        database.execute("BEGIN IMMEDIATE")
        try:
            for key, payload in rows:
                values = (now, expire, now, tag, MODE_RAW, payload, key)
                if database.execute(_UPSERT_ROW, values).rowcount == 0:
                    if all_or_nothing:
                        raise _WouldWait
                    holding_files.append((key, payload))
            database.execute("COMMIT")
        except BaseException:
            database.execute("ROLLBACK")
            raise
        return holding_files

    def _writing_now(self) -> sqlite3.Connection:
        if self._writer_now is None:
            database = os.path.join(self.directory, DBNAME)
            self._writer_now = sqlite3.connect(database, isolation_level=None, timeout=0)
            self._writer_now.execute("PRAGMA synchronous = NORMAL")
            self._writer_now.execute("PRAGMA wal_autocheckpoint = 0")
        return self._writer_now

    def _writing(self) -> sqlite3.Connection:
        if self._writer is None:
            database = os.path.join(self.directory, DBNAME)
            # Writes run in the cache's own thread (writer.py); close() runs on the loop's,
            # after that thread has ended.
            self._writer = sqlite3.connect(
                database, isolation_level=None, timeout=WRITE_WAIT, check_same_thread=False
            )
            # As diskcache sets its own: in WAL mode a commit then survives a killed
            # process without waiting for the disk (only a power cut can lose it).
            self._writer.execute("PRAGMA synchronous = NORMAL")
        return self._writer

    def _cull(self) -> None:
        self._since_cull = 0
        with contextlib.suppress(*_store_errors()):
            self._diskcache().cull()

    def stats(self) -> CacheStats:
        cache = self._diskcache()
        return CacheStats(
            directory=self.directory,
            entries=len(cache),
            size_bytes=cache.volume(),
            size_limit=cache.size_limit,
        )

    def clear(self) -> int:
        """Remove every entry; the number removed."""
        removed: int = self._diskcache().clear()
        return removed

    def prune(self) -> int:
        """Remove expired entries, then the oldest until under the size limit."""
        cache = self._diskcache()
        expired: int = cache.expire()
        culled: int = cache.cull()
        return expired + culled

    def close(self) -> None:
        if self._since_cull:
            self._cull()
        for connection in (self._reader, self._writer, self._writer_now):
            if connection is not None:
                connection.close()
        self._reader = self._writer = self._writer_now = None
        if self._diskcache_open is not None:
            self._diskcache_open.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
