"""One run per state directory, by flock: the kernel drops the lock when its holder dies.

The lock file also says who holds it (pid, host, start time), so the run that
is turned away, and `sluice status`, can name the holder. That content is
informational only; the flock is the lock, so the file is rewritten in place
rather than renamed (a rename would give the next run a different inode to lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from datetime import datetime
from typing import NamedTuple

import orjson

from pipeline.core.errors import OutputError, SluiceError

LOCK_NAME = "lock"


class StateLocked(SluiceError):
    """Another run holds the state directory: try again once it has finished."""

    exit_code = 75


class Holder(NamedTuple):
    pid: int | None
    host: str | None
    started: float | None

    def describe(self) -> str:
        if self.pid is None:
            return "another sluice run"
        when = "" if self.started is None else f", started {_local_time(self.started)}"
        where = "" if self.host in (None, socket.gethostname()) else f" on {self.host}"
        return f"another sluice run (pid {self.pid}{where}{when})"


class RunLock:
    def __init__(self, directory: str) -> None:
        self._path = os.path.join(directory, LOCK_NAME)
        self._directory = directory
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise StateLocked; never waits, never writes when refused."""
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise OutputError(
                f"cannot lock the state in {self._directory}: {exc.strerror}; "
                f"{self._path} must be a file you can write (or give another --state-dir)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateLocked(
                f"{holder.describe()} is using the state in {self._directory}; "
                "wait for it to finish (or stop it), then run again"
            ) from None
        self._fd = fd
        with contextlib.suppress(OSError):  # owner-only whatever the umask (or an older sluice)
            os.fchmod(fd, 0o600)
        details = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(details), 0)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def current_holder(directory: str) -> Holder | None:
    """Who holds the lock now, or None when no run does (for `sluice status`)."""
    path = os.path.join(directory, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> Holder:
    """The holder's own note; empty or torn while it is being written, hence the defaults."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError):
        details = orjson.loads(os.pread(fd, 4096, 0))
        if isinstance(details, dict):
            pid, host, started = details.get("pid"), details.get("host"), details.get("started")
            return Holder(
                pid if isinstance(pid, int) else None,
                host if isinstance(host, str) else None,
                started if isinstance(started, int | float) else None,
            )
    return Holder(None, None, None)


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
