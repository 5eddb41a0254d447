"""SIGINT and SIGTERM during a run: the first stops gracefully, a second stops at once.

Either way the run ends resumable: commits are atomic, so stopping at once only
gives up the batches that had not completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any, Protocol

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
