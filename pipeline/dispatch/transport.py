"""HTTP to the provider: the only place the engine touches aiohttp.

aiohttp is imported, and the session opened, with the first request: importing it
costs ~0.3 s (TLS contexts are built at import), which a run answered wholly from
the cache, or a plan, never needs to pay.

aiohttp's exceptions stop here and become `TransportError`, which the dispatcher
treats as transient. Bodies are read in chunks up to a cap, so memory never
follows a server's whim: a 2xx larger than the cap raises `AnswerTooLarge`,
an error answer is kept only up to `ERROR_BODY_LIMIT` (enough for its message).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import ssl
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, Protocol

from pipeline import __version__
from pipeline.core.config import DEFAULT_MAX_RESPONSE_SIZE, Secret
from pipeline.protocol.sse import StreamAssembly, StreamBroken

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"sluice/{__version__}"
ERROR_BODY_LIMIT = 64 * 1024  # an error's message fits; redacting more would cost for nothing
CHUNK_SIZE = 64 * 1024
DEFAULT_IDLE_TIMEOUT = 30.0  # seconds a stream may stay silent (--idle-timeout)


class Response(NamedTuple):
    """One HTTP answer (a NamedTuple: one is built an attempt, see core/models.py)."""

    status: int
    headers: Mapping[str, str]
    payload: bytes
    latency: float
    first_token: float | None = None  # seconds to a streamed answer's first text


class TransportError(Exception):
    """No usable HTTP answer: refused, reset, timed out or cut short."""

    def __init__(self, message: str, timed_out: bool = False, connect_failed: bool = False):
        super().__init__(message)
        self.timed_out = timed_out
        self.connect_failed = connect_failed  # refused, unresolvable, TLS: the request never left


class AnswerTooLarge(TransportError):
    """A 2xx body beyond the cap: cut off, the connection closed rather than drained."""

    def __init__(self, status: int, limit: int) -> None:
        super().__init__(f"the answer was larger than --max-response-size ({limit:,} bytes)")
        self.status = status


class Transport(Protocol):
    base_url: str  # where requests go, for messages

    def ready(self) -> None:
        """Be able to send at once: called before a request takes its place in the
        rate limits, which count it as sent from then on."""

    async def send(self, path: str, payload: bytes, timeout: float) -> Response: ...


class HttpTransport:
    """One aiohttp session whose connection pool matches the concurrency."""

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        concurrency: int,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_response_size = max_response_size
        self._idle_timeout = idle_timeout  # the longest silence within a streamed answer
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key.reveal()}"
        self._concurrency = concurrency
        self._timeout: aiohttp.ClientTimeout | None = None
        self._session: aiohttp.ClientSession | None = None  # opened by `ready`
        self._open = False  # inside `async with`

    async def __aenter__(self) -> HttpTransport:
        self._open = True
        return self

    def ready(self) -> None:
        """Import aiohttp and open the session, once. Not at the first `send`: that
        import (~0.3 s, blocking the loop) would come between the first requests'
        places in the rate limits and their sending, and the limits would count them
        as sent while the server, its bucket still full, gained nothing by the wait."""
        if self._session is None:
            self._session = self._new_session()

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300)
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            # Cookies from one answer must never ride along on the next request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        import aiohttp

        # The adaptive timeout moves a little with every answer; reuse one object
        # per tenth of a second (rounded up) rather than building one per request.
        # Float noise first: 0.3 * 10 is 3.0000000000000004, which must not become 0.4.
        seconds = math.ceil(round(seconds * 10, 6)) / 10
        if self._timeout is None or self._timeout.total != seconds:
            self._timeout = aiohttp.ClientTimeout(total=seconds)
        return self._timeout

    async def send(self, path: str, payload: bytes, timeout: float) -> Response:
        """POST `payload`; the whole exchange must finish within `timeout` seconds."""
        assert self._open, "use HttpTransport as an async context manager"
        import aiohttp  # a look-up in sys.modules after the first time

        self.ready()
        assert self._session is not None
        started = time.perf_counter()
        try:
            async with self._session.post(
                self.base_url + path,
                data=payload,
                allow_redirects=False,
                timeout=self._client_timeout(timeout),
            ) as answer:
                if 200 <= answer.status < 300 and _is_stream(answer):
                    body, first = await self._streamed(answer, started)
                    latency = time.perf_counter() - started
                    return Response(answer.status, answer.headers, body, latency, first)
                body = await self._body(answer)
                return Response(answer.status, answer.headers, body, time.perf_counter() - started)
        except TimeoutError as exc:
            raise TransportError(f"no answer within {timeout:.3g}s", timed_out=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(_cannot_connect(exc), connect_failed=True) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransportError("server closed the connection without answering") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransportError(f"answer was cut short: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def _body(self, answer: aiohttp.ClientResponse) -> bytes:
        declared = answer.content_length
        if not 200 <= answer.status < 300:
            # An error's message is at its start; the rest is not worth memory or redaction.
            limit = min(self._max_response_size, ERROR_BODY_LIMIT)
            if declared is not None and declared <= limit:
                return await answer.read()
            body, _ = await _read_at_most(answer, limit)
            return body
        limit = self._max_response_size
        if declared is not None and declared > limit:
            answer.close()  # no need to read a byte of it
            raise AnswerTooLarge(answer.status, limit)
        if declared is not None:
            # The common case, in one read: aiohttp stops at the declared length.
            return await answer.read()
        body, complete = await _read_at_most(answer, limit)
        if not complete:
            raise AnswerTooLarge(answer.status, limit)
        return body

    async def _streamed(
        self, answer: aiohttp.ClientResponse, started: float
    ) -> tuple[bytes, float | None]:
        """A streamed answer put back together, and the seconds to its first text. A
        stream silent for longer than the idle timeout is cut: a stuck generation is
        retried long before the whole attempt's timeout."""
        assembly = StreamAssembly()
        first: float | None = None
        pending, size, limit = b"", 0, self._max_response_size
        while not assembly.done:
            try:
                chunk = await asyncio.wait_for(answer.content.readany(), self._idle_timeout)
            except TimeoutError as exc:
                answer.close()
                raise TransportError(
                    f"the stream sent nothing for {self._idle_timeout:g}s (--idle-timeout)",
                    timed_out=True,
                ) from exc
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                answer.close()
                raise AnswerTooLarge(answer.status, limit)
            *lines, pending = (pending + chunk).split(b"\n")
            try:
                for line in lines:
                    if assembly.feed(line) and first is None:
                        first = time.perf_counter() - started
            except StreamBroken as exc:
                answer.close()
                raise TransportError(str(exc)) from exc
        try:
            if pending:
                assembly.feed(pending)
            return assembly.body(), first
        except StreamBroken as exc:
            raise TransportError(str(exc)) from exc


def _is_stream(answer: aiohttp.ClientResponse) -> bool:
    return answer.content_type == "text/event-stream"


async def _read_at_most(answer: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether that was all of it. When it was
    not, the connection is closed: draining an endless body would never end."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(CHUNK_SIZE):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            answer.close()
            return b"".join(chunks)[:limit], False
    return b"".join(chunks), True


def _cannot_connect(exc: aiohttp.ClientConnectorError) -> str:
    """`cannot connect to host:port: Connection refused`, without asyncio's noise."""
    error = exc.os_error
    if isinstance(error, socket.gaierror):
        reason = f"cannot resolve the host name ({error.strerror})"
    elif isinstance(error, ssl.SSLError):
        reason = f"TLS failed ({getattr(error, 'verify_message', None) or error.reason or error})"
    elif error.errno is not None and error.errno > 0:
        reason = os.strerror(error.errno)
    else:
        reason = str(error) or type(error).__name__
    return f"cannot connect to {exc.host}:{exc.port}: {reason}"
