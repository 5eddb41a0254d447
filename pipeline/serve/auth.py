"""Bearer tokens of `sluice serve`: kept as hashes, compared in constant time.

Tokens come from SLUICE_SERVE_TOKENS (comma-separated, as given) or a tokens file
of hashes, one per line (`sluice serve hash-token` writes one), so the file can
be read by more people than the tokens should. A token is hashed with SHA-256:
tokens are long random strings, for which a slow password hash adds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "sha256:"
NEW_TOKEN_BYTES = 32


class TokenError(Exception):
    """A tokens file line that is not a token hash."""


def hash_token(token: str) -> str:
    return PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "slu_" + secrets.token_urlsafe(NEW_TOKEN_BYTES)


def parse_hashes(lines: Iterable[str]) -> list[str]:
    """The hashes of a tokens file: blank lines and # comments skipped."""
    hashes = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        digest = text.removeprefix(PREFIX)
        if not text.startswith(PREFIX) or len(digest) != 64 or not _hex(digest):
            raise TokenError(
                f"line {number} is not a token hash ({PREFIX}<64 hex digits); "
                "make one with: sluice serve hash-token"
            )
        hashes.append(text)
    return hashes


class TokenCheck:
    def __init__(self, hashes: Iterable[str]) -> None:
        self._hashes = [h.encode() for h in hashes]

    @property
    def required(self) -> bool:
        return bool(self._hashes)

    def allows(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries a known token (any, when none is set)."""
        if not self._hashes:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hash_token(token.strip()).encode()
        found = False
        for known in self._hashes:  # every one compared: the time says nothing of which
            found |= hmac.compare_digest(presented, known)
        return found


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())
