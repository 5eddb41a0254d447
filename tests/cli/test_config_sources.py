"""Flag > SLUICE_* environment variable > TOML file > built-in default."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli, write_jsonl


def _job(sim, tmp_path: Path, *extra: str) -> list[str]:
    # One of the two items lacks the template's field, so the error rate is 50%.
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"other": "b"}])
    out = str(tmp_path / "out.jsonl")
    job = ["run", source, "-o", out, "-m", "sim-chat", "-p", "{{ text }}"]
    return [*extra, *job, "--base-url", sim.base_url]


def _config(tmp_path: Path, text: str, name: str = "custom.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_toml_file_sets_defaults(sim, tmp_path: Path) -> None:
    config = _config(tmp_path, "[run]\nmax-error-rate = 0.6\n")
    assert run_cli(_job(sim, tmp_path)).exit_code == 1
    assert run_cli(_job(sim, tmp_path, "--config", config)).exit_code == 0


def test_environment_beats_the_file_and_a_flag_beats_both(sim, tmp_path: Path) -> None:
    config = _config(tmp_path, "[run]\nmax_error_rate = 0.6\n")
    strict = {"SLUICE_RUN_MAX_ERROR_RATE": "0"}
    assert run_cli(_job(sim, tmp_path, "--config", config), env=strict).exit_code == 1
    flagged = [*_job(sim, tmp_path, "--config", config), "--max-error-rate", "1"]
    assert run_cli(flagged, env=strict).exit_code == 0


def test_sluice_toml_in_the_working_directory_is_read_by_default(sim, tmp_path: Path) -> None:
    # The autouse fixture made tmp_path the working directory.
    _config(tmp_path, "[run]\nmax-error-rate = 1\n", name="sluice.toml")
    assert run_cli(_job(sim, tmp_path)).exit_code == 0


def test_unknown_keys_and_broken_files_are_config_errors(sim, tmp_path: Path) -> None:
    # All the file's mistakes exit 78, an unknown key as much as a broken file.
    typo = run_cli(_job(sim, tmp_path, "--config", _config(tmp_path, "[run]\nconcurency = 3\n")))
    assert typo.exit_code == 78 and "has no option concurency" in typo.stderr
    section = run_cli(_job(sim, tmp_path, "--config", _config(tmp_path, "[walk]\nx = 1\n")))
    assert section.exit_code == 78 and "unknown section [walk]" in section.stderr
    broken = run_cli(_job(sim, tmp_path, "--config", _config(tmp_path, "[run\n")))
    assert broken.exit_code == 78 and "not valid TOML" in broken.stderr
    missing = run_cli(_job(sim, tmp_path, "--config", str(tmp_path / "nope.toml")))
    assert missing.exit_code == 78 and "does not exist" in missing.stderr
    for result in (typo, section, broken, missing):
        assert "Traceback" not in result.output + result.stderr
