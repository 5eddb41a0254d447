"""One filter that keeps API keys out of every message we print or write.

Redaction always covers the whole text, and only then is the text cut
(`clip`): a key that straddled the cut would otherwise leave most of its
characters behind. Any run of `FRAGMENT` consecutive characters of the key
counts as the key, wherever it appears, so a server that quotes the key cut
short (or masked in the middle) does not leak the part it kept.
"""

from __future__ import annotations

import re

from pipeline.core.config import Secret

MESSAGE_LIMIT = 500  # characters of a server's message kept in errors and quarantine rows
FRAGMENT = 8  # this many consecutive characters of the key count as the key
EDGE_FRAGMENT = 4  # where a text ends inside the key (a server cut it), this many suffice
HIDDEN = "***"
CUT = "..."
# Key-shaped tokens a server may echo back (OpenAI masks most of the key, others may not).
_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{8,}")
# Replacing a fragment joins its neighbours, which could spell a new fragment
# when the key itself holds `***`; a few passes settle any text.
_MAX_PASSES = 4


class Redactor:
    def __init__(self, secret: Secret | None) -> None:
        key = self._key = secret.reveal() if secret else ""
        size = min(FRAGMENT, len(key))
        self._fragments = {key[i : i + size] for i in range(len(key) - size + 1)} if key else set()

    def __call__(self, text: str) -> str:
        """The whole text with every trace of the key replaced by `***`."""
        for _ in range(_MAX_PASSES):
            scrubbed = self._scrub(text)
            if scrubbed == text:
                break
            text = scrubbed
        return _KEY_SHAPED.sub(rf"\1-{HIDDEN}", text)

    def clip(self, text: str, limit: int = MESSAGE_LIMIT) -> str:
        """Redacted first, then cut to at most `limit` characters (never the other way round)."""
        safe = self(text)
        return safe if len(safe) <= limit else safe[: limit - len(CUT)] + CUT

    def _scrub(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, HIDDEN)  # the common case, at C speed
        spans = self._fragment_spans(text) + self._edge_spans(text)
        if not spans:
            return text
        pieces, position = [], 0
        for start, end in _merged(spans):
            pieces += [text[position:start], HIDDEN]
            position = end
        pieces.append(text[position:])
        return "".join(pieces)

    def _fragment_spans(self, text: str) -> list[tuple[int, int]]:
        # Every run of FRAGMENT or more key characters is a union of FRAGMENT-long
        # pieces of the key, so finding those pieces finds every run.
        spans = []
        for fragment in self._fragments:
            start = text.find(fragment)
            while start != -1:
                spans.append((start, start + len(fragment)))
                start = text.find(fragment, start + 1)
        return spans

    def _edge_spans(self, text: str) -> list[tuple[int, int]]:
        """A text that ends with the key's start, or starts with its end: a server cut it."""
        key, spans = self._key, []
        for size in range(min(len(key), len(text)), EDGE_FRAGMENT - 1, -1):
            if text.endswith(key[:size]):
                spans.append((len(text) - size, len(text)))
                break
        for size in range(min(len(key), len(text)), EDGE_FRAGMENT - 1, -1):
            if text.startswith(key[-size:]):
                spans.append((0, size))
                break
        return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching spans as one, in order."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
