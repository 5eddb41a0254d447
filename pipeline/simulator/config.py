"""Every knob of the simulator; the defaults give a fast, unlimited, faultless API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_MODELS = ("sim-chat", "sim-embed")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulated API behaves.

    Rates are probabilities per accepted request. One uniform draw decides which
    random fault (if any) a request gets, so their sum must not exceed 1.
    """

    rpm: int | None = None
    """Requests per minute the account may make; None means unlimited."""
    tpm: int | None = None
    """Tokens per minute (prompt + max_tokens, as OpenAI counts); None means unlimited."""
    burst_seconds: float = 10.0
    """A limit's bucket holds this many seconds' worth of its per-minute allowance."""
    latency: float = 0.0
    """Seconds each answer is delayed by."""
    jitter: float = 0.0
    """Each delay varies uniformly within +/- this many seconds (never below 0)."""
    fail_rate: float = 0.0
    """Share of requests answered 500, 502 or 503."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed without any answer."""
    hang_rate: float = 0.0
    """Share of requests never answered (held for `hang_seconds`, then dropped)."""
    malformed_rate: float = 0.0
    """Share of requests answered 200 with a body that is not valid JSON."""
    hang_seconds: float = 600.0
    seed: int = 0
    """Seeds every random draw (faults, jitter), so a run can be replayed exactly."""
    quota_requests: int | None = None
    """After this many accepted requests, every request gets 429 insufficient_quota."""
    require_key: str | None = field(default=None, repr=False)
    """When set, requests must carry `Authorization: Bearer <this key>`."""
    embedding_dimensions: int = 8
    """Length of embedding vectors when the request does not ask for `dimensions`."""
    context_length: int = 128_000
    """Prompt + max_tokens above this is refused with context_length_exceeded."""
    model_context_lengths: Mapping[str, int] = field(default_factory=dict)
    """Per-model context lengths, overriding `context_length` for the models they name."""
    models: tuple[str, ...] = DEFAULT_MODELS
    """Listed by GET /v1/models; requests may still name any model unless `strict_models`."""
    strict_models: bool = False
    """Refuse requests naming a model not in `models` with 404 model_not_found."""
    stream_interval: float = 0.0
    """Seconds between the chunks of a streamed answer."""

    def __post_init__(self) -> None:
        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def context_length_for(self, model: str) -> int:
        return self.model_context_lengths.get(model, self.context_length)

    @property
    def fault_rate_total(self) -> float:
        return self.fail_rate + self.drop_rate + self.hang_rate + self.malformed_rate


def config_problems(config: SimulatorConfig) -> list[str]:
    """Every reason the config cannot be served, worded for the person who set it."""
    problems: list[str] = []
    for name in ("fail_rate", "drop_rate", "hang_rate", "malformed_rate"):
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be between 0 and 1, got {value}")
    if config.fault_rate_total > 1.0 + 1e-9:
        problems.append(
            "fail, drop, hang and malformed rates together must not exceed 1, "
            f"got {config.fault_rate_total:g}"
        )
    # A quota of 0 is meaningful (an account out of credit); a limit of 0 would never refill.
    for name, minimum in (("rpm", 1), ("tpm", 1), ("quota_requests", 0)):
        value = getattr(config, name)
        if value is not None and value < minimum:
            problems.append(f"{name} must be at least {minimum} (or unset), got {value}")
    for name in ("burst_seconds", "latency", "jitter", "hang_seconds", "stream_interval"):
        if getattr(config, name) < 0:
            problems.append(f"{name} must not be negative")
    if config.burst_seconds == 0:
        problems.append("burst_seconds must be above 0")
    if config.embedding_dimensions < 1:
        problems.append("embedding_dimensions must be at least 1")
    if config.context_length < 1:
        problems.append("context_length must be at least 1")
    for model, length in config.model_context_lengths.items():
        if length < 1:
            problems.append(f"the context length of {model} must be at least 1, got {length}")
        elif config.strict_models and model not in config.models:
            problems.append(
                f"a context length is set for {model}, which the list of models lacks, "
                "so strict models would refuse every request for it"
            )
    return problems
