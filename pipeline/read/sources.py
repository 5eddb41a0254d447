"""Streaming readers: every input becomes a lazy sequence of raw records.

Nothing here holds more than one Parquet record batch, one line or one JSON
array element at a time, so memory stays flat however large the input is.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING

import orjson

from pipeline.core.config import STDIO
from pipeline.core.errors import InputMissing, InputUnreadable, UsageError
from pipeline.core.formats import KNOWN_SUFFIXES, FileFormat, format_of, may_hold_json_array
from pipeline.core.models import Record
from pipeline.read.json_arrays import UTF8_BOM, PeekableReader, parse_json_array, skip_to_content
from pipeline.read.nesting import TOO_DEEP, may_nest_too_deeply, nests_too_deeply

# The functions that read Parquet import pyarrow themselves: importing it here would cost
# every JSONL run ~50 ms of start-up.
if TYPE_CHECKING:
    import pyarrow as pa

PARQUET_READ_ROWS = 1024
STDIN_SOURCE = "<stdin>"


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
    """Fail before any request is sent if an input is missing or of unknown format.

    Only looks (stat), never opens: opening a named pipe would take its data.
    """
    for path in paths:
        fmt = input_format(path)
        if path == STDIO:
            continue
        # Not isfile(): a named pipe (mkfifo items.jsonl) is a fine JSONL input too.
        if not os.path.exists(path) or os.path.isdir(path):
            what = "is a directory" if os.path.isdir(path) else "does not exist"
            raise InputMissing(f"input {path!r} {what}")
        if fmt is FileFormat.PARQUET and not stat.S_ISREG(os.stat(path).st_mode):
            # Parquet is read from its footer backwards: a pipe or device cannot be.
            raise InputUnreadable(
                f"input {path!r} is not a regular file (a named pipe or a device); "
                "Parquet can only be read from a file"
            )


def read_records(paths: Iterable[str]) -> Iterator[Record]:
    for path in paths:
        yield from _read_one(path)


def _read_one(path: str) -> Iterator[Record]:
    fmt = input_format(path)
    if fmt is FileFormat.PARQUET:
        yield from read_parquet(path)
    elif path == STDIO:
        yield from parse_jsonl_lines(sys.stdin.buffer, STDIN_SOURCE)
    else:
        yield from _read_json_file(path, fmt)


def _open(path: str, fmt: FileFormat) -> gzip.GzipFile | io.BufferedReader:
    return gzip.open(path, "rb") if fmt is FileFormat.JSONL_GZ else open(path, "rb")


def _read_json_file(path: str, fmt: FileFormat) -> Iterator[Record]:
    reached, unit = 0, "line"
    try:
        with _open(path, fmt) as handle:
            records, unit = _records_in(handle, path)
            for record in records:
                reached = record.line
                yield record
    except (OSError, EOFError, zlib.error) as exc:
        where = f"beyond {unit} {reached}" if reached else "from its start"
        raise InputUnreadable(f"cannot read {path!r} {where}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    # gzip raises these for a stream cut short, or damaged (zlib.error: a flipped byte).
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return f"the gzip data is damaged or cut short ({exc})"
    return str(exc)


def _records_in(handle: PeekableReader, path: str) -> tuple[Iterator[Record], str]:
    """JSONL's lines; or, for a .json or .json.gz file starting with [, its elements."""
    if not may_hold_json_array(path):
        return parse_jsonl_lines(handle, path), "line"
    first, newlines = skip_to_content(handle)
    if first == b"[":
        return parse_json_array(handle, path), "element"
    return parse_jsonl_lines(handle, path, start=newlines + 1), "line"


def parse_jsonl_lines(
    handle: IO[bytes] | Iterable[bytes], source: str, start: int = 1
) -> Iterator[Record]:
    for number, line in enumerate(handle, start=start):
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
    if may_nest_too_deeply(line) and nests_too_deeply(row):
        return Record(source, number, None, _printable(line), TOO_DEEP)
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
    import pyarrow as pa
    import pyarrow.parquet as pq

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
    import pyarrow.parquet as pq

    return pq.read_schema(path)


def never_block(paths: Iterable[str]) -> bool:
    """Every input is a regular file, whose reads end at once: no pipe, FIFO or stdin,
    which may wait for their writer for as long as it likes."""
    for path in paths:
        if path == STDIO:
            return False
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return False
        except OSError:
            return False  # reading it will say what is wrong, in the reader thread as ever
    return True


def count_items(paths: Iterable[str]) -> int | None:
    """How many items the inputs hold, when that is cheap to know (for ETA only)."""
    total = 0
    for path in paths:
        fmt = input_format(path)
        # Never count a pipe: reading it would take the items away from the run.
        if path == STDIO or fmt is FileFormat.JSONL_GZ or not os.path.isfile(path):
            return None
        if fmt is FileFormat.PARQUET:
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        elif may_hold_json_array(path) and _is_json_array(path):
            return None  # its lines are not its items
        else:
            total += _count_lines(path)
    return total


def _is_json_array(path: str) -> bool:
    with open(path, "rb") as handle:
        return skip_to_content(handle)[0] == b"["


def _count_lines(path: str) -> int:
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")
