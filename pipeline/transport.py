"""HTTP to the provider: the only place the engine touches aiohttp.

aiohttp's exceptions stop here and become `TransportError`, which the dispatcher
treats as transient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import aiohttp

from pipeline.config import Secret

USER_AGENT = "sluice/0.1"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    payload: bytes
    latency: float


class TransportError(Exception):
    """No usable HTTP answer: refused, reset, timed out or cut short."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Transport(Protocol):
    async def send(self, path: str, payload: bytes, timeout: float) -> Response: ...


class HttpTransport:
    """One aiohttp session whose connection pool matches the concurrency."""

    def __init__(self, base_url: str, api_key: Secret | None, concurrency: int):
        self._base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key.reveal()}"
        self._concurrency = concurrency
        self._timeout: aiohttp.ClientTimeout | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpTransport:
        connector = aiohttp.TCPConnector(limit=self._concurrency, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            # Cookies from one answer must never ride along on the next request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    def _client_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # The adaptive timeout moves a little with every answer; reuse one object
        # per tenth of a second (rounded up) rather than building one per request.
        # Float noise first: 0.3 * 10 is 3.0000000000000004, which must not become 0.4.
        seconds = math.ceil(round(seconds * 10, 6)) / 10
        if self._timeout is None or self._timeout.total != seconds:
            self._timeout = aiohttp.ClientTimeout(total=seconds)
        return self._timeout

    async def send(self, path: str, payload: bytes, timeout: float) -> Response:
        """POST `payload`; the whole exchange must finish within `timeout` seconds."""
        assert self._session is not None, "use HttpTransport as an async context manager"
        started = time.perf_counter()
        try:
            async with self._session.post(
                self._base_url + path,
                data=payload,
                allow_redirects=False,
                timeout=self._client_timeout(timeout),
            ) as answer:
                body = await answer.read()
                return Response(answer.status, answer.headers, body, time.perf_counter() - started)
        except TimeoutError as exc:
            raise TransportError(f"no answer within {timeout:.3g}s", timed_out=True) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"cannot connect: {exc.os_error or exc}") from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise TransportError("server closed the connection without answering") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransportError(f"answer was cut short: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
