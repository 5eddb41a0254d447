"""`sluice reduce`: result rows grouped, chunked and reduced by the model, level by level,
until one answer per group remains.

Each level is an ordinary run (root.run) over a file of chunk items in the
reduce's state directory, with its own checkpoints: a killed reduce resumes
inside the level it was in, and the cache spares every answer already paid for.
Finished levels are recorded in `reduce.json` (checksummed) and never run again;
their results are read back to rebuild what the next level needs, since the
chunking is deterministic. The final files are written atomically together once
every group has its answer or its failure, and the state directory is removed.

    <state>/reduce.json                 the job and the levels done
    <state>/level-N.jsonl               level N's chunk items
    <state>/level-N.results.jsonl       their answers; level-N.quarantine.jsonl
    <state>/level-N.state/              level N's run checkpoints (while it runs)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from pipeline.core.config import (
    RESULT_FIELDS,
    OutputConfig,
    ReadConfig,
    RunConfig,
    StateConfig,
)
from pipeline.core.errors import ConfigError, InputUnreadable
from pipeline.core.jsonio import dumps_lines
from pipeline.core.models import Item
from pipeline.observe.progress import Progress
from pipeline.prepare.request_builder import InvalidItem, RequestBuilder
from pipeline.prepare.where import Where, WhereEvalError, compile_where
from pipeline.protocol.token_count import prompt_tokens, text_tokens
from pipeline.read.sources import check_inputs, read_records
from pipeline.run.result import EXIT_ERROR_RATE, EXIT_OK, RunResult
from pipeline.run.root import run
from pipeline.state.fingerprint import input_identity
from pipeline.state.reduce_manifest import levels_done, save_levels_done
from pipeline.workflow.reduce_levels import GroupEnd, ReduceLevels
from pipeline.write.atomic import AtomicFile
from pipeline.write.final import FinalWriters

# A chunk's rows are kept under the prompt budget less what the template itself takes,
# with this many tokens to spare for the estimate's error.
MARGIN = 64


@dataclass(frozen=True, slots=True)
class ReduceSpec:
    inputs: tuple[str, ...]  # result files (or any JSONL/Parquet rows)
    group_by: str | None  # an expression in the --where language; None: one group
    results: str  # one row per group
    quarantine: str  # groups that got no answer, and rows that could not be grouped
    directory: str  # the reduce's state directory
    budget: int  # prompt tokens per request (--max-input-tokens)
    fresh: bool = False


@dataclass(slots=True)
class ReduceResult:
    exit_code: int
    groups: int = 0
    failed: int = 0
    rows: int = 0
    depth: int = 0  # levels the deepest group took
    levels: list[dict[str, Any]] = field(default_factory=list)  # each level's run summary
    stopped: RunResult | None = None  # the level run that stopped short (resumable)


async def reduce(
    base: RunConfig, spec: ReduceSpec, progress_for: Callable[[int], Progress]
) -> ReduceResult:
    """The whole reduce; `base` is the run settings every level shares."""
    check_inputs(spec.inputs)
    group_by = compile_where(spec.group_by, label="--group-by") if spec.group_by else None
    overhead = _template_tokens(base)
    if overhead + MARGIN >= spec.budget:
        raise ConfigError(
            f"--max-input-tokens {spec.budget:,} leaves no room for rows: the template "
            f"alone is about {overhead:,} tokens"
        )
    levels = ReduceLevels(spec.budget - overhead - MARGIN, _row_tokens)
    job = _job(base, spec)
    done = levels_done(spec.directory, job, spec.fresh)
    result = ReduceResult(EXIT_OK)
    unusable: list[dict[str, Any]] = []
    items = _level_zero(levels, group_by, spec.inputs, unusable, result)
    level = 0
    while _write_level(spec.directory, level, items):
        if level >= done:
            outcome = await run(_level_config(base, spec, level), progress_for(level))
            result.levels.append(outcome.summary)
            if outcome.exit_code not in (EXIT_OK, EXIT_ERROR_RATE):
                result.exit_code, result.stopped = outcome.exit_code, outcome
                return result
            done = level + 1
            save_levels_done(spec.directory, job, done)
        failures, answers = _level_outcome(spec.directory, level)
        items = levels.next_level(failures, answers)
        items = _chained(items, levels.finish_level)
        level += 1
    _finish(spec, base.output, levels.ends, unusable, result)
    return result


def _level_zero(
    levels: ReduceLevels,
    group_by: Where | None,
    inputs: Iterable[str],
    unusable: list[dict[str, Any]],
    result: ReduceResult,
) -> Iterator[dict[str, Any]]:
    for record in read_records(inputs):
        result.rows += 1
        why = record.problem or (None if record.row is not None else "not a JSON object")
        group = None
        if why is None and group_by is not None and record.row is not None:
            try:
                group = group_by.value(record.row)
            except WhereEvalError as exc:
                why = str(exc)
        if why is not None or record.row is None:
            unusable.append(_unusable_row(record.source, record.line, record.row, why))
            continue
        yield from levels.add_input(group, record.row)
    yield from levels.finish_level()


def _chained(
    first: Iterator[dict[str, Any]], then: Callable[[], Iterator[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    yield from first
    yield from then()


def _write_level(directory: str, level: int, items: Iterator[dict[str, Any]]) -> bool:
    """Level `level`'s chunk items into its file (atomically); False when it has none."""
    target = AtomicFile(_path(directory, level, "jsonl"))
    written = 0
    try:
        batch: list[dict[str, Any]] = []
        for item in items:
            batch.append(item)
            if len(batch) == 256:
                target.handle.write(dumps_lines(batch))
                written, batch = written + len(batch), []
        target.handle.write(dumps_lines(batch))
        written += len(batch)
        target.commit()
    except BaseException:
        target.abort()
        raise
    return written > 0


def _level_config(base: RunConfig, spec: ReduceSpec, level: int) -> RunConfig:
    """Level `level` as a run: its chunk file in, its answers and failures out."""
    directory = spec.directory
    return replace(
        base,
        read=ReadConfig(inputs=(_path(directory, level, "jsonl"),), id_field="id"),
        output=base.output._replace(
            results=_path(directory, level, "results.jsonl"),
            quarantine=_path(directory, level, "quarantine.jsonl"),
            summary=None,
            trace=None,
            metrics=None,
            result_fields=RESULT_FIELDS,  # read back here by these names
            answer_schema=None,
        ),
        state=StateConfig(directory=_path(directory, level, "state"), fresh=False),
        max_error_rate=1.0,  # a failed chunk fails its group: the reduce decides the exit
    )


def _level_outcome(
    directory: str, level: int
) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
    """The level's failed chunk items (with their errors), and its answered ones."""
    failures = [
        {"group": row["item"]["group"], "chunk": row["item"]["chunk"], "error": row["error"]}
        for row in _rows(_path(directory, level, "quarantine.jsonl"))
    ]
    return failures, _rows(_path(directory, level, "results.jsonl"))


def _rows(path: str) -> Iterator[dict[str, Any]]:
    if not os.path.exists(path):
        return
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


def _finish(
    spec: ReduceSpec,
    output: OutputConfig,
    ends: list[GroupEnd],
    unusable: list[dict[str, Any]],
    result: ReduceResult,
) -> None:
    """The final files, written together (a row per group, in the order the groups first
    appeared); then the state directory goes."""
    files = FinalWriters(output._replace(results=spec.results, quarantine=spec.quarantine), None)
    answered = [_group_row(end) for end in ends if end.failure is None]
    failed = [_failed_row(end) for end in ends if end.failure is not None]
    try:
        if answered:
            files.results.write_rows(answered)
        if failed or unusable:
            files.quarantine.write_rows(failed + unusable)
        files.commit()
    except BaseException:
        files.abort()
        raise
    result.groups, result.failed = len(answered), len(failed) + len(unusable)
    result.depth = max((end.levels for end in ends), default=0)
    if result.failed:
        result.exit_code = EXIT_ERROR_RATE
    shutil.rmtree(spec.directory, ignore_errors=True)


def _group_row(end: GroupEnd) -> dict[str, Any]:
    return {"group": end.value, "output": end.answer, "rows": end.covers, "levels": end.levels}


def _failed_row(end: GroupEnd) -> dict[str, Any]:
    return {"group": end.value, "rows": end.covers, "error": end.failure}


def _unusable_row(source: str, line: int, row: Any, why: str | None) -> dict[str, Any]:
    error = {"kind": "invalid_input", "message": why or "invalid row"}
    return {"item": row, "error": error, "source": {"file": source, "line": line}}


def _row_tokens(row: dict[str, Any]) -> int:
    """A row's share of a prompt, estimated from its JSON (at least 1)."""
    return max(1, text_tokens(orjson.dumps(row, default=str).decode()))


def _template_tokens(base: RunConfig) -> int:
    """What the prompt takes without rows: the templates rendered with none."""
    empty: dict[str, Any] = {
        "id": "0-0",
        "group": None,
        "level": 0,
        "chunk": 0,
        "covers": 0,
        "rows": [],
    }
    try:
        request = RequestBuilder(base.request).build(Item(0, "", 0, empty, "0-0"))
    except InvalidItem as exc:
        raise ConfigError(f"the reduce template cannot be rendered: {exc}") from exc
    return prompt_tokens(request.body)


def _job(base: RunConfig, spec: ReduceSpec) -> dict[str, Any]:
    """What makes a resumed reduce the same job: its inputs, grouping and requests."""
    try:
        inputs = [input_identity(path) for path in spec.inputs]
    except OSError as exc:
        raise InputUnreadable(f"cannot read {exc.filename!r}: {exc.strerror}") from exc
    request = base.request
    return {
        "inputs": inputs,
        "group_by": spec.group_by,
        "budget": spec.budget,
        "model": request.model,
        "prompt": request.prompt,
        "system": request.system,
        "schema": request.schema,
        "options": request.body_options,
        "base_url": base.connection.base_url,
    }


def _path(directory: str, level: int, suffix: str) -> str:
    return os.path.join(directory, f"level-{level}.{suffix}")
