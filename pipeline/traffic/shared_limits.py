"""One account's rate limits shared by every sluice process on a host (`--shared-limits PATH`).

Each process's `RateLimiter` arithmetic (limiter.py, buckets.py) stays as it is;
what it works on lives in a SQLite file instead of in the process. Every
operation (a reservation, a refund, what an answer's headers taught, a 429's
pause) loads the limiter of its account and model, applies itself and stores it
back in one IMMEDIATE transaction, so the processes take turns and a request
reserved by one is counted by all: three cron jobs on one account keep under its
limit together, and a limit learned from headers by one is known to all.

SQLite's locks belong to the process: one that dies, even mid-transaction,
holds nothing (its transaction is rolled back). What it had reserved stays
spent, as the requests it may have sent were counted by the provider too, and
refills with time like any reservation, so nothing waits on a dead process
beyond the bucket's own refill. Times in the file are wall-clock seconds, the
one clock every process shares (a step backwards never drains a bucket).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from pipeline.core.errors import ConfigError
from pipeline.protocol.headers import LimitReading
from pipeline.traffic.limiter import Limits, RateLimiter

BUSY_TIMEOUT_SECONDS = 30.0  # how long a process waits for another's transaction
SCHEMA = "CREATE TABLE IF NOT EXISTS limiter (key TEXT PRIMARY KEY, state BLOB NOT NULL)"


def account_key(base_url: str, api_key: str | None, model: str | None) -> str:
    """Who the limits belong to, as providers count them: the endpoint, the key (as a
    digest: the file never holds it) and the model."""
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"{base_url.rstrip('/')}|{digest}|{model or ''}"


class SharedLimitsFile:
    """The SQLite file, opened once a process (one connection, used on the loop's thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot use --shared-limits {path}: {exc}") from exc

    def update(self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> None:
        """Load the state under `key`, let `change` make the new one, store it: one turn."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT state FROM limiter WHERE key = ?", (key,)).fetchone()
            state = change(orjson.loads(row[0]) if row else None)
            self._db.execute(
                "INSERT INTO limiter (key, state) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET state = excluded.state",
                (key, orjson.dumps(state)),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def read(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state FROM limiter WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def close(self) -> None:
        self._db.close()


class SharedRateLimiter(RateLimiter):
    """A RateLimiter whose state is the shared file's: each call takes a turn there.
    The `now` callers pass (their own monotonic clock) is replaced by the wall clock."""

    def __init__(
        self,
        shared: SharedLimitsFile,
        key: str,
        configured: Limits,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._shared = shared
        self._key = key
        self._wall = wall
        super().__init__(configured, wall())
        self._turn(lambda now: None)  # the file's state, or ours as the first there

    def reserve(self, tokens: float, now: float) -> float:
        wait: float = self._turn(lambda wall: super(SharedRateLimiter, self).reserve(tokens, wall))
        return wait

    def settle_tokens(self, reserved: float, used: float, now: float) -> None:
        self._turn(lambda wall: super(SharedRateLimiter, self).settle_tokens(reserved, used, wall))

    def observe(
        self,
        readings: Mapping[str, LimitReading],
        now: float,
        unseen: Mapping[str, float] | None = None,
        age: float = 0.0,
    ) -> None:
        self._turn(lambda wall: super(SharedRateLimiter, self).observe(readings, wall, unseen, age))

    def pause(self, seconds: float, kinds: Iterable[str], now: float) -> None:
        self._turn(lambda wall: super(SharedRateLimiter, self).pause(seconds, kinds, wall))

    def paused_for(self, now: float) -> float:
        """Read only (no turn): another process's 429 pauses this one too."""
        stored = self._shared.read(self._key)
        if stored is not None:
            self._paused_until = max(self._paused_until, float(stored["paused_until"]))
        return max(0.0, self._paused_until - self._wall())

    def _turn(self, act: Callable[[float], Any]) -> Any:
        result: Any = None

        def change(stored: dict[str, Any] | None) -> dict[str, Any]:
            nonlocal result
            if stored is not None:
                self.restore(stored)
            result = act(self._wall())
            return self.state()

        self._shared.update(self._key, change)
        return result
