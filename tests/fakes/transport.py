"""A scripted in-process Transport: each send asks the script what its answer is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipeline.dispatch.in_process import InProcessTransport
from pipeline.dispatch.transport import Response

Script = Callable[[int], Awaitable[Response]]  # the 1-based number of the send -> its answer


class ScriptedTransport(InProcessTransport):
    def __init__(self, script: Script, base_url: str = "http://127.0.0.1:9/v1") -> None:
        super().__init__(lambda _path, _payload: script(self.sent), base_url)
