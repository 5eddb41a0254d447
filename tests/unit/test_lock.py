"""One run per state directory (pipeline/state/lock.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.core.errors import OutputError
from pipeline.state.lock import LOCK_NAME, Holder, RunLock, StateLocked, current_holder


@pytest.fixture
def held(tmp_path: Path) -> Iterator[RunLock]:
    lock = RunLock(str(tmp_path))
    lock.acquire()
    yield lock
    lock.release()


def test_acquire_and_release(tmp_path: Path) -> None:
    lock = RunLock(str(tmp_path))
    assert not lock.held
    lock.acquire()
    assert lock.held
    lock.release()
    assert not lock.held
    lock.release()  # twice is harmless


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path, held: RunLock) -> None:
    with pytest.raises(StateLocked) as refused:
        RunLock(str(tmp_path)).acquire()
    assert refused.value.exit_code == 75
    assert f"pid {os.getpid()}" in refused.value.message
    assert str(tmp_path) in refused.value.message


def test_a_refused_acquire_leaves_the_lock_file_as_it_was(tmp_path: Path, held: RunLock) -> None:
    lock_file = tmp_path / LOCK_NAME
    before = lock_file.read_bytes()
    assert before  # the holder wrote who it is
    with pytest.raises(StateLocked):
        RunLock(str(tmp_path)).acquire()
    assert lock_file.read_bytes() == before


def test_after_release_a_new_lock_succeeds(tmp_path: Path) -> None:
    first = RunLock(str(tmp_path))
    first.acquire()
    first.release()
    second = RunLock(str(tmp_path))
    second.acquire()
    assert second.held
    second.release()


def test_current_holder_is_none_when_free(tmp_path: Path) -> None:
    assert current_holder(str(tmp_path)) is None  # no lock file yet
    lock = RunLock(str(tmp_path))
    lock.acquire()
    lock.release()
    assert current_holder(str(tmp_path)) is None  # a stale note is not a holder


def test_current_holder_names_the_run_holding_it(tmp_path: Path, held: RunLock) -> None:
    holder = current_holder(str(tmp_path))
    assert isinstance(holder, Holder)
    assert (holder.pid, holder.host) == (os.getpid(), socket.gethostname())
    assert holder.started is not None
    # Asking does not take the lock away, nor keep it.
    assert held.held
    with pytest.raises(StateLocked):
        RunLock(str(tmp_path)).acquire()


def test_a_torn_note_still_refuses_without_naming_a_pid(tmp_path: Path, held: RunLock) -> None:
    (tmp_path / LOCK_NAME).write_bytes(b'{"pid": 12')  # as if caught mid-write
    assert current_holder(str(tmp_path)) == Holder(None, None, None)
    with pytest.raises(StateLocked, match=r"^another sluice run is using"):
        RunLock(str(tmp_path)).acquire()


_CHILD = """
import sys, time
from pipeline.state.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_the_lock_of_a_killed_run_is_free(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "locked\n"
        holder = current_holder(str(tmp_path))
        assert holder is not None and holder.pid == child.pid
        with pytest.raises(StateLocked, match=f"pid {child.pid}"):
            RunLock(str(tmp_path)).acquire()
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()

    assert current_holder(str(tmp_path)) is None
    lock = RunLock(str(tmp_path))
    lock.acquire()
    assert lock.held
    lock.release()


def test_the_lock_file_is_owner_only_even_when_it_was_not(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.write_bytes(b"")
    path.chmod(0o644)  # as a umask of 0 or an older tool may have left it
    lock = RunLock(str(tmp_path))
    lock.acquire()
    try:
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        lock.release()


def test_a_lock_that_is_not_a_file_is_an_output_error_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="must be a file you can write"):
        RunLock(str(tmp_path)).acquire()
