"""`sluice merge`: the outputs of a sharded job's parts (`--shard I/N`), as one run's.

The inputs are read again exactly as the shards read them (the same ids,
positions and batches: `input_batches`), and each item's row is taken from the
shard that owns its batch: the next row of that shard's results, or else of
its quarantine, when that row is the item's. Each shard wrote its rows in
input order, so every file is read once, front to back, and rows go straight
through to the outputs: memory stays flat however large the job.

An item whose shard has no row for it gets none here: `--drop-skipped` left it
out, or it was lost, which the check that follows (`sluice verify`'s) names.
A shard's row that no item claims where its batch puts it is never dropped
either: such rows are written after all the others, for that check to report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.config import STDIO, OutputConfig, ReadConfig
from pipeline.core.errors import InputMissing, InputUnreadable, UsageError
from pipeline.core.formats import FileFormat
from pipeline.core.models import Item
from pipeline.prepare.batching import input_batches, shard_of
from pipeline.read.ids import SeenIds
from pipeline.read.sources import check_inputs, input_format, read_records
from pipeline.write.final import FinalWriters, check_output_paths, sweep_output_temps
from pipeline.write.paths import Target, check_distinct, target_kind
from pipeline.write.rows import item_key, quarantine_row_key, read_at, result_row_key
from pipeline.write.writers import RowWriter, output_format

if TYPE_CHECKING:
    import pyarrow as pa

ROWS_PER_WRITE = 1024  # rows handed to a writer at once: few calls, little memory


@dataclass(frozen=True, slots=True)
class ShardOutputs:
    """The files one shard's run wrote."""

    results: str
    quarantine: str


@dataclass(frozen=True, slots=True)
class MergeJob:
    """What to merge: the inputs as the shards read them (their id field, batch size,
    and whether they were retries), each shard's files (shard 1/N first), and where to."""

    read: ReadConfig
    shards: tuple[ShardOutputs, ...]
    output: OutputConfig


@dataclass(slots=True)
class MergeCounts:
    items: int = 0
    result_rows: int = 0
    quarantine_rows: int = 0
    unplaced: int = 0  # shard rows no item claimed where their batch puts them; written last


def merge_shards(job: MergeJob) -> MergeCounts:
    """Write the merged results and quarantine, published together or not at all."""
    check_merge(job)
    sweep_output_temps(job.output)  # left by a merge killed while writing
    files = FinalWriters(job.output, _results_schema(job.shards, job.output.results))
    try:
        counts = _merge(job, _Sink(files.results, files.quarantine))
        files.commit()
    except BaseException:
        files.abort()
        raise
    return counts


def check_merge(job: MergeJob) -> None:
    """Everything that can turn a merge away, before a file is touched."""
    if not job.shards:
        raise UsageError("give each shard's results file: --results R1 --results R2 ...")
    check_inputs(job.read.inputs)
    shard_files = [path for shard in job.shards for path in (shard.results, shard.quarantine)]
    for path in shard_files:
        _check_shard_file(path)
    outputs = (("--output", job.output.results), ("--quarantine-out", job.output.quarantine))
    for flag, path in outputs:
        check_merged_file(flag, path)
    output_format(job.output.results)  # an unknown suffix is a usage error
    check_distinct([*job.read.inputs, *shard_files], list(outputs))
    check_output_paths(job.output)


def check_merged_file(flag: str, path: str) -> None:
    """A merged output is checked once written, so it must be a file: not -, nor a device."""
    if target_kind(path) is not Target.FILE:
        raise UsageError(f"{flag} names a file, which merge checks once written: not {path!r}")


def _check_shard_file(path: str) -> None:
    if path == STDIO:
        raise UsageError("a shard's files cannot be read from stdin (-); name the file")
    input_format(path)
    if not os.path.isfile(path):
        raise InputMissing(f"shard file {path!r} does not exist")


def _results_schema(shards: Sequence[ShardOutputs], output: str) -> pa.Schema | None:
    """Parquet into Parquet keeps the shards' schema; None lets the writer infer one."""
    if output_format(output) is not FileFormat.PARQUET:
        return None
    paths = [shard.results for shard in shards]
    if not all(input_format(path) is FileFormat.PARQUET for path in paths):
        return None
    import pyarrow as pa  # only now: Parquet shards into Parquet
    import pyarrow.parquet as pq

    try:
        files = [pq.ParquetFile(path) for path in paths]
        # A shard without rows has only the answer's columns: it must not order them first.
        schemas = [f.schema_arrow for f in files if f.metadata.num_rows]
        return pa.unify_schemas(schemas or [files[0].schema_arrow]).remove_metadata()
    except (pa.ArrowException, OSError):
        return None  # unreadable: reading says so with its own message; else inferred


class _Sink:
    """Rows on their way into the merged files, handed over a block at a time."""

    def __init__(self, results: RowWriter, quarantine: RowWriter) -> None:
        self.results = _Block(results)
        self.quarantine = _Block(quarantine)

    def flush(self) -> None:
        self.results.flush()
        self.quarantine.flush()


class _Block:
    def __init__(self, writer: RowWriter) -> None:
        self._writer = writer
        self._rows: list[dict[str, Any]] = []
        self.written = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.written += 1
        if len(self._rows) >= ROWS_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._writer.write_rows(self._rows)
            self._rows = []


def _merge(job: MergeJob, sink: _Sink) -> MergeCounts:
    shards = [_ShardRows(shard, job.read.id_field) for shard in job.shards]
    counts = MergeCounts()
    seen = SeenIds()
    try:
        for batch in input_batches(job.read, seen):  # whole: ReadConfig.shard is None
            shard = shards[shard_of(batch.index, len(shards)) - 1]
            for item in batch.items:
                shard.place(item, sink)
            counts.items += len(batch.items)
    finally:
        seen.close()
    for shard in shards:
        counts.unplaced += shard.rest(sink)
    sink.flush()
    counts.result_rows, counts.quarantine_rows = sink.results.written, sink.quarantine.written
    return counts


class _ShardRows:
    """One shard's results and quarantine rows, each file read once, in order."""

    def __init__(self, files: ShardOutputs, id_field: str) -> None:
        self.results = _Rows(files.results, lambda row: result_row_key(row, id_field), id_field)
        self.quarantine = _Rows(files.quarantine, quarantine_row_key, "id")

    def place(self, item: Item, sink: _Sink) -> None:
        """The item's row, when its shard's next row is the item's; else none."""
        key = orjson.dumps(item_key(item))
        if self.results.next_key == key:
            sink.results.add(self.results.take())
        elif self.quarantine.next_key == key and _read_there(self.quarantine.next_row, item):
            sink.quarantine.add(self.quarantine.take())

    def rest(self, sink: _Sink) -> int:
        """Rows no item claimed: written last, never dropped. How many."""
        left = 0
        for rows, block in ((self.results, sink.results), (self.quarantine, sink.quarantine)):
            while rows.next_row is not None:
                block.add(rows.take())
                left += 1
        return left


def _read_there(row: dict[str, Any] | None, item: Item) -> bool:
    """A quarantine row says where its item was read: a later duplicate of an id has the
    id of the first item with it, never its file and line."""
    source = row.get("source") if row is not None else None
    if not isinstance(source, dict):
        return True  # nothing else to tell them apart by; the id agreed
    file, line = source.get("file"), source.get("line")
    if not isinstance(file, str) or isinstance(line, bool) or not isinstance(line, int):
        return True
    return line == item.line and read_at(file, line) == read_at(item.source, item.line)


class _Rows:
    """The rows of one shard file, one at a time, each with the key of its item."""

    def __init__(self, path: str, key_of: Callable[[dict[str, Any]], Any], field: str) -> None:
        self._path = path
        self._records = read_records([path])
        self._key_of = key_of
        self._field = field
        self.next_row: dict[str, Any] | None = None
        self.next_key: bytes | None = None
        self._advance()

    def take(self) -> dict[str, Any]:
        row = self.next_row
        assert row is not None
        self._advance()
        return row

    def _advance(self) -> None:
        record = next(self._records, None)
        if record is None:
            self.next_row, self.next_key = None, None
            return
        if record.row is None:
            raise InputUnreadable(f"{self._where(record.line)} is not a row: {record.problem}")
        key = self._key_of(record.row)
        if key is None:
            raise InputUnreadable(
                f"{self._where(record.line)} has no {self._field!r}: not a row sluice run "
                "wrote for an item (give the shards' files as they wrote them, and "
                "--id-field as they were given it)"
            )
        self.next_row, self.next_key = record.row, orjson.dumps(key)

    def _where(self, line: int) -> str:
        unit = "row" if input_format(self._path) is FileFormat.PARQUET else "line"
        return f"{self._path} {unit} {line}"
