"""The values of run options that are small languages of their own: `-O key=value`,
`--truncate FIELD:N` and `--shard I/N`, parsed into what the run's settings hold."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.core.errors import UsageError

RESERVED_BODY_FIELDS = {
    "model": "use -m/--model",
    "messages": "use --prompt and --system",
    "input": "use --input-field",
    "stream": "use --stream",
}


def parse_body_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-O expects key=value, got {pair!r}")
        key = key.strip()
        if key in RESERVED_BODY_FIELDS:
            raise UsageError(f"-O {key}=... is not allowed: {RESERVED_BODY_FIELDS[key]}")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


def parse_truncations(values: list[str]) -> tuple[tuple[str, int], ...]:
    """`--truncate text:2000` as (field, characters); a field named twice is a mistake."""
    limits: dict[str, int] = {}
    for value in values:
        field, sep, count = value.rpartition(":")
        if not sep or not field.strip() or not count.strip().isdigit() or int(count) < 1:
            raise UsageError(
                f"--truncate expects FIELD:N with N a whole number above 0, got {value!r}"
            )
        if field in limits:
            raise UsageError(f"--truncate names {field!r} twice")
        limits[field.strip()] = int(count)
    return tuple(limits.items())


def parse_shard(value: str) -> tuple[int, int]:
    """`--shard 2/3` as (2, 3): shard I of N, I counting from 1 as `seq 1 N` and most
    Slurm arrays do; a 0-based index (a Kubernetes indexed Job's) is refused with the fix:
    accepting both would make 1/3 mean two different shards."""
    index, sep, count = (part.strip() for part in value.partition("/"))
    if not (sep and _whole_number(index) and _whole_number(count)):
        raise UsageError(f"--shard expects I/N, such as 2/3 (shard 2 of 3), got {value!r}")
    shard, shards = int(index), int(count)
    if shards < 1:
        raise UsageError(f"--shard {value}: N, the number of shards, must be at least 1")
    if shard == 0:
        raise UsageError(
            f"--shard counts shards from 1 (1/{shards} to {shards}/{shards}); "
            f"from a 0-based index, give --shard $((INDEX+1))/{shards}"
        )
    if shard > shards:
        raise UsageError(
            f"--shard {value}: there is no shard {shard} of {shards}; "
            f"the shards are 1/{shards} to {shards}/{shards}"
        )
    return shard, shards


def _whole_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
