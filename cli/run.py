"""`sluice run`: flags in, a RunConfig out, the engine run, a summary printed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from cli.endpoint_options import api_key_from_env, checked_base_url
from cli.errors import fail, report_internal_error, say
from cli.progress import QuietProgress, progress_for
from cli.summary import print_summary
from pipeline.config import (
    DEFAULT_BASE_URL,
    STDIO,
    Endpoint,
    RequestConfig,
    RetryConfig,
    RunConfig,
)
from pipeline.errors import ConfigError, SluiceError, UsageError
from pipeline.runner import run as run_pipeline
from pipeline.sources import count_items

RUN_HELP = (
    "Send every item of the inputs to an OpenAI-compatible API, one result row per item.\n\n"
    "INPUT is a .jsonl, .jsonl.gz or .parquet file, or - for JSONL on stdin; several inputs "
    "form one run. Results keep input order. Items that cannot be processed are never dropped: "
    "they go to the quarantine file with the reason. The API key is read from the environment "
    "(OPENAI_API_KEY), never from the command line."
)

Inputs = Annotated[
    list[str],
    typer.Argument(
        metavar="INPUT", help="Input files: .jsonl, .jsonl.gz, .parquet, or - for stdin."
    ),
]


def run(
    inputs: Inputs,
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Results file: .jsonl, .jsonl.gz or .parquet; - for stdout."
        ),
    ],
    quarantine: Annotated[
        str | None,
        typer.Option(help="Failed items as JSONL (default: OUTPUT's name + .quarantine.jsonl)."),
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Also write the end-of-run summary to this JSON file.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model name to request, e.g. gpt-4o-mini."),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            "-p",
            help="User message as a Jinja2 template over item fields: "
            "'Review: {{ text }}'. Without it the item itself is sent as JSON.",
        ),
    ] = None,
    prompt_file: Annotated[
        Path | None, typer.Option(help="Read the user-message template from this file.")
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="System message (also a Jinja2 template).")
    ] = None,
    system_file: Annotated[
        Path | None, typer.Option(help="Read the system-message template from this file.")
    ] = None,
    endpoint: Annotated[
        Endpoint | None,
        typer.Option(
            help="chat, embeddings, or raw (lines already in OpenAI batch form). "
            "(default: raw when the first line is in batch form, else chat)"
        ),
    ] = None,
    input_field: Annotated[
        str, typer.Option(help="With --endpoint embeddings: the item field to embed.")
    ] = "text",
    id_field: Annotated[
        str,
        typer.Option(help="Item field holding its id; items without it use their position."),
    ] = "id",
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Upper bound on tokens in each answer.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, help="Sampling temperature.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-O",
            help="Any other request body field as key=value (value parsed as JSON when "
            'it can be), e.g. -O seed=7 -O \'response_format={"type":"json_object"}\'.',
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Requests in flight at most.")
    ] = 16,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Items per batch: the unit in which results are written.")
    ] = 50,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for one answer before retrying.")
    ] = 60.0,
    max_retries: Annotated[
        int, typer.Option(min=0, help="Retries of a failing request before it is quarantined.")
    ] = 5,
    retry_backoff: Annotated[
        float,
        typer.Option(min=0.0, help="Base of the exponential wait between retries, in seconds."),
    ] = 0.5,
    base_url: Annotated[
        str,
        typer.Option(envvar="OPENAI_BASE_URL", help="API base URL, including /v1."),
    ] = DEFAULT_BASE_URL,
    api_key_env: Annotated[
        str, typer.Option(help="Name of the environment variable that holds the API key.")
    ] = "OPENAI_API_KEY",
    allow_insecure_http: Annotated[
        bool, typer.Option(help="Allow plain http to hosts other than this machine.")
    ] = False,
    max_error_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of items that may be quarantined with exit code 0; "
            "above it the run exits 1.",
        ),
    ] = 0.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing on success (errors still).")
    ] = False,
) -> None:
    try:
        config = build_config(locals())
    except SluiceError as error:
        fail(error)
    execute(config, quiet)


run.__doc__ = RUN_HELP


def build_config(flags: dict[str, Any]) -> RunConfig:
    base_url = checked_base_url(flags["base_url"], flags["allow_insecure_http"])
    output = flags["output"]
    quarantine = flags["quarantine"] or default_quarantine_path(output)
    if output != STDIO and output in flags["inputs"]:
        raise UsageError(f"output {output!r} is also an input; choose another name")
    if quarantine == output or quarantine in flags["inputs"]:
        raise UsageError(f"quarantine {quarantine!r} must differ from the output and inputs")
    request = RequestConfig(
        endpoint=flags["endpoint"],
        model=flags["model"],
        prompt=_text_or_file(flags["prompt"], flags["prompt_file"], "--prompt"),
        system=_text_or_file(flags["system"], flags["system_file"], "--system"),
        max_tokens=flags["max_tokens"],
        temperature=flags["temperature"],
        body_options=parse_body_options(flags["option"] or []),
        input_field=flags["input_field"],
    )
    return RunConfig(
        inputs=tuple(flags["inputs"]),
        output=output,
        quarantine=quarantine,
        request=request,
        base_url=base_url,
        api_key=api_key_from_env(flags["api_key_env"], base_url),
        id_field=flags["id_field"],
        concurrency=flags["concurrency"],
        batch_size=flags["batch_size"],
        timeout=flags["timeout"],
        retry=RetryConfig(max_retries=flags["max_retries"], backoff_base=flags["retry_backoff"]),
        max_error_rate=flags["max_error_rate"],
        summary_path=flags["summary"],
    )


def execute(config: RunConfig, quiet: bool) -> None:
    progress = progress_for(quiet)
    if not quiet:
        _count_in_background(config, progress)
    try:
        with progress:
            result = asyncio.run(run_pipeline(config, progress))
    except KeyboardInterrupt:
        say("interrupted; no output was written")
        raise typer.Exit(130) from None
    except SluiceError as error:  # the run ended, but its summary could not be written
        fail(error)
    except Exception as bug:
        report_internal_error(bug)
    if result.error is not None:
        say(f"error: {result.error.message}")
    # A run refused before its first item has nothing to summarise but the error.
    started = result.stats.items > 0 or result.stats.requests > 0
    if (started or result.exit_code in (0, 1)) and not (quiet and result.exit_code == 0):
        print_summary(result, config)
    raise typer.Exit(result.exit_code)


def _count_in_background(config: RunConfig, progress: QuietProgress) -> None:
    """The ETA needs a total; counting lines is a quick read, kept off the main path."""

    def count() -> None:
        # No total means no ETA; the run itself reports unreadable inputs.
        with contextlib.suppress(OSError, SluiceError, ValueError):
            progress.set_total(count_items(config.inputs))

    threading.Thread(target=count, name="sluice-count", daemon=True).start()


def _text_or_file(text: str | None, path: Path | None, flag: str) -> str | None:
    if text is not None and path is not None:
        raise UsageError(f"give {flag} or {flag}-file, not both")
    if path is None:
        return text
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {flag}-file {str(path)!r}: {exc}") from exc


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
    if output == STDIO:
        return "sluice.quarantine.jsonl"
    path = Path(output)
    stem = path.name
    for suffix in (".jsonl.gz", ".ndjson.gz", ".parquet", ".jsonl", ".ndjson", ".pq"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return str(path.with_name(stem + ".quarantine.jsonl"))
