"""Committed batches on disk, one part file each (pipeline/state/parts.py)."""

from __future__ import annotations

import gc
import os
import stat
import warnings
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError, OutputError
from pipeline.state.part_header import PartDamaged, PartHeader, part_path
from pipeline.state.parts import (
    CommittedPrefix,
    StateCorrupt,
    committed_headers,
    committed_sections,
    remove_entry,
    sweep,
    write_part,
)

counts = st.integers(0, 2**63 - 1)
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
headers = st.builds(
    PartHeader,
    batch=counts,
    items=counts,
    digest=texts,
    succeeded=counts,
    cached=counts,
    prompt_tokens=counts,
    completion_tokens=counts,
    results_bytes=counts,
    quarantine_bytes=counts,
    committed_at=st.floats(allow_nan=False, allow_infinity=False),
    quarantined=st.dictionaries(texts, counts, max_size=6),
    checksum=texts,
)
on_tmp_path = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _header(batch: int, results: bytes = b"", quarantine: bytes = b"") -> PartHeader:
    return PartHeader(
        batch=batch,
        items=2,
        digest="00112233aabbccdd",
        succeeded=1,
        cached=0,
        prompt_tokens=3,
        completion_tokens=2,
        results_bytes=len(results),
        quarantine_bytes=len(quarantine),
        committed_at=1_700_000_000.5,
        quarantined={"permanent": 1},
    )


def _write(directory: Path, batch: int) -> None:
    write_part(str(directory), [(_header(batch), b"", b"")])


@given(headers)
def test_a_header_is_one_line_that_decodes_to_itself(header: PartHeader) -> None:
    line = header.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert PartHeader.decode(line) == header


@on_tmp_path
@given(results=st.binary(max_size=300), quarantine=st.binary(max_size=300))
def test_a_part_gives_back_its_header_and_both_sections(
    tmp_path: Path, results: bytes, quarantine: bytes
) -> None:
    for stale in tmp_path.iterdir():
        stale.unlink()
    header = _header(0, results, quarantine)
    write_part(str(tmp_path), [(header, results, quarantine)])

    sealed = header.sealed(results, quarantine)
    assert list(committed_sections(str(tmp_path))) == [(sealed, results, quarantine)]
    assert list(committed_headers(str(tmp_path))) == [sealed]


def test_a_part_can_hold_several_consecutive_batches(tmp_path: Path) -> None:
    batches = [(_header(n, b"r%d\n" % n, b""), b"r%d\n" % n, b"") for n in range(3)]
    write_part(str(tmp_path), batches)
    _write(tmp_path, 3)
    sealed = [(h.sealed(r, q), r, q) for h, r, q in batches]
    assert list(committed_sections(str(tmp_path)))[:3] == sealed
    assert [h.batch for h in committed_headers(str(tmp_path))] == [0, 1, 2, 3]
    assert len(os.listdir(tmp_path)) == 2


def test_a_part_is_private_and_leaves_no_temp_file(tmp_path: Path) -> None:
    write_part(str(tmp_path), [(_header(0, b'{"a":1}\n'), b'{"a":1}\n', b"")])
    assert os.listdir(tmp_path) == [os.path.basename(part_path(str(tmp_path), 0))]
    assert stat.S_IMODE(os.stat(part_path(str(tmp_path), 0)).st_mode) == 0o600


def test_committed_headers_stop_at_the_first_gap(tmp_path: Path) -> None:
    for batch in (0, 1, 3, 4):
        _write(tmp_path, batch)
    assert [h.batch for h in committed_headers(str(tmp_path))] == [0, 1]


def test_no_batch_zero_means_nothing_committed(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    assert list(committed_headers(str(tmp_path))) == []


def test_sweep_drops_temp_files_and_parts_past_the_prefix(tmp_path: Path) -> None:
    for batch in range(4):
        _write(tmp_path, batch)
    left_by_a_killed_run = tmp_path / ".000000004.part.x1y2z3.partial"
    left_by_a_killed_run.write_bytes(b"half")
    unrelated = ["notes.txt", "notes.part", "README"]
    for name in unrelated:
        (tmp_path / name).write_text("mine")

    sweep(str(tmp_path), committed=2)

    kept = sorted(os.listdir(tmp_path))
    parts = [os.path.basename(part_path(str(tmp_path), b)) for b in (0, 1)]
    assert kept == sorted(parts + unrelated)


def test_sweep_of_nothing_committed_drops_every_part(tmp_path: Path) -> None:
    _write(tmp_path, 0)
    sweep(str(tmp_path), committed=0)
    assert os.listdir(tmp_path) == []


def test_sweep_removes_whatever_stands_under_a_stale_name(tmp_path: Path) -> None:
    _write(tmp_path, 0)
    (tmp_path / "000000001.part").mkdir()
    (tmp_path / "000000001.part" / "inside").write_text("x")
    sweep(str(tmp_path), committed=1)
    assert os.listdir(tmp_path) == ["000000000.part"]


def test_what_cannot_be_removed_says_how_to_go_on(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "000000000.part").write_text("x")
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: permissions do not stop a removal")
        with pytest.raises(OutputError, match="remove it yourself, then run the same command"):
            remove_entry(str(locked / "000000000.part"))
    finally:
        locked.chmod(0o700)


# Checking: any change to a committed part, of any byte or its length, is found.

sections = st.binary(max_size=120)
batches_of_a_part = st.lists(st.tuples(sections, sections), min_size=1, max_size=3)


def _write_batches(directory: Path, first: int, rows: list[tuple[bytes, bytes]]) -> None:
    batches = [(_header(first + n, r, q), r, q) for n, (r, q) in enumerate(rows)]
    write_part(str(directory), batches)


def _fresh(directory: Path) -> None:
    for stale in directory.iterdir():
        stale.unlink()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=batches_of_a_part, position=st.integers(0), change=st.integers(1, 255))
def test_any_single_byte_change_of_a_part_is_found(
    tmp_path: Path, rows: list[tuple[bytes, bytes]], position: int, change: int
) -> None:
    _fresh(tmp_path)
    _write_batches(tmp_path, 0, [(b"first\n", b"")])
    _write_batches(tmp_path, 1, rows)
    damaged = Path(part_path(str(tmp_path), 1))
    content = bytearray(damaged.read_bytes())
    content[position % len(content)] ^= change  # same length, one byte different
    damaged.write_bytes(bytes(content))

    prefix = CommittedPrefix(str(tmp_path))
    assert [header.batch for header in prefix] == [0]
    assert prefix.damage is not None
    assert (prefix.damage.batch, prefix.damage.path) == (1, str(damaged))
    with pytest.raises(StateCorrupt, match=r"(?i)run the same command again"):
        list(committed_sections(str(tmp_path)))


@on_tmp_path
@given(rows=batches_of_a_part, cut=st.integers(1))
def test_any_part_cut_short_is_found(
    tmp_path: Path, rows: list[tuple[bytes, bytes]], cut: int
) -> None:
    _fresh(tmp_path)
    _write_batches(tmp_path, 0, rows)
    part = Path(part_path(str(tmp_path), 0))
    content = part.read_bytes()
    part.write_bytes(content[: len(content) - 1 - cut % len(content)])

    prefix = CommittedPrefix(str(tmp_path))
    kept = [header.batch for header in prefix]
    # Cut inside a batch: the whole part is damaged. Cut exactly after a batch: what is
    # left is a whole, smaller part, and the batches after it are simply redone.
    assert len(kept) < len(rows)
    assert prefix.damage is not None or kept == list(range(len(kept)))
    if prefix.damage is not None:
        assert kept == [] and prefix.damage.batch == 0


def _old_format_header() -> bytes:
    fields = orjson.loads(_header(0).encode())
    del fields["checksum"]
    return orjson.dumps(fields) + b"\n"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "holds no batch"),
        (b"garbage\n", "not one sluice wrote"),
        (b"\xff\xfe\x00binary", "not one sluice wrote"),
        (b"[1, 2, 3]\n", "not one sluice wrote"),
        (b'{"batch": 0, "checksum": ""}\n', "not one sluice wrote"),
        (b'{"batch": 0, "surprise": true, "checksum": ""}\n', "not one sluice wrote"),
        (_old_format_header(), "no checksum: an older sluice wrote it"),
        (_header(5).sealed(b"", b"").encode(), "holds batch 5 where 0 was expected"),
        (_header(0).encode(), "does not match its checksum"),
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "not-an-object",
        "missing-fields",
        "unknown-field",
        "older-format",
        "another-batch",
        "unsealed",
    ],
)
def test_a_part_sluice_did_not_write_ends_the_prefix(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    Path(part_path(str(tmp_path), 0)).write_bytes(content)
    prefix = CommittedPrefix(str(tmp_path))
    assert list(prefix) == []
    assert prefix.damage is not None and reason in prefix.damage.reason
    assert "is damaged" in prefix.damage.describe()


def test_a_tally_of_the_wrong_kind_is_damage_not_a_crash() -> None:
    line = _header(0).sealed(b"", b"").encode()
    for value in (b"[1]", b'{"permanent":-1}', b'{"permanent":1.5}', b"null"):
        changed = line.replace(b'"quarantined":{"permanent":1}', b'"quarantined":' + value)
        assert changed != line
        with pytest.raises(PartDamaged):
            PartHeader.decode(changed)


@pytest.mark.parametrize("value", [b"-5", b"1e0", b'"5"', b"true", b"null"])
def test_a_count_of_the_wrong_kind_is_damage_not_a_crash(tmp_path: Path, value: bytes) -> None:
    line = (
        _header(0)
        .sealed(b"", b"")
        .encode()
        .replace(b'"results_bytes":0', b'"results_bytes":' + value)
    )
    with pytest.raises(PartDamaged):
        PartHeader.decode(line)


def test_a_part_that_cannot_be_read_ends_the_prefix(tmp_path: Path) -> None:
    _write(tmp_path, 0)
    os.mkdir(part_path(str(tmp_path), 1))
    prefix = CommittedPrefix(str(tmp_path))
    assert [header.batch for header in prefix] == [0]
    assert prefix.damage is not None and "cannot be read" in prefix.damage.reason


def test_an_impossible_length_is_found_before_anything_is_read(tmp_path: Path) -> None:
    huge = replace(_header(0), results_bytes=2**62).sealed(b"", b"")
    Path(part_path(str(tmp_path), 0)).write_bytes(huge.encode() + b"row\n")
    with pytest.raises(StateCorrupt, match="cut short") as corrupt:
        list(committed_sections(str(tmp_path)))
    assert isinstance(corrupt.value, ConfigError) and corrupt.value.exit_code == 78


def test_a_damaged_part_is_closed_once_found(tmp_path: Path) -> None:
    Path(part_path(str(tmp_path), 0)).write_bytes(b"garbage\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert list(committed_headers(str(tmp_path))) == []
        with pytest.raises(StateCorrupt):
            list(committed_sections(str(tmp_path)))
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
