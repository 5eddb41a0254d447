"""What an output path names, and whether two paths name the same file.

Paths are compared as the files they name, never as strings: `out.jsonl`,
`./out.jsonl`, an absolute path, a symlink and a hard link to it are one file,
and `/dev/stdout` is the same as `-` (standard output).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from enum import StrEnum

from pipeline.core.config import STDIO
from pipeline.core.errors import UsageError

# Device and process trees: a path in them is never a file to replace by rename,
# even where it resolves to one (/dev/stdout redirected to a log file).
_SPECIAL_TREES = ("/dev/", "/proc/")


class Target(StrEnum):
    STDOUT = "stdout"  # '-'
    DIRECT = "direct"  # a device, FIFO or socket: written to as it is, never renamed over
    FILE = "file"  # a regular file, or none yet: a temp file renamed into place


def target_kind(path: str) -> Target:
    if path == STDIO:
        return Target.STDOUT
    if any(p.startswith(_SPECIAL_TREES) for p in (os.path.abspath(path), os.path.realpath(path))):
        return Target.DIRECT
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return Target.FILE  # none yet (or unreachable: the up-front checks say why)
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return Target.FILE
    return Target.DIRECT


def _file_identity(path: str) -> set[tuple[object, ...]]:
    """Every name an output goes by: its real path, and its device and inode when it exists."""
    keys: set[tuple[object, ...]] = set()
    try:
        info = os.fstat(1) if path == STDIO else os.stat(path)
    except OSError:
        info = None
    if path != STDIO:
        keys.add(("path", os.path.realpath(path)))
    elif info is None:
        keys.add(("stdout",))
    if info is not None:
        if stat.S_ISCHR(info.st_mode) and _is_null_device(info):
            return set()  # any number of outputs may be thrown away together
        keys.add(("inode", info.st_dev, info.st_ino))
    return keys


def _is_null_device(info: os.stat_result) -> bool:
    try:
        return info.st_rdev == os.stat(os.devnull).st_rdev
    except OSError:
        return False


def _input_identity(path: str) -> set[tuple[object, ...]]:
    """Only a regular file can be destroyed by writing over it; stdin, pipes and
    devices are read from, and may well be the terminal the results go to."""
    if path == STDIO or target_kind(path) is not Target.FILE:
        return set()
    return _file_identity(path)


def check_distinct(inputs: Sequence[str], outputs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse (exit 2) an output that is an input or another output, however spelled.

    `outputs` are (flag, path) pairs; a None path is an output not asked for.
    """
    named = [(flag, path, _file_identity(path)) for flag, path in outputs if path is not None]
    sources = [(source, _input_identity(source)) for source in inputs]
    for flag, path, keys in named:
        for source, source_keys in sources:
            if keys & source_keys:
                raise UsageError(
                    f"{flag} {path!r} is also an input ({source!r}): writing it would "
                    "destroy the input; choose another name"
                )
    for index, (flag, path, keys) in enumerate(named):
        for other_flag, other_path, other_keys in named[:index]:
            if keys & other_keys:
                raise UsageError(_clash(other_flag, other_path, flag, path))


def _clash(flag: str, path: str, other_flag: str, other_path: str) -> str:
    both = f"{flag} {path!r} and {other_flag} {other_path!r}"
    if Target.FILE not in (target_kind(path), target_kind(other_path)):
        return f"{both} write to the same stream, where they would mix; send one to a file"
    return f"{both} name the same file; they must differ, or one would replace the other"
