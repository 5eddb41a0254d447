"""`sluice serve`: the engine behind an HTTP API; `sluice serve hash-token` for its tokens.

The run options given here are every job's defaults; a job's own options (its
prompt, model, schema, workflow...) go over them (pipeline/serve/job_options.py
says which a job may set). Each job's run settings are made by `build_config`,
as a run's are, so a job means what the same `sluice run` would.

No `from __future__ import annotations` here: Typer reads the evaluated annotations.
The server and the run settings it makes are imported when it serves, not at every
start-up of sluice.
"""

import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

import cli.connection_options as conn
import cli.run_options as opt
import cli.scale_options as scale
from cli.entry import start_up_over
from cli.errors import fail, report_internal_error, say
from cli.run import RUN_DEFAULTS
from cli.units import parse_duration, parse_size
from pipeline.core.config import DEFAULT_BASE_URL, Endpoint, RunConfig
from pipeline.core.errors import ConfigError, SluiceError, UsageError

if TYPE_CHECKING:
    from cli.run_config import Loaded
    from pipeline.serve.server import ServeSettings

SERVE_HELP = (
    "Run sluice as an HTTP service: clients POST items and get results, synchronously "
    "(POST /v1/process), as asynchronous jobs they poll (POST /v1/jobs, GET /v1/jobs/ID), or "
    "with a webhook when a job ends.\n\n"
    "Jobs share one limiter per model and one response cache, are on disk before the 202, "
    "and resume after a restart on the same --data-dir. Bearer tokens come from "
    "SLUICE_SERVE_TOKENS (comma-separated) or --tokens-file; without any, only a loopback "
    "address may be served. The run options below are every job's defaults."
)
app = typer.Typer(help=SERVE_HELP, invoke_without_command=True, no_args_is_help=False)
SERVE = "Service"
LOOPBACK_NAMES = frozenset({"localhost"})


@app.callback()
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on. Anything but loopback needs tokens.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")] = 8080,
    data_dir: Annotated[
        Path,
        typer.Option(help="Where jobs, their results and pending webhooks are kept (0700)."),
    ] = Path("sluice-serve-data"),
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="File of token hashes, one a line (sluice serve hash-token)."),
    ] = None,
    sync_timeout: Annotated[
        float,
        typer.Option(help="Seconds POST /v1/process waits before answering 202 with the job id."),
    ] = 10.0,
    max_items_per_job: Annotated[
        int, typer.Option(help="Jobs with more items are refused (413).", min=1)
    ] = 100_000,
    max_body_size: Annotated[
        str, typer.Option(help="Larger request bodies are refused (413): 64MB, 1GB...")
    ] = "64MB",
    max_sync_answer_size: Annotated[
        str,
        typer.Option(
            help="A synchronous answer with more rows than this (64kB, 16MB...) answers with "
            "where its rows are (GET .../results) instead of the rows."
        ),
    ] = "16MB",
    max_queued_jobs: Annotated[
        int, typer.Option(help="Beyond this many waiting jobs, new ones get 429.", min=1)
    ] = 100,
    max_running_jobs: Annotated[
        int, typer.Option(help="Jobs run at once (all share the limits).", min=1)
    ] = 8,
    retention: Annotated[
        str, typer.Option(help="How long a finished job's results are kept: 7d, 12h...")
    ] = "7d",
    webhook_allow: Annotated[
        list[str] | None,
        typer.Option(help="A host webhooks may be sent to (repeat for more); none: webhooks off."),
    ] = None,
    webhook_retry_for: Annotated[
        str, typer.Option(help="How long a webhook is retried until it is answered 2xx.")
    ] = "1h",
    instance: Annotated[
        str, typer.Option(help="A name put in job ids, to route clients to this instance.")
    ] = "",
    model: opt.Model = None,
    prompt: opt.Prompt = None,
    system: opt.System = None,
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = None,
    concurrency: opt.Concurrency = 16,
    timeout: opt.Timeout = 60.0,
    rpm: opt.Rpm = None,
    shared_limits: scale.SharedLimits = None,
    tpm: opt.Tpm = None,
    max_retries: opt.MaxRetries = 5,
    retry_backoff: opt.RetryBackoff = 0.5,
    grace: opt.Grace = 10.0,
    base_url: conn.BaseUrl = DEFAULT_BASE_URL,
    api_key_env: conn.ApiKeyEnv = "OPENAI_API_KEY",
    allow_insecure_http: conn.AllowInsecureHttp = False,
    cache: opt.Cache = True,
    cache_dir: opt.CacheDir = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from pipeline.serve.server import serve

    given = dict(ctx.params)
    try:
        settings, defaults = _settings(given)
        base = _job_config(defaults, {}, str(settings.data_dir))
    except SluiceError as error:
        fail(error)
    start_up_over()
    try:
        code = asyncio.run(serve(settings, base, _config_maker(defaults), say))
    except KeyboardInterrupt:
        code = 130
    except SluiceError as error:
        fail(error)
    except Exception as bug:
        report_internal_error(bug)
    raise typer.Exit(code)


@app.command("hash-token")
def hash_token_command(
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="Append the hash to this file (made 0600) instead of printing it."),
    ] = None,
) -> None:
    """Hash a token for --tokens-file. The token is read from standard input (never from
    the command line); with nothing on standard input a new random token is made and
    printed once: keep it, only its hash is stored."""
    from pipeline.serve.auth import hash_token, new_token

    given = "" if sys.stdin.isatty() else sys.stdin.read().strip()
    token = given or new_token()
    if not given:
        typer.echo(token)
    line = hash_token(token)
    if tokens_file is None:
        typer.echo(line)
        return
    try:
        fd = os.open(tokens_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        fail(UsageError(f"cannot write {tokens_file}: {exc.strerror}"))
    say(f"added a token hash to {tokens_file}")


def _settings(given: dict[str, Any]) -> tuple["ServeSettings", dict[str, Any]]:
    from pipeline.serve.app import ApiSettings
    from pipeline.serve.auth import TokenCheck
    from pipeline.serve.intake import IntakeLimits
    from pipeline.serve.server import ServeSettings
    from pipeline.serve.webhook_rules import normal_hosts, webhook_secret

    tokens = TokenCheck(_token_hashes(given["tokens_file"]))
    if not tokens.required and not _loopback(given["host"]):
        raise UsageError(
            f"serving {given['host']} without tokens would let anyone spend the account: "
            "set SLUICE_SERVE_TOKENS or --tokens-file, or serve 127.0.0.1"
        )
    data_dir = os.path.abspath(given["data_dir"])
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --data-dir {data_dir}: {exc.strerror}") from exc
    allow = normal_hosts(given["webhook_allow"] or [])
    limits = IntakeLimits(
        given["max_items_per_job"], parse_size(given["max_body_size"]), given["instance"]
    )
    api = ApiSettings(
        limits,
        given["max_queued_jobs"],
        given["sync_timeout"],
        allow,
        data_dir,
        parse_size(given["max_sync_answer_size"]),
    )
    settings = ServeSettings(
        host=given["host"],
        port=given["port"],
        data_dir=data_dir,
        api=api,
        tokens=tokens,
        max_running_jobs=given["max_running_jobs"],
        grace=given["grace"],
        retention=parse_duration(given["retention"]),
        webhook_retry_for=parse_duration(given["webhook_retry_for"]),
        webhook_secret=webhook_secret(os.environ),
    )
    defaults = {name: value for name, value in given.items() if name in RUN_DEFAULTS}
    return settings, defaults


def _token_hashes(path: Path | None) -> list[str]:
    from pipeline.serve.auth import TokenError, hash_token, parse_hashes

    given = os.environ.get("SLUICE_SERVE_TOKENS", "").split(",")
    hashes = [hash_token(token.strip()) for token in given if token.strip()]
    if path is not None:
        try:
            hashes += parse_hashes(path.read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            raise UsageError(f"cannot read --tokens-file {path}: {exc.strerror}") from exc
        except TokenError as exc:
            raise ConfigError(f"--tokens-file {path}: {exc}") from exc
    return hashes


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config_maker(defaults: dict[str, Any]) -> Any:
    def config_for(options: dict[str, Any], directory: str) -> RunConfig:
        return _job_config(defaults, options, directory)

    return config_for


# Job options passed to the run's flags as they are.
_AS_FLAGS = ("prompt", "system", "model", "max_tokens", "temperature", "input_field", "id_field")


def _job_config(defaults: dict[str, Any], options: dict[str, Any], directory: str) -> RunConfig:
    """A job's run settings: its options over the server's, its files in its directory."""
    from cli.run_config import RunFlags, build_config
    from pipeline.serve.jobs import ITEMS, RESULTS

    given = {**RUN_DEFAULTS, **defaults, **{k: options[k] for k in _AS_FLAGS if k in options}}
    if "endpoint" in options:
        given["endpoint"] = Endpoint(options["endpoint"])
    body = options.get("options", {})
    given["option"] = [f"{key}={orjson.dumps(value).decode()}" for key, value in body.items()]
    given.update(
        inputs=[os.path.join(directory, ITEMS)],
        output=os.path.join(directory, RESULTS),
        quarantine=None,
        state_dir=None,
        max_error_rate=1.0,  # quarantined items are part of a job's answer, not its failure
        quiet=True,
    )
    return build_config(RunFlags.of(given), loaded=_loaded(options))


def _loaded(options: dict[str, Any]) -> "Loaded":
    from cli.run_config import Loaded
    from cli.schema_option import schema_object
    from cli.workflow_file import served_workflow
    from pipeline.prepare.schema_inline import InlineSchemaError, inline_schema
    from pipeline.protocol.structured import DEFAULT_SCHEMA_NAME

    schema = options.get("schema")
    loaded_schema = None
    if isinstance(schema, str):
        try:
            loaded_schema = (inline_schema(schema), DEFAULT_SCHEMA_NAME)
        except InlineSchemaError as exc:
            raise ConfigError(f"schema: {exc}") from None
    elif isinstance(schema, dict):
        loaded_schema = schema_object(schema, DEFAULT_SCHEMA_NAME)
    workflow = options.get("workflow")
    return Loaded(loaded_schema, served_workflow(workflow) if workflow is not None else None)
