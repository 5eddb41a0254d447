"""Lines in the OpenAI Batch API's input form: `custom_id`, `method`, `url`, `body`."""

from __future__ import annotations

from collections.abc import Container

RAW_ID_FIELD = "custom_id"


def is_batch_line(fields: Container[str]) -> bool:
    """True for a line (or a schema's columns) in OpenAI batch form: custom_id, url, body."""
    # Three membership tests, custom_id first, and no generator: this runs twice an item,
    # and an ordinary row fails the first.
    return RAW_ID_FIELD in fields and "url" in fields and "body" in fields
