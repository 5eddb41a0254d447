"""The parts of diskcache's private schema the response cache relies on are still there.

The store reads and writes diskcache's `Cache` table with its own SQL (one query per
batch instead of a call per item). An upgrade of diskcache that renamed a column,
changed how raw bytes or file values are marked, or renamed the database must fail
here, not silently turn every lookup into a miss.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import diskcache
from diskcache.core import DBNAME, MODE_BINARY, MODE_RAW

from pipeline.cache import disk
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


def test_the_names_and_sizes_the_store_keeps_are_diskcaches() -> None:
    # The store reads the table without importing diskcache, with these copies.
    assert (disk.DBNAME, disk.MODE_RAW, disk.MODE_BINARY) == (DBNAME, MODE_RAW, MODE_BINARY)
    settings = diskcache.DEFAULT_SETTINGS
    assert settings["sqlite_cache_size"] == disk.SQLITE_CACHE_PAGES
    assert settings["sqlite_mmap_size"] == disk.SQLITE_MMAP_BYTES


def _settings(directory: Path) -> dict[str, object]:
    with contextlib.closing(sqlite3.connect(directory / DBNAME)) as database:
        return dict(database.execute("SELECT key, value FROM Settings"))


def test_a_cache_holding_its_settings_is_read_and_written_without_opening_diskcache(
    tmp_path: Path,
) -> None:
    with ResponseCache(str(tmp_path), 10**6, None) as cache:
        assert cache.put("made", b"by the first run")
    before = _settings(tmp_path)
    with ResponseCache(str(tmp_path), 10**6, None) as cache:
        assert not cache.opened_diskcache
        assert cache.get_many(["made"]) == {"made": b"by the first run"}
        assert cache.put("small", b"a row of its own")
        assert not cache.opened_diskcache
        assert cache.put("large", b"z" * FILE_MIN_BYTES)  # a file: through diskcache
        assert cache.opened_diskcache
    with ResponseCache(str(tmp_path), None, None) as cache:
        assert cache.get_many(["small", "large"]) == {
            "small": b"a row of its own", "large": b"z" * FILE_MIN_BYTES,
        }  # fmt: skip
        assert cache.stats().size_limit == 10**6
    assert _settings(tmp_path)["size_limit"] == before["size_limit"]


def test_a_new_limit_or_a_database_not_in_wal_mode_is_opened_through_diskcache(
    tmp_path: Path,
) -> None:
    ResponseCache(str(tmp_path), 10**6, None).close()
    with ResponseCache(str(tmp_path), 2 * 10**6, None) as cache:
        assert cache.opened_diskcache  # and it writes the new limit
    assert _settings(tmp_path)["size_limit"] == 2 * 10**6
    with contextlib.closing(sqlite3.connect(tmp_path / DBNAME)) as database:
        assert database.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    with ResponseCache(str(tmp_path), None, None) as cache:
        assert cache.opened_diskcache
    with contextlib.closing(sqlite3.connect(tmp_path / DBNAME)) as database:
        assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)
