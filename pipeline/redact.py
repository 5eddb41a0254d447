"""One filter that keeps API keys out of every message we print or write."""

from __future__ import annotations

import re

from pipeline.config import Secret

# Key-shaped tokens a server may echo back (OpenAI masks most of the key, others may not).
_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{8,}")


class Redactor:
    def __init__(self, secret: Secret | None) -> None:
        self._key = secret.reveal() if secret else ""

    def __call__(self, text: str) -> str:
        if self._key and self._key in text:
            text = text.replace(self._key, "***")
        return _KEY_SHAPED.sub(r"\1-***", text)
