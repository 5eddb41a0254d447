"""The options of `sluice run` (and `retry`, `plan`) that say what the run does: its
files, requests, traffic, resume and cache; each declared once, in a help
panel. Where requests go is in
connection_options.py (shared with `sluice doctor`); what a run costs and tells an
operator, in operator_options.py; how requests and answers are shaped (schemas,
packing, selection, fallback, streaming), in shaping_options.py.

No `from __future__ import annotations`: Typer reads these aliases from evaluated
annotations. Metavars say what a value is (PATH, N, USD, DURATION), never a
Python type.
"""

from pathlib import Path
from typing import Annotated

import typer

from cli.cache import DEFAULT_CACHE_SIZE
from pipeline.core.config import Endpoint

FILES = "Inputs and outputs"
REQUEST = "Request"
TRAFFIC = "Traffic"
DURABILITY = "Resume and errors"
CACHE = "Cache"

Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        rich_help_panel=FILES,
        help="Results file: .jsonl, .jsonl.gz or .parquet; - for stdout. Required to run.",
        show_envvar=False,
    ),
]
Quarantine = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=FILES,
        help="Failed items as JSONL, or - for stdout. \\[default: OUTPUT's name + "
        ".quarantine.jsonl; required with -o -]",
        show_envvar=False,
    ),
]
Summary = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=FILES,
        help="Also write the end-of-run summary as JSON (- for stdout).",
        show_envvar=False,
    ),
]
ResultPrefix = Annotated[
    str,
    typer.Option(
        metavar="TEXT",
        rich_help_panel=FILES,
        help="Prefix for the fields sluice adds to each result (output, usage, cached), "
        "for items that already have fields with those names.",
        show_envvar=False,
    ),
]
IdField = Annotated[
    str,
    typer.Option(
        metavar="FIELD",
        rich_help_panel=FILES,
        help="Item field holding its id; items without it use their position.",
        show_envvar=False,
    ),
]
BatchSize = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel=FILES,
        help="Items per batch: the unit in which results are committed.",
        min=1,
        show_envvar=False,
    ),
]

Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="NAME",
        rich_help_panel=REQUEST,
        help="Model, e.g. gpt-4o-mini.",
        show_envvar=False,
    ),
]
Prompt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        metavar="TEMPLATE",
        rich_help_panel=REQUEST,
        help="User message, a Jinja2 template over item fields: 'Review: {{ text }}'. "
        "Without it the item itself is sent as JSON.",
        show_envvar=False,
    ),
]
PromptFile = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=REQUEST,
        help="Read --prompt from a file.",
        show_envvar=False,
    ),
]
System = Annotated[
    str | None,
    typer.Option(
        metavar="TEMPLATE",
        rich_help_panel=REQUEST,
        help="System message (a template too).",
        show_envvar=False,
    ),
]
SystemFile = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=REQUEST,
        help="Read --system from a file.",
        show_envvar=False,
    ),
]
EndpointOption = Annotated[
    Endpoint | None,
    typer.Option(
        rich_help_panel=REQUEST,
        help="chat, embeddings, or raw (lines already in OpenAI batch form). "
        "\\[default: raw when the first line is in batch form, else chat]",
        show_envvar=False,
    ),
]
InputField = Annotated[
    str,
    typer.Option(
        metavar="FIELD",
        rich_help_panel=REQUEST,
        help="With --endpoint embeddings: what to embed.",
        show_envvar=False,
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        rich_help_panel=REQUEST,
        help="Most tokens per answer.",
        min=1,
        show_envvar=False,
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        metavar="T",
        rich_help_panel=REQUEST,
        help="Sampling temperature.",
        min=0.0,
        show_envvar=False,
    ),
]
BodyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-O",
        metavar="KEY=VALUE",
        rich_help_panel=REQUEST,
        help="Any other request field (JSON when it parses): -O seed=7. Repeatable.",
        show_envvar=False,
    ),
]

Concurrency = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-c",
        metavar="N",
        rich_help_panel=TRAFFIC,
        help="Most requests in flight. sluice goes lower while the server struggles "
        "(429s, 5xx, slow answers) and climbs back when it recovers.",
        min=1,
        show_envvar=False,
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=TRAFFIC,
        help="Longest wait for one answer before retrying. Once 20 answers are in, hung "
        "requests are cut sooner (3x the usual time plus its spread, at least 5 s).",
        min=0.1,
        show_envvar=False,
    ),
]
AdaptiveTimeout = Annotated[
    bool,
    typer.Option(
        "--adaptive-timeout/--fixed-timeout",
        rich_help_panel=TRAFFIC,
        help="Cut hung requests by the answer times seen (the default), or always wait --timeout.",
        show_default=False,
        show_envvar=False,
    ),
]
Rpm = Annotated[
    float | None,
    typer.Option(
        metavar="N",
        rich_help_panel=TRAFFIC,
        help="Requests per minute allowed. Unset: learned from x-ratelimit headers. "
        "The server's lower limit wins.",
        min=0.001,
        show_envvar=False,
    ),
]
Tpm = Annotated[
    float | None,
    typer.Option(
        metavar="N",
        rich_help_panel=TRAFFIC,
        help="Tokens per minute allowed (prompt + max_tokens). Unset: learned from headers.",
        min=0.001,
        show_envvar=False,
    ),
]
RetryBudget = Annotated[
    float,
    typer.Option(
        metavar="SHARE",
        rich_help_panel=TRAFFIC,
        help="Retries may add at most this share of first attempts (plus one a second); "
        "beyond it they wait, so a failing service is not hammered.",
        min=0.0,
        show_envvar=False,
    ),
]
BreakerTimeout = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=TRAFFIC,
        help="How long the endpoint may stay down before the run stops (exit 69); also "
        "the longest Retry-After obeyed (else exit 75).",
        min=1.0,
        show_envvar=False,
    ),
]
MaxRetries = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel=TRAFFIC,
        help="Retries before an item is quarantined.",
        min=0,
        show_envvar=False,
    ),
]
RetryBackoff = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=TRAFFIC,
        help="Base of the exponential wait between retries.",
        min=0.0,
        show_envvar=False,
    ),
]


MaxErrorRate = Annotated[
    float,
    typer.Option(
        metavar="SHARE",
        rich_help_panel=DURABILITY,
        help="Share of items that may be quarantined with exit 0; above it, exit 1.",
        min=0.0,
        max=1.0,
        show_envvar=False,
    ),
]
StateDir = Annotated[
    Path | None,
    typer.Option(
        metavar="DIR",
        rich_help_panel=DURABILITY,
        help="Where checkpoints go, so the same command resumes after a crash or Ctrl-C. "
        "\\[default: .OUTPUT.sluice beside the output]",
        show_envvar=False,
    ),
]
State = Annotated[
    bool,
    typer.Option(
        "--state/--no-state",
        rich_help_panel=DURABILITY,
        help="Keep checkpoints, or write straight to the outputs with nothing to resume.",
        show_envvar=False,
    ),
]
Fresh = Annotated[
    bool,
    typer.Option(
        "--fresh",
        rich_help_panel=DURABILITY,
        help="Discard an unfinished earlier run's checkpoints and start over.",
        show_envvar=False,
    ),
]
Grace = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=DURABILITY,
        help="On Ctrl-C or SIGTERM: time for requests in flight to land before stopping.",
        min=0.0,
        show_envvar=False,
    ),
]

Cache = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        rich_help_panel=CACHE,
        help="Reuse and store answers so nothing is paid for twice, or send every item.",
        show_envvar=False,
    ),
]
RefreshCache = Annotated[
    bool,
    typer.Option(
        "--refresh-cache",
        rich_help_panel=CACHE,
        help="Ask again even when an answer is stored.",
        show_envvar=False,
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        envvar="SLUICE_CACHE_DIR",
        metavar="DIR",
        rich_help_panel=CACHE,
        help="Where answers are stored. \\[default: ~/.cache/sluice/responses]",
        show_envvar=False,
    ),
]
CacheTtl = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        rich_help_panel=CACHE,
        help="Use stored answers younger than this only: 15m, 12h, 7d.",
        show_envvar=False,
    ),
]
CacheSize = Annotated[
    str | None,
    typer.Option(
        metavar="SIZE",
        rich_help_panel=CACHE,
        help=f"Largest the cache may grow, oldest first out. \\[default: {DEFAULT_CACHE_SIZE}]",
        show_envvar=False,
    ),
]
