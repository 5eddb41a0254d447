"""`sluice run`: flags in, a RunConfig out, the engine run, a summary printed.

No `from __future__ import annotations` here: `run_command` builds each command's
signature at call time, and Typer reads it from the evaluated annotations.

The engine, the flag checks and the display are imported when a command runs, not
here: every start-up of sluice (--version, --help, other commands) imports this module.
"""

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

import cli.connection_options as conn
import cli.operator_options as ops
import cli.run_options as opt
import cli.scale_options as scale
import cli.shaping_options as shape
from cli.entry import start_up_over
from cli.errors import fail, report_internal_error, say
from cli.plan import PLAN_HELP, execute_plan
from pipeline.core.config import DEFAULT_BASE_URL, RunConfig
from pipeline.core.errors import BudgetReached, SluiceError

if TYPE_CHECKING:
    from cli.run_config import RunFlags

RUN_HELP = (
    "Send every item of the inputs to an OpenAI-compatible API, one result row per item.\n\n"
    "INPUT is a .jsonl, .jsonl.gz, .json (lines or one array) or .parquet file, or - for "
    "JSONL on stdin; several inputs form one run. Results keep input order. Items that "
    "cannot be processed are never dropped: they go to the quarantine file with the reason. "
    "The API key is read from the environment (OPENAI_API_KEY), never from the command line."
)
RUN_EPILOG = (
    "Examples: what it will cost, then the run, stopping at $5:\n\n"
    "sluice plan reviews.jsonl -m gpt-4o-mini -p 'Label: {{ text }}'\n\n"
    "sluice run reviews.jsonl -o labelled.jsonl -m gpt-4o-mini -p 'Label: {{ text }}' "
    "--max-cost 5\n\n"
    "Every option can also be set as SLUICE_RUN_<OPTION> or in sluice.toml (see sluice "
    "config show). Exit codes: 0 ok, 1 too many quarantined, 3 a budget stopped it (run "
    "again to resume); the README lists the rest."
)

INPUT_ARGUMENT = typer.Argument(
    metavar="INPUT...",
    show_default=False,
    help="Input files: .jsonl, .jsonl.gz, .json (lines or an array), .parquet, or - for stdin.",
)


def run_command(
    inputs_argument: Any, requeue: bool, help_text: str, plan_only: bool = False
) -> Callable[..., None]:
    """The `run` command, `retry` (its inputs are quarantine files) or `plan` (`run
    --dry-run`): one list of options, declared once (cli/run_options.py), for all three.
    Annotations are evaluated here, not postponed, so the INPUT argument each command
    gets (`inputs_argument`) is part of its signature.

    `--json` is the one name that differs: on `plan` (and `run --dry-run`), as on every
    report command, it prints JSON; on a run it asks the model for JSON answers."""
    json_option = ops.Json if plan_only else shape.JsonOrPlanJson

    def command(
        ctx: typer.Context,
        inputs: Annotated[list[str], inputs_argument],
        output: opt.Output = None,
        quarantine: opt.Quarantine = None,
        summary: opt.Summary = None,
        result_prefix: opt.ResultPrefix = "",
        id_field: opt.IdField = "id",
        batch_size: opt.BatchSize = 50,
        shard: scale.Shard = None,
        model: opt.Model = None,
        prompt: opt.Prompt = None,
        prompt_file: opt.PromptFile = None,
        system: opt.System = None,
        system_file: opt.SystemFile = None,
        endpoint: opt.EndpointOption = None,
        input_field: opt.InputField = "text",
        inputs_per_request: shape.InputsPerRequest = 64,
        max_tokens: opt.MaxTokens = None,
        temperature: opt.Temperature = None,
        stream: shape.Stream = False,
        fallback_model: shape.FallbackModel = None,
        workflow: shape.Workflow = None,
        schema: shape.Schema = None,
        json_answers: shape.JsonAnswers = False,
        schema_retries: shape.SchemaRetries = 2,
        option: opt.BodyOption = None,
        where: shape.Where = None,
        drop_skipped: shape.DropSkipped = False,
        truncate: shape.Truncate = None,
        max_input_tokens: shape.MaxInputTokens = None,
        concurrency: opt.Concurrency = 16,
        timeout: opt.Timeout = 60.0,
        idle_timeout: shape.IdleTimeout = 30.0,
        max_response_size: conn.MaxResponseSize = "32MB",
        adaptive_timeout: opt.AdaptiveTimeout = True,
        rpm: opt.Rpm = None,
        shared_limits: scale.SharedLimits = None,
        engine: scale.EngineName = "asyncio",
        ray_address: scale.RayAddress = None,
        ray_workers: scale.RayWorkers = None,
        tpm: opt.Tpm = None,
        retry_budget: opt.RetryBudget = 0.2,
        breaker_timeout: opt.BreakerTimeout = 300.0,
        max_retries: opt.MaxRetries = 5,
        retry_backoff: opt.RetryBackoff = 0.5,
        base_url: conn.BaseUrl = DEFAULT_BASE_URL,
        api_key_env: conn.ApiKeyEnv = "OPENAI_API_KEY",
        allow_insecure_http: conn.AllowInsecureHttp = False,
        max_cost: ops.MaxCost = None,
        max_requests: ops.MaxRequests = None,
        deadline: ops.Deadline = None,
        price_in: ops.PriceIn = None,
        price_out: ops.PriceOut = None,
        max_error_rate: opt.MaxErrorRate = 0.0,
        state_dir: opt.StateDir = None,
        state: opt.State = True,
        fresh: opt.Fresh = False,
        grace: opt.Grace = 10.0,
        cache: opt.Cache = True,
        refresh_cache: opt.RefreshCache = False,
        cache_dir: opt.CacheDir = None,
        cache_ttl: opt.CacheTtl = None,
        cache_size: opt.CacheSize = None,
        quiet: ops.Quiet = False,
        verbose: ops.Verbose = False,
        log_format: ops.LogFormat = "text",
        log_every: ops.LogEvery = 5.0,
        job: ops.Job = None,
        trace_file: ops.TraceFile = None,
        trace_content: ops.TraceContent = False,
        metrics_file: ops.MetricsFile = None,
        alert_webhook: ops.AlertWebhook = None,
        alert_error_rate: ops.AlertErrorRate = 0.05,
        alert_min_severity: ops.AlertMinSeverity = "warning",
        dry_run: ops.DryRun = False,
        show: ops.Show = 0,
        json: json_option = False,  # type: ignore[valid-type]
        probe_limits: ops.ProbeLimits = False,
    ) -> None:
        from cli.run_config import RunFlags, build_config

        # Every parameter reaches RunFlags by name (ctx.params), so none can be forgotten.
        flags = RunFlags.of(ctx.params)
        planning = plan_only or flags.dry_run
        try:
            config = build_config(flags, requeue=requeue, planning=planning)
        except SluiceError as error:
            fail(error)
        if planning:
            execute_plan(config, flags)
        execute(config, flags)

    command.__doc__ = help_text
    return command


def execute(config: RunConfig, flags: "RunFlags") -> None:
    import asyncio

    from cli.after_run import report_after_run
    from cli.progress import LogSettings, display_for
    from cli.summary import print_summary, what_was_written
    from pipeline.run.root import run as run_pipeline

    quiet = flags.quiet
    settings = LogSettings(
        quiet=quiet,
        verbose=flags.verbose,
        json=flags.log_format == "json",
        every=flags.log_every,
        trace_id=config.observe.trace_id,
    )
    progress = display_for(settings, config.read)
    start_up_over()
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
            progress.say(f"warning: {warning}", level="warning")
    if result.error is not None:
        stopped = isinstance(result.error, BudgetReached)  # an ending the user asked for
        word, level = ("stopped", "warning") if stopped else ("error", "error")
        progress.say(f"{word}: {result.error.message}", level=level)
    if result.summary:  # the run began: its record is kept, whatever the end
        report_after_run(result, config, flags, progress)
    # A run refused before its first item has nothing to summarise but the error. One
    # answered from the cache began too, even if it ended before its first commit.
    stats = result.stats
    answered = stats.cache is not None and stats.cache.hits > 0
    began = stats.items > 0 or stats.requests > 0 or answered
    if (began or result.exit_code in (0, 1)) and not (quiet and result.exit_code == 0):
        print_summary(result, config, progress)
    raise typer.Exit(result.exit_code)


run = run_command(INPUT_ARGUMENT, requeue=False, help_text=RUN_HELP)


def _run_defaults() -> dict[str, Any]:
    """Every option of `sluice run` at its default: what a command that runs the engine
    without taking all of run's options (reduce, serve) leaves as run would."""
    parameters = inspect.signature(run).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


RUN_DEFAULTS = _run_defaults()
plan = run_command(INPUT_ARGUMENT, requeue=False, help_text=PLAN_HELP, plan_only=True)
