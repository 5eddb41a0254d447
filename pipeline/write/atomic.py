"""Output files that appear under their final name only when complete: temp, fsync, rename.

Only regular files are replaced by rename. Standard output, devices and FIFOs
are written to directly (`DirectFile`): renaming over `/dev/stdout` would
replace the machine's symlink for every process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import BinaryIO, Protocol

from pipeline.core.errors import OutputError
from pipeline.write.paths import Target, target_kind

TEMP_SUFFIX = ".partial"
KEPT_SUFFIX = ".previous"  # the file a publish replaces, kept until its partner is in place


class OutputFile(Protocol):
    path: str
    handle: BinaryIO

    def prepare(self) -> None:
        """Make the content complete and durable, not yet visible."""

    def publish(self) -> None:
        """Give the prepared content its name."""

    def commit(self) -> None:
        """`prepare`, then `publish`."""

    def abort(self) -> None:
        """Drop what was written; whatever stood under the name stays as it was."""


class AtomicFile:
    """A temp file beside the real path (same filesystem, so the rename is atomic).

    Private files (state, cache) stay 0600; others (results, quarantine, summary)
    get the mode the user's umask gives new files, like any Unix tool's output.
    While open, the temp file is flock'ed, so a later run can tell a dead run's
    leftover (`sweep_stale_temps`) from a live one's.
    """

    def __init__(self, path: str, private: bool = True) -> None:
        # The real path: a symlinked output keeps its link, and its target is replaced.
        self.path = os.path.realpath(path)
        self._private = private
        if os.path.isdir(self.path):
            # Found out now; the rename at the very end would fail after all was paid for.
            raise OutputError(f"cannot write {path!r}: it is a directory")
        if target_kind(path) is not Target.FILE:
            # Only a regular file is ever replaced by rename (open_output sends the rest
            # to DirectFile); a state file that turned into a device or pipe is refused.
            raise OutputError(f"cannot write {path!r}: it is not a regular file")
        directory, name = os.path.split(self.path)
        try:
            fd, self.temp_path = tempfile.mkstemp(
                prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=directory
            )
        except OSError as exc:
            raise OutputError(f"cannot create {path!r}: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.handle: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._closed = False
        self._prepared = False

    def prepare(self) -> None:
        try:
            self.handle.flush()
            if not self._private:
                os.fchmod(self.handle.fileno(), user_file_mode())
            os.fsync(self.handle.fileno())
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path!r}: {exc.strerror}") from exc
        self._prepared = True

    def publish(self) -> None:
        assert self._prepared, "prepare() before publish()"
        try:
            # Still open, so still flock'ed: no sweep can take it before the rename.
            os.replace(self.temp_path, self.path)
            self._close()
            fsync_directory(os.path.dirname(self.path))
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path!r}: {exc.strerror}") from exc

    def commit(self) -> None:
        self.prepare()
        self.publish()

    def abort(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self.handle.close()


class DirectFile:
    """Standard output, a device or a FIFO: written as it goes; nothing to rename or undo."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.handle: BinaryIO = sys.stdout.buffer
            self._owned = False
        else:
            try:
                # Appending: /dev/stdout may be a log file the shell opened with >>.
                self.handle = open(path, "ab")  # noqa: SIM115 - closed in prepare/abort
            except OSError as exc:
                raise OutputError(f"cannot write {path!r}: {exc.strerror}") from exc
            self._owned = True

    def prepare(self) -> None:
        try:
            self.handle.flush()
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot write {self.name}: {exc}") from exc
        finally:
            self._close()

    def publish(self) -> None:
        pass

    def commit(self) -> None:
        self.prepare()

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.handle.flush()
        self._close()

    @property
    def name(self) -> str:
        return "standard output" if self.path == "-" else repr(self.path)

    def _close(self) -> None:
        if self._owned:
            with contextlib.suppress(OSError):
                self.handle.close()


def open_output(path: str) -> OutputFile:
    """A results, quarantine or summary file: renamed into place only when regular."""
    if target_kind(path) is Target.FILE:
        return AtomicFile(path, private=False)
    return DirectFile(path)


def publish_together(files: Sequence[OutputFile]) -> None:
    """Publish prepared files so that a failure leaves every earlier file as it was.

    What each rename replaces is first kept under a hard link; if a later rename
    fails, the earlier ones are put back.
    """
    kept = [_keep_previous(f) for f in files]
    published = 0
    try:
        for output in files:
            output.publish()
            published += 1
    except OutputError:
        for output, previous in zip(files[:published], kept[:published], strict=True):
            _put_back(output, previous)
        raise
    finally:
        for previous in kept:
            if previous:
                with contextlib.suppress(OSError):
                    os.unlink(previous)


def _keep_previous(output: OutputFile) -> str | None:
    """A hard link to the file `output` will replace ("" when there is none yet)."""
    if not isinstance(output, AtomicFile):
        return None
    directory, name = os.path.split(output.path)
    kept = os.path.join(directory, f".{name}.{os.urandom(4).hex()}{KEPT_SUFFIX}")
    try:
        os.link(output.path, kept)
    except FileNotFoundError:
        return ""
    except OSError:
        return None  # no hard links here: the file cannot be put back, only replaced
    return kept


def _put_back(output: OutputFile, kept: str | None) -> None:
    with contextlib.suppress(OSError):
        if kept:
            os.replace(kept, output.path)
        elif kept == "":
            os.unlink(output.path)


def sweep_stale_temps(path: str) -> None:
    """Remove temp files a killed run left beside `path`; a live run's stay (flock'ed)."""
    if target_kind(path) is not Target.FILE:
        return
    directory, name = os.path.split(os.path.realpath(path))
    pattern = re.compile(
        rf"\.{re.escape(name)}\.[A-Za-z0-9_]+({re.escape(TEMP_SUFFIX)}|{re.escape(KEPT_SUFFIX)})"
    )
    try:
        entries = [e for e in os.scandir(directory) if pattern.fullmatch(e.name)]
    except OSError:
        return
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            _remove_if_abandoned(entry.path)


def _remove_if_abandoned(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except OSError:
        pass  # held by a live writer, or already gone
    finally:
        os.close(fd)


def user_file_mode() -> int:
    """The mode a new file gets under the user's umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # Linux shows the umask without changing it; elsewhere set and restore it once.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_directory(directory: str) -> None:
    """A rename is durable only once its directory entry is on disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
