"""Committed batches on disk: part files of one or more consecutive batches, whole or absent.

Each batch in a part file is a one-line JSON header followed by its result rows
and then its quarantine rows, both already encoded as they will stand in the
final files. A part file is written to a temp file, fsynced and renamed, so a
part file under its final name (its first batch's number) is the done marker of
every batch in it: a crash leaves the whole of them or nothing, and the result
and quarantine rows of a batch are committed together.

Several batches share a file when they complete together (a run served from the
cache, say): an fsync costs milliseconds, which one per batch would make the
slowest part of such a run.

Each header carries a checksum of its own fields and of its batch's rows, and
must read back byte for byte as sluice writes it, so any change to a part
(even one that keeps its length) is caught. A part file counts as committed only
once all of it has been checked; the committed prefix ends just before the
first part that is missing, cut short, changed or unreadable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from pipeline.core.errors import ConfigError, OutputError
from pipeline.state.part_header import (
    MAX_HEADER_BYTES,
    PART_SUFFIX,
    PartDamaged,
    PartHeader,
    part_path,
)
from pipeline.write.atomic import TEMP_SUFFIX, AtomicFile

_READ_CHUNK = 1 << 20  # checking a part streams it: memory stays flat whatever its size


class StateCorrupt(ConfigError):
    """A committed part changed after the run checked it; the next run redoes it."""


class Damage(NamedTuple):
    """The first damaged part: the committed prefix ends just before its first batch."""

    batch: int
    path: str
    reason: str

    def describe(self) -> str:
        return f"{self.path} is damaged ({self.reason})"


def write_part(directory: str, batches: list[tuple[PartHeader, bytes, bytes]]) -> None:
    """Commit consecutive batches in one file: temp file, fsync, rename, directory fsync."""
    target = AtomicFile(part_path(directory, batches[0][0].batch))
    try:
        for header, results, quarantine in batches:
            target.handle.write(header.sealed(results, quarantine).encode())
            target.handle.write(results)
            target.handle.write(quarantine)
    except OSError as exc:
        target.abort()
        raise OutputError(f"cannot write the checkpoint in {directory}: {exc.strerror}") from exc
    target.commit()


class CommittedPrefix:
    """The headers of the committed batches 0, 1, 2, …, each part file checked whole first.

    Iterating stops at the first part file missing (the end) or damaged; then
    `damage` says which and why. Nothing is raised: what to do about damage is
    the caller's decision.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.damage: Damage | None = None

    def __iter__(self) -> Iterator[PartHeader]:
        batch = 0
        while True:
            path = part_path(self.directory, batch)
            try:
                headers = _checked_part(path, batch)
            except FileNotFoundError:
                return
            except PartDamaged as exc:
                self.damage = Damage(batch, path, str(exc))
                return
            yield from headers
            batch += len(headers)


def committed_headers(directory: str) -> Iterator[PartHeader]:
    """Headers of the committed batches, up to the first part missing or damaged."""
    return iter(CommittedPrefix(directory))


def _checked_part(path: str, first: int) -> list[PartHeader]:
    """The headers of one part file, once every byte of it has been checked."""
    headers: list[PartHeader] = []
    try:
        with open(path, "rb") as handle:
            while line := handle.readline(MAX_HEADER_BYTES):
                header = _next_header(line, first + len(headers))
                header.check(_sections(handle, header))
                headers.append(header)
    except FileNotFoundError:
        raise  # no such part: the end of the prefix, not damage
    except OSError as exc:
        raise PartDamaged(f"it cannot be read: {exc.strerror}") from exc
    if not headers:
        raise PartDamaged("it holds no batch")
    return headers


def _next_header(line: bytes, expected: int) -> PartHeader:
    header = PartHeader.decode(line)
    if header.batch != expected:
        raise PartDamaged(f"it holds batch {header.batch} where {expected} was expected")
    return header


def _sections(handle: BinaryIO, header: PartHeader) -> Iterator[bytes]:
    """The batch's rows in chunks; PartDamaged when the file ends before they do."""
    left = header.results_bytes + header.quarantine_bytes
    while left:
        chunk = handle.read(min(left, _READ_CHUNK))
        if not chunk:
            raise PartDamaged("it is cut short")
        left -= len(chunk)
        yield chunk


def committed_sections(directory: str) -> Iterator[tuple[PartHeader, bytes, bytes]]:
    """Each committed batch's header, result rows and quarantine rows, in order.

    The state was checked when it was opened; each batch is checked again here
    before its rows are given, so a part changed since then is never passed on.
    """
    batch = 0
    while os.path.lexists(path := part_path(directory, batch)):
        first = batch
        try:
            with open(path, "rb") as handle:
                while line := handle.readline(MAX_HEADER_BYTES):
                    yield _checked_batch(handle, line, batch)
                    batch += 1
            if batch == first:
                raise PartDamaged("it holds no batch")
        except (PartDamaged, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise changed_since_checked(path, str(reason)) from exc


def _checked_batch(handle: BinaryIO, line: bytes, batch: int) -> tuple[PartHeader, bytes, bytes]:
    header = _next_header(line, batch)
    left = os.fstat(handle.fileno()).st_size - handle.tell()
    if header.results_bytes + header.quarantine_bytes > left:
        raise PartDamaged("it is cut short")  # found before reading: a bad length is no size
    results = handle.read(header.results_bytes)
    quarantine = handle.read(header.quarantine_bytes)
    if len(results) + len(quarantine) != header.results_bytes + header.quarantine_bytes:
        raise PartDamaged("it is cut short")
    header.check((results, quarantine))
    return header, results, quarantine


def changed_since_checked(path: str, reason: str) -> StateCorrupt:
    """The error for a part found damaged after the state was opened (and checked)."""
    return StateCorrupt(
        f"{path} changed while the run went on ({reason}). "
        "Run the same command again: the damaged batches will be redone"
    )


def sweep(directory: str, committed: int) -> None:
    """Drop temp files of a killed run, and every part from batch `committed` on.

    Parts past the committed prefix were left by a run that died mid-way, or
    follow a damaged part; keeping them would mix two runs' batches.
    """
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            stale = name.endswith(TEMP_SUFFIX) or (
                name.endswith(PART_SUFFIX) and _batch_number(name) >= committed
            )
            if stale:
                remove_entry(entry.path)


def remove_entry(path: str) -> None:
    """Whatever stands at `path` (file, directory tree, symlink: never followed), gone."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(
            f"cannot remove {exc.filename or path}: {exc.strerror}; "
            "remove it yourself, then run the same command again"
        ) from exc


def _batch_number(name: str) -> int:
    stem = name.removesuffix(PART_SUFFIX)
    return int(stem) if stem.isascii() and stem.isdigit() else -1
