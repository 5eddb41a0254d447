"""What makes a re-run the same job: the inputs' identity and every option that shapes the output.

A resume is only sound when the re-run would have produced the very same rows,
so the fingerprint holds the inputs and everything that changes a request body
or the shape of the output files, and nothing that only changes speed
(concurrency, limits, retries). Never the API key.

Inputs are identified by their resolved path, size and a hash of their first
and last 64 KiB: cheap even for a 10 GB file. A change in the middle is caught
later, batch by batch, by the digests in the part files (see `resume.py`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

import orjson

from pipeline.core.config import STDIO, RequestConfig, RunConfig, shard_label
from pipeline.core.jsonio import dumps
from pipeline.write.writers import output_format

FINGERPRINT_VERSION = 2  # 2: checksummed parts, result field names, ids that are null
SAMPLE_BYTES = 1 << 16

# How each component is named to the user when it differs, and whether its
# values are short enough to show ("gpt-4o -> gpt-4o-mini").
_DESCRIPTIONS: dict[str, tuple[str, bool]] = {
    "version": ("the state format of this sluice version", True),
    "inputs": ("the inputs", False),
    "shard": ("the shard (--shard)", True),
    "requeue": ("whether the inputs are quarantine files (sluice retry)", True),
    "base_url": ("the base URL (--base-url)", True),
    "endpoint": ("the endpoint (--endpoint)", True),
    "model": ("the model (--model)", True),
    "prompt": ("the prompt template (--prompt)", False),
    "system": ("the system template (--system)", False),
    "max_tokens": ("--max-tokens", True),
    "temperature": ("--temperature", True),
    "options": ("the request options (-O)", True),
    "answers": ("the answers' JSON schema (--schema, --json)", False),
    "where": ("--where", True),
    "truncate": ("--truncate", True),
    "max_input_tokens": ("--max-input-tokens", True),
    "drop_skipped": ("--drop-skipped", True),
    "fallback_model": ("--fallback-model", True),
    "stream": ("--stream", True),
    "workflow": ("the workflow's steps (--workflow)", False),
    "input_field": ("--input-field", True),
    "id_field": ("--id-field", True),
    "batch_size": ("--batch-size", True),
    "output_format": ("the output format", True),
    "result_fields": ("the result field names (--result-prefix)", True),
}


def run_fingerprint(config: RunConfig, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    request = config.request
    return {
        "version": FINGERPRINT_VERSION,
        "inputs": inputs,
        "requeue": config.read.requeue,
        "base_url": config.connection.base_url.rstrip("/"),
        "endpoint": str(request.endpoint) if request.endpoint else "auto",
        "model": request.model,
        "prompt": _text_digest(request.prompt),
        "system": _text_digest(request.system),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "options": request.body_options,
        "answers": _answers_shape(request),
        **_selection(config),
        "input_field": request.input_field,
        "id_field": config.read.id_field,
        "batch_size": config.read.batch_size,
        "output_format": str(output_format(config.output.results) or "stdout"),
        "result_fields": list(config.output.result_fields.names),
    }


def _answers_shape(request: RequestConfig) -> str | None:
    """What answers must be: None (text), "json_object", or the schema's digest."""
    if request.schema is not None:
        return _text_digest(dumps(request.schema).decode())
    return "json_object" if request.json_output else None


def _selection(config: RunConfig) -> dict[str, Any]:
    """The options choosing and trimming items: only when set, so jobs that use none keep
    the fingerprint they always had."""
    request = config.request
    shard = config.read.shard
    chosen = {
        "shard": None if shard is None else shard_label(shard),
        "where": request.where,
        "truncate": [list(limit) for limit in request.truncate] or None,
        "max_input_tokens": request.max_input_tokens,
        "drop_skipped": config.output.drop_skipped or None,
        "fallback_model": request.fallback_model,
        "stream": request.stream or None,
        "workflow": _workflow_digest(config),
    }
    return {name: value for name, value in chosen.items() if value is not None}


def _workflow_digest(config: RunConfig) -> str | None:
    """The workflow's steps, as a digest (templates and schemas can be long)."""
    if config.workflow is None:
        return None
    identity = orjson.dumps(config.workflow.identity(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(identity).hexdigest()[:16]


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between two fingerprints, in words a user can act on."""
    changes = []
    for name in sorted(stored.keys() | current.keys(), key=_component_order):
        before, after = stored.get(name), current.get(name)
        if before == after:
            continue
        if name == "inputs":
            changes.extend(_input_changes(before or [], after or []))
            continue
        label, show_values = _DESCRIPTIONS.get(name, (name, True))
        changes.append(f"{label} ({_show(before)} -> {_show(after)})" if show_values else label)
    return changes


def input_identity(path: str) -> dict[str, Any]:
    """Cheap identity of one input; a pipe or stdin is checked by batch digests alone."""
    if path == STDIO:
        return {"path": STDIO}
    real = os.path.realpath(path)
    info = os.stat(real)
    if not stat.S_ISREG(info.st_mode):
        return {"path": real}
    return {"path": real, "size": info.st_size, "sample": _sample_digest(real, info.st_size)}


def _sample_digest(path: str, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(SAMPLE_BYTES))
        if size > SAMPLE_BYTES:
            handle.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()[:32]


def _text_digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:32]


def _input_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    paths_before = [entry.get("path") for entry in before]
    paths_after = [entry.get("path") for entry in after]
    if paths_before != paths_after:
        return [f"the input files ({_paths(paths_before)} -> {_paths(paths_after)})"]
    changes = []
    for old, new in zip(before, after, strict=True):
        if old.get("size") != new.get("size"):
            changes.append(f"input {new['path']} (size {old.get('size')} -> {new.get('size')})")
        elif old != new:
            changes.append(f"input {new['path']} (its content)")
    return changes


def _paths(paths: list[Any]) -> str:
    return ", ".join(str(path) for path in paths) or "none"


def _show(value: Any) -> str:
    return "unset" if value is None else repr(value)


def _component_order(name: str) -> int:
    names = list(_DESCRIPTIONS)
    return names.index(name) if name in names else len(names)
