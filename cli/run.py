"""`sluice run`: flags in, a RunConfig out, the engine run, a summary printed.

No `from __future__ import annotations` here: `run_command` builds each command's
signature at call time, and Typer reads it from the evaluated annotations.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.cache import DEFAULT_CACHE_SIZE
from cli.errors import fail, report_internal_error, say
from cli.progress import QuietProgress, progress_for
from cli.run_config import RunFlags, build_config
from cli.summary import print_summary, what_was_written
from pipeline.core.config import (
    DEFAULT_BASE_URL,
    Endpoint,
    RunConfig,
)
from pipeline.core.errors import SluiceError
from pipeline.read.sources import count_items
from pipeline.run.root import run as run_pipeline

RUN_HELP = (
    "Send every item of the inputs to an OpenAI-compatible API, one result row per item.\n\n"
    "INPUT is a .jsonl, .jsonl.gz, .json (lines or one array) or .parquet file, or - for "
    "JSONL on stdin; several inputs "
    "form one run. Results keep input order. Items that cannot be processed are never dropped: "
    "they go to the quarantine file with the reason. The API key is read from the environment "
    "(OPENAI_API_KEY), never from the command line."
)

INPUT_ARGUMENT = typer.Argument(
    metavar="INPUT",
    help="Input files: .jsonl, .jsonl.gz, .json (lines or an array), .parquet, or - for stdin.",
)


def run_command(inputs_argument: Any, requeue: bool, help_text: str) -> Callable[..., None]:
    """The `run` command, or `retry` (its inputs are quarantine files): one list of options,
    typed once, for both. Annotations are evaluated here, not postponed, so the INPUT
    argument each command gets (`inputs_argument`) is part of its signature."""

    def command(
        inputs: Annotated[list[str], inputs_argument],
        output: Annotated[
            str,
            typer.Option(
                "--output", "-o", help="Results file: .jsonl, .jsonl.gz or .parquet; - for stdout."
            ),
        ],
        quarantine: Annotated[
            str | None,
            typer.Option(
                help="Failed items as JSONL, or - for stdout (default: OUTPUT's name + "
                ".quarantine.jsonl; required with -o -)."
            ),
        ] = None,
        summary: Annotated[
            str | None,
            typer.Option(
                help="Also write the end-of-run summary to this JSON file (- for stdout).",
            ),
        ] = None,
        result_prefix: Annotated[
            str,
            typer.Option(
                help="Put this before the names of the fields sluice adds to each result "
                "(output, usage, cached): --result-prefix sluice_ writes sluice_output. Needed "
                "when items have fields with those names, which are never overwritten.",
            ),
        ] = "",
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
            int,
            typer.Option(
                "--concurrency",
                "-c",
                min=1,
                help="Requests in flight at most. sluice goes lower while the server struggles "
                "(429s, 5xx, slowing answers) and climbs back when it recovers.",
            ),
        ] = 16,
        batch_size: Annotated[
            int, typer.Option(min=1, help="Items per batch: the unit in which results are written.")
        ] = 50,
        timeout: Annotated[
            float,
            typer.Option(
                min=0.1,
                help="Longest wait for one answer, in seconds, before retrying. Once 20 answers "
                "are in, hung requests are cut sooner: at 3x the usual answer time plus its "
                "spread, never under 5 s (see --fixed-timeout).",
            ),
        ] = 60.0,
        max_response_size: Annotated[
            str,
            typer.Option(
                help="Largest answer body read, e.g. 32MB or 1GiB. A larger answer is cut off "
                "and retried like any unusable answer, then quarantined as invalid_output.",
            ),
        ] = "32MB",
        adaptive_timeout: Annotated[
            bool,
            typer.Option(
                "--adaptive-timeout/--fixed-timeout",
                help="Cut hung requests by the answer times seen so far, or always wait --timeout.",
            ),
        ] = True,
        rpm: Annotated[
            float | None,
            typer.Option(
                min=0.001,
                help="Requests per minute your account allows. Unset: learned from the server's "
                "x-ratelimit headers. The server's own limit wins when it is lower.",
            ),
        ] = None,
        tpm: Annotated[
            float | None,
            typer.Option(
                min=0.001,
                help="Tokens per minute your account allows (prompt + max_tokens, as OpenAI "
                "counts). Unset: learned from the server's headers.",
            ),
        ] = None,
        retry_budget: Annotated[
            float,
            typer.Option(
                min=0.0,
                help="Retries may add at most this share of first attempts (plus one per second), "
                "so a failing service is not hammered; beyond it, retries wait.",
            ),
        ] = 0.2,
        breaker_timeout: Annotated[
            float,
            typer.Option(
                min=1.0,
                help="Seconds the endpoint may stay down (most requests failing, items held back) "
                "before the run stops with exit 69. Also the longest Retry-After obeyed (else 75).",
            ),
        ] = 300.0,
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
        state_dir: Annotated[
            Path | None,
            typer.Option(
                help="Where a run keeps its checkpoints, so that running the same command again "
                "after a crash or Ctrl-C resumes instead of starting over. "
                "(default: .OUTPUT.sluice beside the output; none with -o -)",
            ),
        ] = None,
        state: Annotated[
            bool,
            typer.Option(
                "--state/--no-state",
                help="Keep checkpoints (see --state-dir), or write straight to the outputs "
                "with nothing to resume.",
            ),
        ] = True,
        fresh: Annotated[
            bool,
            typer.Option(
                help="Discard the checkpoints of an unfinished earlier run and start over. "
                "Needed when inputs, model, templates or options changed since.",
            ),
        ] = False,
        grace: Annotated[
            float,
            typer.Option(
                min=0.0,
                help="On Ctrl-C or SIGTERM: seconds to let requests already sent finish before "
                "committing and stopping. A second signal stops at once.",
            ),
        ] = 10.0,
        cache: Annotated[
            bool,
            typer.Option(
                "--cache/--no-cache",
                help="Reuse answers stored by earlier runs, and store new ones, so nothing is "
                "paid for twice; identical requests in a run are sent once. --no-cache sends "
                "every item.",
            ),
        ] = True,
        refresh_cache: Annotated[
            bool,
            typer.Option(
                help="Ask the API again even when an answer is stored, and store the new answers."
            ),
        ] = False,
        cache_dir: Annotated[
            Path | None,
            typer.Option(
                envvar="SLUICE_CACHE_DIR",
                help="Where answers are stored. (default: $XDG_CACHE_HOME/sluice/responses, "
                "or ~/.cache/sluice/responses)",
            ),
        ] = None,
        cache_ttl: Annotated[
            str | None,
            typer.Option(
                help="Use stored answers only when younger than this: 90s, 15m, 12h, 7d. "
                "(default: no age limit)"
            ),
        ] = None,
        cache_size: Annotated[
            str | None,
            typer.Option(
                help="Largest the cache may grow, e.g. 500MB or 20GB; the oldest answers go first. "
                "The cache keeps it for later runs. (default: the limit the cache already has; "
                f"{DEFAULT_CACHE_SIZE} for a new cache)"
            ),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing on success (errors still).")
        ] = False,
    ) -> None:
        flags = RunFlags(
            inputs=inputs,
            output=output,
            quarantine=quarantine,
            summary=summary,
            result_prefix=result_prefix,
            model=model,
            prompt=prompt,
            prompt_file=prompt_file,
            system=system,
            system_file=system_file,
            endpoint=endpoint,
            input_field=input_field,
            id_field=id_field,
            max_tokens=max_tokens,
            temperature=temperature,
            option=option,
            concurrency=concurrency,
            batch_size=batch_size,
            timeout=timeout,
            max_response_size=max_response_size,
            adaptive_timeout=adaptive_timeout,
            rpm=rpm,
            tpm=tpm,
            retry_budget=retry_budget,
            breaker_timeout=breaker_timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            base_url=base_url,
            api_key_env=api_key_env,
            allow_insecure_http=allow_insecure_http,
            max_error_rate=max_error_rate,
            state_dir=state_dir,
            state=state,
            fresh=fresh,
            grace=grace,
            cache=cache,
            refresh_cache=refresh_cache,
            cache_dir=cache_dir,
            cache_ttl=cache_ttl,
            cache_size=cache_size,
        )
        try:
            config = build_config(flags, requeue=requeue)
        except SluiceError as error:
            fail(error)
        execute(config, quiet)

    command.__doc__ = help_text
    return command


def execute(config: RunConfig, quiet: bool) -> None:
    progress = progress_for(quiet)
    if not quiet:
        _count_in_background(config, progress)
    try:
        with progress:
            result = asyncio.run(run_pipeline(config, progress))
    except KeyboardInterrupt:
        say(f"interrupted before the run could stop cleanly; {what_was_written(config)}")
        raise typer.Exit(130) from None
    except SluiceError as error:  # refused up front, or the summary could not be written
        fail(error)
    except Exception as bug:
        report_internal_error(bug)
    if not quiet:
        for warning in result.warnings:
            say(f"warning: {warning}")
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
            progress.set_total(count_items(config.read.inputs))

    threading.Thread(target=count, name="sluice-count", daemon=True).start()


run = run_command(INPUT_ARGUMENT, requeue=False, help_text=RUN_HELP)
