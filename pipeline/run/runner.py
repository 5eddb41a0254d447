"""One `sluice run`, from inputs to committed outputs, summary and exit code.

This is the I/O edge of the engine: it opens the inputs, the state directory and
the HTTP session, and runs the engine. With a state directory each finished batch
is committed there, and the final files are assembled from those parts once all
are done; without one, rows go straight into the final files. Either way the
outputs appear under their names complete, or not at all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core.clock import Clock, SystemClock
from pipeline.core.config import RunConfig
from pipeline.core.counters import RunStats, error_rate_exceeded, summary_dict
from pipeline.core.errors import InputUnreadable, OutputError, SluiceError
from pipeline.core.formats import FileFormat
from pipeline.dispatch.transport import HttpTransport
from pipeline.engines.protocol import Progress
from pipeline.prepare.request_builder import RequestBuilder
from pipeline.read.sources import check_inputs
from pipeline.run.interrupts import Interrupted
from pipeline.run.wiring import RunWiring, TransportFactory
from pipeline.state.checkpoint import ArrowEncoding, CheckpointWriter
from pipeline.state.fingerprint import input_identity, run_fingerprint
from pipeline.state.store import RunState
from pipeline.write.atomic import open_output
from pipeline.write.final import (
    DirectWriter,
    FinalWriters,
    check_output_paths,
    parquet_result_schema,
    sweep_output_temps,
)
from pipeline.write.writers import output_format

EXIT_OK = 0
EXIT_ERROR_RATE = 1


@dataclass(slots=True)
class RunResult:
    exit_code: int
    stats: RunStats
    wall_seconds: float
    error: SluiceError | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    resumable_in: str | None = None  # the state directory, when the run stopped short
    warnings: list[str] = field(default_factory=list)


def http_transport(config: RunConfig) -> HttpTransport:
    return HttpTransport(
        config.base_url, config.api_key, config.concurrency, config.max_response_size
    )


async def run(
    config: RunConfig,
    progress: Progress,
    transport_factory: TransportFactory = http_transport,
    clock: Clock | None = None,
) -> RunResult:
    started = time.perf_counter()
    stats = RunStats()
    warnings: list[str] = []
    try:
        builder, state = _begin(config)
    except SluiceError as exc:
        # Refused before it began (bad input, unwritable output, lock held): a refused
        # run touches nothing, not even the summary of the run it was refused for.
        return RunResult(exc.exit_code, stats, time.perf_counter() - started, exc)
    job = RunWiring(
        config, builder, progress, stats, warnings, transport_factory, clock or SystemClock()
    )
    try:
        exit_code = await _run(config, job, state)
        error = None
    except SluiceError as exc:
        exit_code, error = exc.exit_code, exc
    except Interrupted as exc:
        exit_code, error = exc.exit_code, None
    wall = time.perf_counter() - started
    summary = summary_dict(stats, wall, exit_code)
    result = RunResult(exit_code, stats, wall, error, summary, warnings=warnings)
    resumable = error is None or error.resumable
    if exit_code not in (EXIT_OK, EXIT_ERROR_RATE) and resumable and _has_state(config):
        result.resumable_in = config.state_dir
    if config.summary_path is not None:
        write_summary(config.summary_path, result.summary)
    return result


def _begin(config: RunConfig) -> tuple[RequestBuilder, RunState | None]:
    """Everything that can turn a run away, before it touches a file."""
    check_inputs(config.inputs)
    check_output_paths(config)
    builder = RequestBuilder(config.request)
    state = None
    if config.state_dir is not None:
        state = RunState(config.state_dir)
        state.open(_fingerprint(config), config.fresh)
    # Ours now (the lock is held, or there is no state): leftovers of killed runs can go.
    sweep_output_temps(config)
    return builder, state


def _has_state(config: RunConfig) -> bool:
    return config.state_dir is not None and os.path.isdir(config.state_dir)


async def _run(config: RunConfig, job: RunWiring, state: RunState | None) -> int:
    if state is None:
        return await _run_direct(config, job)
    try:
        job.warnings.extend(state.warnings)  # damaged parts found, and redone
        job.stats.resume_from(state.totals)
        job.progress.update(job.stats)
        encoding = _arrow_encoding(config, state)
        writer = CheckpointWriter(state.parts_dir, config.id_field, encoding, config.result_fields)
        stopped = await job.run(writer, state.resume)
        if stopped is not None:
            return stopped
        _finalize(config, state, state.resume.batches + writer.batches_written)
    finally:
        state.close()
    return _finished_exit_code(config, job.stats)


async def _run_direct(config: RunConfig, job: RunWiring) -> int:
    writer = DirectWriter(config)
    try:
        stopped = await job.run(writer, None)
        if stopped is not None:
            writer.files.abort()
            return stopped
        writer.files.commit()
    except BaseException:
        writer.files.abort()
        raise
    return _finished_exit_code(config, job.stats)


def _finished_exit_code(config: RunConfig, stats: RunStats) -> int:
    return EXIT_ERROR_RATE if error_rate_exceeded(stats, config.max_error_rate) else EXIT_OK


def _fingerprint(config: RunConfig) -> dict[str, Any]:
    try:
        inputs = [input_identity(path) for path in config.inputs]
    except OSError as exc:  # unreadable (permissions, vanished since checked)
        raise InputUnreadable(f"cannot read {exc.filename!r}: {exc.strerror}") from exc
    return run_fingerprint(config, inputs)


def _arrow_encoding(config: RunConfig, state: RunState) -> ArrowEncoding | None:
    if output_format(config.output) is not FileFormat.PARQUET:
        return None
    return ArrowEncoding(parquet_result_schema(config) or state.results_schema())


def _finalize(config: RunConfig, state: RunState, batches: int) -> None:
    """Every batch is committed: assemble the final files in input order, atomically."""
    files = FinalWriters(config)
    try:
        state.assemble(files.results, files.quarantine, batches)
        files.commit()
    except BaseException:
        files.abort()
        raise
    state.finish()


def write_summary(path: str, summary: dict[str, Any]) -> None:
    target = open_output(path)
    try:
        target.handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    except (OSError, ValueError) as exc:
        target.abort()
        raise OutputError(f"cannot write the summary to {path!r}: {exc}") from exc
    target.commit()
