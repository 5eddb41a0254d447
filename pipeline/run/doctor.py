"""`sluice doctor`, the network side: what each check needs on the wire (resolve the host,
connect, shake hands, GET /models, the one-token probe), in the order a request meets them.

What an answer means for a run is decided by the pure verdicts in
pipeline/run/doctor_checks.py, so that this module only finds things out. When one check
fails, those after it cannot be tried and are reported as skipped. Only `--probe` costs
anything: one chat request of one token.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from pipeline.core.config import ENDPOINT_PATHS, Endpoint, Secret
from pipeline.core.errors import ConfigError, ServiceUnavailable
from pipeline.core.redact import Redactor
from pipeline.dispatch.transport import USER_AGENT, HttpTransport, Response, TransportError
from pipeline.protocol.headers import read_limits
from pipeline.run.doctor_checks import (
    CHECK_NAMES,
    Check,
    Diagnosis,
    DoctorSettings,
    Status,
    failed,
    in_milliseconds,
    key_check,
    limits_check,
    listed_check,
    model_ids,
    passed,
    probe_check,
    skipped,
    untried_check,
)

# A provider's model list is a few hundred entries at most; more is not a model list.
MODELS_BODY_LIMIT = 8 * 1024 * 1024
PROBE_MESSAGES = [{"role": "user", "content": "Say OK."}]
# The checks that send a request, and how their messages name it.
REQUESTS = {"key": "GET /models", "model": "the one-token request"}


@dataclass(slots=True)
class _Findings:
    """What the earlier checks learned, for the later ones."""

    settings: DoctorSettings
    redact: Redactor
    host: str = ""
    port: int = 0
    addresses: list[str] = field(default_factory=list)
    reachable: str = ""  # the address that accepted a connection
    model_ids: list[str] | None = None  # from GET /models; None when it gave no list
    headers: Mapping[str, str] | None = None  # the last HTTP answer's, for the limits


Step = Callable[[_Findings], Awaitable[Check]]


async def diagnose(settings: DoctorSettings) -> Diagnosis:
    """Run the checks in order; one that fails blocks those after it, except the model's:
    a model the server refuses still leaves an answer to read the limits from."""
    findings = _Findings(settings, Redactor(settings.api_key))
    checks: list[Check] = []
    blocked_by: str | None = None
    for name, step in _STEPS:
        if blocked_by is not None:
            checks.append(untried_check(name, settings, blocked_by))
            continue
        check = await _bounded(name, step, findings)
        checks.append(replace(check, detail=findings.redact.clip(_one_line(check.detail))))
        # The limits come with any answer, so a model the server refuses does not hide them.
        if check.status is Status.FAILED and name != "model":
            blocked_by = name
    return Diagnosis(settings, tuple(checks), read_limits(findings.headers or {}))


async def _bounded(name: str, step: Step, findings: _Findings) -> Check:
    """A check that hangs fails, after --timeout, as a server that cannot be reached."""
    timeout = findings.settings.timeout
    try:
        async with asyncio.timeout(timeout):
            return await step(findings)
    except TimeoutError:
        return failed(name, _no_answer(name, timeout), ServiceUnavailable)


def _no_answer(name: str, timeout: float) -> str:
    """The same words whether the request's own timeout or the check's ran out first."""
    asked = REQUESTS.get(name)
    return (f"{asked}: " if asked else "") + f"no answer within {timeout:g}s"


def _failed_request(name: str, error: TransportError, timeout: float) -> Check:
    detail = _no_answer(name, timeout) if error.timed_out else f"{REQUESTS[name]}: {error}"
    return failed(name, detail, ServiceUnavailable)


async def _url(findings: _Findings) -> Check:
    settings = findings.settings
    if settings.base_url_problem is not None:
        return failed("url", settings.base_url_problem, ConfigError)
    parts = urlsplit(settings.base_url)
    findings.host = parts.hostname or ""
    findings.port = parts.port or (443 if parts.scheme == "https" else 80)
    return passed("url", settings.base_url)


async def _resolve(findings: _Findings) -> Check:
    host = findings.host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, findings.port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as error:
        return failed("resolve", f"cannot resolve {host}: {error.strerror}", ServiceUnavailable)
    findings.addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    shown = ", ".join(findings.addresses[:3])
    more = len(findings.addresses) - 3
    return passed("resolve", f"{host} -> {shown}" + (f" (+{more} more)" if more > 0 else ""))


async def _connect(findings: _Findings) -> Check:
    refusals = []
    for address in findings.addresses:
        where = _host_port(address, findings.port)
        started = time.perf_counter()
        try:
            _, writer = await asyncio.open_connection(address, findings.port)
        except OSError as error:
            refusals.append(f"{where}: {_reason(error)}")
            continue
        writer.transport.abort()
        findings.reachable = address
        return passed("connect", f"{where} in {in_milliseconds(time.perf_counter() - started)}")
    return failed("connect", "cannot connect to " + "; ".join(refusals), ServiceUnavailable)


async def _tls(findings: _Findings) -> Check:
    if urlsplit(findings.settings.base_url).scheme != "https":
        return skipped("tls", "plain http: no TLS to check")
    try:
        _, writer = await asyncio.open_connection(
            findings.reachable,
            findings.port,
            ssl=ssl.create_default_context(),  # what aiohttp verifies against, too
            server_hostname=findings.host,
        )
    except ssl.SSLCertVerificationError as error:
        return failed("tls", f"certificate not trusted: {error.verify_message}", ServiceUnavailable)
    except ssl.SSLError as error:
        hint = " (the port may speak plain http)" if error.reason == "WRONG_VERSION_NUMBER" else ""
        return failed("tls", f"handshake failed: {error.reason or error}{hint}", ServiceUnavailable)
    except OSError as error:
        return failed("tls", f"handshake failed: {_reason(error)}", ServiceUnavailable)
    tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
    certificate = tls.getpeercert() or {}
    writer.transport.abort()  # a check needs no orderly TLS goodbye
    return passed("tls", f"{tls.version()}, {_validity(certificate.get('notAfter'))}")


async def _key(findings: _Findings) -> Check:
    settings = findings.settings
    if settings.api_key_problem is not None:
        return failed("key", settings.api_key_problem, ConfigError)
    try:
        response = await _get(settings.base_url + "/models", settings.api_key, settings.timeout)
    except TransportError as error:
        return _failed_request("key", error, settings.timeout)
    findings.headers = response.headers
    if 200 <= response.status < 300:
        findings.model_ids = model_ids(response.payload)
    return key_check(response.status, response.payload, settings, findings.redact)


async def _model(findings: _Findings) -> Check:
    settings = findings.settings
    if settings.model is None:
        return skipped("model", "no model named (-m)")
    if settings.probe:
        return await _probe(findings, settings.model)
    return listed_check(settings.model, findings.model_ids)


async def _probe(findings: _Findings, model: str) -> Check:
    settings = findings.settings
    body = orjson.dumps({"model": model, "messages": PROBE_MESSAGES, "max_tokens": 1})
    try:
        async with HttpTransport(settings.base_url, settings.api_key, concurrency=1) as transport:
            response = await transport.send(ENDPOINT_PATHS[Endpoint.CHAT], body, settings.timeout)
    except TransportError as error:
        return _failed_request("model", error, settings.timeout)
    findings.headers = response.headers
    return probe_check(model, response, findings.model_ids, settings, findings.redact)


async def _limits(findings: _Findings) -> Check:
    if findings.headers is None:
        return skipped("limits", "no answer to read them from")
    settings = findings.settings
    return limits_check(read_limits(findings.headers), settings.probe and bool(settings.model))


async def _get(url: str, api_key: Secret | None, timeout: float) -> Response:
    """GET with the run's manners: no redirects, no cookies, no proxy, a capped body."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key.reveal()}"
    started = time.perf_counter()
    jar = aiohttp.DummyCookieJar()
    try:
        async with (
            aiohttp.ClientSession(headers=headers, cookie_jar=jar) as session,
            session.get(
                url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as answer,
        ):
            body = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MODELS_BODY_LIMIT:
                    break
            latency = time.perf_counter() - started
            return Response(answer.status, answer.headers, bytes(body), latency)
    except TimeoutError as error:
        raise TransportError(f"no answer within {timeout:g}s", timed_out=True) from error
    except aiohttp.ClientConnectorError as error:
        raise TransportError(f"cannot connect: {_reason(error.os_error)}") from error
    except aiohttp.ClientError as error:
        raise TransportError(f"{type(error).__name__}: {error}") from error


def _reason(error: OSError) -> str:
    if isinstance(error, ssl.SSLError):
        return str(getattr(error, "verify_message", None) or error.reason or error)
    if error.errno is not None and error.errno > 0:
        return os.strerror(error.errno)  # asyncio's own wording names the address twice
    return str(error) or type(error).__name__


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _validity(not_after: Any) -> str:
    if not isinstance(not_after, str):
        return "certificate verified"
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    return f"certificate verified, valid until {expires:%Y-%m-%d}"


_STEP_FOR: dict[str, Step] = {
    "url": _url,
    "resolve": _resolve,
    "connect": _connect,
    "tls": _tls,
    "key": _key,
    "model": _model,
    "limits": _limits,
}
# In CHECK_NAMES' order; a check without a step fails here, at import, not in a user's run.
_STEPS: tuple[tuple[str, Step], ...] = tuple((name, _STEP_FOR[name]) for name in CHECK_NAMES)


def _one_line(text: str) -> str:
    return " ".join(text.split())
