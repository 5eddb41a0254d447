"""The final results and quarantine files of a run, written directly or from a checkpoint."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipeline.core.config import Endpoint, OutputConfig, RequestConfig, result_field_clash
from pipeline.core.errors import ConfigError, OutputError
from pipeline.core.formats import FileFormat
from pipeline.core.models import Batch, Outcome, Success
from pipeline.protocol.batch_lines import is_batch_line
from pipeline.read.sources import input_format, parquet_schema
from pipeline.write.atomic import publish_together, sweep_stale_temps
from pipeline.write.paths import Target, target_kind
from pipeline.write.rows import quarantine_row, result_row
from pipeline.write.writers import (
    RowWriter,
    open_quarantine_writer,
    open_result_writer,
    output_format,
    typed_output,
)

if TYPE_CHECKING:
    import pyarrow as pa


def check_output_paths(output: OutputConfig) -> None:
    """Fail before any request is paid for if an output could not be written at the end.

    Only looks: a run turned away by another's lock must not have touched a file.
    """
    for path in output.paths:
        check_writable(path)


def check_writable(path: str) -> None:
    kind = target_kind(path)
    if kind is Target.STDOUT:
        return
    if kind is Target.DIRECT:
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {path!r}: permission denied")
        return
    directory = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(directory):
        raise OutputError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path!r}: it is a directory")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"cannot write {path!r}: directory {directory!r} is not writable")


def sweep_output_temps(output: OutputConfig) -> None:
    """Temp files left beside the outputs by a run killed while writing them."""
    for path in output.paths:
        sweep_stale_temps(path)


class FinalWriters:
    """The results and quarantine files, published together or not at all."""

    def __init__(self, output: OutputConfig, result_schema: pa.Schema | None) -> None:
        self.results = open_result_writer(output.results, result_schema, typed_output(output))
        try:
            self.quarantine: RowWriter = open_quarantine_writer(output.quarantine)
        except BaseException:
            self.results.abort()
            raise

    def commit(self) -> None:
        """Both files complete and on disk first; only then is either renamed into place."""
        self.results.finish()
        self.quarantine.finish()
        publish_together([self.results.target, self.quarantine.target])

    def abort(self) -> None:
        self.results.abort()
        self.quarantine.abort()


class DirectWriter:
    """Without a state directory: each batch goes straight into the final files."""

    def __init__(
        self, output: OutputConfig, id_field: str, result_schema: pa.Schema | None
    ) -> None:
        self.files = FinalWriters(output, result_schema)
        self._id_field = id_field
        self._fields = output.result_fields
        self._drop = output.drop_skipped  # items --where skipped get no result row

    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        for _, outcomes in batches:
            good = [
                result_row(o, self._id_field, self._fields)
                for o in outcomes
                if isinstance(o, Success) and not (o.skipped and self._drop)
            ]
            bad = [quarantine_row(o) for o in outcomes if not isinstance(o, Success)]
            if good:
                self.files.results.write_rows(good)
            if bad:
                self.files.quarantine.write_rows(bad)


def parquet_result_schema(
    output: OutputConfig, inputs: tuple[str, ...], id_field: str, request: RequestConfig
) -> pa.Schema | None:
    """For Parquet in and out, the result schema follows the input's, fixed up front."""
    if output_format(output.results) is not FileFormat.PARQUET:
        return None
    if not all(input_format(path) is FileFormat.PARQUET for path in inputs):
        return None
    import pyarrow as pa  # only now: Parquet in and out

    from pipeline.write.parquet import result_schema

    try:
        schema = pa.unify_schemas([parquet_schema(path) for path in inputs])
    except (pa.ArrowException, OSError):
        return None  # reading will report the unreadable input with its own message
    endpoint = request.endpoint
    if endpoint is None and not is_batch_line(schema.names):
        endpoint = Endpoint.CHAT
    if endpoint is None or endpoint is Endpoint.RAW:
        return None
    names = output.result_fields
    if clash := names.clash(schema.names):
        raise ConfigError(result_field_clash(clash))
    typed = typed_output(output)
    if typed is not None:
        output_type = typed.type_for([])  # vectors: their size is filled in by the first rows
    elif endpoint is Endpoint.EMBEDDINGS:
        output_type = pa.list_(pa.float32())
    else:
        output_type = pa.string()
    return result_schema(schema, id_field, output_type, names)
