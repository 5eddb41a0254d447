"""Committed batches on disk: part files of one or more consecutive batches, whole or absent.

Each batch in a part file is a one-line JSON header followed by its result rows
and then its quarantine rows, both already encoded as they will stand in the
final files. A part file is written to a temp file, fsynced and renamed, so a
part file under its final name (its first batch's number) is the done marker of
every batch in it: a crash leaves the whole of them or nothing, and the result
and quarantine rows of a batch are committed together.

Several batches share a file when they complete together (a run served from the
cache, say): an fsync costs milliseconds, which one per batch would make the
slowest part of such a run. The headers alone tell a resume what was committed,
so committed results are never read back into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import orjson

from pipeline.atomic import AtomicFile
from pipeline.errors import ConfigError, OutputError

PART_SUFFIX = ".part"
TEMP_SUFFIX = ".partial"
MAX_HEADER_BYTES = 1 << 16


class StateCorrupt(ConfigError):
    """The state directory holds something sluice did not write; only --fresh can help."""


@dataclass(frozen=True, slots=True)
class PartHeader:
    batch: int
    items: int
    digest: str  # of the batch's input items, to notice an input changed under a resume
    succeeded: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    results_bytes: int
    quarantine_bytes: int
    committed_at: float
    quarantined: dict[str, int] = field(default_factory=dict)  # by error kind

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self)) + b"\n"

    @classmethod
    def decode(cls, line: bytes, path: str) -> PartHeader:
        try:
            return cls(**orjson.loads(line))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise StateCorrupt(
                f"{path} is not a part file sluice wrote ({exc}); "
                "run again with --fresh to start the job over"
            ) from exc


def part_path(directory: str, batch: int) -> str:
    return os.path.join(directory, f"{batch:09d}{PART_SUFFIX}")


def write_part(directory: str, batches: list[tuple[PartHeader, bytes, bytes]]) -> None:
    """Commit consecutive batches in one file: temp file, fsync, rename, directory fsync."""
    target = AtomicFile(part_path(directory, batches[0][0].batch))
    try:
        for header, results, quarantine in batches:
            target.handle.write(header.encode())
            target.handle.write(results)
            target.handle.write(quarantine)
    except OSError as exc:
        target.abort()
        raise OutputError(f"cannot write the checkpoint in {directory}: {exc.strerror}") from exc
    target.commit()


def committed_headers(directory: str) -> Iterator[PartHeader]:
    """Headers of the committed batches 0, 1, 2, … up to the first one missing."""
    for header, handle in _committed(directory):
        handle.seek(header.results_bytes + header.quarantine_bytes, os.SEEK_CUR)
        yield header


def committed_sections(directory: str) -> Iterator[tuple[PartHeader, bytes, bytes]]:
    """Each committed batch's header, result rows and quarantine rows, in order."""
    for header, handle in _committed(directory):
        results = handle.read(header.results_bytes)
        quarantine = handle.read(header.quarantine_bytes)
        if len(results) + len(quarantine) != header.results_bytes + header.quarantine_bytes:
            raise StateCorrupt(
                f"the part file of batch {header.batch} in {directory} is cut short; use --fresh"
            )
        yield header, results, quarantine


def _committed(directory: str) -> Iterator[tuple[PartHeader, BinaryIO]]:
    """Each batch's header, with its file positioned at the batch's rows."""
    batch = 0
    while os.path.exists(path := part_path(directory, batch)):
        with open(path, "rb") as handle:
            first = batch
            while line := handle.readline(MAX_HEADER_BYTES):
                header = PartHeader.decode(line, path)
                if header.batch != batch:
                    raise StateCorrupt(
                        f"{path} holds batch {header.batch} where {batch} was expected; "
                        "run again with --fresh"
                    )
                yield header, handle
                batch += 1
        if batch == first:
            raise StateCorrupt(f"{path} holds no batch; run again with --fresh")


def sweep(directory: str, committed: int) -> None:
    """Drop temp files of a killed run and parts beyond the committed prefix.

    Everything past the first gap was left by a run that died mid-way; keeping
    it would mix two runs' batches.
    """
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            stale = name.endswith(TEMP_SUFFIX) or (
                name.endswith(PART_SUFFIX) and _batch_number(name) >= committed
            )
            if stale:
                os.unlink(entry.path)


def _batch_number(name: str) -> int:
    stem = name.removesuffix(PART_SUFFIX)
    return int(stem) if stem.isascii() and stem.isdigit() else -1
