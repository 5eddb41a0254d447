"""A reduce's record of its finished levels (`reduce.json` in its state directory).

The job (inputs, grouping, request settings) and how many levels are done, with
a checksum of both: a damaged record is treated as none (the levels then run
again, their answers from the cache), never trusted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

import orjson

from pipeline.core.errors import ConfigError, OutputError
from pipeline.write.atomic import AtomicFile

MANIFEST = "reduce.json"


def levels_done(directory: str, job: dict[str, Any], fresh: bool) -> int:
    """The levels an earlier attempt of the same job finished (0 for a new one); the
    state directory is made (or emptied, with `fresh`)."""
    if fresh:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the state directory {directory}: {exc}") from exc
    stored = _read(directory)
    if stored is None:
        return 0
    if stored["job"] != orjson.loads(orjson.dumps(job)):
        raise ConfigError(
            f"the state directory {directory} holds another reduce (other inputs, "
            "grouping or request settings); add --fresh to start this one over"
        )
    return int(stored["levels_done"])


def save_levels_done(directory: str, job: dict[str, Any], done: int) -> None:
    body = {"job": job, "levels_done": done}
    target = AtomicFile(os.path.join(directory, MANIFEST))
    try:
        target.handle.write(orjson.dumps({**body, "checksum": _checksum(body)}))
        target.commit()
    except BaseException:
        target.abort()
        raise


def _read(directory: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory, MANIFEST), "rb") as handle:
            stored = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(stored, dict):
        return None
    body = {"job": stored.get("job"), "levels_done": stored.get("levels_done")}
    if stored.get("checksum") != _checksum(body) or not isinstance(body["levels_done"], int):
        return None
    return body


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
