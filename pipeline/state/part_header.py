"""The header of one batch in a part file: what the batch holds, sealed by a checksum.

The checksum covers every field of the header and the batch's rows, and a
header must read back byte for byte as `encode` writes it, so any change to a
part, even one that keeps its length, is caught (parts.py checks it).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from typing import Any

import orjson

from pipeline.core.tally import Tally

PART_SUFFIX = ".part"
MAX_HEADER_BYTES = 1 << 16
CHECKSUM_BYTES = 16
_COUNTS = (
    "batch",
    "items",
    "succeeded",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "results_bytes",
    "quarantine_bytes",
    "skipped",
)


class PartDamaged(Exception):
    """A part file is not exactly what sluice wrote; the message says how."""


@dataclass(frozen=True, slots=True)
class PartHeader:
    batch: int
    items: int
    digest: str  # of the batch's input items, to notice an input changed under a resume
    succeeded: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    results_bytes: int
    quarantine_bytes: int
    committed_at: float
    quarantined: dict[str, int] = field(default_factory=dict)  # by error kind
    skipped: int = 0  # by --where; written only when not 0, so older parts read the same
    checksum: str = ""  # of every field above and the batch's rows; see `sealed`

    def encode(self) -> bytes:
        return orjson.dumps(self._as_dict()) + b"\n"

    def _as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and measured a second per 100k items.
        fields = {name: getattr(self, name) for name in _FIELD_NAMES}
        if not self.skipped:
            del fields["skipped"]
        return fields

    def tally(self) -> Tally:
        """The counts of the batch's outcomes."""
        return Tally(
            self.items,
            self.succeeded,
            self.cached,
            self.prompt_tokens,
            self.completion_tokens,
            Counter(self.quarantined),
            self.skipped,
        )

    def sealed(self, results: bytes, quarantine: bytes) -> PartHeader:
        """This header with the checksum of its fields and of the rows that follow it."""
        return replace(self, checksum=self.checksum_of((results, quarantine)))

    def checksum_of(self, sections: Iterable[bytes]) -> str:
        fields = self._as_dict()
        del fields["checksum"]
        digest = hashlib.blake2b(orjson.dumps(fields), digest_size=CHECKSUM_BYTES)
        for chunk in sections:
            digest.update(chunk)
        return digest.hexdigest()

    def check(self, sections: Iterable[bytes]) -> None:
        """PartDamaged unless `sections` are the rows this header was sealed with."""
        if self.checksum_of(sections) != self.checksum:
            raise PartDamaged("its content does not match its checksum")

    @classmethod
    def decode(cls, line: bytes) -> PartHeader:
        """The header on `line`, which must be exactly as `encode` wrote it."""
        try:
            fields = orjson.loads(line)
        except orjson.JSONDecodeError:
            fields = None
        if isinstance(fields, dict) and "checksum" not in fields:
            raise PartDamaged("it has no checksum: an older sluice wrote it")
        try:
            header = cls(**fields) if isinstance(fields, dict) else None
        except TypeError:
            header = None
        if header is None or not header._well_typed() or header.encode() != line:
            raise PartDamaged("a batch header is not one sluice wrote")
        return header

    def _well_typed(self) -> bool:
        if not isinstance(self.quarantined, dict):
            return False
        counts = [getattr(self, name) for name in _COUNTS] + list(self.quarantined.values())
        return (
            all(type(count) is int and count >= 0 for count in counts)
            and isinstance(self.digest, str)
            and isinstance(self.checksum, str)
            and type(self.committed_at) in (int, float)
        )


_FIELD_NAMES = tuple(f.name for f in dataclass_fields(PartHeader))


def part_path(directory: str, batch: int) -> str:
    return os.path.join(directory, f"{batch:09d}{PART_SUFFIX}")
