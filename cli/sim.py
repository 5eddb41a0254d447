"""`sluice sim`: options and messages only; the simulator lives in pipeline.simulator."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from cli.entry import start_up_over
from pipeline.core.errors import ServiceUnavailable


def _rate_option(help_text: str) -> Any:
    return typer.Option(min=0.0, max=1.0, metavar="0..1", help=help_text)


# The help below escapes "[" because Typer renders docstrings as Rich markup.
def sim(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Keep 127.0.0.1 unless other machines must reach it."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Port to listen on; 0 picks a free one (printed at start)."
        ),
    ] = 8000,
    rpm: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests per minute to allow, like an OpenAI account limit; beyond it "
            "requests get 429 with retry-after. Unlimited when omitted.",
        ),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tokens per minute to allow (prompt + max_tokens, as OpenAI counts them). "
            "Unlimited when omitted.",
        ),
    ] = None,
    burst_seconds: Annotated[
        float,
        typer.Option(
            help="How many seconds' worth of the per-minute limits may be spent at once "
            "before requests are spread out.",
        ),
    ] = 10.0,
    latency: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait before each answer, like a real model.")
    ] = 0.0,
    jitter: Annotated[
        float,
        typer.Option(min=0.0, help="Vary each wait randomly by up to this many seconds, +/-."),
    ] = 0.0,
    fail_rate: Annotated[
        float, _rate_option("Share of requests answered with a 500, 502 or 503.")
    ] = 0.0,
    drop_rate: Annotated[
        float,
        _rate_option("Share of requests whose connection is closed with no answer."),
    ] = 0.0,
    hang_rate: Annotated[
        float,
        _rate_option("Share of requests never answered, to test your client's timeout."),
    ] = 0.0,
    malformed_rate: Annotated[
        float,
        _rate_option("Share of requests answered 200 with a body that is not JSON."),
    ] = 0.0,
    seed: Annotated[
        int,
        typer.Option(help="Seed for the random faults and jitter; the same seed replays them."),
    ] = 0,
    quota_requests: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="After this many requests, answer every request 429 insufficient_quota, "
            "as an account out of credit does.",
        ),
    ] = None,
    require_key_env: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Only accept requests whose 'Authorization: Bearer' key equals the value of "
            "this environment variable; others get 401. Keys never go on the command line.",
        ),
    ] = None,
    embedding_dimensions: Annotated[
        int,
        typer.Option(
            min=1, help="Length of embedding vectors when a request does not ask for 'dimensions'."
        ),
    ] = 8,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            metavar="NAME[,NAME...]",
            help="Model names GET /v1/models lists (repeat the option or separate with "
            "commas). Default: sim-chat and sim-embed.",
        ),
    ] = None,
    strict_models: Annotated[
        bool,
        typer.Option(
            help="Refuse requests naming a model that --models does not list with 404 "
            "model_not_found, as OpenAI does, to catch a misspelt model in your config.",
        ),
    ] = False,
    context_length: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="TOKENS",
            help="Largest prompt + max_tokens a model accepts; longer requests get 400 "
            "context_length_exceeded. An embeddings input is checked alone.",
        ),
    ] = 128_000,
    model_context: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=TOKENS",
            help="A context length for one model, overriding --context-length for it, e.g. "
            "--model-context sim-small=4096. Repeat for more models.",
        ),
    ] = None,
    stream_interval: Annotated[
        float,
        typer.Option(
            min=0.0,
            metavar="SECONDS",
            help="Pause between the chunks of a streamed answer ('stream': true), so a "
            "stream takes time the way a real model's does. 0 sends them at once.",
        ),
    ] = 0.0,
) -> None:
    r"""Serve a simulated OpenAI-compatible API on this machine, to try sluice offline.

    Answers are deterministic and free: no key, no network, no bill.

    Switch on rate limits, latency and faults to see how a job or a CI pipeline copes with them.

    Then point sluice at it: sluice run ... --base-url http://127.0.0.1:8000/v1

    A trigger in an item's text injects a fault into that item alone:
    \[\[sim:500x2]] fails its first 2 requests with a 500 (also 502, 503, 429),
    \[\[sim:dropx1]] and \[\[sim:malformedx1]] drop or garble its first request,
    \[\[sim:400]], \[\[sim:context_length]] and \[\[sim:hang]] refuse or stall it every time.
    With a JSON response_format, \[\[sim:invalid_json]] answers cut-off JSON
    and \[\[sim:schema_violation]] JSON that fails the schema.
    \[\[sim:stall]] stops a stream after its first chunks.
    Add xN to any trigger to fire it only on the first N requests.

    Chat requests may set response_format (json_object, or json_schema: answered
    with JSON that fits the schema) and 'stream': true (server-sent events).

    GET http://127.0.0.1:8000/sim/stats shows what the simulator has seen so far.
    """
    # Imported here, not at start-up: the simulator brings aiohttp.
    from pipeline.simulator.background import serve_until_signalled
    from pipeline.simulator.config import DEFAULT_MODELS, SimulatorConfig

    require_key = _read_key(require_key_env)
    try:
        config = SimulatorConfig(
            rpm=rpm,
            tpm=tpm,
            burst_seconds=burst_seconds,
            latency=latency,
            jitter=jitter,
            fail_rate=fail_rate,
            drop_rate=drop_rate,
            hang_rate=hang_rate,
            malformed_rate=malformed_rate,
            seed=seed,
            quota_requests=quota_requests,
            require_key=require_key,
            embedding_dimensions=embedding_dimensions,
            context_length=context_length,
            model_context_lengths=_model_contexts(model_context or []),
            models=_model_names(models) if models else DEFAULT_MODELS,
            strict_models=strict_models,
            stream_interval=stream_interval,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    start_up_over()
    try:
        serve_until_signalled(config, host, port, _announce)
    except OSError as error:
        typer.echo(
            f"sluice sim: cannot listen on {host}:{port}: {error.strerror or error}", err=True
        )
        raise typer.Exit(ServiceUnavailable.exit_code) from None


def _read_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise typer.BadParameter(
            f"the environment variable {variable} is not set or is empty",
            param_hint="'--require-key-env'",
        )
    return key


def _model_names(values: list[str]) -> tuple[str, ...]:
    names = [name.strip() for value in values for name in value.split(",")]
    if not all(names):
        raise typer.BadParameter("a model name is empty", param_hint="'--models'")
    return tuple(dict.fromkeys(names))


def _model_contexts(values: list[str]) -> dict[str, int]:
    contexts: dict[str, int] = {}
    for value in values:
        name, equals, tokens = value.rpartition("=")
        if not equals or not name.strip() or not tokens.strip().isdigit():
            raise typer.BadParameter(
                f"expected NAME=TOKENS, such as sim-small=4096, got {value!r}",
                param_hint="'--model-context'",
            )
        contexts[name.strip()] = int(tokens)
    return contexts


def _announce(base_url: str) -> None:
    typer.echo(
        f"sluice sim: serving an OpenAI-compatible API at {base_url} (Ctrl-C to stop)", err=True
    )
