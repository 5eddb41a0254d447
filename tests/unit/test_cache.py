"""The response cache: keys that follow every input; a store that never lies or runs code."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.cache.keys import CacheKeys, FilledKeys, cache_key
from pipeline.cache.store import (
    DEFAULT_SIZE_LIMIT,
    FILE_MIN_BYTES,
    CacheStats,
    CacheUnavailable,
    ResponseCache,
)

# Plain JSON values, as a request body holds them.
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=5)
urls = st.sampled_from(["https://api.openai.com/v1", "http://127.0.0.1:8000/v1", "https://x.test"])
paths = st.sampled_from(["/chat/completions", "/embeddings", "/completions"])
# Bodies are cheap to build but many; fifty of each keeps the file fast.
fifty = settings(max_examples=50)


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a body where a value sits, containers included."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _leaf_paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _leaf_paths(inner, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(inner, rest, new) if i == head else inner for i, inner in enumerate(value)]


def _sent(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _reordered(value: Any) -> Any:
    """The same JSON with every object's keys inserted in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(inner) for inner in value]
    return value


@fifty
@given(urls, paths, bodies, st.data())
def test_changing_any_value_anywhere_in_the_body_changes_the_key(
    base_url: str, path: str, body: dict[str, Any], data: st.DataObject
) -> None:
    changed = _replaced(body, data.draw(st.sampled_from(_leaf_paths(body))), data.draw(json_values))
    # "Changed" as sent: orjson tells apart what Python calls equal (1, 1.0 and True).
    assume(_sent(changed) != _sent(body))
    assert cache_key(base_url, path, changed) != cache_key(base_url, path, body)


@fifty
@given(urls, paths, bodies, st.text(min_size=1, max_size=6))
def test_adding_a_field_changes_the_key(
    base_url: str, path: str, body: dict[str, Any], name: str
) -> None:
    field = f"new-{name}"
    assert field not in body or body[field] != "added"
    assert cache_key(base_url, path, {**body, field: "added"}) != cache_key(base_url, path, body)


@fifty
@given(urls, paths, bodies)
def test_the_key_is_hex_and_follows_path_and_url_but_not_key_order_or_a_slash(
    base_url: str, path: str, body: dict[str, Any]
) -> None:
    key = cache_key(base_url, path, body)
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")
    assert cache_key(base_url + "/", path, _reordered(body)) == key
    assert cache_key(base_url, path + "x", body) != key
    assert cache_key(base_url + "/v2", path, body) != key


@fifty
@given(urls, paths, bodies)
def test_the_key_is_the_sha256_of_the_sorted_json_of_url_path_and_body(
    base_url: str, path: str, body: dict[str, Any]
) -> None:
    # The one definition every stored answer is filed under, written out in full.
    request = {"base_url": base_url.rstrip("/"), "path": path, "body": body}
    expected = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()
    keys = CacheKeys(base_url)
    assert cache_key(base_url, path, body) == expected
    assert keys.key(path, body) == expected and keys.key(path, body) == expected  # reused


# Where a fill puts a text: alone, as a message's content, or inside a list.
text_shapes = st.sampled_from(["alone", "message", "listed"])


def _fill_of(body: dict[str, Any], names: list[str], shapes: list[str]) -> Any:
    """A fill like ChatForm.body: `body` with each text under its name, in its shape. Two
    texts may share a name; the first of them then goes nowhere."""

    def fill(texts: tuple[str, ...]) -> dict[str, Any]:
        filled = dict(body)
        for text, name, shape in zip(texts, names, shapes, strict=True):
            message = {"role": "user", "content": text}
            filled[name] = {"alone": text, "message": message, "listed": [message, 1]}[shape]
        return filled

    return fill


@fifty
@given(urls, paths, bodies, st.data())
def test_a_key_from_texts_alone_is_the_key_of_the_body_they_fill(
    base_url: str, path: str, body: dict[str, Any], data: st.DataObject
) -> None:
    count = data.draw(st.integers(1, 3))
    names = data.draw(st.lists(st.text(max_size=3), min_size=count, max_size=count))
    shapes = data.draw(st.lists(text_shapes, min_size=count, max_size=count))
    fill = _fill_of(body, names, shapes)
    keys = FilledKeys(CacheKeys(base_url), path, fill, count)
    assert keys.from_texts == (len(set(names)) == count)  # else each body is encoded
    for _ in range(3):
        texts = tuple(data.draw(st.text(max_size=12)) for _ in range(count))
        assert keys.key(texts) == cache_key(base_url, path, fill(texts))


def test_texts_that_look_like_the_markers_or_json_still_key_as_their_body() -> None:
    def fill(texts: tuple[str, ...]) -> dict[str, Any]:
        return {"model": "m", "messages": [{"role": "user", "content": texts[0]}], "x": texts[1]}

    keys = FilledKeys(CacheKeys("http://127.0.0.1:8000/v1"), "/chat/completions", fill, 2)
    for texts in [
        ("sluice text 0 ", "sluice text 1"),
        ('", "role": "system', "\u0000\n"),
        ("\x00\ud7ff é 🙂", ""),
    ]:
        expected = cache_key("http://127.0.0.1:8000/v1", "/chat/completions", fill(texts))
        assert keys.key(texts) == expected


def test_a_fill_that_repeats_or_hides_a_text_is_keyed_by_its_whole_body() -> None:
    twice = lambda texts: {"a": texts[0], "b": texts[0]}  # noqa: E731
    hidden = lambda texts: {"a": texts[0].upper()}  # noqa: E731
    for fill in (twice, hidden):
        keys = FilledKeys(CacheKeys("https://x.test"), "/chat/completions", fill, 1)
        assert not keys.from_texts
        expected = cache_key("https://x.test", "/chat/completions", fill(("same",)))
        assert keys.key(("same",)) == expected


def test_a_known_request_keeps_the_key_caches_were_filled_under() -> None:
    message = {"role": "user", "content": "Review: ok é"}
    body = {"model": "m", "messages": [message], "temperature": 0}
    key = cache_key("http://127.0.0.1:8000/v1", "/chat/completions", body)
    assert key == "d1f51f2853a3eba6b1ccdd33f04da92c3ab601f063814d94aa26cb95f2f139e2"


def test_nested_values_are_distinguished() -> None:
    one = {"model": "m", "messages": [{"role": "user", "content": "a"}]}
    two = {"model": "m", "messages": [{"role": "user", "content": "b"}]}
    assert cache_key("u", "/chat/completions", one) != cache_key("u", "/chat/completions", two)


class Clock:
    """A hand-moved clock: the test says what time it is."""

    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def directory(tmp_path: Path) -> str:
    return str(tmp_path / "responses")


def test_an_answer_put_is_read_back_and_an_unknown_key_is_a_miss(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.put("k", b'{"answer": 1}') is True
        assert cache.get("k") == b'{"answer": 1}'
        assert cache.get("other") is None


def test_answers_survive_reopening(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("k", b"kept")
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.get("k") == b"kept"


def test_an_answer_put_survives_the_process_being_killed(directory: str) -> None:
    script = (
        "import os, signal, sys\n"
        "from pipeline.cache.store import ResponseCache\n"
        "cache = ResponseCache(sys.argv[1], size_limit=2**30, ttl=None)\n"
        "assert cache.put('k', b'answer')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, directory], check=False)
    assert done.returncode == -signal.SIGKILL
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.get("k") == b"answer"


def test_the_ttl_is_applied_when_reading(directory: str) -> None:
    clock = Clock(1_000_000.0)
    with ResponseCache(directory, size_limit=2**30, ttl=60.0, now=clock) as cache:
        cache.put("k", b"answer")
        clock.at += 60
        assert cache.get("k") == b"answer"
        clock.at += 1
        assert cache.get("k") is None


def test_a_shorter_ttl_later_hides_answers_written_without_one(directory: str) -> None:
    clock = Clock(1_000_000.0)
    with ResponseCache(directory, size_limit=2**30, ttl=None, now=clock) as cache:
        cache.put("k", b"answer")
    clock.at += 3600
    with ResponseCache(directory, size_limit=2**30, ttl=None, now=clock) as cache:
        assert cache.get("k") == b"answer"
    with ResponseCache(directory, size_limit=2**30, ttl=3599.0, now=clock) as cache:
        assert cache.get("k") is None


def test_the_directory_and_its_parents_are_created_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "responses"
    with _umask(0o002):
        ResponseCache(str(directory), size_limit=2**30, ttl=None).close()
    assert directory.is_dir()
    for made in (directory, directory.parent, directory.parent.parent):
        assert made.stat().st_mode & 0o777 == 0o700
    assert (directory / "cache.db").stat().st_mode & 0o777 == 0o600


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _shared(directory: Path) -> list[str]:
    """Everything under `directory` that others may read, write or enter."""
    found = [Path(root) / name for root, dirs, files in os.walk(directory) for name in dirs + files]
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in found}
    return [f"{path} {mode:o}" for path, mode in modes.items() if mode & 0o077]


def test_every_file_of_an_open_cache_is_owner_only_in_a_shared_directory(tmp_path: Path) -> None:
    directory = tmp_path / "responses"
    directory.mkdir()
    directory.chmod(0o755)
    with _umask(0o022), ResponseCache(str(directory), size_limit=None, ttl=None) as cache:
        assert cache.put("small", b"x" * 10) and cache.put("large", b"y" * FILE_MIN_BYTES)
        assert cache.get_many(["small", "large"]) == {"small": b"x" * 10, "large": b"y" * 2**15}
        names = {path.name for path in directory.rglob("*")}
        # While it is open: the database, its WAL and shared memory, an answer as a file.
        assert {"cache.db", "cache.db-wal", "cache.db-shm"} <= names
        assert len(list(directory.rglob("*.val"))) == 1
        assert _shared(directory) == []
    assert _shared(directory) == []
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755  # not ours to change


def test_a_database_an_older_sluice_left_readable_is_made_owner_only(directory: str) -> None:
    ResponseCache(directory, size_limit=2**30, ttl=None).close()
    database = Path(directory) / "cache.db"
    database.chmod(0o644)
    with ResponseCache(directory, size_limit=None, ttl=None) as cache:
        assert cache.put("k", b"answer")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_values_of_32_kb_and_more_are_files_and_read_back_whole(directory: str) -> None:
    big = os.urandom(100_000)
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.put("big", big)
        assert cache.get("big") == big
    assert list(Path(directory).rglob("*.val")), "diskcache keeps large values as files"


def test_only_bytes_can_be_stored(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache, pytest.raises(TypeError):
        cache.put("k", "text")  # type: ignore[arg-type]


class Planted:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker: Path, padding: int = 0) -> None:
        self.marker = marker
        self.padding = padding

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "x" * self.padding))


@pytest.mark.parametrize("padding", [0, 100_000], ids=["in the database", "in a file"])
def test_a_planted_pickle_is_a_miss_and_runs_nothing(
    directory: str, tmp_path: Path, padding: int
) -> None:
    marker = tmp_path / "code-ran"
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("good", b"answer")
    with diskcache.Cache(directory) as planter:
        planter.set("k", Planted(marker, padding))
        planter.set("dict", {"a": 1})
        planter.set("text", "an answer as str")
        planter.set(Planted(marker), b"under a pickled key")
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.get("k") is None
        assert cache.get("dict") is None
        assert cache.get("text") is None
        assert cache.get("good") == b"answer"
        assert cache.stats().entries == 5
        assert cache.prune() == 0
        assert cache.clear() == 5
    assert not marker.exists()


def test_a_planted_file_name_outside_the_cache_is_a_miss(directory: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for the cache")
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("k", b"x" * 40_000)
    with sqlite3.connect(Path(directory) / "cache.db") as db:
        db.execute("UPDATE Cache SET filename = ? WHERE key = 'k'", (str(secret),))
        db.execute("INSERT INTO Cache (key, raw, mode, filename) VALUES ('up', 1, 2, '../secret')")
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.get("k") is None
        assert cache.get("up") is None


def test_an_entry_whose_file_vanished_is_a_miss(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("k", b"x" * 40_000)
        for file in Path(directory).rglob("*.val"):
            file.unlink()
        assert cache.get("k") is None


def test_a_garbage_database_cannot_be_opened(directory: str) -> None:
    os.makedirs(directory)
    (Path(directory) / "cache.db").write_bytes(b"this is not sqlite\n" * 500)
    with pytest.raises(CacheUnavailable, match="responses"):
        ResponseCache(directory, size_limit=2**30, ttl=None)


def test_a_file_where_the_directory_should_be_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "responses").write_text("a file")
    with pytest.raises(CacheUnavailable, match="responses"):
        ResponseCache(str(tmp_path / "responses"), size_limit=2**30, ttl=None)


def test_stats_count_entries_and_report_the_limit(directory: str) -> None:
    with ResponseCache(directory, size_limit=10**9, ttl=None) as cache:
        empty = cache.stats()
        for n in range(3):
            cache.put(f"k{n}", b"answer %d" % n)
        stats = cache.stats()
    assert empty.entries == 0
    assert stats == CacheStats(directory, 3, stats.size_bytes, 10**9)
    assert stats.size_bytes >= empty.size_bytes > 0


def test_without_a_size_limit_the_stored_one_is_kept(directory: str) -> None:
    ResponseCache(directory, size_limit=12_345_678, ttl=None).close()
    with ResponseCache(directory, size_limit=None, ttl=None) as cache:
        assert cache.stats().size_limit == 12_345_678
    with ResponseCache(directory, size_limit=2_000_000, ttl=None) as cache:
        assert cache.stats().size_limit == 2_000_000
    with ResponseCache(directory, size_limit=None, ttl=None) as cache:
        assert cache.stats().size_limit == 2_000_000


def test_a_new_cache_without_a_size_limit_gets_the_default(directory: str) -> None:
    with ResponseCache(directory, size_limit=None, ttl=None) as cache:
        assert cache.stats().size_limit == DEFAULT_SIZE_LIMIT == 5 * 10**9


def test_clear_removes_everything_and_says_how_much(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        for n in range(4):
            cache.put(f"k{n}", b"x" * (n * 20_000))
        assert cache.clear() == 4
        assert cache.stats().entries == 0
        assert cache.get("k3") is None
    assert not list(Path(directory).rglob("*.val"))


def test_prune_removes_expired_answers(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("kept", b"answer")
    # A zero ttl expires at the moment of writing, so the next prune finds it expired.
    with ResponseCache(directory, size_limit=2**30, ttl=0.0) as cache:
        cache.put("gone", b"answer")
        assert cache.prune() == 1
        assert cache.stats().entries == 1


def test_prune_culls_the_oldest_down_to_the_size_limit(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        for n in range(25):
            cache.put(f"k{n}", os.urandom(40_000))
        full = cache.stats().size_bytes
    # diskcache culls ten of the oldest at a time until the volume fits.
    with ResponseCache(directory, size_limit=full - 100_000, ttl=None) as cache:
        assert cache.prune() == 10
        kept = [cache.get(f"k{n}") is not None for n in range(25)]
    assert kept == [False] * 10 + [True] * 15


def test_put_reports_failure_when_the_cache_directory_is_gone(directory: str) -> None:
    cache = ResponseCache(directory, size_limit=2**30, ttl=None)
    cache.put("k", b"answer")
    cache.close()
    shutil.rmtree(directory)
    assert cache.put("other", b"answer") is False
    assert cache.get("k") is None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_put_reports_failure_when_the_directory_became_read_only(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("k", b"answer")
        directories = [Path(directory), *(p for p in Path(directory).rglob("*") if p.is_dir())]
        for path in directories:
            path.chmod(0o500)
        try:
            # Large values go to new files, which a read-only directory refuses.
            assert cache.put("big", b"x" * 40_000) is False
            assert cache.get("k") == b"answer"
        finally:
            for path in directories:
                path.chmod(0o700)


def test_a_write_that_would_wait_for_another_writer_is_not_made_now(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        cache.put("k", b"first")
        other = sqlite3.connect(os.path.join(directory, "cache.db"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing the same cache
        try:
            assert cache.put_now([("held", b"answer")]) is None
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert cache.get("held") is None
        assert cache.put_now([("held", b"answer")]) == 1
        assert cache.get("held") == b"answer"


def test_answers_that_need_a_file_or_replace_one_are_not_written_now(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.put_now([("big", b"x" * FILE_MIN_BYTES)]) is None
        assert cache.put("was-big", b"y" * FILE_MIN_BYTES)
        # All or nothing: the small answer beside it is not written either.
        assert cache.put_now([("small", b"s"), ("was-big", b"now small")]) is None
        assert cache.get("small") is None
        assert cache.put_many([("small", b"s"), ("was-big", b"now small")]) == 2
        assert cache.get("was-big") == b"now small"


def test_a_stored_answer_is_replaced_by_a_newer_one_now_or_in_the_thread(directory: str) -> None:
    with ResponseCache(directory, size_limit=2**30, ttl=None) as cache:
        assert cache.put_now([("key", b"first"), ("other", b"kept")]) == 2
        assert cache.put_now([("key", b"second")]) == 1
        assert cache.get("key") == b"second"
        assert cache.put_many([("key", b"third")]) == 1
        assert cache.get_many(["key", "other"]) == {"key": b"third", "other": b"kept"}
        assert cache.stats().entries == 2
