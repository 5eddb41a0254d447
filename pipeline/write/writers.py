"""Writers for results (JSONL, JSONL.gz, Parquet, stdout) and quarantine (JSONL).

Each writer writes into an `OutputFile` (see atomic.py): for a regular file
nothing is visible under the final name until it is published; `abort()` leaves
the previous file (if any) untouched. `finish()` makes the content complete and
durable without publishing it, so two files can be published together.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.config import RESULT_FIELDS, STDIO, OutputConfig, ResultFields
from pipeline.core.errors import OutputError, SchemaMismatch, UsageError
from pipeline.core.formats import KNOWN_SUFFIXES, FileFormat, format_of
from pipeline.core.jsonio import dumps_lines
from pipeline.write.arrow_shape import OutputShape, output_shape
from pipeline.write.atomic import DirectFile, OutputFile, open_output
from pipeline.write.paths import Target, target_kind

T = TypeVar("T")

PARQUET_ROW_GROUP_ROWS = 5000
USAGE_TYPE = pa.struct(
    [("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()), ("total_tokens", pa.int64())]
)
# A workflow row's `steps`: step name -> how it ended (core/models.py StepReport). A map, so
# one type fits any workflow: `steps['draft'].status` in DuckDB.
STEP_REPORTS_TYPE = pa.map_(
    pa.string(),
    pa.struct([(name, pa.string()) for name in ("status", "model", "answered_by", "reason")]),
)


@dataclass(frozen=True, slots=True)
class TypedOutput:
    """Parquet's output column typed by what the answers are, not by the first rows:
    the schema's type with --schema, or fixed-size float32 lists for embeddings (the
    size is the first vector's, as no option says it)."""

    column: str
    shape: OutputShape | None = None  # with --schema
    vectors: bool = False  # embeddings
    steps: str | None = None  # --workflow: the column of step reports (STEP_REPORTS_TYPE)

    def fit(self, rows: list[dict[str, Any]]) -> None:
        """Make each row's answer storable under the column's type (rows are ours to change)."""
        if self.shape is None or not self.shape.needs_fitting:
            return
        column, fit = self.column, self.shape.fit
        for row in rows:
            value = row.get(column)
            if value is not None:
                row[column] = fit(value)

    def type_for(self, rows: list[dict[str, Any]]) -> pa.DataType:
        if self.shape is not None:
            return self.shape.type
        if not self.vectors:
            return pa.string()
        size = next((len(v) for row in rows if isinstance(v := row.get(self.column), list)), 0)
        return pa.list_(pa.float32(), size) if size else pa.list_(pa.float32())

    def settled(self, schema: pa.Schema | None, rows: list[dict[str, Any]]) -> pa.Schema:
        """The schema for the first rows written: inferred, or the one given with the
        vectors' size filled in once a vector shows it."""
        if schema is None:
            return infer_schema(rows, self)
        index = schema.get_field_index(self.column)
        if self.vectors and index >= 0 and pa.types.is_list(schema.field(index).type):
            return schema.set(index, pa.field(self.column, self.type_for(rows)))
        return schema


def typed_output(output: OutputConfig) -> TypedOutput | None:
    if output.answer_schema is not None:
        shape = output_shape(output.answer_schema)
        return TypedOutput(output.result_fields.output, shape, steps=output.result_fields.steps)
    if output.vectors:
        return TypedOutput(output.result_fields.output, vectors=True)
    return None


class RowWriter(Protocol):
    target: OutputFile

    def write_rows(self, rows: list[dict[str, Any]]) -> None: ...
    def write_encoded(self, section: bytes) -> None: ...
    def finish(self) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def output_format(path: str) -> FileFormat | None:
    """The results' format from the name; None for '-' (JSONL on stdout).

    A device or pipe without a format in its name (/dev/stdout) gets JSONL, as '-' does.
    """
    if path == STDIO:
        return None
    fmt = format_of(path)
    if fmt is None and target_kind(path) is Target.DIRECT:
        return FileFormat.JSONL
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of output {path!r} from its name: use {KNOWN_SUFFIXES} or -"
        )
    return fmt


class JsonlWriter:
    def __init__(self, path: str, compress: bool = False) -> None:
        self.target = open_output(path)
        # Standard output and pipes get each batch as it is written, not at the end.
        self._streaming = isinstance(self.target, DirectFile)
        self._stream: Any = self.target.handle
        if compress:
            # Name the member after the final file, not the temp file being written.
            member = os.path.basename(path).removesuffix(".gz")
            self._stream = gzip.GzipFile(
                member, mode="wb", compresslevel=6, fileobj=self.target.handle
            )

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.write_encoded(dumps_lines(rows))

    def write_encoded(self, section: bytes) -> None:
        """JSONL lines as they will stand in the file (a checkpoint's part, say)."""
        try:
            self._stream.write(section)
            if self._streaming:
                self._stream.flush()
        except (OSError, ValueError) as exc:
            raise OutputError(_cannot_write(self.target, exc)) from exc

    def finish(self) -> None:
        try:
            if self._stream is not self.target.handle:
                self._stream.close()  # writes the gzip trailer; the underlying file stays open
        except (OSError, ValueError) as exc:
            self.target.abort()
            raise OutputError(_cannot_write(self.target, exc)) from exc
        self.target.prepare()

    def commit(self) -> None:
        self.finish()
        self.target.publish()

    def abort(self) -> None:
        self.target.abort()


def _cannot_write(target: OutputFile, exc: Exception) -> str:
    if target.path == "-":
        return "standard output was closed before the results were written"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write {target.path!r}: {reason}"


class ParquetWriter:
    """One fixed schema, decided before the first row group is written.

    It comes from the input's Parquet schema when there is one, otherwise from the
    first rows; a later row that does not fit stops the run instead of being
    silently changed.
    """

    def __init__(
        self, path: str, schema: pa.Schema | None = None, typed: TypedOutput | None = None
    ) -> None:
        self.target = open_output(path)
        self._schema = schema
        self._typed = typed
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[dict[str, Any]] = []
        self._pending_tables: list[pa.Table] = []
        self._pending_table_rows = 0

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        self._pending.extend(rows)
        if len(self._pending) >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def finish(self) -> None:
        try:
            self._flush()
            if self._writer is None:
                self._open(self._schema or infer_schema([], self._typed))
            assert self._writer is not None
            self._writer.close()
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.target.path!r}: {exc}") from exc
        except BaseException:
            self.abort()
            raise
        self.target.prepare()

    def commit(self) -> None:
        self.finish()
        self.target.publish()

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(pa.ArrowException, OSError, ValueError):
                self._writer.close()
            self._writer = None
        self.target.abort()

    def write_encoded(self, section: bytes) -> None:
        """Rows a checkpoint already turned into an Arrow stream (see `rows_to_arrow`)."""
        table = pa.ipc.open_stream(section).read_all()
        self._pending_tables.append(table)
        self._pending_table_rows += table.num_rows
        if self._pending_table_rows >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            if self._typed is not None:
                self._typed.fit(self._pending)
                if self._writer is None:
                    self._schema = _checked(self._typed.settled, self._schema, self._pending)
            if self._schema is None:
                self._schema = _checked(infer_schema, self._pending)
            self._write(_checked(rows_to_table, self._pending, self._schema))
            self._pending.clear()
        if self._pending_tables:
            self._write(pa.concat_tables(self._pending_tables))
            self._pending_tables.clear()
            self._pending_table_rows = 0

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(self._schema or table.schema)
        assert self._writer is not None
        try:
            self._writer.write_table(table)
        except OSError as exc:
            raise OutputError(f"cannot write {self.target.path!r}: {exc}") from exc

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(self.target.handle, schema)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def rows_to_arrow(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    """Rows as an Arrow IPC stream: how a checkpoint keeps Parquet-bound rows, types intact."""
    table = _checked(rows_to_table, rows, schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _checked(convert: Callable[..., T], *args: Any) -> T:
    try:
        return convert(*args)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise SchemaMismatch(
            f"result rows do not fit one Parquet schema ({exc}); "
            "write JSONL instead (-o results.jsonl)"
        ) from exc


def infer_schema(rows: Iterable[dict[str, Any]], typed: TypedOutput | None = None) -> pa.Schema:
    """The first rows' types; all-null columns become strings so later values fit. The
    answer's column has the schema's type when there is one (`typed`), whatever the rows."""
    rows = list(rows)
    answer_type = typed.type_for(rows) if typed is not None else pa.string()
    if not rows:
        return pa.schema(_answer_fields(answer_type))
    inferred = pa.Table.from_pylist(rows).schema
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in inferred]
    if typed is not None:
        fields = [pa.field(f.name, answer_type) if f.name == typed.column else f for f in fields]
        fields = [
            pa.field(f.name, STEP_REPORTS_TYPE) if f.name == typed.steps else f for f in fields
        ]
    return pa.schema(fields).remove_metadata()


def result_schema(
    input_schema: pa.Schema,
    id_field: str,
    output_type: pa.DataType,
    names: ResultFields = RESULT_FIELDS,
) -> pa.Schema:
    """Result columns for Parquet inputs: the input's, the id when absent, the answer."""
    fields = list(input_schema)
    if id_field not in input_schema.names:
        fields.append(pa.field(id_field, pa.int64()))
    return pa.schema(fields + _answer_fields(output_type, names))


def _answer_fields(output_type: pa.DataType, names: ResultFields = RESULT_FIELDS) -> list[pa.Field]:
    """The columns sluice adds to each item, in the order `result_row` adds them."""
    fields = [
        pa.field(names.output, output_type),
        pa.field(names.usage, USAGE_TYPE),
        pa.field(names.cached, pa.bool_()),
    ]
    if names.skipped is not None:
        fields.append(pa.field(names.skipped, pa.bool_()))
    if names.model is not None:
        fields.append(pa.field(names.model, pa.string()))
    if names.steps is not None:
        fields.append(pa.field(names.steps, STEP_REPORTS_TYPE))
    return fields


def open_result_writer(
    path: str, schema: pa.Schema | None, typed: TypedOutput | None = None
) -> RowWriter:
    fmt = output_format(path)
    if fmt is None:
        return JsonlWriter(path)  # '-': standard output
    if fmt is FileFormat.PARQUET:
        return ParquetWriter(path, schema, typed)
    return JsonlWriter(path, compress=fmt is FileFormat.JSONL_GZ)


def open_quarantine_writer(path: str) -> RowWriter:
    return JsonlWriter(path, compress=format_of(path) is FileFormat.JSONL_GZ)
