"""From the flags of `sluice run` to a validated RunConfig (no I/O beyond reading templates)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cli.cache import default_cache_dir
from cli.endpoint_options import api_key_from_env, checked_base_url
from cli.option_values import parse_body_options, parse_shard, parse_truncations
from cli.scale_config import engine_config, shared_limits_path
from cli.schema_option import load_schema
from cli.units import parse_duration, parse_size
from pipeline.core.config import (
    STDIO,
    CacheConfig,
    ConnectionConfig,
    Endpoint,
    ObserveConfig,
    OutputConfig,
    ReadConfig,
    RequestConfig,
    ResultFields,
    RetryConfig,
    RunConfig,
    Secret,
    SpendConfig,
    StateConfig,
    TrafficConfig,
)
from pipeline.core.errors import InputMissing, InputUnreadable, UsageError
from pipeline.core.formats import without_format_suffix
from pipeline.observe.trace_ids import new_trace_id
from pipeline.report.history import default_job_name, safe_job_name
from pipeline.state.store import default_state_dir
from pipeline.write.paths import Target, check_distinct, target_kind
from pipeline.write.writers import output_format

if TYPE_CHECKING:
    from pipeline.workflow.steps import Workflow


class RunFlags(NamedTuple):
    """The flags of `sluice run` (and `retry`, `plan`) as given, before they are checked.

    A NamedTuple rather than a frozen dataclass: defining one of 77 fields that way
    costs every start of a run ~7 ms more."""

    inputs: list[str]
    output: str | None
    quarantine: str | None
    summary: str | None
    result_prefix: str
    id_field: str
    batch_size: int
    shard: str | None
    model: str | None
    prompt: str | None
    prompt_file: Path | None
    system: str | None
    system_file: Path | None
    endpoint: Endpoint | None
    input_field: str
    inputs_per_request: int
    max_tokens: int | None
    temperature: float | None
    stream: bool
    fallback_model: str | None
    workflow: Path | None
    schema: str | None
    json_answers: bool
    schema_retries: int
    option: list[str] | None
    where: str | None
    drop_skipped: bool
    truncate: list[str] | None
    max_input_tokens: int | None
    concurrency: int
    timeout: float
    idle_timeout: float
    max_response_size: str
    adaptive_timeout: bool
    rpm: float | None
    shared_limits: str | None
    engine: str
    ray_address: str | None
    ray_workers: int | None
    tpm: float | None
    retry_budget: float
    breaker_timeout: float
    max_retries: int
    retry_backoff: float
    base_url: str
    api_key_env: str
    allow_insecure_http: bool
    max_cost: float | None
    max_requests: int | None
    deadline: str | None
    price_in: float | None
    price_out: float | None
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
    quiet: bool
    verbose: bool
    log_format: str
    log_every: float
    job: str | None
    trace_file: str | None
    trace_content: bool
    metrics_file: str | None
    alert_webhook: str | None
    alert_error_rate: float
    alert_min_severity: str
    dry_run: bool
    show: int
    json: bool  # --json: JSON answers on a run, the plan as JSON on a plan
    probe_limits: bool

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> RunFlags:
        """From the parsed parameters of the command, by name."""
        return cls(**{name: params[name] for name in cls._fields})


class Loaded(NamedTuple):
    """A schema (and the name it is sent under) or a workflow read from elsewhere than
    the flags' files."""

    schema: tuple[dict[str, Any], str] | None = None
    workflow: Workflow | None = None


LOG_FORMATS = ("text", "json")
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SEVERITIES = ("info", "warning", "critical")


def build_config(
    flags: RunFlags,
    requeue: bool = False,
    planning: bool = False,
    loaded: Loaded | None = None,
) -> RunConfig:
    """The run's config from its flags; `loaded` gives a schema or workflow already read
    (sluice serve's jobs carry them in their requests, never as files)."""
    loaded = loaded or Loaded()
    _check_operator_flags(flags, planning)
    base_url = checked_base_url(flags.base_url, flags.allow_insecure_http)
    if flags.output is None and not planning:
        raise UsageError("Missing option '--output' / '-o': where the results go")
    output = flags.output or STDIO
    output_format(output)  # an unknown extension is a usage error, found before any work
    unnamed = planning and flags.output is None  # a plan writes nothing; no names needed
    quarantine = flags.quarantine or (STDIO if unnamed else default_quarantine_path(output))
    state_dir = _state_dir(flags, output)
    summary = str(flags.summary) if flags.summary is not None else None
    check_distinct(
        flags.inputs,
        [
            ("--output", None if unnamed else output),
            ("--quarantine", None if unnamed else quarantine),
            ("--summary", summary),
            ("--state-dir", state_dir),
            ("--trace-file", flags.trace_file),
            ("--metrics-file", flags.metrics_file),
        ],
    )
    schema, schema_name = loaded.schema or (
        load_schema(flags.schema) if flags.schema else (None, "output")
    )
    body_options = parse_body_options(flags.option or [])
    # A run's --json asks for JSON answers; a plan's prints the plan as JSON.
    json_answers = flags.json_answers or (flags.json and not planning)
    if "response_format" in body_options and (schema is not None or json_answers):
        raise UsageError("give --schema/--json or -O response_format=..., not both")
    request = RequestConfig(
        endpoint=flags.endpoint,
        model=flags.model,
        prompt=_text_or_file(flags.prompt, flags.prompt_file, "--prompt"),
        system=_text_or_file(flags.system, flags.system_file, "--system"),
        max_tokens=flags.max_tokens,
        temperature=flags.temperature,
        body_options=body_options,
        input_field=flags.input_field,
        schema=schema,
        schema_name=schema_name,
        json_output=json_answers or schema is not None,
        where=flags.where,
        truncate=parse_truncations(flags.truncate or []),
        max_input_tokens=flags.max_input_tokens,
        fallback_model=flags.fallback_model,
        inputs_per_request=flags.inputs_per_request,
        stream=flags.stream,
    )
    if flags.drop_skipped and flags.where is None:
        raise UsageError("--drop-skipped leaves out the items --where skips: give --where too")
    workflow = _workflow(loaded.workflow, flags.workflow, request, flags.fallback_model)
    if workflow is not None:
        from pipeline.workflow.requests import answers_schema

        schema = answers_schema(request, workflow)
    return RunConfig(
        read=ReadConfig(
            inputs=tuple(flags.inputs),
            id_field=flags.id_field,
            batch_size=flags.batch_size,
            shard=parse_shard(flags.shard) if flags.shard is not None else None,
            requeue=requeue,
        ),
        request=request,
        output=OutputConfig(
            results=output,
            quarantine=quarantine,
            summary=summary,
            result_fields=ResultFields.prefixed(
                flags.result_prefix,
                flags.where is not None,
                flags.fallback_model is not None,
                steps=workflow is not None,
            ),
            drop_skipped=flags.drop_skipped,
            answer_schema=schema,
            vectors=flags.endpoint is Endpoint.EMBEDDINGS,
            trace=flags.trace_file,
            metrics=flags.metrics_file,
        ),
        connection=ConnectionConfig(
            base_url=base_url,
            api_key=_api_key(flags, base_url, planning),
            max_response_size=parse_size(flags.max_response_size),
        ),
        traffic=TrafficConfig(
            rpm=flags.rpm,
            shared_limits=shared_limits_path(flags.shared_limits),
            tpm=flags.tpm,
            concurrency=flags.concurrency,
            timeout=flags.timeout,
            idle_timeout=flags.idle_timeout,
            retry_budget=flags.retry_budget,
            breaker_timeout=flags.breaker_timeout,
            adaptive_timeout=flags.adaptive_timeout,
        ),
        retry=RetryConfig(
            max_retries=flags.max_retries,
            backoff_base=flags.retry_backoff,
            max_invalid_output_retries=flags.schema_retries,
        ),
        cache=_cache(flags),
        state=StateConfig(directory=state_dir, fresh=flags.fresh),
        spend=_spend(flags),
        observe=ObserveConfig(
            job=_job(flags, output),
            trace_content=flags.trace_content,
            trace_id=new_trace_id(),  # known before the run: log lines carry it
        ),
        max_error_rate=flags.max_error_rate,
        grace=flags.grace,
        workflow=workflow,
        engine=engine_config(flags, planning),
    )


def _workflow(
    loaded: Workflow | None, path: Path | None, request: RequestConfig, fallback: str | None
) -> Workflow | None:
    """The run's workflow (from the config file, else --workflow), checked against the
    run's request settings; None without one. Only a workflow's run imports the
    workflow engine."""
    if loaded is not None:
        from cli.workflow_file import check_workflow

        check_workflow(loaded, request, fallback)
        return loaded
    if path is not None:
        from cli.workflow_file import workflow_for_run

        return workflow_for_run(path, request, fallback)
    return None


def _check_operator_flags(flags: RunFlags, planning: bool) -> None:
    if not planning and (flags.show or flags.probe_limits):
        raise UsageError("--show and --probe-limits go with --dry-run (or sluice plan)")
    if flags.log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format is text or json, not {flags.log_format!r}")
    if flags.alert_min_severity not in SEVERITIES:
        raise UsageError(
            f"--alert-min-severity is one of {', '.join(SEVERITIES)}, "
            f"not {flags.alert_min_severity!r}"
        )
    collector = any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES)
    if flags.trace_content and flags.trace_file is None and not collector:
        raise UsageError("--trace-content needs --trace-file (or an OpenTelemetry collector)")
    if flags.alert_webhook is not None:
        from pipeline.report.webhook import check_webhook_url

        check_webhook_url(flags.alert_webhook)


def _job(flags: RunFlags, output: str) -> str:
    job = flags.job if flags.job is not None else default_job_name(output)
    safe_job_name(job)  # a name no history file can have is refused before the run
    return job


def _api_key(flags: RunFlags, base_url: str, planning: bool) -> Secret | None:
    """A plan sends nothing (unless --probe-limits), so it runs without a key."""
    if planning and not flags.probe_limits and not os.environ.get(flags.api_key_env):
        return None
    return api_key_from_env(flags.api_key_env, base_url)


def _spend(flags: RunFlags) -> SpendConfig:
    if (flags.price_in is None) != (flags.price_out is None):
        raise UsageError("give --price-in and --price-out together")
    deadline = parse_duration(flags.deadline) if flags.deadline is not None else None
    return SpendConfig(
        max_cost=flags.max_cost,
        max_requests=flags.max_requests,
        deadline=deadline,
        price_in=flags.price_in,
        price_out=flags.price_out,
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


def default_quarantine_path(output: str) -> str:
    if target_kind(output) is not Target.FILE:
        # A name in the working directory would be shared by every pipeline run there.
        raise UsageError(
            "with results on standard output or a device, say where failed items go: "
            "--quarantine FILE"
        )
    path = Path(output)
    return str(path.with_name(without_format_suffix(path.name) + ".quarantine.jsonl"))
