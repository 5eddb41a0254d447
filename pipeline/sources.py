"""Streaming readers: every input becomes a lazy sequence of raw records.

Nothing here holds more than one Parquet record batch or one line at a time, so
memory stays flat however large the input is.
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import STDIO
from pipeline.errors import InputMissing, InputUnreadable, UsageError
from pipeline.formats import KNOWN_SUFFIXES, FileFormat, format_of

PARQUET_READ_ROWS = 1024
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Record:
    """One line or row as read, before ids are assigned."""

    source: str
    line: int
    row: dict[str, Any] | None
    raw: str | None = None
    problem: str | None = None
    id: Any = None  # an id given with the record (a quarantine row's), not read from the row


def input_format(path: str) -> FileFormat:
    """The input's format from its name; '-' is JSONL on stdin."""
    if path == STDIO:
        return FileFormat.JSONL
    fmt = format_of(path)
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {path!r} from its name; inputs must end in "
            f"{KNOWN_SUFFIXES} (or be - for JSONL on stdin)"
        )
    return fmt


def check_inputs(paths: Iterable[str]) -> None:
    """Fail before any request is sent if an input is missing or of unknown format."""
    for path in paths:
        input_format(path)
        # Not isfile(): a named pipe (mkfifo items.jsonl) is a fine input too.
        if path != STDIO and (not os.path.exists(path) or os.path.isdir(path)):
            what = "is a directory" if os.path.isdir(path) else "does not exist"
            raise InputMissing(f"input {path!r} {what}")


def read_records(paths: Iterable[str]) -> Iterator[Record]:
    for path in paths:
        yield from _read_one(path)


def _read_one(path: str) -> Iterator[Record]:
    fmt = input_format(path)
    if fmt is FileFormat.PARQUET:
        yield from read_parquet(path)
    elif path == STDIO:
        yield from parse_jsonl_lines(sys.stdin.buffer, "<stdin>")
    else:
        opener = gzip.open if fmt is FileFormat.JSONL_GZ else open
        try:
            with opener(path, "rb") as handle:
                yield from parse_jsonl_lines(handle, path)
        except (OSError, EOFError) as exc:
            # gzip raises these for a corrupt or truncated stream.
            raise InputUnreadable(f"cannot read {path!r}: {exc}") from exc


def parse_jsonl_lines(handle: IO[bytes] | Iterable[bytes], source: str) -> Iterator[Record]:
    for number, line in enumerate(handle, start=1):
        if number == 1:
            line = line.removeprefix(UTF8_BOM)  # editors on Windows often write one
        if not line.strip():
            continue
        yield parse_jsonl_line(line, source, number)


def parse_jsonl_line(line: bytes, source: str, number: int) -> Record:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Record(source, number, None, _printable(line), _why_unparseable(line, exc))
    if not isinstance(row, dict):
        kind = type(row).__name__
        return Record(source, number, None, _printable(line), f"line is JSON {kind}, not an object")
    return Record(source, number, row)


def _why_unparseable(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"line is not valid UTF-8 (byte {err.start})"
    return f"line is not valid JSON: {exc}"


def _printable(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("utf-8", errors="replace")


def read_parquet(path: str) -> Iterator[Record]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputUnreadable(f"cannot read {path!r} as Parquet: {exc}") from exc
    number = 0
    try:
        for record_batch in parquet.iter_batches(batch_size=PARQUET_READ_ROWS):
            for row in record_batch.to_pylist():
                number += 1
                yield Record(path, number, row)
    except (pa.ArrowException, OSError) as exc:
        raise InputUnreadable(f"cannot read {path!r} after row {number}: {exc}") from exc


def parquet_schema(path: str) -> pa.Schema:
    return pq.read_schema(path)


def count_items(paths: Iterable[str]) -> int | None:
    """How many items the inputs hold, when that is cheap to know (for ETA only)."""
    total = 0
    for path in paths:
        fmt = input_format(path)
        # Never count a pipe: reading it would take the items away from the run.
        if path == STDIO or fmt is FileFormat.JSONL_GZ or not os.path.isfile(path):
            return None
        if fmt is FileFormat.PARQUET:
            total += pq.ParquetFile(path).metadata.num_rows
        else:
            total += _count_lines(path)
    return total


def _count_lines(path: str) -> int:
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")
