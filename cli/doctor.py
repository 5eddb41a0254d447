"""`sluice doctor`: check the connection a run would use, one line per check.

The connection options are `sluice run`'s own declarations (cli/run_options.py), so
both commands read the same flags, variables and defaults, and say the same about them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

import cli.connection_options as conn
from cli.endpoint_options import api_key_from_env, checked_base_url
from cli.errors import fail, report_internal_error
from pipeline.core.config import DEFAULT_BASE_URL, Secret
from pipeline.core.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from pipeline.run.doctor_checks import Check, Diagnosis, DoctorSettings

# The checks (aiohttp, asyncio) are imported when the doctor runs, not at every start-up.

DOCTOR_HELP = (
    "Check that a run can reach the API: the base URL (resolves, connects, TLS), the key "
    "(accepted by GET /models), the model (listed, or answering with --probe) and the rate "
    "limits the server reports. One line per check; a check that cannot be tried because an "
    "earlier one failed is shown as skipped.\n\n"
    "Exit code 0 when every check passes, otherwise the one sluice run would meet: 69 the "
    "server cannot be reached, 75 quota exhausted or rate limited, 77 key refused, 78 no key, "
    "a bad base URL or an unknown model."
)
LABEL_WIDTH = 6
NAME_WIDTH = 10


def doctor(
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            metavar="NAME",
            help="Also check this model: listed by the server's GET /models, or, with --probe, "
            "answering.",
        ),
    ] = None,
    probe: Annotated[
        bool,
        typer.Option(
            help="Prove the model answers by sending it one chat request with max_tokens 1. "
            "This costs one tiny request (a few tokens).",
        ),
    ] = False,
    base_url: conn.BaseUrl = DEFAULT_BASE_URL,
    api_key_env: conn.ApiKeyEnv = "OPENAI_API_KEY",
    allow_insecure_http: conn.AllowInsecureHttp = False,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, metavar="SECONDS", help="Longest wait for each check."),
    ] = 15.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the checks as one JSON object instead of text.")
    ] = False,
) -> None:
    if probe and not model:
        fail(UsageError("--probe asks a model to answer: name it with -m/--model"))
    import asyncio

    from pipeline.run.doctor import diagnose

    settings = doctor_settings(base_url, api_key_env, allow_insecure_http, model, probe, timeout)
    try:
        diagnosis = asyncio.run(diagnose(settings))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as bug:
        report_internal_error(bug)
    if as_json:
        typer.echo(orjson.dumps(diagnosis.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo("\n".join(_lines(diagnosis)))
    raise typer.Exit(diagnosis.exit_code)


doctor.__doc__ = DOCTOR_HELP


def doctor_settings(
    base_url: str,
    api_key_env: str,
    allow_insecure_http: bool,
    model: str | None,
    probe: bool,
    timeout: float,
) -> DoctorSettings:
    """The flags and the environment as the checks need them. A bad URL or a missing key
    becomes a failed check rather than an early exit, so every line is still shown."""
    from pipeline.run.doctor_checks import DoctorSettings

    url_problem = key_problem = None
    key: Secret | None = None
    try:
        url = checked_base_url(base_url, allow_insecure_http)
    except ConfigError as error:
        url, url_problem = base_url, error.message
    except ValueError:  # urlsplit's own refusal, such as an unclosed [ in an IPv6 host
        url, url_problem = base_url, "base URL is not a URL; it should look like https://host/v1"
    if url_problem is None:
        try:
            key = api_key_from_env(api_key_env, url)
        except ConfigError as error:
            key_problem = error.message
    return DoctorSettings(
        base_url=url,
        api_key=key,
        key_variable=api_key_env,
        model=model,
        probe=probe,
        timeout=timeout,
        base_url_problem=url_problem,
        api_key_problem=key_problem,
    )


def _lines(diagnosis: Diagnosis) -> list[str]:
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return [_line(check, colour) for check in diagnosis.checks]


def _line(check: Check, colour: bool) -> str:
    from pipeline.run.doctor_checks import Status

    labels = {Status.PASSED: "ok", Status.FAILED: "FAIL", Status.SKIPPED: "skip"}
    colours = {Status.PASSED: "green", Status.FAILED: "red", Status.SKIPPED: "yellow"}
    label = labels[check.status].ljust(LABEL_WIDTH)
    if colour:
        label = typer.style(label, fg=colours[check.status], bold=check.status is Status.FAILED)
    return f"{label}{check.name.ljust(NAME_WIDTH)}{check.detail}"
