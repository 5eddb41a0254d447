"""The config file and `sluice config show` in real processes (`python -m cli`).

Each test runs sluice in its own working directory with a clean environment:
no SLUICE_* or OPENAI_* variable of the developer's, so ./sluice.toml and the
variables each test sets are the only configuration there is.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import write_jsonl
from tests.leaks import key_fragments

# Shaped like an OpenAI project key, so the file check knows it by its looks alone.
KEY = "sk-proj-Q7vX2mLp9RtZ4wYk3NcB8hJ6sDaE1gU5oIqF0"
TIMEOUT = 60  # a guard against a hang, not a measurement


def _sluice(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=_clean_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _clean_env(cwd: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLUICE_", "OPENAI_"))
    }
    env.update(NO_COLOR="1", XDG_CACHE_HOME=str(cwd / "cache"))
    return {**env, **(extra or {})}


def _show(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, dict]:
    """`sluice config show ... --json`, as {key: row}."""
    result = _sluice(cwd, "config", "show", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return {row["key"]: row for row in json.loads(result.stdout)["options"]}


def _error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a user mistake gives, after checking the exit code."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_config_show_names_the_source_of_each_value(tmp_path: Path) -> None:
    (tmp_path / "sluice.toml").write_text('[run]\nmodel = "gpt-4o-mini"\nbatch-size = 20\n')
    env = {"SLUICE_RUN_TIMEOUT": "9", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    rows = _show(tmp_path, "run", "--", "-c", "64", env=env)
    assert rows["concurrency"] == {"key": "concurrency", "value": 64, "source": "flag", "env": None}
    assert rows["timeout"]["value"] == 9.0
    assert (rows["timeout"]["source"], rows["timeout"]["env"]) == ("env", "SLUICE_RUN_TIMEOUT")
    assert (rows["model"]["value"], rows["model"]["source"]) == ("gpt-4o-mini", "file")
    assert (rows["batch-size"]["value"], rows["batch-size"]["source"]) == (20, "file")
    assert (rows["max-retries"]["value"], rows["max-retries"]["source"]) == (5, "default")
    assert rows["base-url"]["value"] == "http://127.0.0.1:9/v1"
    assert (rows["base-url"]["source"], rows["base-url"]["env"]) == ("env", "OPENAI_BASE_URL")


def test_config_show_as_a_table_says_where_each_value_came_from(tmp_path: Path) -> None:
    config = tmp_path / "team.toml"
    config.write_text("[run]\nbatch-size = 20\n")
    env = {"SLUICE_RUN_TIMEOUT": "9"}
    result = _sluice(tmp_path, "config", "show", "--config", str(config), "--", "-c", "64", env=env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split(maxsplit=2)[1:] for line in result.stdout.splitlines()[3:]}
    assert lines["concurrency"] == ["64", "flag"]
    assert lines["timeout"] == ["9.0", "env SLUICE_RUN_TIMEOUT"]
    assert lines["batch-size"] == ["20", f"file ({config})"]
    assert lines["max-retries"] == ["5", "default"]
    assert f"config file: {config}" in result.stdout


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        ([], {}, (3, "file")),
        ([], {"SLUICE_RUN_CONCURRENCY": "5"}, (5, "env")),
        (["-c", "7"], {"SLUICE_RUN_CONCURRENCY": "5"}, (7, "flag")),
    ],
)
def test_a_flag_beats_its_variable_which_beats_the_file(
    tmp_path: Path, flag: list[str], env: dict[str, str], expected: tuple[int, str]
) -> None:
    (tmp_path / "sluice.toml").write_text("[run]\nconcurrency = 3\n")
    row = _show(tmp_path, "run", "--", *flag, env=env)["concurrency"]
    assert (row["value"], row["source"]) == expected


def test_without_a_file_the_default_is_used(tmp_path: Path) -> None:
    row = _show(tmp_path)["concurrency"]
    assert (row["value"], row["source"]) == (16, "default")


def test_the_file_shapes_a_real_run_when_config_follows_the_command(sim, tmp_path: Path) -> None:
    # One of the two items lacks the template's field: a 50% error rate, exit 1 by default.
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "a"}, {"other": "b"}])
    (tmp_path / "lenient.toml").write_text("[run]\nmax-error-rate = 0.6\n")
    job = [source, "-o", "out.jsonl", "-m", "sim-chat", "-p", "{{ text }}", "-q"]
    job += ["--base-url", sim.base_url]
    assert _sluice(tmp_path, "run", *job).returncode == 1
    assert _sluice(tmp_path, "run", "--config", "lenient.toml", *job).returncode == 0
    assert _sluice(tmp_path, "run", "--config=lenient.toml", *job).returncode == 0
    assert _sluice(tmp_path, "--config", "lenient.toml", "run", *job).returncode == 0


def test_sim_takes_config_after_the_command_too(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text("[sim]\nport = 0\nrpm = 600\n")
    command = [sys.executable, "-m", "cli", "sim", "--config", "sim.toml"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=_clean_env(tmp_path, None),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        announced = re.search(r"(http://127\.0\.0\.1:(\d+)/v1)", line)
        assert announced, line
        assert announced.group(2) != "8000"  # the file's port 0: a free port, not the default
        with urllib.request.urlopen(announced.group(1) + "/models", timeout=TIMEOUT) as reply:
            assert reply.headers["x-ratelimit-limit-requests"] == "600"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_config_after_the_command_is_read_instead_of_a_broken_default_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "sluice.toml").write_text("[run\n")
    (tmp_path / "good.toml").write_text("[run]\nconcurrency = 3\n")
    rows = _show(tmp_path, "--config", "good.toml")
    assert rows["concurrency"]["value"] == 3
    assert _sluice(tmp_path, "status", "nowhere", "--config", "good.toml").returncode != 78


def test_config_given_twice_must_name_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[run]\nconcurrency = 3\n")
    (tmp_path / "b.toml").write_text("[run]\nconcurrency = 4\n")
    same = _sluice(tmp_path, "--config", "a.toml", "config", "show", "--config", "./a.toml")
    assert same.returncode == 0, same.stderr
    twice = _sluice(tmp_path, "--config", "a.toml", "config", "show", "--config", "b.toml")
    line = _error_line(twice, 2)
    assert "--config is given twice" in line and "a.toml" in line and "b.toml" in line


def test_sluice_config_names_the_file_and_a_flag_beats_it(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[run]\nconcurrency = 3\n")
    (tmp_path / "b.toml").write_text("[run]\nconcurrency = 4\n")
    from_env = {"SLUICE_CONFIG": "a.toml"}
    assert _show(tmp_path, env=from_env)["concurrency"]["value"] == 3
    assert _show(tmp_path, "--config", "b.toml", env=from_env)["concurrency"]["value"] == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('concurrency = "lots"', '[run] concurrency = "lots" is not a valid integer'),
        ("concurrency = 0", "[run] concurrency = 0 is not valid: it should be greater than"),
        ("concurrency = 2.5", "[run] concurrency = 2.5 is not a valid integer"),
        ("concurrency = true", "[run] concurrency = true is not valid: only on/off options"),
        ("concurrency = [1, 2]", "[run] concurrency = [1, 2] is a list"),
        ("max-error-rate = 2", "[run] max-error-rate = 2 is not valid: it should be less than"),
        ('cache = "often"', '[run] cache = "often" is not valid: write true or false'),
        ('endpoint = "bogus"', "[run] endpoint = \"bogus\" is not valid: 'bogus' is not one of"),
        # A NUL byte, which no argv or variable can hold (a path with one raised ValueError).
        ('summary = "a\\u0000b"', '[run] summary = "a\\u0000b" holds a NUL character'),
        ('prompt = "x\\u0000"', '[run] prompt = "x\\u0000" holds a NUL character'),
    ],
)
def test_a_bad_value_names_the_file_and_the_key_not_a_flag(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "sluice.toml").write_text(f"[run]\n{text}\n")
    result = _sluice(tmp_path, "run", "in.jsonl", "-o", "out.jsonl", "-m", "m")
    line = _error_line(result, 78)
    assert line.startswith(f"sluice: error: sluice.toml: {message}"), line
    assert "--" not in line.split("sluice.toml", 1)[1]  # no flag the user never typed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run\n", "sluice.toml: not valid TOML"),
        ("[run]\nconcurency = 3\n", "sluice.toml: [run] has no option concurency (did you mean"),
        ("[run]\nno-cache = true\n", "sluice.toml: [run] has no option no-cache (write cache"),
        ("[walk]\nx = 1\n", "sluice.toml: unknown section [walk]; sections are [run]"),
        ("concurrency = 3\n", "sluice.toml: concurrency is outside any command's table"),
        ("[cache.tidy]\nx = 1\n", "sluice.toml: unknown section [cache.tidy]"),
        ("[run]\nbatch-size = 3\nbatch_size = 4\n", "sluice.toml: [run] batch_size is set twice"),
    ],
)
def test_a_malformed_file_and_an_unknown_key_give_the_same_exit_code(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "sluice.toml").write_text(text)
    for command in (["run", "in.jsonl", "-o", "out.jsonl"], ["config", "show"]):
        line = _error_line(_sluice(tmp_path, *command), 78)
        assert message in line, line


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = _error_line(_sluice(tmp_path, "run", "--config", "gone.toml", "x.jsonl"), 78)
    assert "config file gone.toml does not exist" in missing
    (tmp_path / "folder.toml").mkdir()
    unreadable = _error_line(_sluice(tmp_path, "config", "show", "--config", "folder.toml"), 78)
    assert "folder.toml: cannot read config file" in unreadable


@pytest.mark.parametrize(
    "text",
    [
        f'[run]\napi_key = "{KEY}"\n',
        f'[run]\nopenai-api-key = "{KEY}"\n',
        '[run]\ntoken = "not-shaped-like-a-key"\n',
        f'key = "{KEY}"\n',
        f'[run]\nprompt = "Use {KEY} for this"\n',
        f'[run]\noption = ["api_key={KEY}"]\n',
        f'[sim]\nhost = "{KEY}"\n',
    ],
)
def test_a_literal_api_key_in_the_file_is_refused_without_echoing_it(
    tmp_path: Path, text: str
) -> None:
    (tmp_path / "sluice.toml").write_text(text)
    for command in (["run", "in.jsonl", "-o", "out.jsonl", "-m", "m"], ["config", "show"]):
        result = _sluice(tmp_path, *command)
        line = _error_line(result, 78)
        assert "sluice.toml" in line and "environment variable named by api-key-env" in line
        assert key_fragments(KEY, result.stdout + result.stderr) == []
        assert "not-shaped" not in result.stderr


def test_config_show_never_prints_a_secret(tmp_path: Path) -> None:
    (tmp_path / "sluice.toml").write_text('[run]\nmodel = "gpt-4o-mini"\n')
    other = "tok_9fQ2xLmP4vRtZ8wYk3NcB7hJ6sDaE1gU5oIq"  # not key-shaped: found as the key
    env = {
        "MY_KEY": other,
        "SLUICE_RUN_API_KEY_ENV": "MY_KEY",
        "SLUICE_RUN_PROMPT": f"Answer, and by the way the key is {other}",
        "SLUICE_RUN_SYSTEM": f"and the other one is {KEY}",
        "OPENAI_BASE_URL": "https://user:hunter2secret@example.com/v1",
    }
    for style in (["--json"], []):
        result = _sluice(tmp_path, "config", "show", *style, env=env)
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert key_fragments(other, output) == [] and key_fragments(KEY, output) == []
        assert "hunter2" not in output
        assert "MY_KEY" in output  # the variable's name is not a secret
    pasted = _sluice(tmp_path, "config", "show", "--json", "--", "--api-key-env", KEY)
    assert pasted.returncode == 0, pasted.stderr
    assert key_fragments(KEY, pasted.stdout + pasted.stderr) == []


def test_config_show_reports_bad_flags_and_unknown_commands_as_usage_errors(
    tmp_path: Path,
) -> None:
    bad_env = _sluice(tmp_path, "config", "show", env={"SLUICE_RUN_CONCURRENCY": "lots"})
    assert "env SLUICE_RUN_CONCURRENCY" in _error_line(bad_env, 2)
    unknown = _sluice(tmp_path, "config", "show", "walk")
    listed = _error_line(unknown, 2)
    assert "no command 'walk'; commands are run," in listed and "cache prune" in listed
    assert _sluice(tmp_path, "config", "show", "run", "--", "--no-such-flag").returncode == 2
    nested = _show(tmp_path, "cache prune")
    assert nested["cache-dir"]["source"] == "default"


def test_help_tells_where_config_may_go(tmp_path: Path) -> None:
    for command in (["--help"], ["run", "--help"], ["sim", "--help"], ["config", "show", "--help"]):
        result = _sluice(tmp_path, *command)
        assert result.returncode == 0, result.stderr
        assert "--config" in result.stdout
    words = _sluice(tmp_path, "--help").stdout.replace("│", " ").split()
    assert "may be given before the command or after it" in " ".join(words).lower()
