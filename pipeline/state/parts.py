"""Committed batches on disk: one part file per batch, whole or absent.

A part file is a one-line JSON header followed by the batch's result rows and
then its quarantine rows, both already encoded as they will stand in the final
files. It is written to a temp file, fsynced and renamed, so a part file under
its final name is the batch's done marker: a crash leaves the whole batch or
nothing, and results and quarantine rows of a batch are committed together.
The header alone tells a resume what the batch held, so committed results are
never read back into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import orjson

from pipeline.atomic import AtomicFile
from pipeline.errors import ConfigError

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


def write_part(directory: str, header: PartHeader, results: bytes, quarantine: bytes) -> None:
    """Commit one batch: temp file, fsync, rename, fsync of the directory."""
    target = AtomicFile(part_path(directory, header.batch))
    try:
        target.handle.write(header.encode())
        target.handle.write(results)
        target.handle.write(quarantine)
    except OSError as exc:
        target.abort()
        raise ConfigError(f"cannot write the checkpoint in {directory}: {exc.strerror}") from exc
    target.commit()


def open_part(directory: str, batch: int) -> tuple[PartHeader, BinaryIO]:
    """The header, and the file positioned at the start of its result rows."""
    path = part_path(directory, batch)
    handle = open(path, "rb")  # noqa: SIM115 - the caller reads the sections, then closes
    try:
        header = PartHeader.decode(handle.readline(MAX_HEADER_BYTES), path)
    except StateCorrupt:
        handle.close()
        raise
    if header.batch != batch:
        handle.close()
        raise StateCorrupt(f"{path} holds batch {header.batch}; run again with --fresh")
    return header, handle


def committed_headers(directory: str) -> Iterator[PartHeader]:
    """Headers of the committed batches 0, 1, 2, … up to the first one missing."""
    batch = 0
    while os.path.exists(part_path(directory, batch)):
        header, handle = open_part(directory, batch)
        handle.close()
        yield header
        batch += 1


def sweep(directory: str, committed: int) -> None:
    """Drop temp files of a killed run and parts beyond the committed prefix.

    Batches are committed in input order, so everything past the first gap was
    left by a run that died mid-way; keeping it would mix two runs' batches.
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
