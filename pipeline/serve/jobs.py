"""The jobs of `sluice serve`, on disk: one directory each, its record rewritten atomically.

    DATA_DIR/jobs/<id>/job.json                  the record (status, options, times, counts)
    DATA_DIR/jobs/<id>/items.jsonl               the items as accepted
    DATA_DIR/jobs/<id>/results.jsonl             results, then results.quarantine.jsonl
    DATA_DIR/jobs/<id>/.results.jsonl.sluice/    the run's checkpoints while it runs

A job is accepted only once its items and its record are on disk (fsynced and
renamed into place), so a server killed right after answering 202 still has it.
The record carries a checksum: a damaged one is reported, never trusted. Records
are small; the items are never held in memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pipeline.write.atomic import AtomicFile

RECORD = "job.json"
ITEMS = "items.jsonl"
RESULTS = "results.jsonl"
QUARANTINE = "results.quarantine.jsonl"
# Statuses a job passes through; the last three are final.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


@dataclass(slots=True)
class JobRecord:
    id: str
    options: dict[str, Any]  # what the client asked for, as validated (never a key)
    items: int
    created_at: float  # unix seconds
    status: str = QUEUED
    started_at: float | None = None
    finished_at: float | None = None
    error: dict[str, Any] | None = None  # {"type", "message"} when it failed
    counts: dict[str, Any] = field(default_factory=dict)  # from the run's summary
    exit_code: int | None = None
    webhook_url: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def status_object(self) -> dict[str, Any]:
        """What `GET /v1/jobs/{id}` answers (and a webhook carries)."""
        return {
            "id": self.id,
            "status": self.status,
            "items": self.items,
            "counts": self.counts,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
        }


class RecordDamaged(Exception):
    """A job record that is not what the server wrote."""


def new_job_id(instance: str = "") -> str:
    """Sortable by creation time, unguessable, and naming the instance when one is set
    (so a client of several instances can be sent back to the one that has it)."""
    stamp = f"{int(time.time() * 1000):012x}"
    prefix = f"{instance}-" if instance else ""
    return f"job_{prefix}{stamp}{secrets.token_hex(6)}"


class JobStore:
    def __init__(self, data_dir: str) -> None:
        self.root = os.path.join(data_dir, "jobs")
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def directory(self, job_id: str) -> str:
        return os.path.join(self.root, job_id)

    def path(self, job_id: str, name: str) -> str:
        return os.path.join(self.root, job_id, name)

    def new_directory(self, job_id: str) -> str:
        directory = self.directory(job_id)
        os.mkdir(directory, mode=0o700)
        return directory

    def save(self, record: JobRecord) -> None:
        body = asdict(record)
        document = {"record": body, "checksum": _checksum(body)}
        target = AtomicFile(self.path(record.id, RECORD))
        try:
            target.handle.write(orjson.dumps(document))
            target.commit()
        except BaseException:
            target.abort()
            raise

    def load(self, job_id: str) -> JobRecord | None:
        """The job's record; None when there is no such job (or it is not complete yet)."""
        if not _valid_id(job_id):
            return None
        try:
            with open(self.path(job_id, RECORD), "rb") as handle:
                document = orjson.loads(handle.read())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise RecordDamaged(f"job {job_id}: its record cannot be read: {exc}") from exc
        body = document.get("record") if isinstance(document, dict) else None
        if not isinstance(body, dict) or document.get("checksum") != _checksum(body):
            raise RecordDamaged(f"job {job_id}: its record is damaged (checksum)")
        return JobRecord(**body)

    def ids(self) -> Iterator[str]:
        """Every job with a record, oldest first."""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return
        for name in names:
            if _valid_id(name) and os.path.exists(self.path(name, RECORD)):
                yield name

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.directory(job_id), ignore_errors=True)

    def sweep_unaccepted(self) -> None:
        """Directories of uploads a killed server never accepted (no record): gone."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return
        for name in names:
            if _valid_id(name) and not os.path.exists(self.path(name, RECORD)):
                self.remove(name)


def _valid_id(job_id: str) -> bool:
    """A name the store could have made: never a path that leaves the jobs directory."""
    return (
        job_id.startswith("job_")
        and len(job_id) <= 120
        and all(c.isalnum() or c in "_-" for c in job_id)
    )


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
