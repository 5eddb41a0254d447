"""What a run ends with: its exit code, counts, summary, and where to resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.core.errors import SluiceError
from pipeline.observe.counters import RunStats

EXIT_OK = 0
EXIT_ERROR_RATE = 1
EXIT_INTERNAL = 70  # a bug: what a run ends with when nothing else said


@dataclass(slots=True)
class RunResult:
    exit_code: int
    stats: RunStats
    wall_seconds: float
    error: SluiceError | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    resumable_in: str | None = None  # the state directory, when the run stopped short
    warnings: list[str] = field(default_factory=list)
