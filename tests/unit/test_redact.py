"""Redaction: the whole text first, then the cut; any 8-character piece of the key is the key."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.config import Secret
from pipeline.core.redact import EDGE_FRAGMENT, MESSAGE_LIMIT, Redactor
from tests.leaks import key_fragments

# Any key an Authorization header can carry (printable ASCII), not only `sk-...`.
KEYS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=12, max_size=120)
TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def test_a_key_straddling_the_cut_leaves_nothing_behind() -> None:
    key = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"  # not shaped like sk-...
    redact = Redactor(Secret(key))
    for offset in range(MESSAGE_LIMIT - len(key) - 30, MESSAGE_LIMIT + 5):
        message = "x" * offset + f"Authorization: Bearer {key}; check it"
        clipped = redact.clip(message)
        assert len(clipped) <= MESSAGE_LIMIT
        assert not key_fragments(key, clipped), offset


@settings(max_examples=400)
@given(key=KEYS, before=TEXT, after=TEXT, cut=st.integers(min_value=0, max_value=700))
def test_no_piece_of_the_key_survives_wherever_the_text_is_cut(
    key: str, before: str, after: str, cut: int
) -> None:
    redact = Redactor(Secret(key))
    text = before + "Bearer " + key + after
    assert not key_fragments(key, redact.clip(text, limit=max(cut, 4)))
    assert not key_fragments(key, redact(text[:cut])), "a server that cut the key itself"


@settings(max_examples=200)
@given(key=KEYS, before=TEXT, kept=st.integers(min_value=EDGE_FRAGMENT, max_value=120))
def test_a_text_ending_inside_the_key_loses_that_end(key: str, before: str, kept: int) -> None:
    start = key[: min(kept, len(key))]
    assert not Redactor(Secret(key))(before + " " + start).endswith(start)


@given(key=KEYS, before=TEXT, after=TEXT)
def test_a_key_the_server_masked_in_the_middle_loses_both_ends(
    key: str, before: str, after: str
) -> None:
    masked = key[:10] + "*" * 20 + key[-10:]
    assert not key_fragments(key, Redactor(Secret(key))(before + masked + after))


@given(text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_text_without_the_key_is_left_alone(text: str) -> None:
    key = "\u00e9" * 20  # a key made of a letter the text never holds
    if "sk-" not in text and "rk-" not in text and "pk-" not in text:
        assert Redactor(Secret(key))(text) == text


def test_key_shaped_tokens_go_even_without_a_key() -> None:
    assert Redactor(None)("bad key sk-abcdefgh12345678 given") == "bad key sk-*** given"
