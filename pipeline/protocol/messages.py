"""Chat messages as the wire carries them."""

from __future__ import annotations

from typing import Any


def message_text(message: Any) -> str:
    """The text of a chat message, whether `content` is a string or a list of parts."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
