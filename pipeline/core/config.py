"""Run configuration, built once by the CLI; the engine never reads argv or the environment.

Each section is a NamedTuple (immutable, and on Python 3.11 far cheaper to define at
start than a frozen dataclass); RequestConfig and RunConfig, which need field
factories, are frozen dataclasses. Change one with `._replace` or `dataclasses.replace`
as it is one or the other."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_RESPONSE_SIZE = 32_000_000  # bytes; `--max-response-size 32MB`
STDIO = "-"


class Endpoint(StrEnum):
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    RAW = "raw"


ENDPOINT_PATHS: dict[Endpoint, str] = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
}


class Secret:
    """An API key that cannot leak through repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class RequestConfig:
    """Everything that shapes the request body (and so the answer)."""

    endpoint: Endpoint | None  # None: detect raw batch lines, else chat
    model: str | None = None
    prompt: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    body_options: dict[str, Any] = field(default_factory=dict)
    input_field: str = "text"
    schema: dict[str, Any] | None = None  # answers must be JSON matching it (--schema)
    schema_name: str = "output"  # the schema's name in the request (its file's name)
    json_output: bool = False  # answers must be a JSON object (--json, or with --schema)
    where: str | None = None  # only items matching it are sent (--where); the rest skipped
    truncate: tuple[tuple[str, int], ...] = ()  # (field, characters) cut before rendering
    max_input_tokens: int | None = None  # longer prompts (estimated) are invalid_input
    fallback_model: str | None = None  # asked while the model's breaker is open (or too long)
    inputs_per_request: int = 64  # embeddings inputs packed into one request
    stream: bool = False  # ask for server-sent events (--stream)


class RetryConfig(NamedTuple):
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_invalid_output_retries: int = 2
    max_rate_limited_retries: int = 20


class TrafficConfig(NamedTuple):
    """How hard to push the provider; None limits are learned from its headers."""

    rpm: float | None = None
    tpm: float | None = None
    concurrency: int = 16  # requests in flight at most (AIMD may lower it)
    timeout: float = 60.0  # one attempt's longest wait (the adaptive timeout stays under it)
    shared_limits: str | None = None  # a file every sluice process on the host shares limits in
    idle_timeout: float = 30.0  # the longest silence within a streamed answer
    retry_budget: float = 0.2
    breaker_timeout: float = 300.0
    adaptive_timeout: bool = True


class CacheConfig(NamedTuple):
    """The response cache: where, how big, how old an answer may be, whether to read it."""

    directory: str
    size_limit: int | None  # None: keep the limit the cache has (5 GB for a new cache)
    ttl: float | None = None
    read: bool = True  # False with --refresh-cache: ask again, store the new answers


class ResultFields(NamedTuple):
    """The names of the fields sluice adds to each result row (`--result-prefix`).

    `skipped` is only there with `--where`: every row then says whether it was sent;
    `model` only with `--fallback-model`: every row then names the model that answered;
    `steps` only with `--workflow`: how each step ended (answered, cached, skipped...)."""

    output: str = "output"
    usage: str = "usage"
    cached: str = "cached"
    skipped: str | None = None
    model: str | None = None
    steps: str | None = None

    @classmethod
    def prefixed(
        cls, prefix: str, skipped: bool = False, model: bool = False, steps: bool = False
    ) -> ResultFields:
        flag = f"{prefix}skipped" if skipped else None
        answered_by = f"{prefix}model" if model else None
        step_reports = f"{prefix}steps" if steps else None
        return cls(
            f"{prefix}output", f"{prefix}usage", f"{prefix}cached", flag, answered_by, step_reports
        )

    @property
    def names(self) -> tuple[str, ...]:
        every = (self.output, self.usage, self.cached, self.skipped, self.model, self.steps)
        return tuple(name for name in every if name is not None)

    def clash(self, fields: Container[str]) -> str | None:
        """The item's first field that a result field would replace, if any."""
        return next((name for name in self.names if name in fields), None)


RESULT_FIELDS = ResultFields()


def result_field_clash(field: str) -> str:
    return (
        f"the item has a field {field!r}, which the answer would replace in the results; "
        "keep both with --result-prefix (e.g. --result-prefix sluice_ writes sluice_output)"
    )


class ReadConfig(NamedTuple):
    """What to read and how to cut it into batches."""

    inputs: tuple[str, ...]
    id_field: str = "id"
    batch_size: int = 50
    requeue: bool = False  # the inputs are quarantine files (`sluice retry`)
    # --shard I/N as (I, N), I counting from 1: only the batches b with b % N == I - 1 are
    # prepared, sent and written; every item is still read, so ids are a whole run's.
    shard: tuple[int, int] | None = None


def shard_label(shard: tuple[int, int]) -> str:
    """A shard as `--shard` takes it: "2/3"."""
    return f"{shard[0]}/{shard[1]}"


class ConnectionConfig(NamedTuple):
    """Where requests go, with which key, and how large an answer may be."""

    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE  # one answer's body; beyond: invalid_output


class OutputConfig(NamedTuple):
    """The run's output files: each a path, a device, or - for stdout."""

    results: str
    quarantine: str
    summary: str | None = None
    result_fields: ResultFields = RESULT_FIELDS
    trace: str | None = None  # spans as JSON lines (--trace-file)
    metrics: str | None = None  # a Prometheus textfile (--metrics-file)
    drop_skipped: bool = False  # items --where skipped are left out of the results
    answer_schema: dict[str, Any] | None = None  # --schema: types Parquet's output column
    vectors: bool = False  # embeddings: Parquet's output column holds float32 vectors

    @property
    def paths(self) -> list[str]:
        every = (self.results, self.quarantine, self.summary, self.trace, self.metrics)
        return [p for p in every if p is not None]


class StateConfig(NamedTuple):
    """Checkpoints: where (None: none, nothing to resume), and whether to start over."""

    directory: str | None = None
    fresh: bool = False


class SpendConfig(NamedTuple):
    """Prices and budgets. Budgets cover the whole job, all its attempts together."""

    max_cost: float | None = None  # USD
    max_requests: int | None = None
    deadline: float | None = None  # seconds of running
    price_in: float | None = None  # USD per million prompt tokens, for every model
    price_out: float | None = None  # USD per million completion tokens

    @property
    def budgeted(self) -> bool:
        return (self.max_cost, self.max_requests, self.deadline) != (None, None, None)


class ObserveConfig(NamedTuple):
    """What the run tells operators beyond its outputs."""

    job: str = ""  # the name its summary, metrics and history go under
    trace_id: str = ""  # 32 hex digits; empty: the run makes one
    trace_content: bool = False  # prompts and answers in trace spans (--trace-content)


class EngineConfig(NamedTuple):
    """What sends the requests: this process's asyncio pool, or actors on a Ray cluster
    (`--engine ray`), each running that same pool. Outputs are the same either way."""

    kind: str = "asyncio"  # or "ray"
    ray_address: str | None = None  # None: a Ray instance of this machine, started for the run
    ray_workers: int | None = None  # actors; None: one per CPU the cluster offers
    key_variable: str = "OPENAI_API_KEY"  # Ray workers read the key from their own environment


@dataclass(frozen=True, slots=True)
class RunConfig:
    """A whole run, one sub-config per stage; each stage is handed only its own."""

    read: ReadConfig
    request: RequestConfig
    output: OutputConfig
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    cache: CacheConfig | None = None
    state: StateConfig = field(default_factory=StateConfig)
    spend: SpendConfig = field(default_factory=SpendConfig)
    observe: ObserveConfig = field(default_factory=ObserveConfig)
    max_error_rate: float = 0.0
    grace: float = 10.0  # seconds requests in flight may take to land after a stop
    engine: EngineConfig = field(default_factory=EngineConfig)
    # --workflow: a pipeline.workflow.steps.Workflow (typed loosely: core sits below the
    # layer that defines it). Its steps are the run's requests; `request` is their default.
    workflow: Any = None
