"""The state directory of one job: lock, fingerprint, committed parts; resume or refuse.

    .results.jsonl.sluice/
        lock               flock, and who holds it (lock.py)
        fingerprint.json   what the job is (fingerprint.py)
        parts/000000000.part, …   committed batches, in input order (parts.py)
        spent.json         what the job's attempts spent, for budgets (spent.py)
        finished           written once the final outputs stand under their names

A finished job leaves no state behind: the outputs are the truth, and running
the same command again starts a new job (which the response cache answers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.config import STDIO
from pipeline.core.errors import ConfigError, OutputError, UsageError
from pipeline.core.tally import Tally
from pipeline.core.words import counted
from pipeline.spend.ledger import Spent
from pipeline.state.fingerprint import differences
from pipeline.state.lock import LOCK_NAME, RunLock
from pipeline.state.part_header import PartHeader, part_path
from pipeline.state.parts import (
    CommittedPrefix,
    Damage,
    changed_since_checked,
    committed_sections,
    remove_entry,
    sweep,
)
from pipeline.state.resume import ResumePoint
from pipeline.state.spent import SPENT_NAME, read_spent
from pipeline.write.atomic import TEMP_SUFFIX, AtomicFile
from pipeline.write.writers import RowWriter

if TYPE_CHECKING:
    import pyarrow as pa

STATE_SUFFIX = ".sluice"
FINGERPRINT_NAME = "fingerprint.json"
FINISHED_NAME = "finished"
PARTS_NAME = "parts"


class ResumeMismatch(ConfigError):
    """The state belongs to a different job; resuming would mix two jobs' rows."""


@dataclass(slots=True)
class Totals(Tally):
    """What the committed batches hold, summed from their headers."""

    batches: int = 0
    last_commit: float | None = None

    def add_part(self, header: PartHeader) -> None:
        self.batches += 1
        self.add(header.tally())
        self.last_commit = header.committed_at

    def tally(self) -> Tally:
        """The counts alone, as an independent copy."""
        counts = Tally()
        counts.add(self)
        return counts


def default_state_dir(output: str) -> str | None:
    """Beside the output, hidden: `out/.results.jsonl.sluice`; none for stdout."""
    if output == STDIO:
        return None
    directory, name = os.path.split(os.path.abspath(output))
    return os.path.join(directory, f".{name}{STATE_SUFFIX}")


@dataclass(slots=True)
class StoredState:
    """What a state directory holds: the job, and its committed prefix, every part checked."""

    fingerprint: dict[str, Any] | None
    resume: ResumePoint
    totals: Totals
    damage: Damage | None  # the first damaged part, where the committed prefix ends


def read_state(directory: str) -> StoredState:
    """The fingerprint and committed prefix, read without the lock (also for `sluice status`)."""
    parts_dir = os.path.join(directory, PARTS_NAME)
    point, totals, damage = ResumePoint(), Totals(), None
    if _is_directory(parts_dir):
        prefix = CommittedPrefix(parts_dir)
        for header in prefix:
            point.add(header.digest)
            totals.add_part(header)
        damage = prefix.damage
    elif os.path.lexists(parts_dir):
        damage = Damage(0, parts_dir, "it is not a directory")
    return StoredState(_read_fingerprint(directory), point, totals, damage)


def _is_directory(path: str) -> bool:
    """A real directory: not a file, and not a symlink to somewhere else."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


class RunState:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.parts_dir = os.path.join(directory, PARTS_NAME)
        self.resume = ResumePoint()
        self.totals = Totals()
        self.spent = Spent()  # by earlier attempts of the job
        self.warnings: list[str] = []  # for the user: damaged parts found and redone
        self._lock = RunLock(directory)

    def open(self, fingerprint: dict[str, Any], fresh: bool) -> None:
        """Lock, then resume the job the state holds, or start it afresh."""
        try:
            # Not makedirs: a missing parent means a mistyped path, not one to create.
            os.mkdir(self.directory, mode=0o700)
        except FileExistsError:
            if not os.path.isdir(self.directory):
                raise OutputError(
                    f"the state directory {self.directory} is a file; "
                    "move it away or give another --state-dir"
                ) from None
        except OSError as exc:
            raise OutputError(f"cannot create the state directory {self.directory}: {exc}") from exc
        self._refuse_a_shared_directory()
        self._lock.acquire()
        try:
            self._prepare(fingerprint, fresh)
        except BaseException:
            self._lock.release()
            raise

    def _refuse_a_shared_directory(self) -> None:
        """A state starts over by removing `parts/` and the rest: never in a directory
        that holds anything else (`--state-dir .` would take the user's files with it)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return  # the lock, taken next, says what is wrong
        strangers = sorted(name for name in names if not _ours(name))
        if strangers:
            shown = ", ".join(repr(name) for name in strangers[:3])
            more = f" and {len(strangers) - 3:,} more" if len(strangers) > 3 else ""
            raise UsageError(
                f"the state directory {self.directory} holds files sluice did not put there "
                f"({shown}{more}); give --state-dir a directory of its own"
            )

    def _prepare(self, fingerprint: dict[str, Any], fresh: bool) -> None:
        finished = os.path.lexists(os.path.join(self.directory, FINISHED_NAME))
        if not (fresh or finished):
            stored = read_state(self.directory)
            self.resume, self.totals = stored.resume, stored.totals
            if stored.fingerprint == fingerprint:
                self._keep_prefix(stored.damage)
                self.spent = read_spent(self.directory) or Spent()
                return
            if self.resume.batches:
                raise ResumeMismatch(self._mismatch_message(stored.fingerprint, fingerprint))
        self._start_over(fingerprint)

    def _keep_prefix(self, damage: Damage | None) -> None:
        """Resume after the checked prefix; whatever follows it is redone."""
        if damage is not None:
            self.warnings.append(
                f"{damage.describe()}; redoing the batches from {damage.batch} on "
                "(answers already paid for come from the response cache)"
            )
        if not _is_directory(self.parts_dir):
            # Missing when a start-over was killed midway (nothing is committed), or not
            # a directory at all: either way nothing in it can be trusted.
            remove_entry(self.parts_dir)
            self._make_parts_dir()
        sweep(self.parts_dir, self.resume.batches)

    def _start_over(self, fingerprint: dict[str, Any]) -> None:
        self.resume, self.totals, self.spent = ResumePoint(), Totals(), Spent()
        for name in (PARTS_NAME, FINISHED_NAME, SPENT_NAME):
            remove_entry(os.path.join(self.directory, name))
        if not os.path.isfile(path := os.path.join(self.directory, FINGERPRINT_NAME)):
            remove_entry(path)  # a directory there would stop the rename below
        self._make_parts_dir()
        target = AtomicFile(os.path.join(self.directory, FINGERPRINT_NAME))
        target.handle.write(orjson.dumps(fingerprint, option=orjson.OPT_INDENT_2))
        target.commit()

    def _make_parts_dir(self) -> None:
        try:
            os.mkdir(self.parts_dir, mode=0o700)
        except OSError as exc:
            raise OutputError(f"cannot start the state in {self.directory}: {exc}") from exc

    def _mismatch_message(self, stored: dict[str, Any] | None, current: dict[str, Any]) -> str:
        done = f"{counted(self.totals.items, 'item')} in {counted(self.resume.batches, 'batch')}"
        unreadable = "its fingerprint is unreadable"
        what = "; ".join(differences(stored, current)) if stored else unreadable
        return (
            f"the state in {self.directory} belongs to a different job ({done} done); "
            f"changed since: {what}. Run the original command to finish that job, "
            "or add --fresh to discard it and start over"
        )

    def results_schema(self) -> pa.Schema | None:
        """The Arrow schema the committed result rows were written with, if any
        (asked only of a job writing Parquet, whose parts hold Arrow streams)."""
        import pyarrow as pa

        for _, results, _ in committed_sections(self.parts_dir):
            if results:
                return pa.ipc.open_stream(results).schema
        return None

    def assemble(self, results: RowWriter, quarantine: RowWriter, batches: int) -> None:
        """Stream every committed batch, in input order, into the final writers.

        Each batch is checked as it is written; a damaged one stops the run, and
        files, being renamed into place only at the end, are left as they were.
        Rows sent to a stream cannot be taken back, so for a stream every part
        is checked once before the first row is written.
        """
        if any(not isinstance(writer.target, AtomicFile) for writer in (results, quarantine)):
            prefix = CommittedPrefix(self.parts_dir)
            checked = sum(1 for _ in prefix)
            if prefix.damage is not None:
                raise changed_since_checked(prefix.damage.path, prefix.damage.reason)
            if checked < batches:
                raise changed_since_checked(part_path(self.parts_dir, checked), "it is missing")
        assembled = 0
        for _, result_rows, quarantine_rows in committed_sections(self.parts_dir):
            if result_rows:
                results.write_encoded(result_rows)
            if quarantine_rows:
                quarantine.write_encoded(quarantine_rows)
            assembled += 1
        if assembled < batches:  # the last parts were removed while the run went on
            raise changed_since_checked(part_path(self.parts_dir, assembled), "it is missing")

    def finish(self) -> None:
        """The outputs are in place: mark the job finished, then clear the state away."""
        AtomicFile(os.path.join(self.directory, FINISHED_NAME)).commit()
        self._remove()

    def close(self) -> None:
        """Release the lock; a state with nothing committed and nothing spent under a
        budget is not worth leaving behind."""
        if self._lock.held and not self.worth_keeping():
            self._remove()
        self._lock.release()

    def worth_keeping(self) -> bool:
        """Something is committed, or a budget's spending is recorded."""
        return any(
            os.path.exists(path)
            for path in (part_path(self.parts_dir, 0), os.path.join(self.directory, SPENT_NAME))
        )

    def _remove(self) -> None:
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        for name in (FINGERPRINT_NAME, FINISHED_NAME, SPENT_NAME, LOCK_NAME):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, name))
        with contextlib.suppress(OSError):
            os.rmdir(self.directory)


def _ours(name: str) -> bool:
    """An entry a state directory may hold: its files, or a temp file of one of them."""
    return name in (LOCK_NAME, FINGERPRINT_NAME, FINISHED_NAME, PARTS_NAME, SPENT_NAME) or (
        name.startswith(".") and name.endswith(TEMP_SUFFIX)
    )


def _read_fingerprint(directory: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory, FINGERPRINT_NAME), "rb") as handle:
            stored = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return stored if isinstance(stored, dict) else None
