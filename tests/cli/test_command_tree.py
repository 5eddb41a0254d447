"""A command line that names one command builds that branch of the tree alone
(cli/app.py): the same help, options and refusals as under the whole tree, which is
built whenever anything else could tell the two apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.app import build_app, command_alone

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ["run", "plan", "retry", "reduce", "sim", "status", "verify", "merge", "history"]
SINGLE += ["doctor", "serve", "cache"]


def sluice(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "NO_COLOR": "1", **env},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_a_named_command_is_built_alone() -> None:
    assert command_alone(["run", "in.jsonl", "-o", "out.jsonl"], {}, False) == "run"
    assert command_alone(["cache", "prune"], {}, False) == "cache"
    alone = build_app("run")
    assert [command.name for command in alone.registered_commands] == ["run"]
    assert alone.registered_groups == []


@pytest.mark.parametrize(
    ("args", "environ", "default_config_here"),
    [
        ([], {}, False),  # the root's help lists every command
        (["--help"], {}, False),
        (["rn"], {}, False),  # the refusal suggests the nearest command ("run")
        (["config", "show", "run"], {}, False),  # reads the other commands' options
        (["run", "--config", "f.toml"], {}, False),  # a config file's tables are checked
        (["run", "--config=f.toml"], {}, False),  # against every command
        (["--config", "f.toml", "run"], {}, False),
        (["run"], {"SLUICE_CONFIG": "f.toml"}, False),
        (["run"], {}, True),  # ./sluice.toml
        (["run"], {"_SLUICE_COMPLETE": "bash_complete"}, False),  # shell completion
        (["-v", "run"], {}, False),  # a root option first: the whole tree parses it
    ],
)
def test_the_whole_tree_is_built_when_anything_could_tell_the_two_apart(
    args: list[str], environ: dict[str, str], default_config_here: bool
) -> None:
    assert command_alone(args, environ, default_config_here) is None


@given(st.lists(st.text(max_size=12), max_size=6), st.booleans())
def test_a_branch_alone_is_only_ever_the_command_named_first(
    args: list[str], default_config_here: bool
) -> None:
    alone = command_alone(args, {}, default_config_here)
    assert alone is None or (alone == args[0] and alone in SINGLE and not default_config_here)
    assert alone is None or not any(arg.startswith("--config") for arg in args)


def test_the_whole_tree_has_every_command() -> None:
    whole = build_app()
    names = [command.name for command in whole.registered_commands]
    names += [group.name for group in whole.registered_groups]
    assert sorted(names) == sorted([*SINGLE, "config"])


@pytest.mark.parametrize("command", ["run", "cache", "serve"])
def test_a_commands_help_is_the_same_alone_and_under_the_whole_tree(
    command: str, tmp_path: Path
) -> None:
    alone = sluice(tmp_path, command, "--help")
    # An empty ./sluice.toml changes no default but makes the whole tree be built.
    (tmp_path / "sluice.toml").write_text("")
    whole = sluice(tmp_path, command, "--help")
    assert alone.returncode == whole.returncode == 0, alone.stderr + whole.stderr
    assert alone.stdout == whole.stdout
    assert f"sluice {command}" in alone.stdout.replace("python -m cli", "sluice")


def test_a_bad_option_is_refused_alike_alone_and_under_the_whole_tree(tmp_path: Path) -> None:
    alone = sluice(tmp_path, "run", "in.jsonl", "-o", "out.jsonl", "-c", "0")
    (tmp_path / "sluice.toml").write_text("")
    whole = sluice(tmp_path, "run", "in.jsonl", "-o", "out.jsonl", "-c", "0")
    assert alone.returncode == whole.returncode == 2
    assert alone.stderr == whole.stderr


def test_a_run_imports_no_other_commands_module(tmp_path: Path) -> None:
    report = sluice(tmp_path, "run", "--help", PYTHONPROFILEIMPORTTIME="1").stderr
    modules = {line.split("|")[-1].strip() for line in report.splitlines() if "|" in line}
    # importlib.import_module's own import goes unreported by -X importtime; those of
    # the module it imports are reported.
    assert "cli.run_options" in modules
    assert not {"cli.serve", "cli.config_show", "cli.sim", "cli.doctor"} & modules


def test_a_config_file_with_other_commands_tables_still_checks_them(tmp_path: Path) -> None:
    (tmp_path / "sluice.toml").write_text("[sim]\nport = 1\n[bogus]\nx = 1\n")
    refused = sluice(tmp_path, "status", "nothing-here")
    assert refused.returncode == 78, refused.stderr
    assert "unknown section [bogus]" in refused.stderr


def test_a_misspelt_command_is_still_told_the_nearest_one(tmp_path: Path) -> None:
    refused = sluice(tmp_path, "rn", "in.jsonl")
    assert refused.returncode == 2
    assert "Did you mean 'run'?" in refused.stderr
