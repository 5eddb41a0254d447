"""File formats told from names: the one table readers, writers and the CLI share."""

from __future__ import annotations

from enum import StrEnum


class FileFormat(StrEnum):
    JSONL = "jsonl"
    JSONL_GZ = "jsonl.gz"
    PARQUET = "parquet"


# Longest first, so "x.jsonl.gz" is not taken for JSON.
_SUFFIXES: tuple[tuple[str, FileFormat], ...] = (
    (".jsonl.gz", FileFormat.JSONL_GZ),
    (".ndjson.gz", FileFormat.JSONL_GZ),
    (".json.gz", FileFormat.JSONL_GZ),
    (".jsonl", FileFormat.JSONL),
    (".ndjson", FileFormat.JSONL),
    (".json", FileFormat.JSONL),
    (".parquet", FileFormat.PARQUET),
    (".pq", FileFormat.PARQUET),
)
KNOWN_SUFFIXES = ".jsonl, .jsonl.gz, .json, .json.gz or .parquet"


# Files that may hold one JSON array instead of JSON Lines (told by their first byte).
_JSON_ARRAY_SUFFIXES = (".json", ".json.gz")


def format_of(name: str) -> FileFormat | None:
    lower = name.lower()
    return next((fmt for suffix, fmt in _SUFFIXES if lower.endswith(suffix)), None)


def without_format_suffix(name: str) -> str:
    lower = name.lower()
    suffix = next((s for s, _ in _SUFFIXES if lower.endswith(s)), "")
    return name[: len(name) - len(suffix)]


def may_hold_json_array(name: str) -> bool:
    return name.lower().endswith(_JSON_ARRAY_SUFFIXES)
