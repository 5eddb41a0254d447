"""Cache and state files are owner-only whatever the umask or the directory's mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from pipeline.cache.store import FILE_MIN_BYTES
from pipeline.simulator.background import BackgroundSimulator
from pipeline.simulator.config import SimulatorConfig
from tests.conftest import write_jsonl

DIMENSIONS = 4000  # an embedding this long is an answer of ~80 KB: stored as a file


def _everything_under(directory: Path) -> list[Path]:
    return [Path(root) / name for root, dirs, files in os.walk(directory) for name in dirs + files]


def _shared(paths: list[Path]) -> list[str]:
    """The paths others may read, write or enter, with their modes."""
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in paths}
    return [f"{path} {mode:o}" for path, mode in modes.items() if mode & 0o077]


def test_a_stopped_run_leaves_only_owner_only_files_in_the_cache_and_the_state(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)  # as a user (or an older sluice) may have made it
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(10)])
    command = [
        *(sys.executable, "-m", "cli", "run", source, "-o", str(tmp_path / "out.jsonl")),
        *("--endpoint", "embeddings", "-m", "sim-embed", "-O", f"dimensions={DIMENSIONS}"),
        *("--cache-dir", str(cache), "--batch-size", "2", "-c", "1", "--inputs-per-request", "1"),
    ]
    # The quota stops the run after five answers: two batches committed, state kept.
    with BackgroundSimulator(SimulatorConfig(quota_requests=5)) as sim:
        stopped = subprocess.run(
            [*command, "--base-url", sim.base_url],
            capture_output=True,
            env={**os.environ, "OPENAI_API_KEY": ""},
            umask=0o022,
            timeout=120,
            check=False,
        )
    assert stopped.returncode == 75, stopped.stderr.decode()

    state = tmp_path / ".out.jsonl.sluice"
    state_files = _everything_under(state)
    assert {"lock", "fingerprint.json", "parts", "000000000.part"} <= {p.name for p in state_files}
    cache_files = _everything_under(cache)
    answers_as_files = [p for p in cache_files if p.suffix == ".val"]
    assert len(answers_as_files) == 5
    assert all(p.stat().st_size >= FILE_MIN_BYTES for p in answers_as_files)
    assert _shared(state_files + cache_files) == []
    assert stat.S_IMODE(cache.stat().st_mode) == 0o755  # the user's own directory is left alone
