"""A run's trace id, known before it starts (its log lines carry it) whether or not it
records spans; apart from the span machinery (spans.py), which only a traced run imports."""

from __future__ import annotations

import os


def new_trace_id() -> str:
    """A random trace id: 32 hex digits, never all zeros (OpenTelemetry's invalid id)."""
    # os.urandom, as the secrets module does, without importing it (and hmac) at start.
    while (trace_id := os.urandom(16).hex()) == "0" * 32:
        pass
    return trace_id
