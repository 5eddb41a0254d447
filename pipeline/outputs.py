"""The final results and quarantine files of a run, written directly or from a checkpoint."""

from __future__ import annotations

import os

import pyarrow as pa

from pipeline.config import STDIO, Endpoint, RunConfig
from pipeline.errors import OutputError
from pipeline.formats import FileFormat
from pipeline.identity import is_batch_line
from pipeline.models import Batch, Outcome, Success
from pipeline.rows import quarantine_row, result_row
from pipeline.sinks import (
    RowWriter,
    open_quarantine_writer,
    open_result_writer,
    output_format,
    result_schema,
)
from pipeline.sources import input_format, parquet_schema


def check_output_paths(config: RunConfig) -> None:
    """Fail before any request is paid for if the outputs could not be written at the end.

    Only looks: a run turned away by another's lock must not have touched a file.
    """
    for path in (config.output, config.quarantine):
        if path == STDIO:
            continue
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise OutputError(f"cannot write {path!r}: directory {directory!r} does not exist")
        if os.path.isdir(path):
            raise OutputError(f"cannot write {path!r}: it is a directory")
        if not os.access(directory, os.W_OK):
            raise OutputError(f"cannot write {path!r}: directory {directory!r} is not writable")


class FinalWriters:
    """The results and quarantine files, committed together or not at all."""

    def __init__(self, config: RunConfig) -> None:
        self.results = open_result_writer(config.output, parquet_result_schema(config))
        try:
            self.quarantine: RowWriter = open_quarantine_writer(config.quarantine)
        except BaseException:
            self.results.abort()
            raise

    def commit(self) -> None:
        self.quarantine.commit()
        self.results.commit()

    def abort(self) -> None:
        self.results.abort()
        self.quarantine.abort()


class DirectWriter:
    """Without a state directory: each batch goes straight into the final files."""

    def __init__(self, config: RunConfig) -> None:
        self.files = FinalWriters(config)
        self._id_field = config.id_field

    async def write(self, batches: list[tuple[Batch, list[Outcome]]]) -> None:
        for _, outcomes in batches:
            good = [result_row(o, self._id_field) for o in outcomes if isinstance(o, Success)]
            bad = [quarantine_row(o) for o in outcomes if not isinstance(o, Success)]
            if good:
                self.files.results.write_rows(good)
            if bad:
                self.files.quarantine.write_rows(bad)


def parquet_result_schema(config: RunConfig) -> pa.Schema | None:
    """For Parquet in and out, the result schema follows the input's, fixed up front."""
    if output_format(config.output) is not FileFormat.PARQUET:
        return None
    if not all(input_format(path) is FileFormat.PARQUET for path in config.inputs):
        return None
    try:
        schema = pa.unify_schemas([parquet_schema(path) for path in config.inputs])
    except (pa.ArrowException, OSError):
        return None  # reading will report the unreadable input with its own message
    endpoint = config.request.endpoint
    if endpoint is None and not is_batch_line(schema.names):
        endpoint = Endpoint.CHAT
    if endpoint is None or endpoint is Endpoint.RAW:
        return None
    output_type = pa.list_(pa.float64()) if endpoint is Endpoint.EMBEDDINGS else pa.string()
    return result_schema(schema, config.id_field, output_type)
