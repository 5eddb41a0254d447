"""The key every stored answer is filed under: the sha256 of exactly what was sent, and
the ways of making it that skip work (CacheKeys: a base URL's opening once; FilledKeys:
a run's body encoded once, only each item's texts after that)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import orjson


def cache_key(base_url: str, path: str, body: dict[str, Any]) -> str:
    """sha256 of what identifies an answer: where the request went and what it asked,
    as the JSON of {"base_url": the URL without a trailing slash, "path", "body"} with
    every object's keys sorted. Every stored answer is filed under it: changing this
    loses every cache.

    The API key is deliberately not an input: the same question to the same
    endpoint has the same answer whoever pays for it, and a key must never be
    derivable from (or stored next to) cached data.
    """
    return CacheKeys(base_url).key(path, body)


class CacheKeys:
    """`cache_key` for one base URL, made once an item: the JSON around the body is
    encoded once a path, and only the body is encoded (sorted) and hashed each time."""

    def __init__(self, base_url: str) -> None:
        self._opening = b'{"base_url":' + orjson.dumps(base_url.rstrip("/")) + b',"body":'
        self._closings: dict[str, bytes] = {}

    def key(self, path: str, body: dict[str, Any]) -> str:
        return hashlib.sha256(self.encoded(path, body)).hexdigest()

    def encoded(self, path: str, body: dict[str, Any]) -> bytes:
        """What the key hashes."""
        closing = self._closings.get(path)
        if closing is None:
            closing = self._closings[path] = b',"path":' + orjson.dumps(path) + b"}"
        return b"".join((self._opening, orjson.dumps(body, option=orjson.OPT_SORT_KEYS), closing))


class FilledKeys:
    """`cache_key` of the bodies `fill` makes from texts (a run's chat requests: all alike
    but the texts their templates rendered), without making them.

    The body is made once with a marker in place of each text; its encoding is cut at
    the markers. An item's key then hashes those pieces with its own texts encoded
    between them: the very bytes `CacheKeys.key` hashes, as encoding a string does not
    depend on where it stands, while the body with its other values, sorted, is
    encoded once a run rather than once an item. If a marker is not found once, and
    once only, in the encoding, every key is made the usual way."""

    def __init__(
        self,
        keys: CacheKeys,
        path: str,
        fill: Callable[[tuple[str, ...]], dict[str, Any]],
        text_count: int,
    ) -> None:
        self._keys = keys
        self._path = path
        self._fill = fill
        token = os.urandom(8).hex()  # no text the run was given can hold it by chance
        markers = [f"sluice text {n} {token}" for n in range(text_count)]
        self._cut = _cut_at(keys.encoded(path, fill(tuple(markers))), markers)

    @property
    def from_texts(self) -> bool:
        """Whether keys are made from the texts alone (else from each whole body)."""
        return self._cut is not None

    def key(self, texts: tuple[str, ...]) -> str:
        if self._cut is None:
            return self._keys.key(self._path, self._fill(texts))
        head, slots = self._cut
        digest = hashlib.sha256(head)
        for index, after in slots:
            digest.update(orjson.dumps(texts[index]))
            digest.update(after)
        return digest.hexdigest()


def _cut_at(
    encoded: bytes, markers: list[str]
) -> tuple[bytes, tuple[tuple[int, bytes], ...]] | None:
    """`encoded` as the bytes before the first marker and, for each marker in the order
    they stand, its text's index and the bytes after it; None unless each stands once."""
    found = []
    for index, marker in enumerate(markers):
        text = orjson.dumps(marker)
        at = encoded.find(text)
        if at < 0 or encoded.find(text, at + 1) >= 0:
            return None
        found.append((at, index, len(text)))
    found.sort()
    ends = [at for at, _, _ in found[1:]] + [len(encoded)]
    slots = tuple(
        (index, encoded[at + length : end])
        for (at, index, length), end in zip(found, ends, strict=True)
    )
    return encoded[: found[0][0]] if found else encoded, slots
