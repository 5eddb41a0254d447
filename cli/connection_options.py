"""Where requests go: the connection options `sluice run` and `sluice doctor` share,
declared once so both say the same thing (the checks on them are endpoint_options.py).

No `from __future__ import annotations`: Typer reads these aliases from evaluated
annotations.
"""

from typing import Annotated

import typer

CONNECTION = "Connection"


MaxResponseSize = Annotated[
    str,
    typer.Option(
        metavar="SIZE",
        rich_help_panel=CONNECTION,
        help="Largest answer read, e.g. 32MB; a larger one is retried, then quarantined.",
        show_envvar=False,
    ),
]

BaseUrl = Annotated[
    str,
    typer.Option(
        envvar="OPENAI_BASE_URL",
        metavar="URL",
        rich_help_panel=CONNECTION,
        help="API base URL, with /v1: $OPENAI_BASE_URL, else OpenAI's.",
        show_default=False,
        show_envvar=False,
    ),
]

ApiKeyEnv = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        rich_help_panel=CONNECTION,
        help="Environment variable holding the API key (never a flag).",
        show_envvar=False,
    ),
]

AllowInsecureHttp = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-http",
        rich_help_panel=CONNECTION,
        help="Allow plain http to hosts other than this one.",
        show_envvar=False,
    ),
]
