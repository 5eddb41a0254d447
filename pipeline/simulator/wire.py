"""How answers leave the simulator: a stream's headers, its events, and a connection
dropped without a byte of answer."""

from __future__ import annotations

import asyncio

from aiohttp import web

EVENT_STREAM_CONTENT_TYPE = "text/event-stream; charset=utf-8"


async def open_stream(request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    """Send the 200 and its headers; the events follow with `send_events`."""
    response = web.StreamResponse(
        status=200,
        headers={**headers, "Content-Type": EVENT_STREAM_CONTENT_TYPE, "Cache-Control": "no-cache"},
    )
    await response.prepare(request)
    return response


async def send_events(response: web.StreamResponse, events: list[bytes], interval: float) -> bool:
    """Write the events `interval` seconds apart; False when the client left meanwhile."""
    for index, event in enumerate(events):
        if index and interval > 0.0:
            await asyncio.sleep(interval)
        try:
            await response.write(event)
        except ConnectionError:
            return False
    return True


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a byte of answer; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    # aiohttp's write to the closed transport fails quietly, so nothing reaches the client.
    return web.Response(status=200)
