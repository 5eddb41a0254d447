"""`sluice cache stats|clear|prune` against a cache in the test's own directory."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from cli.cache import DEFAULT_CACHE_SIZE, default_cache_dir
from cli.units import parse_size
from pipeline.cache.store import DEFAULT_SIZE_LIMIT, ResponseCache
from pipeline.simulator.background import BackgroundSimulator
from tests.conftest import run_cli, write_jsonl


def _filled(directory: Path, entries: int, size: int = 10) -> Path:
    with ResponseCache(str(directory), size_limit=10**9, ttl=None) as cache:
        for n in range(entries):
            assert cache.put(f"k{n}", os.urandom(size))
    return directory


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "command", [["cache"], ["cache", "stats"], ["cache", "clear"], ["cache", "prune"]]
)
def test_every_command_explains_itself(command: list[str]) -> None:
    result = run_cli([*command, "--help"])
    assert result.exit_code == 0
    assert "cache" in result.output.lower()
    if command != ["cache"]:
        assert "--cache-dir" in result.output
        assert "SLUICE_CACHE_DIR" in result.output


def test_cache_alone_lists_its_commands() -> None:
    result = run_cli(["cache"])
    for name in ("stats", "clear", "prune"):
        assert name in result.output


def test_stats_of_a_missing_cache_creates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "nowhere" / "responses"
    result = run_cli(["cache", "stats", "--cache-dir", str(directory)])
    assert result.exit_code == 0
    assert f"no cache at {directory}" in result.output
    assert "0 entries" in result.output
    assert not (tmp_path / "nowhere").exists()


def test_stats_of_a_directory_without_a_cache_adds_no_database(tmp_path: Path) -> None:
    result = run_cli(["cache", "stats", "--json", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert orjson.loads(result.output)["exists"] is False
    assert not (tmp_path / "cache.db").exists()


def test_the_default_directory_follows_xdg_cache_home(tmp_path: Path) -> None:
    result = run_cli(["cache", "stats"], env={"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert result.exit_code == 0
    assert f"no cache at {tmp_path / 'xdg' / 'sluice' / 'responses'}" in result.output
    assert not (tmp_path / "xdg").exists()


def test_sluice_cache_dir_chooses_the_directory(tmp_path: Path) -> None:
    _filled(tmp_path / "elsewhere", 2)
    result = run_cli(
        ["cache", "stats", "--json"], env={"SLUICE_CACHE_DIR": str(tmp_path / "elsewhere")}
    )
    assert orjson.loads(result.output)["entries"] == 2


def test_default_cache_dir() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/var/c"}) == Path("/var/c/sluice/responses")
    home = Path.home() / ".cache" / "sluice" / "responses"
    assert default_cache_dir({}) == home
    assert default_cache_dir({"XDG_CACHE_HOME": ""}) == home
    assert default_cache_dir({"XDG_CACHE_HOME": "relative/dir"}) == home
    assert DEFAULT_CACHE_SIZE == "5GB"


def test_stats_as_a_table_and_as_json(tmp_path: Path) -> None:
    directory = _filled(tmp_path / "responses", 3)
    table = run_cli(["cache", "stats", "--cache-dir", str(directory)])
    assert table.exit_code == 0
    assert f"directory  {directory}" in table.output
    assert "entries    3" in table.output
    assert "limit      1.0 GB" in table.output
    as_json = run_cli(["cache", "stats", "--json", "--cache-dir", str(directory)])
    assert as_json.exit_code == 0
    report = orjson.loads(as_json.output)
    assert report["directory"] == str(directory)
    assert report["exists"] is True
    assert report["entries"] == 3
    assert report["size_bytes"] > 0
    assert report["size_limit"] == 10**9


def test_clear_removes_every_entry(tmp_path: Path) -> None:
    directory = _filled(tmp_path / "responses", 4)
    result = run_cli(["cache", "clear", "--cache-dir", str(directory)])
    assert result.exit_code == 0
    assert "removed 4 entries" in result.output
    with ResponseCache(str(directory), size_limit=None, ttl=None) as cache:
        assert cache.stats().entries == 0


def test_clear_of_a_missing_cache_has_nothing_to_do(tmp_path: Path) -> None:
    result = run_cli(["cache", "clear", "--cache-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert "nothing to clear" in result.output
    assert not (tmp_path / "none").exists()


def test_prune_shrinks_to_max_size(tmp_path: Path) -> None:
    directory = _filled(tmp_path / "responses", 12, size=40_000)
    roomy = run_cli(["cache", "prune", "--cache-dir", str(directory)])
    assert roomy.exit_code == 0
    assert "removed 0 entries" in roomy.output
    tight = run_cli(["cache", "prune", "--max-size", "100KB", "--cache-dir", str(directory)])
    assert tight.exit_code == 0
    assert "removed 12 entries" in tight.output
    with ResponseCache(str(directory), size_limit=None, ttl=None) as cache:
        assert cache.stats().entries == 0
        assert cache.stats().size_limit == 100_000


def test_prune_of_a_missing_cache_has_nothing_to_do(tmp_path: Path) -> None:
    result = run_cli(["cache", "prune", "--cache-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert "nothing to prune" in result.output


def test_a_nonsense_max_size_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["cache", "prune", "--max-size", "lots", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: cannot read size 'lots'" in result.stderr
    _no_traceback(result.output + result.stderr)


@pytest.mark.parametrize("command", ["stats", "clear", "prune"])
def test_a_damaged_cache_is_a_config_error(tmp_path: Path, command: str) -> None:
    (tmp_path / "cache.db").write_bytes(b"this is not sqlite\n" * 500)
    result = run_cli(["cache", command, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 78
    assert f"cannot open the response cache in {tmp_path}" in result.stderr
    assert "--cache-dir" in result.stderr
    _no_traceback(result.output + result.stderr)


def _stats(directory: Path) -> dict:
    result = run_cli(["cache", "stats", "--json", "--cache-dir", str(directory)])
    assert result.exit_code == 0, result.output
    report: dict = orjson.loads(result.output)
    return report


def test_the_limit_prune_sets_sticks_through_later_runs(
    tmp_path: Path, sim: BackgroundSimulator
) -> None:
    directory = tmp_path / "responses"
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": n, "text": f"t{n}"} for n in range(3)])
    run = ["run", source, "-o", str(tmp_path / "out.jsonl"), "-m", "sim-chat", "-q"]
    run += ["--base-url", sim.base_url, "--cache-dir", str(directory)]

    assert run_cli(run).exit_code == 0
    assert _stats(directory)["size_limit"] == parse_size(DEFAULT_CACHE_SIZE)  # a new cache
    assert (
        run_cli(["cache", "prune", "--max-size", "1MB", "--cache-dir", str(directory)]).exit_code
        == 0
    )
    assert run_cli(run).exit_code == 0
    assert _stats(directory)["size_limit"] == 1_000_000
    assert run_cli(["cache", "prune", "--cache-dir", str(directory)]).exit_code == 0
    assert _stats(directory)["size_limit"] == 1_000_000
    assert run_cli([*run, "--cache-size", "2MB"]).exit_code == 0
    assert run_cli(run).exit_code == 0
    assert _stats(directory)["size_limit"] == 2_000_000


def test_the_default_size_is_the_new_cache_limit() -> None:
    assert parse_size(DEFAULT_CACHE_SIZE) == DEFAULT_SIZE_LIMIT
