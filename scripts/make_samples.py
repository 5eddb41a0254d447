"""Regenerate the sample inputs in sample_data/.

    .venv/bin/python scripts/make_samples.py [--out DIR]

Writes reviews.jsonl, reviews.parquet (the same 300 rows) and bad_lines.jsonl.
The output is deterministic: a seeded RNG picks from the hand-written building
blocks in sample_phrases.json (products, openers, titles, typos, ...), so
running the script again reproduces the files byte for byte
(tests/unit/test_sample_data.py checks it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SAMPLE_DATA = HERE.parent / "sample_data"
SEED = 20250607
N_REVIEWS = 300
N_MANY_REVIEWS = 10_000
FIRST_DAY = dt.date(2025, 1, 1)
LAST_DAY = dt.date(2026, 10, 31)

# Column order and Arrow types; the Parquet file uses exactly this schema.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product", pa.string()),
        ("rating", pa.int64()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("verified_purchase", pa.bool_()),
        ("date", pa.string()),
    ]
)


def _load_phrases() -> dict[str, Any]:
    """The building blocks; tables keyed by star rating get their int keys back (JSON has
    only string keys)."""
    phrases: dict[str, Any] = json.loads((HERE / "sample_phrases.json").read_text("utf-8"))
    for table in ("openers", "closers", "one_liners", "titles"):
        phrases[table] = {int(rating): texts for rating, texts in phrases[table].items()}
    phrases["typos"] = [tuple(pair) for pair in phrases["typos"]]
    phrases["special_reviews"] = [tuple(review) for review in phrases["special_reviews"]]
    return phrases


_PHRASES = _load_phrases()
PRODUCTS: dict[str, dict[str, Any]] = _PHRASES["products"]
OPENERS: dict[int, list[str]] = _PHRASES["openers"]
CLOSERS: dict[int, list[str]] = _PHRASES["closers"]
ONE_LINERS: dict[int, list[str]] = _PHRASES["one_liners"]
DELIVERY: dict[str, list[str]] = _PHRASES["delivery"]
BUT: list[str] = _PHRASES["but"]
MINOR: list[str] = _PHRASES["minor"]
TO_BE_FAIR: list[str] = _PHRASES["to_be_fair"]
TITLES: dict[int, list[str]] = _PHRASES["titles"]
TYPOS: list[tuple[str, str]] = _PHRASES["typos"]
SPECIAL_REVIEWS: list[tuple[str, int, str, str]] = _PHRASES["special_reviews"]


def decap(sentence: str) -> str:
    """Lowercase a sentence's first letter so it can follow 'But' or 'Only complaint:'."""
    first = sentence.split(" ", 1)[0]
    if first in {"I", "I'm", "I've"} or (len(first) > 1 and first.isupper()) or first[0].isdigit():
        return sentence
    return sentence[0].lower() + sentence[1:]


def add_typo(text: str, rng: random.Random) -> str:
    """Introduce one realistic misspelling, or swap two adjacent letters."""
    candidates = [(right, wrong) for right, wrong in TYPOS if right in text]
    if candidates and rng.random() < 0.7:
        right, wrong = rng.choice(candidates)
        return text.replace(right, wrong, 1)
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def compose(product: str, rating: int, rng: random.Random) -> tuple[str, str]:
    """Return a (title, text) pair whose tone matches the star rating."""
    info = PRODUCTS[product]
    noun = str(info["noun"])
    pros, cons = list(info["pros"]), list(info["cons"])
    rng.shuffle(pros)
    rng.shuffle(cons)
    fill = {"noun": noun, "this": info.get("this", "this"), "context": rng.choice(info["context"])}
    title = rng.choice(TITLES[rating]).format(**fill)
    title = title[0].upper() + title[1:]

    if rng.random() < 0.07:
        return title, rng.choice(ONE_LINERS[rating])

    parts = [rng.choice(OPENERS[rating]).format(**fill)]
    if rating == 5:
        parts += pros[: rng.choice([1, 2])]
    elif rating == 4:
        parts.append(pros[0])
        if rng.random() < 0.7:
            parts.append(f"{rng.choice(MINOR)} {decap(cons[0])}")
    elif rating == 3:
        parts += [pros[0], f"{rng.choice(BUT)} {decap(cons[0])}"]
    elif rating == 2:
        parts.append(cons[0])
        if rng.random() < 0.5:
            parts.append(f"{rng.choice(TO_BE_FAIR)} {decap(pros[0])}")
    else:
        parts += cons[: rng.choice([1, 2])]

    if rng.random() < 0.15:
        parts.append(rng.choice(DELIVERY["good" if rating >= 4 else "bad"]))
    if len(parts) < 4 and rng.random() < 0.55:
        parts.append(rng.choice(CLOSERS[rating]))
    text = " ".join(parts[:4])

    if rng.random() < 0.10:
        text = add_typo(text, rng)
    if rng.random() < 0.04:
        text = text.lower()
    elif rng.random() < 0.04:
        text = text.rstrip(".")
    return title, text


def random_date(rng: random.Random) -> str:
    span = (LAST_DAY - FIRST_DAY).days
    return (FIRST_DAY + dt.timedelta(days=rng.randint(0, span))).isoformat()


def make_reviews(
    n: int, rng: random.Random, specials: Sequence[tuple[str, int, str, str]] = ()
) -> list[dict[str, Any]]:
    """n reviews (specials first) with unique texts, ordered by date, ids r-0001 onwards."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for product, rating, title, text in specials:
        seen.add(text)
        rows.append({"product": product, "rating": rating, "title": title, "text": text})
    products = list(PRODUCTS)
    ratings, weights = [5, 4, 3, 2, 1], [34, 24, 15, 10, 17]
    while len(rows) < n:
        product = rng.choice(products)
        rating = rng.choices(ratings, weights)[0]
        title, text = compose(product, rating, rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"product": product, "rating": rating, "title": title, "text": text})
    for row in rows:
        row["verified_purchase"] = rng.random() < 0.82
        row["date"] = random_date(rng)
    rows.sort(key=lambda r: (r["date"], r["product"], r["text"]))
    return [
        {
            "id": f"r-{i:04d}",
            "product": r["product"],
            "rating": r["rating"],
            "title": r["title"],
            "text": r["text"],
            "verified_purchase": r["verified_purchase"],
            "date": r["date"],
        }
        for i, r in enumerate(rows, start=1)
    ]


def dumps(row: object) -> str:
    return json.dumps(row, ensure_ascii=False)


def make_bad_lines(rng: random.Random) -> list[bytes]:
    """About 20 lines: good rows (id b-NNNN = line NNNN) mixed with broken ones.

    The line numbers below are documented in README.md; keep them in sync.
    """
    pool = make_reviews(20, rng)  # ordinary reviews only; line N takes pool[N - 1]

    def row(line: int, **overrides: object) -> dict[str, Any]:
        base = dict(pool[line - 1])
        base["id"] = f"b-{line:04d}"
        base.update(overrides)
        return base

    def line(n: int) -> bytes:
        return dumps(row(n)).encode()

    truncated = dumps(row(6))
    bad_utf8 = dumps(
        row(
            12,
            product="PressPro French Press (1L)",
            rating=5,
            title="Perfect every morning",
            text="Makes a perfect caf@@ au lait every morning.",
        )
    ).encode()
    no_text = {k: v for k, v in row(16).items() if k != "text"}

    return [
        line(1),
        line(2),
        line(3),
        b"product: kettle, rating: 5, text: great kettle",  # 4: not JSON
        line(5),
        truncated[: len(truncated) // 2].encode(),  # 6: truncated object
        line(7),
        dumps(list(row(8).values())).encode(),  # 8: JSON array, not an object
        line(9),
        b'"just a string, not an object"',  # 10: bare JSON string
        line(11),
        bad_utf8.replace(b"@@", b"\xff\xfe"),  # 12: invalid UTF-8 bytes
        line(13),
        dumps(row(14, id="b-0002")).encode(),  # 14: duplicates line 2's id
        line(15),
        dumps(no_text).encode(),  # 16: no "text" field
        b"",  # 17: empty line
        line(18),
        line(19),
        line(20),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the sample inputs.")
    parser.add_argument("--out", type=Path, default=SAMPLE_DATA, help="where to write them")
    write_samples(parser.parse_args().out)


def write_samples(out: Path) -> None:
    rng = random.Random(SEED)
    reviews = make_reviews(N_REVIEWS, rng, SPECIAL_REVIEWS)

    with open(out / "reviews.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for review in reviews:
            f.write(dumps(review) + "\n")

    table = pa.Table.from_pylist(reviews, schema=SCHEMA)
    pq.write_table(table, out / "reviews.parquet")

    bad = make_bad_lines(random.Random(SEED + 1))
    (out / "bad_lines.jsonl").write_bytes(b"\n".join(bad) + b"\n")

    # The worked example's volume (a workflow, then a reduce): ordinary reviews only.
    many = make_reviews(N_MANY_REVIEWS, random.Random(SEED + 2))
    lines = "".join(dumps(review) + "\n" for review in many).encode()
    # No name or time in the header, so the same rows give the same file.
    with (
        open(out / "reviews_10k.jsonl.gz", "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
    ):
        packed.write(lines)

    print(f"wrote {len(reviews)} reviews, {len(bad)} bad_lines rows and {len(many)} more to {out}")


if __name__ == "__main__":
    main()
