"""Parquet results: the writer, and the Arrow schemas and streams rows take on their way.

Only a run that writes Parquet (or keeps rows bound for it in a checkpoint) imports
this module, and with it pyarrow: ~50 ms, more than all the rest of a JSONL run's
start-up. Everything else reaches it through writers.py, which imports it late.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.config import RESULT_FIELDS, ResultFields
from pipeline.core.errors import OutputError, SchemaMismatch
from pipeline.write.atomic import open_output

if TYPE_CHECKING:
    from pipeline.write.arrow_shape import OutputShape

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
