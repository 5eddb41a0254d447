"""A finished command ends the process without Python's teardown (cli/entry.py), and
nothing that the ordinary exit does is lost: the status, the streams, the exit hooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.entry import _status

ROOT = Path(__file__).resolve().parents[2]
# The console script's own entry, with an exit hook of the test's and a thread it may
# leave running: the hook must still run, and the thread must still be waited for. The
# thread writes only once the main thread has stopped, so a process that ended without
# waiting for it never gets its line.
ENTRY = """\
import atexit, sys, threading, time
mark = sys.argv.pop(1)
atexit.register(lambda: open(mark, "a").write("hook ran\\n"))

def after_main():
    while threading.main_thread().is_alive():
        time.sleep(0.01)
    open(mark, "a").write("thread done\\n")

if sys.argv.pop(1) == "busy-thread":
    threading.Thread(target=after_main).start()
sys.argv[0] = "sluice"
from cli.entry import main
print("printed before the exit", flush=False)
main()
"""


def _entry(tmp_path: Path, thread: str, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    mark = tmp_path / "mark.txt"
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, str(mark), thread, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return done, mark.read_text() if mark.exists() else ""


@pytest.mark.parametrize(
    ("args", "status"), [(("--help",), 0), (("rn",), 2), (("run", "-c", "0"), 2)]
)
def test_the_status_the_output_and_the_exit_hooks_survive_the_quick_exit(
    tmp_path: Path, args: tuple[str, ...], status: int
) -> None:
    done, mark = _entry(tmp_path, "no-thread", *args)
    assert done.returncode == status
    assert done.stdout.startswith("printed before the exit")  # a buffered line is flushed
    assert mark == "hook ran\n"
    if status == 0:
        assert "Usage" in done.stdout
    else:
        assert "Usage" in done.stderr


def test_a_thread_still_working_is_waited_for_as_by_the_ordinary_exit(tmp_path: Path) -> None:
    done, mark = _entry(tmp_path, "busy-thread", "--help")
    assert done.returncode == 0
    assert mark.splitlines() == ["thread done", "hook ran"]


def test_the_status_is_the_one_system_exit_gives(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status(None) == 0
    assert _status(0) == 0 and _status(78) == 78 and _status(True) == 1
    assert capsys.readouterr().err == ""
    assert _status("sluice: a message") == 1
    assert capsys.readouterr().err == "sluice: a message\n"
