"""Lines in the OpenAI Batch API's input form: `custom_id`, `method`, `url`, `body`."""

from __future__ import annotations

from collections.abc import Container

RAW_ID_FIELD = "custom_id"
BATCH_LINE_FIELDS = frozenset({RAW_ID_FIELD, "url", "body"})


def is_batch_line(fields: Container[str]) -> bool:
    """True for a line (or a schema's columns) in OpenAI batch form: custom_id, url, body."""
    # Membership tests, not a set of the row's keys: this runs for every item.
    return all(name in fields for name in BATCH_LINE_FIELDS)
