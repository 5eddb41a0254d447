"""The parts of diskcache's private schema the response cache relies on are still there.

The store reads and writes diskcache's `Cache` table with its own SQL (one query per
batch instead of a call per item). An upgrade of diskcache that renamed a column,
changed how raw bytes or file values are marked, or renamed the database must fail
here, not silently turn every lookup into a miss.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import diskcache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW

from pipeline.cache.store import _CACHE_COLUMNS, FILE_MIN_BYTES, ResponseCache


def test_the_table_has_every_column_the_store_uses(tmp_path: Path) -> None:
    diskcache.Cache(str(tmp_path)).close()
    with sqlite3.connect(tmp_path / DBNAME) as database:
        columns = {row[1] for row in database.execute("PRAGMA table_info(Cache)")}
    assert set(_CACHE_COLUMNS) <= columns


def test_bytes_are_stored_raw_in_the_row_and_large_ones_as_files(tmp_path: Path) -> None:
    small, large = b"x" * 10, b"y" * FILE_MIN_BYTES
    with ResponseCache(str(tmp_path), None, None) as cache:
        assert cache.put("small", small) and cache.put("large", large)
    with sqlite3.connect(tmp_path / DBNAME) as database:
        rows = dict(database.execute("SELECT key, mode FROM Cache WHERE raw = 1"))
    assert rows == {"small": MODE_RAW, "large": MODE_BINARY}
    with ResponseCache(str(tmp_path), None, None) as cache:
        assert cache.get_many(["small", "large"]) == {"small": small, "large": large}
