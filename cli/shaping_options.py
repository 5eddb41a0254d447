"""The options of `sluice run` (and `retry`, `plan`) that shape requests and answers:
structured outputs, packed embeddings, a fallback model, streaming, and which items
are sent and how much of them. See run_options.py for the conventions.

No `from __future__ import annotations`: Typer reads these aliases from evaluated
annotations.
"""

from pathlib import Path
from typing import Annotated

import typer

from cli.run_options import REQUEST, TRAFFIC

SELECT = "Selecting and trimming items"

InputsPerRequest = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel=REQUEST,
        help="With --endpoint embeddings: texts sent together in one request (also kept "
        "under about 200,000 tokens). Answers are matched back by index; 1 sends each alone.",
        min=1,
        max=2048,
        show_envvar=False,
    ),
]

Stream = Annotated[
    bool,
    typer.Option(
        "--stream",
        rich_help_panel=REQUEST,
        help="Ask for streamed answers (server-sent events), put together here: a stuck "
        "generation is cut after --idle-timeout, and the summary shows time to first token.",
        show_envvar=False,
    ),
]

FallbackModel = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        rich_help_panel=REQUEST,
        help="Model to ask while the main model keeps failing (its circuit breaker is "
        "open), or when it refuses a prompt as too long. Each result row then names the "
        "model that answered.",
        show_envvar=False,
    ),
]

Workflow = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE.toml",
        rich_help_panel=REQUEST,
        help="Several steps per item, named as [steps.NAME] tables (prompt, model, schema, "
        "after = [...], when = '...'): each item's steps run as soon as the steps they read "
        "have answered, and its row holds every step's output by name. The other request "
        "options are the steps' defaults. See the README's Workflows section.",
        show_envvar=False,
    ),
]

Schema = Annotated[
    str | None,
    typer.Option(
        metavar="FILE|FIELDS",
        rich_help_panel=REQUEST,
        help="Answers must be JSON matching this schema: a JSON Schema file "
        "(schema.json), or fields inline: 'label: positive|negative, score: int, "
        "reason: str' (types str, int, float, bool, a|b|c, list[...]; add ? for null). "
        "Sent as response_format; every answer is checked here too.",
        show_envvar=False,
    ),
]

JsonOrPlanJson = Annotated[  # `sluice run --json`; `sluice plan --json` is operator_options.Json
    bool,
    typer.Option(
        "--json",
        rich_help_panel=REQUEST,
        help="Answers must be a JSON object (response_format json_object), without a "
        "schema; output is the parsed object. With --dry-run it prints the plan as JSON "
        "instead (plan a JSON-answers run with --json-answers).",
        show_envvar=False,
    ),
]

JsonAnswers = Annotated[
    bool,
    typer.Option(
        "--json-answers",
        rich_help_panel=REQUEST,
        help="Answers must be a JSON object, as --json asks of a run.",
        show_envvar=False,
    ),
]

SchemaRetries = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel=REQUEST,
        help="With --schema or --json: times an answer that is not valid JSON, or does not "
        "match the schema, is asked again before the item is quarantined (invalid_output).",
        min=0,
        show_envvar=False,
    ),
]

Where = Annotated[
    str | None,
    typer.Option(
        metavar="EXPR",
        rich_help_panel=SELECT,
        help="Send only items matching this expression over their fields: 'rating <= 2', "
        '\'lang == "en" and len(text) > 20\', \'label in ["a", "b"]\', '
        "'text.startswith(\"RE:\")'. The others are not sent: their result rows have "
        "output null and skipped true.",
        show_envvar=False,
    ),
]

DropSkipped = Annotated[
    bool,
    typer.Option(
        "--drop-skipped",
        rich_help_panel=SELECT,
        help="Leave the items --where skips out of the results (sluice verify accepts "
        "their absence when given the same --where).",
        show_envvar=False,
    ),
]

Truncate = Annotated[
    list[str] | None,
    typer.Option(
        metavar="FIELD:N",
        rich_help_panel=SELECT,
        help="Cut a text field to N characters before the templates see it (the result "
        "row keeps it whole): --truncate text:2000. Repeatable.",
        show_envvar=False,
    ),
]

MaxInputTokens = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        rich_help_panel=SELECT,
        help="Quarantine items whose prompt is estimated (4 characters a token) at more "
        "than N tokens, as invalid_input, instead of paying for a refusal.",
        min=1,
        show_envvar=False,
    ),
]

IdleTimeout = Annotated[
    float,
    typer.Option(
        metavar="SECONDS",
        rich_help_panel=TRAFFIC,
        help="With --stream: longest silence within an answer before it is cut and retried.",
        min=0.1,
        show_envvar=False,
    ),
]
