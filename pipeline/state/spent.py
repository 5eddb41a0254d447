"""The job's spending record in its state directory (`spent.json`), checksummed.

Budgets cover the whole job across attempts, so what each attempt spent must
outlive it: the record is rewritten (atomically) as batches commit, at most
once a second, and when the attempt ends. A kill loses at most the last second
of spending; the answers bought in it are in the response cache, so a re-run
does not pay for them again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import ClassVar

import orjson

from pipeline.core.errors import ConfigError
from pipeline.core.events import BatchesCommitted, Event
from pipeline.spend.ledger import Ledger, Spent
from pipeline.write.atomic import AtomicFile

SPENT_NAME = "spent.json"
SAVE_EVERY = 1.0  # seconds between rewrites while batches commit
ClockReading = Callable[[], float]  # seconds this attempt has run


class SpendingDamaged(ConfigError):
    """The spending record is not what sluice wrote: budgets cannot be trusted with it."""


def read_spent(directory: str) -> Spent | None:
    """What earlier attempts spent; None when they recorded nothing."""
    path = os.path.join(directory, SPENT_NAME)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SpendingDamaged(f"cannot read {path}: {exc.strerror}") from exc
    try:
        record = orjson.loads(raw)
        if _checksum(record["spent"]) != record["checksum"]:
            raise ValueError("checksum mismatch")
        return Spent.from_dict(record["spent"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SpendingDamaged(
            f"the job's spending record {path} is damaged ({exc}); budgets cannot be "
            "checked. Add --fresh to start the job over"
        ) from exc


def write_spent(directory: str, spent: Spent) -> None:
    data = spent.as_dict()
    target = AtomicFile(os.path.join(directory, SPENT_NAME))
    target.handle.write(orjson.dumps({"spent": data, "checksum": _checksum(data)}))
    target.commit()


def _checksum(data: object) -> str:
    canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


class SpendingKeeper:
    """Keeps the record up to date as batches commit (an event consumer)."""

    def __init__(self, directory: str, ledger: Ledger, elapsed: ClockReading) -> None:
        self._directory = directory
        self._ledger = ledger
        self._elapsed = elapsed
        self._saved_at = 0.0

    takes: ClassVar[frozenset[type]] = frozenset({BatchesCommitted})

    def emit(self, event: Event) -> None:
        if type(event) is not BatchesCommitted:
            return
        now = self._elapsed()
        if now - self._saved_at >= SAVE_EVERY:
            self.save(now)

    def save(self, elapsed: float | None = None) -> None:
        now = self._elapsed() if elapsed is None else elapsed
        self._ledger.ran_for(now)
        write_spent(self._directory, self._ledger.job)
        self._saved_at = now
