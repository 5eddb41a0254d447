"""Committed batches on disk, one part file each (pipeline/state/parts.py)."""

from __future__ import annotations

import gc
import os
import stat
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.state.parts import (
    PartHeader,
    StateCorrupt,
    committed_headers,
    committed_sections,
    part_path,
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
    assert PartHeader.decode(line, "x.part") == header


@on_tmp_path
@given(results=st.binary(max_size=300), quarantine=st.binary(max_size=300))
def test_a_part_gives_back_its_header_and_both_sections(
    tmp_path: Path, results: bytes, quarantine: bytes
) -> None:
    for stale in tmp_path.iterdir():
        stale.unlink()
    header = _header(0, results, quarantine)
    write_part(str(tmp_path), [(header, results, quarantine)])

    assert list(committed_sections(str(tmp_path))) == [(header, results, quarantine)]


def test_a_part_can_hold_several_consecutive_batches(tmp_path: Path) -> None:
    batches = [(_header(n, b"r%d\n" % n, b""), b"r%d\n" % n, b"") for n in range(3)]
    write_part(str(tmp_path), batches)
    _write(tmp_path, 3)
    assert list(committed_sections(str(tmp_path)))[:3] == batches
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


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"\xff\xfe\x00binary",
        b"[1, 2, 3]\n",
        b'{"batch": 0}\n',
        b'{"batch": 0, "surprise": true}\n',
    ],
    ids=["empty", "text", "binary", "not-an-object", "missing-fields", "unknown-field"],
)
def test_a_part_sluice_did_not_write_is_corrupt(tmp_path: Path, content: bytes) -> None:
    Path(part_path(str(tmp_path), 0)).write_bytes(content)
    with pytest.raises(StateCorrupt) as corrupt:
        list(committed_headers(str(tmp_path)))
    assert isinstance(corrupt.value, ConfigError) and corrupt.value.exit_code == 78
    assert "--fresh" in corrupt.value.message


def test_a_part_holding_another_batch_is_corrupt(tmp_path: Path) -> None:
    Path(part_path(str(tmp_path), 0)).write_bytes(_header(5).encode())
    with pytest.raises(StateCorrupt, match=r"holds batch 5.*--fresh"):
        list(committed_headers(str(tmp_path)))


def test_a_corrupt_part_is_closed_once_refused(tmp_path: Path) -> None:
    Path(part_path(str(tmp_path), 0)).write_bytes(b"garbage\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(StateCorrupt):
            list(committed_headers(str(tmp_path)))
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
