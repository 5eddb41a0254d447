"""`sluice plan --probe-limits`: one tiny request to learn the server's rate limits."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from pipeline.core.config import RunConfig
from pipeline.core.errors import AuthRefused, ConfigError
from pipeline.dispatch.transport import HttpTransport, TransportError
from pipeline.protocol.headers import read_limits

PROBE_TIMEOUT = 30.0


@dataclass(slots=True)
class Limits:
    rpm: float | None
    tpm: float | None
    latency: float | None  # seconds, of the probe
    source: str


async def probe_limits(config: RunConfig, given: Limits) -> Limits:
    """One tiny request (max_tokens 1) to read the server's x-ratelimit headers."""
    body = {
        "model": config.request.model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
    }
    if not config.request.model:
        raise ConfigError("--probe-limits needs --model")
    connection = config.connection
    transport = HttpTransport(connection.base_url, connection.api_key, 1)
    try:
        async with transport:
            response = await transport.send(
                "/chat/completions", orjson.dumps(body), min(config.traffic.timeout, PROBE_TIMEOUT)
            )
    except TransportError as exc:
        return Limits(given.rpm, given.tpm, None, f"probe failed: {exc}")
    if response.status in (401, 403):
        raise AuthRefused(f"the server refused the API key (HTTP {response.status})")
    readings = read_limits(response.headers)
    requests, tokens = readings.get("requests"), readings.get("tokens")
    learned_rpm = requests.per_minute if requests else None
    learned_tpm = tokens.per_minute if tokens else None
    rpm = _lower(given.rpm, learned_rpm)
    tpm = _lower(given.tpm, learned_tpm)
    source = "probe" if (learned_rpm or learned_tpm) else "probe: the server reports no limits"
    return Limits(rpm, tpm, response.latency, source)


def _lower(given: float | None, learned: float | None) -> float | None:
    known = [value for value in (given, learned) if value]
    return min(known) if known else None
