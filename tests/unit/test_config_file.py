"""The config file's pure parts: secret names and key-shaped values, the checks of a
file against the real command tree, and which --config wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.core import TyperGroup
from typer.main import get_command

from cli.app import app
from cli.config_file import (
    ConfigFile,
    hide_api_keys,
    is_secret_name,
    load_config,
    looks_like_api_key,
    toml_literal,
)
from cli.config_option import chosen_config
from pipeline.core.errors import ConfigError, UsageError

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
KEY_BODY = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
PREFIXES = st.sampled_from(["sk-", "sk-proj-", "sk_live_", "rk-", "gsk_", "xai-", "hf_", "ghp_"])
KEYS = st.builds(
    lambda prefix, body: prefix + body, PREFIXES, KEY_BODY.filter(lambda s: len(s) >= 20)
)
# Text around a key: anything but the characters a key is made of, right beside it.
EDGE = st.text(alphabet=" .,:;'\"()[]=\n\t/")


def _root() -> TyperGroup:
    root = get_command(app)
    assert isinstance(root, TyperGroup)
    return root


def _load(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "sluice.toml"
    path.write_text(text)
    return load_config(path, _root())


@given(st.lists(WORD, min_size=1, max_size=4), st.sampled_from(["_", "-"]))
def test_a_name_that_names_a_variable_is_never_a_secret(words: list[str], separator: str) -> None:
    assert not is_secret_name(separator.join([*words, "env"]))


@given(
    st.lists(WORD, max_size=3), st.sampled_from(["key", "token", "secret", "password", "apikey"])
)
def test_a_name_ending_in_a_secret_word_is_a_secret(words: list[str], last: str) -> None:
    assert is_secret_name("_".join([*words, last]))
    assert is_secret_name("-".join([*words, last]).upper())


@pytest.mark.parametrize("name", ["max_tokens", "api_key_env", "keyword", "monkey", "model"])
def test_ordinary_option_names_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


@given(EDGE, KEYS, EDGE)
def test_a_key_anywhere_in_a_text_is_found_and_hidden(before: str, key: str, after: str) -> None:
    text = before + key + after
    assert looks_like_api_key(text)
    hidden = hide_api_keys(text)
    assert key not in hidden and not looks_like_api_key(hidden)


@given(st.text(alphabet="abcdefghij -_", max_size=80))
def test_text_without_a_key_prefix_is_left_alone(text: str) -> None:
    assert not looks_like_api_key(text) and hide_api_keys(text) == text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4),
        max_leaves=10,
    ),
    st.integers(min_value=8, max_value=80),
)
def test_a_value_quoted_in_a_message_is_never_longer_than_the_limit(
    value: object, limit: int
) -> None:
    assert len(toml_literal(value, limit)) <= limit


PATHS = st.sampled_from(["a.toml", "./a.toml", "b.toml", None])


@given(PATHS, PATHS, st.booleans())
def test_config_after_the_command_wins_and_two_flags_must_agree(
    before: str | None, after: str | None, before_from_env: bool
) -> None:
    first, second = (Path(p) if p else None for p in (before, after))
    if first and second and first.resolve() != second.resolve() and not before_from_env:
        with pytest.raises(UsageError):
            chosen_config(first, second, before_from_env)
    else:
        # SLUICE_CONFIG (before_from_env) gives way to a flag after the command, silently.
        assert chosen_config(first, second, before_from_env) == (second or first)


def test_values_are_kept_per_command_with_dashes_turned_to_underscores(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path,
        '[run]\nmax-error-rate = 0.5\noption = "seed=7"\ncache = false\n'
        '[sim]\nport = 0\n[cache.prune]\ncache-dir = "answers"\n',
    )
    assert loaded.defaults_for(["run"]) == {
        "max_error_rate": 0.5,
        "option": ["seed=7"],
        "cache": False,
    }
    assert loaded.defaults_for(["sim"]) == {"port": 0}
    assert loaded.defaults_for(["cache", "prune"]) == {"cache_dir": "answers"}
    assert loaded.defaults_for(["status"]) == {}


def test_no_file_and_no_sluice_toml_means_no_defaults(tmp_path: Path) -> None:
    # The autouse fixture made tmp_path, which holds no sluice.toml, the working directory.
    assert load_config(None, _root()) == ConfigFile(None)


@pytest.mark.parametrize(
    "text",
    [
        "[run]\nconfig = 'other.toml'\n",  # --config itself cannot come from a file
        "[run]\ninputs = ['a.jsonl']\n",  # arguments are not options
        "[run]\nhelp = true\n",
        "[cache]\ncache-dir = 'x'\n",  # a group has no options of its own here
        "[run.model]\nname = 'x'\n",
        "[run]\nmodel = { name = 'x' }\n",
        "[run]\noption = [['seed=7']]\n",
    ],
)
def test_what_no_option_takes_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"sluice\.toml: "):
        _load(tmp_path, text)
