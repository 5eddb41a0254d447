"""Each job's history: one JSON line per finished run, appended to a file of its own.

Where: $XDG_STATE_HOME/sluice/history/JOB.jsonl, else ~/.local/state/sluice/history
(directories 0700, files 0600). A record is the run's summary without its bulky,
repeated parts (`BULKY_KEYS`: the same counts again per attempt and per job, and
the per-stage latencies), plus `recorded_at`. Summaries never hold a key.

Appending is one write(2) of one whole line to a file opened O_APPEND, under
an flock and followed by fsync: runs of different jobs touch different files,
and two runs of one job each add whole lines, in either order. A writer killed
mid-line leaves a torn line; the next append starts on a fresh line, and
readers skip any line that is not a JSON object.

Reading goes backwards from the end of the file, a block at a time, and stops
once it has the runs it was asked for: the cost stays the same however long
the history grows, and memory holds at most those runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from pipeline.core.config import STDIO
from pipeline.core.errors import UsageError
from pipeline.core.formats import without_format_suffix
from pipeline.core.jsonio import dumps
from pipeline.write.atomic import fsync_directory

SUFFIX = ".jsonl"
BULKY_KEYS = ("this_attempt", "whole_job", "latency_ms_by_stage")
MAX_NAME_LENGTH = 100  # characters of a job's file name before a digest stands in for the rest
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BLOCK = 64 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024  # longer is damage, not a run: dropped, not kept in memory
_DAMAGED = b"\x00"  # what the backward reader yields for a line it dropped


def default_history_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_STATE_HOME/sluice/history, or ~/.local/state/sluice/history."""
    xdg = environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative path: it would depend on the cwd.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "sluice" / "history"


def default_job_name(output_path: str) -> str:
    """The output's file name without its format suffix; "stdout" for `-`."""
    if output_path == STDIO:
        return "stdout"
    return without_format_suffix(os.path.basename(output_path.rstrip("/")))


def safe_job_name(job: str) -> str:
    """The job's name as a file name: letters, digits, `.`, `_` and `-`; others become `_`.

    Leading and trailing dots and underscores are dropped (no hidden files, no
    `..`), and a name left without a letter or digit is refused (UsageError).
    Names that differ only in unsafe characters ("a b", "a/b", "a_b") share a history.
    """
    name = _UNSAFE.sub("_", job).strip("._")
    if not any(char.isalnum() for char in name):
        raise UsageError(
            f"job name {job!r} needs a letter or a digit "
            "(letters, digits, '.', '_' and '-' are kept; other characters become '_')"
        )
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha256(job.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        name = f"{name[:MAX_NAME_LENGTH]}-{digest}"
    return name


def history_file(directory: Path, job: str) -> Path:
    return directory / f"{safe_job_name(job)}{SUFFIX}"


def history_record(
    summary: Mapping[str, Any], job: str, findings: list[dict[str, Any]]
) -> dict[str, Any]:
    """What one line holds: the summary, slimmed, with the job, findings and when."""
    record = {key: value for key, value in summary.items() if key not in BULKY_KEYS}
    record["job"] = job
    record["findings"] = findings
    record["recorded_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return record


def append_run(directory: Path, job: str, record: Mapping[str, Any]) -> Path:
    """Add one line to the job's history; OSError when it cannot be written."""
    make_private_dirs(directory)
    path = history_file(directory, job)
    line = dumps(record) + b"\n"
    flags = os.O_RDWR | os.O_APPEND  # read: to see whether the last line is whole
    flags |= os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for one write and fsync: concurrent runs queue
        os.fchmod(fd, 0o600)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a killed writer's torn line stays a line of its own
        _write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:
        fsync_directory(str(directory))  # the new file's name is durable too
    return path


class Recent(NamedTuple):
    runs: list[dict[str, Any]]  # oldest first
    skipped: int  # damaged lines met among them (torn by a killed writer, garbled)


def read_recent(path: Path, limit: int) -> Recent:
    """The last `limit` runs recorded in `path`; FileNotFoundError when there is none."""
    runs: list[dict[str, Any]] = []
    skipped = 0
    if limit <= 0:
        return Recent(runs, skipped)
    with open(path, "rb") as handle:
        for line in _lines_from_end(handle):
            if not line.strip():
                continue
            record = _parsed(line)
            if record is None:
                skipped += 1
                continue
            runs.append(record)
            if len(runs) == limit:
                break
    runs.reverse()
    return Recent(runs, skipped)


class JobHistory(NamedTuple):
    job: str  # as the last run named it (the file name holds it made safe)
    path: Path
    last_run: dict[str, Any] | None  # None when no line of the file is readable


def list_jobs(directory: Path) -> list[JobHistory]:
    """Every job with a history, by file name; [] before the first run is recorded."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    jobs = []
    for entry in entries:
        if not entry.name.endswith(SUFFIX) or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        with contextlib.suppress(OSError):
            last = read_recent(path, 1).runs
            record = last[0] if last else None
            name = record.get("job") if record else None
            job = name if isinstance(name, str) and name else entry.name[: -len(SUFFIX)]
            jobs.append(JobHistory(job, path, record))
    return jobs


def make_private_dirs(directory: Path) -> None:
    """Create the directory and any missing parent 0700, as the XDG spec asks."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it meanwhile
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)  # mkdir's mode was cut by the umask


def _parsed(line: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _lines_from_end(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines, last first, read a block at a time from the end."""
    end = handle.seek(0, os.SEEK_END)
    carry = b""  # the end of a line whose start lies further back
    dropping = False  # inside a line longer than MAX_LINE_BYTES
    while end > 0:
        start = max(0, end - _BLOCK)
        handle.seek(start)
        pieces = (handle.read(end - start) + carry).split(b"\n")
        end = start
        carry = pieces[0]
        for line in reversed(pieces[1:]):
            yield _DAMAGED if dropping or len(line) > MAX_LINE_BYTES else line
            dropping = False
        if len(carry) > MAX_LINE_BYTES:
            carry, dropping = b"", True
    yield _DAMAGED if dropping else carry


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
