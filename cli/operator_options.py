"""The options of `sluice run` (and `retry`, `plan`) that say what a run may spend and
what it tells an operator: budgets and prices, logs, traces, metrics, alerts, and the
plan's own flags; each declared once, in a help panel. What the run does is in
run_options.py.

No `from __future__ import annotations`: Typer reads these aliases from evaluated
annotations.
"""

from typing import Annotated

import typer

SPEND = "Cost and budgets"
OPERATOR = "Logs, traces, metrics and alerts"
PLAN = "Plan (--dry-run)"


MaxCost = Annotated[
    float | None,
    typer.Option(
        metavar="USD",
        rich_help_panel=SPEND,
        help="Stop sending before the job's cost (all attempts) would pass this; exit 3. "
        "Run again with more to continue.",
        min=0.0,
        show_envvar=False,
    ),
]

MaxRequests = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        rich_help_panel=SPEND,
        help="Stop after the job (all attempts) has sent this many requests; exit 3.",
        min=0,
        show_envvar=False,
    ),
]

Deadline = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        rich_help_panel=SPEND,
        help="Stop sending once the job (all attempts) has run this long, e.g. 45m; exit 3.",
        show_envvar=False,
    ),
]

PriceIn = Annotated[
    float | None,
    typer.Option(
        metavar="USD",
        rich_help_panel=SPEND,
        help="Price per million prompt tokens, instead of the shipped table's. "
        "Give --price-out with it.",
        min=0.0,
        show_envvar=False,
    ),
]

PriceOut = Annotated[
    float | None,
    typer.Option(
        metavar="USD",
        rich_help_panel=SPEND,
        help="Price per million completion tokens.",
        min=0.0,
        show_envvar=False,
    ),
]

Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        rich_help_panel=OPERATOR,
        help="Nothing on stderr on success.",
        show_envvar=False,
    ),
]

Verbose = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        rich_help_panel=OPERATOR,
        help="Also one log line per committed batch.",
        show_envvar=False,
    ),
]

LogEvery = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=OPERATOR,
        help="Seconds between progress lines when stderr is not a terminal (one a second at most).",
        min=0.1,
        show_envvar=False,
    ),
]

LogFormat = Annotated[
    str,
    typer.Option(
        metavar="text|json",
        rich_help_panel=OPERATOR,
        help="json: one JSON object per stderr line, with the trace id.",
        show_envvar=False,
    ),
]

Job = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        rich_help_panel=OPERATOR,
        help="Name for the summary, metrics and history. \\[default: the output's name]",
        show_envvar=False,
    ),
]

TraceFile = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=OPERATOR,
        help="Write spans (run, batches, items, attempts) as OpenTelemetry-shaped JSON lines.",
        show_envvar=False,
    ),
]

TraceContent = Annotated[
    bool,
    typer.Option(
        "--trace-content",
        rich_help_panel=OPERATOR,
        help="Put prompts and answers in the spans (off: counts only).",
        show_envvar=False,
    ),
]

MetricsFile = Annotated[
    str | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=OPERATOR,
        help="Write a Prometheus textfile (node_exporter textfile collector) at the end.",
        show_envvar=False,
    ),
]

AlertWebhook = Annotated[
    str | None,
    typer.Option(
        metavar="URL",
        rich_help_panel=OPERATOR,
        help="POST the run's alerts here (Slack-compatible). The URL holds a token: "
        "rather set it in the environment (see the README).",
        show_envvar=False,
    ),
]

AlertErrorRate = Annotated[
    float,
    typer.Option(
        metavar="SHARE",
        rich_help_panel=OPERATOR,
        help="Alert when more than this share of items is quarantined.",
        min=0.0,
        max=1.0,
        show_envvar=False,
    ),
]

AlertMinSeverity = Annotated[
    str,
    typer.Option(
        metavar="info|warning|critical",
        rich_help_panel=OPERATOR,
        help="Send the webhook only for findings at least this severe.",
        show_envvar=False,
    ),
]

DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        rich_help_panel=PLAN,
        help="Plan only: read and render everything, report counts, tokens, cost and time; "
        "send nothing (same as sluice plan).",
        show_envvar=False,
    ),
]

Show = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel=PLAN,
        help="Print the first N rendered requests.",
        min=0,
        show_envvar=False,
    ),
]

Json = Annotated[
    bool,
    typer.Option(
        "--json", rich_help_panel=PLAN, help="Print the plan as one JSON object.", show_envvar=False
    ),
]
ProbeLimits = Annotated[
    bool,
    typer.Option(
        "--probe-limits",
        rich_help_panel=PLAN,
        help="Send one tiny request to learn the server's rate limits for the time estimate.",
        show_envvar=False,
    ),
]
