"""SIGINT and SIGTERM during a run: the first stops gracefully, a second stops at once.
A hosted run (sluice serve) is stopped by its host instead (`run_until_stopped`).

Either way the run ends resumable: commits are atomic, so stopping at once only
gives up the batches that had not completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol

from pipeline.core.errors import SluiceError
from pipeline.engines.hosting import StopRequest

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stoppable(Protocol):
    @property
    def running(self) -> bool: ...
    def stop(self, grace: float) -> None: ...


class Interrupted(Exception):
    """Stopped at once by a signal; `exit_code` is 130 or 143."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code


async def run_until_signal(
    work: Coroutine[Any, Any, None], engine: Stoppable, grace: float
) -> int | None:
    """Run `work`; None when it ended by itself, else the exit code of the signal that
    stopped it gracefully. Raises Interrupted when it had to be cancelled."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def on_signal(signum: signal.Signals) -> None:
        received.append(SIGNAL_EXIT_CODES[signum])
        if len(received) == 1 and grace > 0 and engine.running:
            engine.stop(grace)
        else:
            task.cancel()

    installed = []
    for signum in SIGNAL_EXIT_CODES:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
        raise Interrupted(received[0]) from None
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return received[0] if received else None


async def run_until_stopped(
    work: Coroutine[Any, Any, None], engine: Stoppable, request: StopRequest
) -> int | None:
    """As `run_until_signal`, for a hosted run: its host's `request` stops it (gracefully
    once it is running; before that, at once: nothing was sent)."""
    task = asyncio.ensure_future(work)

    def act(grace: float) -> None:
        if engine.running and grace > 0:
            engine.stop(grace)
        else:
            task.cancel()

    request.attach(act)
    try:
        await task
    except asyncio.CancelledError:
        if request.code is None:
            raise
        raise Interrupted(request.code) from None
    finally:
        request.detach()
    return request.code


class Endable(Protocol):
    def end_run(self, error: SluiceError, grace: float = 0) -> None: ...


@contextlib.contextmanager
def ended_at_deadline(
    engine: Endable, left: float | None, reached: SluiceError, grace: float
) -> Iterator[None]:
    """End the run, as a budget does (`reached`), once the job has run its --deadline:
    `left` seconds from now (None: no deadline)."""
    if left is None:
        yield
        return
    timer = asyncio.get_running_loop().call_later(left, engine.end_run, reached, grace)
    try:
        yield
    finally:
        timer.cancel()
