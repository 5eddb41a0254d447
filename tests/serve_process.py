"""`sluice serve` as a real process on 127.0.0.1, for tests and benchmarks.

    with ServeProcess(data_dir, sim.base_url) as server:
        status, body = server.call("POST", "/v1/process", {"items": [...]})

It listens on a free port (announced on stderr), and its stderr is drained in a
thread so a long test never fills the pipe; `lines` keeps what it said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

ANNOUNCE = "listening on "


class ServeProcess:
    def __init__(
        self, data_dir: Path, base_url: str, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.command = [
            sys.executable, "-m", "cli", "serve", "--port", "0", "--data-dir", str(data_dir),
            "--base-url", base_url, "-m", "sim-chat", "-p", "Label: {{ text }}",
            "--retry-backoff", "0", *extra,
        ]  # fmt: skip
        self.env = {**os.environ, "OPENAI_API_KEY": "", **(env or {})}
        self.lines: list[str] = []
        self.url = ""
        self.token: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        """Starts the server, unless `start()` already did (`with server.start():`)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServeProcess:
        self.lines, self.url = [], ""
        self.process = subprocess.Popen(
            self.command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=self.env
        )
        announced = threading.Event()
        threading.Thread(target=self._drain, args=(announced,), daemon=True).start()
        if not announced.wait(30) or not self.url:
            self.stop()
            raise RuntimeError(f"sluice serve did not start: {self.lines}")
        return self

    def _drain(self, announced: threading.Event) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if ANNOUNCE in line and not self.url:
                self.url = line.split(ANNOUNCE, 1)[1].split(";")[0].strip()
                announced.set()
        announced.set()

    def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
        content_type: str = "application/json", token: str | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        """(status, parsed JSON body, or the raw bytes when it is not JSON)."""
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token or self.token:
            request.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        try:
            return status, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return status, payload

    def wait_for(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        """The job's status once final."""
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/v1/jobs/{job_id}")
            if status == 200 and job["status"] in ("succeeded", "failed", "cancelled"):
                return job  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"job {job_id} did not finish: {job}"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
