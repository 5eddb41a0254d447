"""Files that appear under their final name only when complete: temp, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO

from pipeline.errors import OutputError


class AtomicFile:
    """A temp file beside `path` (same filesystem, so the rename is atomic), mode 0600."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        if os.path.isdir(self.path):
            # Found out now; the rename at the very end would fail after all was paid for.
            raise OutputError(f"cannot write {path!r}: it is a directory")
        directory, name = os.path.split(self.path)
        try:
            fd, self.temp_path = tempfile.mkstemp(
                prefix=f".{name}.", suffix=".partial", dir=directory
            )
        except OSError as exc:
            raise OutputError(f"cannot create {path!r}: {exc.strerror}") from exc
        self.handle: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._closed = False

    def commit(self) -> None:
        """Make the content durable, then give it its final name."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self._closed = True
            os.replace(self.temp_path, self.path)
            fsync_directory(os.path.dirname(self.path))
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path!r}: {exc.strerror}") from exc

    def abort(self) -> None:
        """Drop the temp file; whatever stood under the final name stays as it was."""
        if not self._closed:
            with contextlib.suppress(OSError):
                self.handle.close()
            self._closed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)


def fsync_directory(directory: str) -> None:
    """A rename is durable only once its directory entry is on disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
