"""Writers for results (JSONL, JSONL.gz, Parquet, stdout) and quarantine (JSONL).

The Parquet writer lives in parquet.py, imported only when a Parquet file is written:
it brings pyarrow, which a JSONL run should not wait for.

Each writer writes into an `OutputFile` (see atomic.py): for a regular file
nothing is visible under the final name until it is published; `abort()` leaves
the previous file (if any) untouched. `finish()` makes the content complete and
durable without publishing it, so two files can be published together.
"""

from __future__ import annotations

import gzip
import os
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.config import STDIO, OutputConfig
from pipeline.core.errors import OutputError, UsageError
from pipeline.core.formats import KNOWN_SUFFIXES, FileFormat, format_of
from pipeline.core.jsonio import dumps_lines
from pipeline.write.atomic import DirectFile, OutputFile, open_output
from pipeline.write.paths import Target, target_kind

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.write.parquet import TypedOutput


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


def typed_output(output: OutputConfig) -> TypedOutput | None:
    """How Parquet results type the answer's column; None for any other format, which
    stores answers as they are (and so never imports pyarrow)."""
    if output_format(output.results) is not FileFormat.PARQUET:
        return None
    from pipeline.write.parquet import TypedOutput

    if output.answer_schema is not None:
        from pipeline.write.arrow_shape import output_shape

        shape = output_shape(output.answer_schema)
        return TypedOutput(output.result_fields.output, shape, steps=output.result_fields.steps)
    if output.vectors:
        return TypedOutput(output.result_fields.output, vectors=True)
    return None


def open_result_writer(
    path: str, schema: pa.Schema | None, typed: TypedOutput | None = None
) -> RowWriter:
    fmt = output_format(path)
    if fmt is None:
        return JsonlWriter(path)  # '-': standard output
    if fmt is FileFormat.PARQUET:
        from pipeline.write.parquet import ParquetWriter

        return ParquetWriter(path, schema, typed)
    return JsonlWriter(path, compress=fmt is FileFormat.JSONL_GZ)


def open_quarantine_writer(path: str) -> RowWriter:
    return JsonlWriter(path, compress=format_of(path) is FileFormat.JSONL_GZ)
