"""Workflow files as a user writes them: templates and schemas beside the file, and every
mistake refused with exit 78's ConfigError naming the file (no request is involved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.workflow_file import load_workflow
from pipeline.core.errors import ConfigError

WORKFLOW = """
[steps.label]
prompt_file = "prompts/label.j2"
schema = "schemas/label.json"

[steps.reply]
after = ["label"]
when = 'steps.label.output.label == "negative"'
system = "You answer customers."
prompt = "{{ text }} ({{ steps.label.output.label }})"
schema = "reply: str, tone: calm|warm"

[steps.tags]
prompt = "Tags for: {{ text }}"

[steps.tags.schema]
type = "object"
properties.tags = { type = "array", items = { type = "string" } }
"""


def _workflow(tmp_path: Path, text: str = WORKFLOW) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "label.j2").write_text("Label: {{ text }}")
    (tmp_path / "schemas" / "label.json").write_text(
        '{"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}}}'
    )
    path = tmp_path / "flow.toml"
    path.write_text(text)
    return path


def test_files_beside_the_workflow_are_read_and_schemas_loaded(tmp_path: Path) -> None:
    workflow = load_workflow(_workflow(tmp_path))
    label, reply, tags = (workflow.steps[n].options for n in ("label", "reply", "tags"))
    assert label["prompt"] == "Label: {{ text }}"
    assert "prompt_file" not in label
    assert label["schema"]["properties"]["label"]["enum"] == ["positive", "negative"]
    assert reply["schema"]["properties"]["tone"] == {"type": "string", "enum": ["calm", "warm"]}
    assert tags["schema"]["properties"]["tags"]["items"] == {"type": "string"}


BOTH = 'prompt_file = "prompts/label.j2"\nprompt = "x"'
KEY_LIKE = '[steps.tags]\nsystem = "sk-abcdefghijklmnopqrstuvwxyz012345"'


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (('prompt_file = "prompts/label.j2"', 'prompt_file = "prompts/gone.j2"'), "gone.j2"),
        (('schema = "schemas/label.json"', 'schema = "schemas/gone.json"'), "does not exist"),
        (('schema = "reply: str, tone: calm|warm"', 'schema = "reply: "'), "steps.reply.schema"),
        (('prompt_file = "prompts/label.j2"', BOTH), "give prompt or prompt_file"),
        (("[steps.tags]", "[steps.tags\n"), "not valid TOML"),
        (("[steps.tags]", '[steps.tags]\napi_key = "x"'), "API keys are never read"),
        (("[steps.tags]", KEY_LIKE), "API keys are never read"),
        (('after = ["label"]', 'after = ["lable"]'), "flow.toml: workflow: steps.reply.after"),
    ],
)
def test_workflow_file_mistakes_name_the_file(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    old, new = change
    path = _workflow(tmp_path, WORKFLOW.replace(old, new, 1))
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("[", r"\[")) as caught:
        load_workflow(path)
    assert str(path) in caught.value.message
    assert "sk-abc" not in caught.value.message


def test_a_missing_workflow_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_workflow(tmp_path / "nothing.toml")
