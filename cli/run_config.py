"""From the flags of `sluice run` to a validated RunConfig (no I/O beyond reading templates)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cli.cache import default_cache_dir
from cli.endpoint_options import api_key_from_env, checked_base_url
from cli.units import parse_duration, parse_size
from pipeline.core.config import (
    STDIO,
    CacheConfig,
    ConnectionConfig,
    Endpoint,
    OutputConfig,
    ReadConfig,
    RequestConfig,
    ResultFields,
    RetryConfig,
    RunConfig,
    StateConfig,
    TrafficConfig,
)
from pipeline.core.errors import InputMissing, InputUnreadable, UsageError
from pipeline.core.formats import without_format_suffix
from pipeline.state.store import default_state_dir
from pipeline.write.paths import Target, check_distinct, target_kind
from pipeline.write.writers import output_format


@dataclass(frozen=True, slots=True)
class RunFlags:
    """The flags of `sluice run` (and `sluice retry`) as given, before they are checked."""

    inputs: list[str]
    output: str
    quarantine: str | None
    summary: str | None
    result_prefix: str
    model: str | None
    prompt: str | None
    prompt_file: Path | None
    system: str | None
    system_file: Path | None
    endpoint: Endpoint | None
    input_field: str
    id_field: str
    max_tokens: int | None
    temperature: float | None
    option: list[str] | None
    concurrency: int
    batch_size: int
    timeout: float
    max_response_size: str
    adaptive_timeout: bool
    rpm: float | None
    tpm: float | None
    retry_budget: float
    breaker_timeout: float
    max_retries: int
    retry_backoff: float
    base_url: str
    api_key_env: str
    allow_insecure_http: bool
    max_error_rate: float
    state_dir: Path | None
    state: bool
    fresh: bool
    grace: float
    cache: bool
    refresh_cache: bool
    cache_dir: Path | None
    cache_ttl: str | None
    cache_size: str | None


def build_config(flags: RunFlags, requeue: bool = False) -> RunConfig:
    base_url = checked_base_url(flags.base_url, flags.allow_insecure_http)
    output = flags.output
    output_format(output)  # an unknown extension is a usage error, found before any work
    quarantine = flags.quarantine or default_quarantine_path(output)
    state_dir = _state_dir(flags, output)
    summary = str(flags.summary) if flags.summary is not None else None
    check_distinct(
        flags.inputs,
        [
            ("--output", output),
            ("--quarantine", quarantine),
            ("--summary", summary),
            ("--state-dir", state_dir),
        ],
    )
    request = RequestConfig(
        endpoint=flags.endpoint,
        model=flags.model,
        prompt=_text_or_file(flags.prompt, flags.prompt_file, "--prompt"),
        system=_text_or_file(flags.system, flags.system_file, "--system"),
        max_tokens=flags.max_tokens,
        temperature=flags.temperature,
        body_options=parse_body_options(flags.option or []),
        input_field=flags.input_field,
    )
    return RunConfig(
        read=ReadConfig(
            inputs=tuple(flags.inputs),
            id_field=flags.id_field,
            batch_size=flags.batch_size,
            requeue=requeue,
        ),
        request=request,
        output=OutputConfig(
            results=output,
            quarantine=quarantine,
            summary=summary,
            result_fields=ResultFields.prefixed(flags.result_prefix),
        ),
        connection=ConnectionConfig(
            base_url=base_url,
            api_key=api_key_from_env(flags.api_key_env, base_url),
            max_response_size=parse_size(flags.max_response_size),
        ),
        traffic=TrafficConfig(
            rpm=flags.rpm,
            tpm=flags.tpm,
            concurrency=flags.concurrency,
            timeout=flags.timeout,
            retry_budget=flags.retry_budget,
            breaker_timeout=flags.breaker_timeout,
            adaptive_timeout=flags.adaptive_timeout,
        ),
        retry=RetryConfig(max_retries=flags.max_retries, backoff_base=flags.retry_backoff),
        cache=_cache(flags),
        state=StateConfig(directory=state_dir, fresh=flags.fresh),
        max_error_rate=flags.max_error_rate,
        grace=flags.grace,
    )


def _cache(flags: RunFlags) -> CacheConfig | None:
    if not flags.cache:
        if flags.refresh_cache:
            raise UsageError("give --refresh-cache or --no-cache, not both")
        return None
    ttl = flags.cache_ttl
    return CacheConfig(
        directory=str(flags.cache_dir or default_cache_dir()),
        # None keeps the limit the cache has (prune --max-size or an earlier --cache-size).
        size_limit=parse_size(flags.cache_size) if flags.cache_size is not None else None,
        ttl=parse_duration(ttl) if ttl is not None else None,
        read=not flags.refresh_cache,
    )


def _state_dir(flags: RunFlags, output: str) -> str | None:
    if not flags.state:
        if flags.state_dir is not None:
            raise UsageError("give --state-dir or --no-state, not both")
        return None
    if flags.state_dir is not None:
        if str(flags.state_dir) == STDIO:
            raise UsageError("--state-dir names a directory; - (standard output) cannot be one")
        return os.path.abspath(flags.state_dir)
    if target_kind(output) is not Target.FILE:
        return None  # never a state directory in /dev beside /dev/stdout
    return default_state_dir(output)


def _text_or_file(text: str | None, path: Path | None, flag: str) -> str | None:
    if text is not None and path is not None:
        raise UsageError(f"give {flag} or {flag}-file, not both")
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputMissing(f"{flag}-file {str(path)!r} does not exist") from exc
    except IsADirectoryError as exc:
        raise InputMissing(f"{flag}-file {str(path)!r} is a directory") from exc
    except OSError as exc:
        raise InputUnreadable(f"cannot read {flag}-file {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputUnreadable(f"{flag}-file {str(path)!r} is not UTF-8 text ({exc})") from exc


RESERVED_BODY_FIELDS = {
    "model": "use -m/--model",
    "messages": "use --prompt and --system",
    "input": "use --input-field",
    "stream": "sluice reads whole answers, not streams",
}


def parse_body_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-O expects key=value, got {pair!r}")
        key = key.strip()
        if key in RESERVED_BODY_FIELDS:
            raise UsageError(f"-O {key}=... is not allowed: {RESERVED_BODY_FIELDS[key]}")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


def default_quarantine_path(output: str) -> str:
    if target_kind(output) is not Target.FILE:
        # A name in the working directory would be shared by every pipeline run there.
        raise UsageError(
            "with results on standard output or a device, say where failed items go: "
            "--quarantine FILE"
        )
    path = Path(output)
    return str(path.with_name(without_format_suffix(path.name) + ".quarantine.jsonl"))
