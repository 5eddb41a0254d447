"""What makes a re-run the same job (pipeline/state/fingerprint.py)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.config import (
    CacheConfig,
    ConnectionConfig,
    Endpoint,
    OutputConfig,
    ReadConfig,
    RequestConfig,
    RetryConfig,
    RunConfig,
    Secret,
    StateConfig,
    TrafficConfig,
)
from pipeline.state.fingerprint import (
    SAMPLE_BYTES,
    differences,
    input_identity,
    run_fingerprint,
)

BASE = RunConfig(
    read=ReadConfig(inputs=("in.jsonl",)),
    output=OutputConfig(results="out.jsonl", quarantine="quarantine.jsonl"),
    request=RequestConfig(
        endpoint=Endpoint.CHAT,
        model="gpt-4o",
        prompt="Summarise {{ text }}",
        system="You are terse.",
        max_tokens=100,
        temperature=0.2,
        body_options={"top_p": 0.9},
    ),
    connection=ConnectionConfig(
        base_url="https://api.example.com/v1", api_key=Secret("sk-secret-123")
    ),
)
INPUTS: list[dict[str, Any]] = [
    {"path": "/data/in.jsonl", "size": 1000, "sample": "a" * 32},
    {"path": "/data/more.jsonl", "size": 50, "sample": "b" * 32},
]

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
)
Change = tuple[RunConfig, list[dict[str, Any]]]


def _in_request(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Change]:
    before = getattr(BASE.request, name)
    return values.filter(lambda v: v != before).map(
        lambda v: (replace(BASE, request=replace(BASE.request, **{name: v})), INPUTS)
    )


def _changed(section: str, **fields: Any) -> RunConfig:
    """BASE with `fields` of one of its sub-configs changed (a NamedTuple, but the request)."""
    before = getattr(BASE, section)
    after = replace(before, **fields) if section == "request" else before._replace(**fields)
    return replace(BASE, **{section: after})


def _in_run(section: str, name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Change]:
    before = getattr(getattr(BASE, section), name)
    return values.filter(lambda v: v != before).map(
        lambda v: (_changed(section, **{name: v}), INPUTS)
    )


def _with_input(change: dict[str, Any]) -> Change:
    return BASE, [{**INPUTS[0], **change}, INPUTS[1]]


_inputs_changes = (
    st.integers(0, 10**12).filter(lambda n: n != 1000).map(lambda n: _with_input({"size": n}))
    | st.text("0123456789abcdef", min_size=32, max_size=32)
    .filter(lambda s: s != "a" * 32)
    .map(lambda s: _with_input({"sample": s}))
    | words.filter(lambda w: w != "in").map(lambda w: _with_input({"path": f"/data/{w}.jsonl"}))
    | st.just((BASE, INPUTS[:1]))
)

# Each component, a strategy that changes only it, and how the user knows it.
CHANGES: dict[str, tuple[st.SearchStrategy[Change], str]] = {
    "model": (_in_request("model", words), "--model"),
    "base_url": (
        _in_run("connection", "base_url", words.map(lambda w: f"https://{w}.test/v1")),
        "--base-url",
    ),
    "prompt": (_in_request("prompt", st.text()), "--prompt"),
    "system": (_in_request("system", st.none() | st.text()), "--system"),
    "options": (_in_request("body_options", st.dictionaries(words, json_scalars)), "-O"),
    "batch_size": (_in_run("read", "batch_size", st.integers(1, 100_000)), "--batch-size"),
    "temperature": (
        _in_request("temperature", st.none() | st.floats(0, 2, allow_nan=False)),
        "--temperature",
    ),
    "max_tokens": (_in_request("max_tokens", st.none() | st.integers(1, 10**6)), "--max-tokens"),
    "endpoint": (
        _in_request("endpoint", st.sampled_from([None, Endpoint.EMBEDDINGS, Endpoint.RAW])),
        "--endpoint",
    ),
    "input_field": (_in_request("input_field", words), "--input-field"),
    "id_field": (_in_run("read", "id_field", words), "--id-field"),
    "output_format": (
        _in_run("output", "results", st.sampled_from(["out.parquet", "out.jsonl.gz", "-"])),
        "output format",
    ),
    "inputs": (_inputs_changes, "input"),
}


def test_a_fingerprint_does_not_differ_from_itself_nor_from_its_json() -> None:
    fp = run_fingerprint(BASE, INPUTS)
    assert differences(fp, fp) == []
    # The store compares the fingerprint with the one it wrote as JSON.
    assert orjson.loads(orjson.dumps(fp)) == fp


@given(st.data())
def test_changing_one_component_gives_one_description_naming_it(data: st.DataObject) -> None:
    component = data.draw(st.sampled_from(sorted(CHANGES)))
    strategy, user_words = CHANGES[component]
    config, inputs = data.draw(strategy)
    before, after = run_fingerprint(BASE, INPUTS), run_fingerprint(config, inputs)

    changes = differences(before, after)

    assert len(changes) == 1, changes
    assert user_words in changes[0]
    # The stored side went through JSON; the answer must be the same.
    assert differences(orjson.loads(orjson.dumps(before)), after) == changes


def test_short_values_are_shown_before_and_after() -> None:
    other = replace(BASE, request=replace(BASE.request, model="gpt-4o-mini"))
    [change] = differences(run_fingerprint(BASE, INPUTS), run_fingerprint(other, INPUTS))
    assert "'gpt-4o'" in change and "'gpt-4o-mini'" in change


def test_templates_are_described_without_their_text() -> None:
    prompt, system = "Translate {{ text }} PRIVATE-PROMPT", "PRIVATE-SYSTEM persona"
    other = replace(BASE, request=replace(BASE.request, prompt=prompt, system=system))
    changes = differences(run_fingerprint(BASE, INPUTS), run_fingerprint(other, INPUTS))
    assert len(changes) == 2
    text = " ".join(changes)
    assert "--prompt" in text and "--system" in text
    for secret in ("PRIVATE", "Summarise", "terse", "{{"):
        assert secret not in text


def test_an_input_change_names_the_file_and_its_size() -> None:
    grown = [{**INPUTS[0], "size": 2000, "sample": "c" * 32}, INPUTS[1]]
    [change] = differences(run_fingerprint(BASE, INPUTS), run_fingerprint(BASE, grown))
    assert "/data/in.jsonl" in change and "1000 -> 2000" in change
    assert "/data/more.jsonl" not in change


def test_an_input_changed_in_place_names_the_file() -> None:
    edited = [INPUTS[0], {**INPUTS[1], "sample": "d" * 32}]
    [change] = differences(run_fingerprint(BASE, INPUTS), run_fingerprint(BASE, edited))
    assert "/data/more.jsonl" in change and "content" in change


def test_different_input_files_are_listed() -> None:
    [change] = differences(run_fingerprint(BASE, INPUTS), run_fingerprint(BASE, INPUTS[1:]))
    assert "/data/in.jsonl, /data/more.jsonl -> /data/more.jsonl" in change


def test_the_api_key_is_never_in_the_fingerprint() -> None:
    fp = run_fingerprint(BASE, INPUTS)
    assert b"sk-secret-123" not in orjson.dumps(fp)
    assert "sk-secret-123" not in repr(fp)


SPEED_ONLY_NAMES = "concurrency timeout traffic retry max_error_rate grace api_key fresh cache"


@pytest.mark.parametrize(
    "speed_only",
    [
        {"traffic": TrafficConfig(concurrency=200)},
        {"traffic": TrafficConfig(timeout=5.0)},
        {"traffic": TrafficConfig(rpm=60, tpm=10_000, retry_budget=0.5, adaptive_timeout=False)},
        {"retry": RetryConfig(max_retries=0, backoff_cap=1.0)},
        {"max_error_rate": 0.5},
        {"grace": 1.0},
        {"connection": BASE.connection._replace(api_key=Secret("sk-other-456"))},
        {"state": StateConfig(directory="/tmp/state", fresh=True)},
        {"cache": CacheConfig(directory="/tmp/cache", size_limit=1 << 20)},
    ],
    ids=SPEED_ONLY_NAMES.split(),
)
def test_options_that_only_change_speed_keep_the_fingerprint(speed_only: dict[str, Any]) -> None:
    assert run_fingerprint(replace(BASE, **speed_only), INPUTS) == run_fingerprint(BASE, INPUTS)


@pytest.mark.parametrize(
    "body",
    [{"top_p": 0.5}, {"top_p": 0.9, "seed": 7}, {}, {"response_format": {"type": "json_object"}}],
)
def test_any_request_body_option_changes_the_fingerprint(body: dict[str, Any]) -> None:
    other = replace(BASE, request=replace(BASE.request, body_options=body))
    assert run_fingerprint(other, INPUTS) != run_fingerprint(BASE, INPUTS)


# --- input_identity -------------------------------------------------------------------------

BIG = 3 * SAMPLE_BYTES  # first and last 64 KiB sampled, a middle that is not


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_same_content_gives_the_same_identity(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    content = os.urandom(BIG)
    path.write_bytes(content)
    before = input_identity(str(path))
    path.write_bytes(content)  # rewritten, same bytes
    assert input_identity(str(path)) == before
    assert before["path"] == os.path.realpath(path) and before["size"] == BIG


def test_the_identity_follows_the_real_path(tmp_path: Path) -> None:
    target = tmp_path / "in.jsonl"
    target.write_bytes(b'{"text": "a"}\n')
    (tmp_path / "link.jsonl").symlink_to(target)
    assert input_identity(str(tmp_path / "link.jsonl")) == input_identity(str(target))


@pytest.mark.parametrize(
    ("size", "offset"),
    [
        (BIG, 0),
        (BIG, SAMPLE_BYTES - 1),
        (BIG, BIG - SAMPLE_BYTES),
        (BIG, BIG - 1),
        (SAMPLE_BYTES + 100, SAMPLE_BYTES + 50),  # between one and two samples: all read
        (100, 99),
    ],
)
def test_a_change_in_the_sampled_bytes_changes_the_identity(
    tmp_path: Path, size: int, offset: int
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(os.urandom(size))
    before = input_identity(str(path))
    _flip(path, offset)
    assert input_identity(str(path)) != before


def test_a_change_in_size_changes_the_identity(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"x" * BIG)
    before = input_identity(str(path))
    path.write_bytes(b"x" * (BIG + 1))
    after = input_identity(str(path))
    assert after != before and after["size"] == BIG + 1


def test_a_change_in_the_middle_is_left_to_the_batch_digests(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(os.urandom(BIG))
    before = input_identity(str(path))
    _flip(path, BIG // 2)
    assert input_identity(str(path)) == before


def test_stdin_is_identified_by_name_alone() -> None:
    assert input_identity("-") == {"path": "-"}


def test_a_pipe_is_identified_by_its_path_alone(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert input_identity(str(fifo)) == {"path": os.path.realpath(fifo)}
