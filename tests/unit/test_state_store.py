"""The state directory of one job: resume, refuse, assemble, clear (pipeline/state/store.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from pipeline.core.errors import ConfigError, ErrorKind, OutputError
from pipeline.core.models import Batch, Failure, Item, Outcome, Success, Usage
from pipeline.state.checkpoint import ArrowEncoding, CheckpointWriter, Encode
from pipeline.state.lock import StateLocked, current_holder
from pipeline.state.parts import StateCorrupt, part_path
from pipeline.state.resume import batch_digest
from pipeline.state.store import (
    FINGERPRINT_NAME,
    ResumeMismatch,
    RunState,
    default_state_dir,
    read_state,
)
from pipeline.write.parquet import ParquetWriter
from pipeline.write.writers import JsonlWriter
from tests.conftest import read_jsonl

FP: dict[str, Any] = {"version": 1, "model": "gpt-4o", "batch_size": 2}
OTHER_FP: dict[str, Any] = {**FP, "model": "gpt-4o-mini"}


def _item(n: int) -> Item:
    return Item(n, "in.jsonl", n + 1, {"id": n, "text": f"text {n}"}, n)


def _batch(index: int, items: list[Item]) -> Batch:
    return Batch(index, items, batch_digest(items))


# Batch 0: item 0 answered, item 1 refused; batch 1: item 2 answered, item 3 refused.
BATCHES = [_batch(0, [_item(0), _item(1)]), _batch(1, [_item(2), _item(3)])]


def _outcomes(batch: Batch) -> list[Outcome]:
    good, bad = batch.items
    return [
        Success(good, f"answer {good.id}", Usage(3, 2, 5)),
        Failure(bad, ErrorKind.PERMANENT, "HTTP 400: bad", status=400),
    ]


def _commit_both(state: RunState, encode: Encode | None = None) -> None:
    writer = CheckpointWriter(state.parts_dir, "id", encode)
    for batch in BATCHES:
        asyncio.run(writer.write([(batch, _outcomes(batch))]))


@pytest.fixture
def state_dir(tmp_path: Path) -> str:
    return str(tmp_path / ".results.jsonl.sluice")


@pytest.fixture
def committed(state_dir: str) -> str:
    """A state left by a stopped run: two batches committed, lock released."""
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    _commit_both(state)
    state.close()
    return state_dir


@pytest.fixture
def reopened(committed: str) -> Iterator[RunState]:
    state = RunState(committed)
    state.open(FP, fresh=False)
    yield state
    state.close()


def _parts(state_dir: str) -> list[str]:
    return sorted(os.listdir(os.path.join(state_dir, "parts")))


def test_a_new_state_directory_is_private_and_holds_the_fingerprint(state_dir: str) -> None:
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    try:
        assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
        assert os.path.isdir(state.parts_dir) and _parts(state_dir) == []
        with open(os.path.join(state_dir, FINGERPRINT_NAME), "rb") as handle:
            assert orjson.loads(handle.read()) == FP
        assert state.resume.batches == 0
    finally:
        state.close()


def test_reopening_the_same_job_resumes_after_the_committed_batches(reopened: RunState) -> None:
    assert reopened.resume.batches == 2
    assert [reopened.resume.digest(i) for i in (0, 1)] == [b.digest for b in BATCHES]
    totals = reopened.totals
    assert (totals.batches, totals.items, totals.succeeded) == (2, 4, 2)
    assert totals.quarantined == Counter({"permanent": 2})
    assert (totals.prompt_tokens, totals.completion_tokens) == (6, 4)
    assert totals.last_commit is not None


def test_a_different_job_is_refused_naming_the_change(committed: str) -> None:
    with pytest.raises(ResumeMismatch) as refused:
        RunState(committed).open(OTHER_FP, fresh=False)
    assert isinstance(refused.value, ConfigError) and refused.value.exit_code == 78
    message = refused.value.message
    assert "--model" in message and "'gpt-4o-mini'" in message
    assert "4 items in 2 batches" in message and "--fresh" in message
    # Nothing was lost, and the lock was let go: the original job still resumes.
    assert current_holder(committed) is None
    state = RunState(committed)
    state.open(FP, fresh=False)
    assert state.resume.batches == 2
    state.close()


def test_fresh_discards_the_committed_batches(committed: str) -> None:
    state = RunState(committed)
    state.open(OTHER_FP, fresh=True)
    try:
        assert state.resume.batches == 0 and state.totals.items == 0
        assert _parts(committed) == []
        with open(os.path.join(committed, FINGERPRINT_NAME), "rb") as handle:
            assert orjson.loads(handle.read()) == OTHER_FP
    finally:
        state.close()


def test_a_state_with_nothing_committed_starts_over_silently(state_dir: str) -> None:
    # What a run killed before its first commit leaves behind.
    os.makedirs(os.path.join(state_dir, "parts"))
    Path(state_dir, FINGERPRINT_NAME).write_bytes(orjson.dumps(FP))

    state = RunState(state_dir)
    state.open(OTHER_FP, fresh=False)
    try:
        assert state.resume.batches == 0
        assert orjson.loads(Path(state_dir, FINGERPRINT_NAME).read_bytes()) == OTHER_FP
    finally:
        state.close()


def test_an_unreadable_fingerprint_with_committed_batches_is_refused(committed: str) -> None:
    Path(committed, FINGERPRINT_NAME).write_bytes(b"{torn")
    with pytest.raises(ResumeMismatch, match="unreadable"):
        RunState(committed).open(FP, fresh=False)


def test_a_second_run_on_an_open_state_is_refused(reopened: RunState) -> None:
    with pytest.raises(StateLocked, match=f"pid {os.getpid()}"):
        RunState(reopened.directory).open(FP, fresh=False)
    assert reopened.resume.batches == 2 and _parts(reopened.directory) != []


def test_what_a_killed_run_left_past_the_prefix_is_swept(committed: str) -> None:
    parts = os.path.join(committed, "parts")
    Path(part_path(parts, 3)).write_bytes(Path(part_path(parts, 1)).read_bytes())
    Path(parts, ".000000002.part.abc123.partial").write_bytes(b"half a batch")

    state = RunState(committed)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 2
        assert _parts(committed) == ["000000000.part", "000000001.part"]
    finally:
        state.close()


def test_a_job_marked_finished_starts_over(committed: str) -> None:
    Path(committed, "finished").write_bytes(b"")  # killed between marking and clearing
    state = RunState(committed)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 0 and _parts(committed) == []
        assert not os.path.exists(os.path.join(committed, "finished"))
    finally:
        state.close()


def test_a_matching_fingerprint_without_parts_starts_from_the_beginning(state_dir: str) -> None:
    # What a --fresh run killed between removing parts/ and recreating it leaves for
    # the job whose fingerprint is still on disk; or a user's `rm -r parts`.
    os.mkdir(state_dir)
    Path(state_dir, FINGERPRINT_NAME).write_bytes(orjson.dumps(FP))
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 0 and os.path.isdir(state.parts_dir)
    finally:
        state.close()


def test_assemble_writes_the_rows_in_batch_order(reopened: RunState, tmp_path: Path) -> None:
    results, quarantine = (
        JsonlWriter(str(tmp_path / "r.jsonl")),
        JsonlWriter(str(tmp_path / "q.jsonl")),
    )
    reopened.assemble(results, quarantine, reopened.resume.batches)
    results.commit()
    quarantine.commit()

    rows = read_jsonl(tmp_path / "r.jsonl")
    assert [(r["id"], r["output"]) for r in rows] == [(0, "answer 0"), (2, "answer 2")]
    assert rows[0]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    bad = read_jsonl(tmp_path / "q.jsonl")
    assert [(r["id"], r["error"]["kind"], r["error"]["status"]) for r in bad] == [
        (1, "permanent", 400),
        (3, "permanent", 400),
    ]
    assert bad[1]["item"] == {"id": 3, "text": "text 3"}


def _flip_a_byte(path: str) -> None:
    content = bytearray(Path(path).read_bytes())
    content[len(content) // 2] ^= 0x20
    Path(path).write_bytes(bytes(content))


def _cut_short(path: str) -> None:
    Path(path).write_bytes(Path(path).read_bytes()[:-5])


def _old_format(path: str) -> None:
    """As the sluice before checksums wrote it: the same header without its checksum."""
    content = Path(path).read_bytes()
    line, rest = content.split(b"\n", 1)
    fields = orjson.loads(line)
    del fields["checksum"]
    Path(path).write_bytes(orjson.dumps(fields) + b"\n" + rest)


@pytest.mark.parametrize("damage", [_flip_a_byte, _cut_short, _old_format])
def test_a_damaged_part_is_found_on_opening_and_redone(
    committed: str, damage: Callable[[str], None]
) -> None:
    parts = os.path.join(committed, "parts")
    damage(part_path(parts, 1))
    state = RunState(committed)
    state.open(FP, fresh=False)
    try:
        # Batch 1 is to be done again; batch 0 stands.
        assert state.resume.batches == 1 and state.totals.items == 2
        assert _parts(committed) == ["000000000.part"]
        [warning] = state.warnings
        assert f"{part_path(parts, 1)} is damaged" in warning
        assert "redoing the batches from 1 on" in warning
    finally:
        state.close()


def test_parts_that_are_not_a_directory_are_redone(committed: str) -> None:
    parts = Path(committed, "parts")
    shutil.rmtree(parts)
    parts.write_text("a file where the committed batches were")
    state = RunState(committed)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 0 and parts.is_dir() and _parts(committed) == []
        assert "it is not a directory" in state.warnings[0]
    finally:
        state.close()


def test_fresh_clears_whatever_stands_where_state_files_go(committed: str) -> None:
    shutil.rmtree(Path(committed, "parts"))
    for name in ("parts", "finished", FINGERPRINT_NAME):
        Path(committed, name).unlink(missing_ok=True)
    Path(committed, "parts").write_text("a file")
    Path(committed, "finished").mkdir()
    Path(committed, FINGERPRINT_NAME).mkdir()
    state = RunState(committed)
    state.open(FP, fresh=True)
    try:
        assert Path(state.parts_dir).is_dir() and not Path(committed, "finished").exists()
        assert orjson.loads(Path(committed, FINGERPRINT_NAME).read_bytes()) == FP
    finally:
        state.close()


class _Recording:
    """Keeps what is written, to show what an assembly passed on, as a stream would."""

    target = None  # not a file renamed into place: what it is given is out at once

    def __init__(self) -> None:
        self.sections: list[bytes] = []

    def write_encoded(self, section: bytes) -> None:
        self.sections.append(section)


def test_a_part_damaged_after_opening_is_never_assembled_and_is_redone_next_time(
    reopened: RunState,
) -> None:
    _flip_a_byte(part_path(reopened.parts_dir, 1))
    results, quarantine = _Recording(), _Recording()
    with pytest.raises(StateCorrupt) as corrupt:
        reopened.assemble(results, quarantine, reopened.resume.batches)  # type: ignore[arg-type]
    # Not even the sound batch 0 went out: rows sent to a stream cannot be taken back.
    assert results.sections == quarantine.sections == []
    assert corrupt.value.exit_code == 78
    assert "Run the same command again: the damaged batches will be redone" in str(corrupt.value)
    reopened.close()
    # The advice works: the next run redoes the damaged batch.
    state = RunState(reopened.directory)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 1 and state.warnings
    finally:
        state.close()


def test_a_part_damaged_after_opening_leaves_output_files_unwritten(
    reopened: RunState, tmp_path: Path
) -> None:
    _flip_a_byte(part_path(reopened.parts_dir, 1))
    (tmp_path / "r.jsonl").write_bytes(b"earlier\n")
    results, quarantine = (
        JsonlWriter(str(tmp_path / "r.jsonl")),
        JsonlWriter(str(tmp_path / "q.jsonl")),
    )
    with pytest.raises(StateCorrupt):
        reopened.assemble(results, quarantine, reopened.resume.batches)
    results.abort()
    quarantine.abort()
    assert (tmp_path / "r.jsonl").read_bytes() == b"earlier\n"
    assert not (tmp_path / "q.jsonl").exists()
    reopened.close()


def test_a_last_part_removed_after_opening_is_never_assembled_short(
    reopened: RunState, tmp_path: Path
) -> None:
    os.unlink(part_path(reopened.parts_dir, 1))
    results, quarantine = (
        JsonlWriter(str(tmp_path / "r.jsonl")),
        JsonlWriter(str(tmp_path / "q.jsonl")),
    )
    with pytest.raises(StateCorrupt, match="missing"):
        reopened.assemble(results, quarantine, reopened.resume.batches)
    results.abort()
    quarantine.abort()
    assert not (tmp_path / "r.jsonl").exists()
    reopened.close()
    state = RunState(reopened.directory)
    state.open(FP, fresh=False)
    try:
        assert state.resume.batches == 1  # the next run redoes the missing batch
    finally:
        state.close()


def test_read_state_reports_damage_without_changing_anything(committed: str) -> None:
    parts = os.path.join(committed, "parts")
    _cut_short(part_path(parts, 1))
    stored = read_state(committed)
    assert stored.fingerprint == FP and stored.resume.batches == 1
    assert stored.damage is not None and stored.damage.batch == 1
    assert stored.damage.reason == "it is cut short"
    assert _parts(committed) == ["000000000.part", "000000001.part"]


def test_every_state_file_is_owner_only_whatever_the_umask(state_dir: str) -> None:
    os.mkdir(state_dir, 0o755)
    os.chmod(state_dir, 0o755)
    previous = os.umask(0)
    try:
        state = RunState(state_dir)
        state.open(FP, fresh=False)
        _commit_both(state)
        found = [Path(root) / n for root, dirs, files in os.walk(state_dir) for n in dirs + files]
        assert {path.name for path in found} >= {"lock", FINGERPRINT_NAME, "000000001.part"}
        assert [p for p in found if stat.S_IMODE(p.stat().st_mode) & 0o077] == []
        state.close()
    finally:
        os.umask(previous)


def test_finish_clears_the_state_away(reopened: RunState) -> None:
    reopened.finish()
    assert not os.path.exists(reopened.directory)
    reopened.close()  # as the runner does after finishing
    assert not os.path.exists(reopened.directory)


def test_close_removes_a_state_with_nothing_committed(state_dir: str) -> None:
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    state.close()
    assert not os.path.exists(state_dir)


def test_close_keeps_committed_batches_and_frees_the_lock(committed: str) -> None:
    assert _parts(committed) == ["000000000.part", "000000001.part"]
    assert current_holder(committed) is None


def test_a_missing_parent_directory_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot create the state directory"):
        RunState(str(tmp_path / "nowhere" / ".r.jsonl.sluice")).open(FP, fresh=False)


def test_the_default_state_directory_sits_hidden_beside_the_output() -> None:
    expected = os.path.join(os.getcwd(), "out", ".results.jsonl.sluice")
    assert default_state_dir("out/results.jsonl") == expected
    assert default_state_dir("-") is None


def test_parquet_rows_keep_their_schema_through_the_checkpoint(
    state_dir: str, tmp_path: Path
) -> None:
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    _commit_both(state, ArrowEncoding(None))
    state.close()

    state = RunState(state_dir)
    state.open(FP, fresh=False)
    try:
        schema = state.results_schema()
        assert schema is not None
        assert schema.names == ["id", "text", "output", "usage", "cached"]
        results = ParquetWriter(str(tmp_path / "r.parquet"), schema)
        quarantine = JsonlWriter(str(tmp_path / "q.jsonl"))
        state.assemble(results, quarantine, state.resume.batches)
        results.commit()
        quarantine.commit()
    finally:
        state.close()

    table = pq.read_table(tmp_path / "r.parquet")
    assert table.schema.names == schema.names
    assert [(r["id"], r["output"], r["cached"]) for r in table.to_pylist()] == [
        (0, "answer 0", False),
        (2, "answer 2", False),
    ]
    assert [r["id"] for r in read_jsonl(tmp_path / "q.jsonl")] == [1, 3]


def test_there_is_no_results_schema_before_a_commit(state_dir: str) -> None:
    state = RunState(state_dir)
    state.open(FP, fresh=False)
    try:
        assert state.results_schema() is None
    finally:
        state.close()
