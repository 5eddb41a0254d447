"""`sluice reduce RESULTS... -o SUMMARY.jsonl --group-by EXPR -p/--prompt-file TEMPLATE`.

The options a reduce shares with a run are declared once (run_options.py and its
neighbours) and mean the same; everything a reduce does not take is the run's
default. Each level of the reduce is a run (pipeline/run/reduce.py).

No `from __future__ import annotations` here: Typer reads the evaluated annotations.
The engine and the display are imported when a reduce runs, not at every start-up.
"""

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

import cli.connection_options as conn
import cli.operator_options as ops
import cli.run_options as opt
import cli.shaping_options as shape
from cli.entry import start_up_over
from cli.errors import fail, report_internal_error, say
from cli.run import RUN_DEFAULTS
from pipeline.core.config import DEFAULT_BASE_URL, STDIO
from pipeline.core.errors import SluiceError, UsageError
from pipeline.core.words import counted

if TYPE_CHECKING:
    from cli.progress import LogSettings
    from cli.run_config import RunFlags
    from pipeline.observe.progress import Progress
    from pipeline.run.reduce import ReduceResult, ReduceSpec

REDUCE_HELP = (
    "Reduce result rows to one answer per group: the rows of each group are packed into "
    "chunks that fit --max-input-tokens, the model reduces each chunk (the template "
    "iterates `rows`), then the partial answers again, level by level, until one remains.\n\n"
    "The template sees `rows`, `group` and `level`: at level 0 the rows are the input rows "
    "as read (a run's results: their fields and `output`); at later levels each row is "
    "{output, covers}, an earlier answer and how many input rows it stands for, so "
    "{{ row.output }} reads well at every level. Checkpointed and cached like a run: a "
    "killed reduce resumes without paying again for finished chunks."
)
REDUCE_EPILOG = (
    "Example: themes per sentiment label of a labelled file:\n\n"
    "sluice reduce labelled.jsonl -o themes.jsonl --group-by output.label "
    "--prompt-file sample_data/themes.j2 -m gpt-4o-mini\n\n"
    "Exit codes: 0 every group answered, 1 some groups or rows quarantined, 3 a budget "
    "stopped it (run again to resume); the README lists the rest."
)
DEFAULT_BUDGET = 8000

RESULTS_ARGUMENT = typer.Argument(
    metavar="RESULTS...",
    show_default=False,
    help="Rows to reduce, usually a run's results: .jsonl, .jsonl.gz, .json or .parquet.",
)
GroupBy = Annotated[
    str | None,
    typer.Option(
        metavar="EXPR",
        help="Group rows by this expression (the --where language: a field, "
        "output.label, lower(product)...); each group gets one answer. Without it, "
        "every row is reduced into one answer.",
        show_envvar=False,
    ),
]
Budget = Annotated[
    int,
    typer.Option(
        "--max-input-tokens",
        metavar="N",
        help="Prompt tokens (estimated, 4 characters a token) of one reduce request, "
        "template included: rows are packed into chunks that fit.",
        min=100,
        show_envvar=False,
    ),
]


def reduce_command(
    ctx: typer.Context,
    inputs: Annotated[list[str], RESULTS_ARGUMENT],
    output: opt.Output = None,
    quarantine: opt.Quarantine = None,
    group_by: GroupBy = None,
    model: opt.Model = None,
    prompt: opt.Prompt = None,
    prompt_file: opt.PromptFile = None,
    system: opt.System = None,
    system_file: opt.SystemFile = None,
    schema: shape.Schema = None,
    json_answers: shape.JsonAnswers = False,
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = None,
    option: opt.BodyOption = None,
    max_input_tokens: Budget = DEFAULT_BUDGET,
    concurrency: opt.Concurrency = 16,
    timeout: opt.Timeout = 60.0,
    rpm: opt.Rpm = None,
    tpm: opt.Tpm = None,
    max_retries: opt.MaxRetries = 5,
    retry_backoff: opt.RetryBackoff = 0.5,
    base_url: conn.BaseUrl = DEFAULT_BASE_URL,
    api_key_env: conn.ApiKeyEnv = "OPENAI_API_KEY",
    allow_insecure_http: conn.AllowInsecureHttp = False,
    max_cost: ops.MaxCost = None,
    max_requests: ops.MaxRequests = None,
    price_in: ops.PriceIn = None,
    price_out: ops.PriceOut = None,
    state_dir: opt.StateDir = None,
    fresh: opt.Fresh = False,
    cache: opt.Cache = True,
    refresh_cache: opt.RefreshCache = False,
    cache_dir: opt.CacheDir = None,
    quiet: ops.Quiet = False,
    verbose: ops.Verbose = False,
) -> None:
    import asyncio

    from cli.progress import LogSettings
    from cli.run_config import build_config
    from pipeline.run.reduce import reduce

    given = dict(ctx.params)
    try:
        spec, flags = _spec(given)
        # Every level's run settings, checked as a run's are (key, base URL, schema...).
        config = build_config(flags)
    except SluiceError as error:
        fail(error)
    settings = LogSettings(
        quiet=quiet, verbose=verbose, json=False, every=5.0, trace_id=config.observe.trace_id
    )
    start_up_over()
    try:
        result = asyncio.run(reduce(config, spec, _progress(settings)))
    except KeyboardInterrupt:
        say(f"interrupted; run the same command again to resume (state in {spec.directory})")
        raise typer.Exit(130) from None
    except SluiceError as error:
        fail(error)
    except Exception as bug:
        report_internal_error(bug)
    _report(result, spec, quiet)
    raise typer.Exit(result.exit_code)


reduce_command.__doc__ = REDUCE_HELP


def _spec(given: dict[str, Any]) -> tuple["ReduceSpec", "RunFlags"]:
    from cli.run_config import RunFlags, default_quarantine_path
    from pipeline.run.reduce import ReduceSpec
    from pipeline.write.writers import output_format

    output = given["output"]
    if output is None:
        raise UsageError("Missing option '--output' / '-o': where the answers per group go")
    if output == STDIO:
        raise UsageError("sluice reduce writes a file (-o SUMMARY.jsonl), not standard output")
    output_format(output)  # an unknown extension is a usage error, found before any work
    if given["prompt"] is None and given["prompt_file"] is None:
        raise UsageError("give the reduce template: --prompt-file REDUCE.j2 (or --prompt)")
    directory = given["state_dir"] or _default_directory(output)
    level_output = os.path.join(str(directory), "level.jsonl")
    flags = RunFlags.of(
        {
            **RUN_DEFAULTS,
            **{name: value for name, value in given.items() if name in RUN_DEFAULTS},
            "inputs": list(given["inputs"]),
            # The levels' own files, and no state of the run's naming (each level has one).
            "output": level_output,
            "quarantine": None,
            "state_dir": None,
            "max_input_tokens": given["max_input_tokens"],
        }
    )
    spec = ReduceSpec(
        inputs=tuple(given["inputs"]),
        group_by=given["group_by"],
        results=output,
        quarantine=given["quarantine"] or default_quarantine_path(output),
        directory=os.path.abspath(str(directory)),
        budget=given["max_input_tokens"],
        fresh=given["fresh"],
    )
    return spec, flags


def _default_directory(output: str) -> str:
    directory, name = os.path.split(os.path.abspath(output))
    return os.path.join(directory, f".{name}.sluice-reduce")


def _progress(settings: "LogSettings") -> Callable[[int], "Progress"]:
    """Each level says what it reduces; its run's own progress stays quiet."""
    from cli.progress import QuietDisplay

    def for_level(level: int) -> "Progress":
        if not settings.quiet:
            say(f"reduce level {level}: chunks of {_what(level)}")
        return QuietDisplay(settings)

    return for_level


def _what(level: int) -> str:
    return "the input rows" if level == 0 else f"level {level - 1}'s answers"


def _report(result: "ReduceResult", spec: "ReduceSpec", quiet: bool) -> None:
    if result.stopped is not None:
        stopped = result.stopped
        message = stopped.error.message if stopped.error is not None else "stopped"
        say(f"stopped: {message}; run the same command again to resume")
        return
    if quiet and result.exit_code == 0:
        return
    requests = sum(level.get("requests", 0) for level in result.levels)
    say(
        f"reduced {result.rows:,} rows to {counted(result.groups, 'answer')} in "
        f"{counted(result.depth, 'level')}, {counted(requests, 'request')} this attempt"
        + (f"; {result.failed:,} quarantined" if result.failed else "")
    )
    say(f"results     {spec.results}")
    if result.failed:
        say(f"quarantine  {spec.quarantine}")
