"""Runs that end at the same time, in separate processes, each add whole lines to a history."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import orjson

from pipeline.report.history import history_file

WRITERS_PER_JOB = 3
RUNS_PER_WRITER = 60
# Larger than PIPE_BUF (4 KiB), so no single-write guarantee of the kernel's hides a bug.
PADDING = 20_000

_WRITER = """
import sys
from pathlib import Path
from pipeline.report.history import append_run
directory, job, writer = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for n in range({runs}):
    append_run(directory, job, {{"job": job, "writer": writer, "n": n, "pad": "x" * {padding}}})
"""


def test_concurrent_runs_of_one_job_and_of_others_never_interleave(tmp_path: Path) -> None:
    code = _WRITER.format(runs=RUNS_PER_WRITER, padding=PADDING)
    jobs = ("reviews", "tickets")
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), job, str(number)])
        for job in jobs
        for number in range(WRITERS_PER_JOB)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0] * len(writers)
    for job in jobs:
        lines = history_file(tmp_path, job).read_bytes().split(b"\n")
        assert lines[-1] == b""  # ends with a whole line
        records = [orjson.loads(line) for line in lines[:-1]]  # every line parses
        assert len(records) == WRITERS_PER_JOB * RUNS_PER_WRITER
        seen: dict[int, list[int]] = defaultdict(list)
        for record in records:
            assert record["job"] == job and len(record["pad"]) == PADDING
            seen[record["writer"]].append(record["n"])
        # Each writer's runs are there once each, in the order it wrote them.
        assert seen == {w: list(range(RUNS_PER_WRITER)) for w in range(WRITERS_PER_JOB)}
