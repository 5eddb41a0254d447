"""The events of a small run, made by hand, for the consumers of the event stream.

Batch 0: "a" answered at once, "b" answered on its second try (a 503 first),
"c" answered from the cache, "d" invalid (never sent). Batch 1: "e" refused
(HTTP 400), and an item without an id answered. Batch 2: "g" sent when the run
stopped, so it never settles and its batch is never committed. Batches 0 and 1
are committed. Prompts hold PROMPT_MARK and answers ANSWER_MARK, so a test can
tell whether any content reached a file.
"""

from __future__ import annotations

from pipeline.core.errors import ErrorKind
from pipeline.core.events import (
    AnswerReused,
    AttemptEnded,
    BatchesCommitted,
    BatchStarted,
    Event,
    ItemSettled,
    RequestSent,
)
from pipeline.core.models import Failure, Item, Success, Usage

PROMPT_MARK = "PROMPT-TEXT"
ANSWER_MARK = "ANSWER-TEXT"
MODEL = "gpt-4o-mini"
SOURCE = "in.jsonl"
START = 1000.0  # the run clock's time when the run began
STOP = 1020.0  # ... and when it ended
USAGE = Usage(prompt_tokens=7, completion_tokens=3, total_tokens=10)

SETTLED_IDS = ["a", "b", "c", "d", "e", f"{SOURCE}:6"]  # in the order they settle
ATTEMPTS = {"a": 1, "b": 2, "c": 0, "d": 0, "e": 1, f"{SOURCE}:6": 1, "g": 1}


def item(position: int, item_id: str | None) -> Item:
    return Item(position, SOURCE, position + 1, {"text": f"text {position}"}, item_id)


def body(text: str) -> dict[str, object]:
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Classify."},
            {"role": "user", "content": f"{PROMPT_MARK} {text}"},
        ],
        "temperature": 0.0,
        "max_tokens": 5,
    }


def answered(it: Item, at: float, attempts: int = 1) -> ItemSettled:
    return ItemSettled(
        it.position // 4, at, Success(it, f"{ANSWER_MARK} {it.id}", USAGE, False, attempts)
    )


def small_run() -> list[Event]:
    a, b, c, d = item(0, "a"), item(1, "b"), item(2, "c"), item(3, "d")
    e, nameless, g = item(4, "e"), item(5, None), item(8, "g")
    return [
        BatchStarted(0, 4, 1001.0),
        ItemSettled(0, 1001.0, Success(c, f"{ANSWER_MARK} c", USAGE, cached=True, attempts=0)),
        AnswerReused(MODEL, USAGE),
        ItemSettled(0, 1001.0, Failure(d, ErrorKind.INVALID_INPUT, "missing field 'text'")),
        RequestSent(a, 0, 1, 1001.5, 0.25, 0.25, body("a")),
        RequestSent(b, 0, 1, 1001.6, 0.3, 0.3, body("b")),
        AttemptEnded(a, 0, 1, 1002.0, 200, None, USAGE, MODEL, 0.1, False),
        answered(a, 1002.0),
        AttemptEnded(b, 0, 1, 1002.1, 503, "transient", None, MODEL, 0.1, False),
        BatchStarted(1, 2, 1002.2),
        RequestSent(e, 1, 1, 1002.3, 0.1, 0.0, body("e")),
        AttemptEnded(e, 1, 1, 1002.4, 400, "permanent", None, MODEL, 0.1, False),
        ItemSettled(1, 1002.4, Failure(e, ErrorKind.PERMANENT, "HTTP 400: bad request", 400, 1)),
        RequestSent(b, 0, 2, 1003.0, 0.0, 0.5, body("b")),
        AttemptEnded(b, 0, 2, 1003.5, 200, None, USAGE, MODEL, 0.1, False),
        answered(b, 1003.5, attempts=2),
        RequestSent(nameless, 1, 1, 1003.6, 0.0, 0.0, body("nameless")),
        AttemptEnded(nameless, 1, 1, 1004.0, 200, None, USAGE, MODEL, 0.1, False),
        answered(nameless, 1004.0),
        BatchStarted(2, 1, 1004.1),
        RequestSent(g, 2, 1, 1004.2, 0.0, 0.0, body("g")),
        BatchesCommitted([], [0, 1], 1005.0),
    ]
