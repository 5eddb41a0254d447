import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.prepare.templates import (
    _NOT_FIELDS,
    JinjaTemplate,
    PromptTemplate,
    TemplateFieldError,
    _environment,
    plain_pieces,
)

field_text = st.text(max_size=200)


@given(text=field_text)
def test_item_text_is_data_and_never_rendered_again(text: str) -> None:
    template = PromptTemplate("Review: {{ text }}")
    assert template.render({"text": text}) == f"Review: {text}"


@pytest.mark.parametrize("hostile", ["{{ config }}", "{0.__class__}", "{% for x in y %}", "}}{{"])
def test_template_syntax_inside_fields_comes_out_verbatim(hostile: str) -> None:
    assert PromptTemplate("{{ text }}").render({"text": hostile}) == hostile


def test_missing_field_is_an_item_error_naming_the_field() -> None:
    with pytest.raises(TemplateFieldError, match="'text' is undefined"):
        PromptTemplate("Review: {{ text }}").render({"body": "x"})


def test_sandbox_refuses_attribute_escapes() -> None:
    template = PromptTemplate("{{ text.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateFieldError):
        template.render({"text": "x"})


def test_broken_template_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="not valid Jinja2"):
        PromptTemplate("Review: {{ text ")


@given(rating=st.integers(-(10**6), 10**6), product=st.text(max_size=30))
def test_fields_of_any_type_render(rating: int, product: str) -> None:
    rendered = PromptTemplate("{{ product }} ({{ rating }} stars)").render(
        {"product": product, "rating": rating}
    )
    assert rendered == f"{product} ({rating} stars)"


# Templates of text and {{ field }} are rendered without Jinja's context (templates.py);
# these check that path against Jinja's own rendering, output and errors alike.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
field_names = st.sampled_from(["text", "rating", "a", "missing", "range", "loop", "self"])
pieces = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=8),
        field_names.map(lambda name: "{{ " + name + " }}"),
        field_names.map(lambda name: "{{-" + name + "-}}"),
        st.sampled_from(["{{ text | upper }}", "{{ a.b }}", "{% if a %}x{% endif %}", "\n"]),
        st.sampled_from(["{{\ttext\n}}", "{{text}}", "{# note #}", "\r\n", "\r", "{{ true }}"]),
        st.sampled_from(["{{ None }}", "{{ not }}", "{{ if }}", "{{ range }}", "}}", "{", "}"]),
        st.sampled_from(["{{ 1 }}", "{{ 'x' }}", "{{ a }", "{{ }}", "{{ é }}", "{{+ a }}"]),
    ),
    max_size=6,
)


# Brace soup: where a hand-written recogniser and Jinja's lexer would part ways.
brace_soup = st.text(alphabet="{}%#-+ \t\n\rtexa_1'.", max_size=24)


templates = st.one_of(pieces.map("".join), brace_soup)


@given(text=templates, fields=st.dictionaries(field_names, json_values, max_size=4))
def test_a_plain_template_renders_as_jinja_does(text: str, fields: dict[str, object]) -> None:
    try:
        by_jinja = JinjaTemplate(text, "prompt")
    except ConfigError as refused:  # refused alike, whichever path would have taken it
        with pytest.raises(ConfigError) as our_refusal:
            PromptTemplate(text)
        assert str(our_refusal.value) == str(refused)
        return
    template = PromptTemplate(text)
    try:
        expected = by_jinja.render(fields)
    except TemplateFieldError as jinja_error:
        with pytest.raises(TemplateFieldError) as ours:
            template.render(fields)
        assert str(ours.value) == str(jinja_error)
        return
    assert template.render(fields) == expected


def test_text_and_fields_alone_take_the_plain_path() -> None:
    assert PromptTemplate("Review: {{ text }}\n{{rating}}/5").plain
    assert not PromptTemplate("{{ text | upper }}").plain
    assert not PromptTemplate("{{ range }}").plain  # a name Jinja defines


@given(text=templates)
@settings(max_examples=400)
def test_the_plain_path_is_taken_only_for_what_jinja_parses_as_text_and_names(
    text: str,
) -> None:
    """Any template the plain path takes is valid Jinja made of text and field names
    alone, in the same pieces."""
    from jinja2 import nodes

    pieces = plain_pieces(text)
    if pieces is None:
        return
    parsed = _environment().parse(text)
    by_jinja = []
    for output in parsed.body:
        assert isinstance(output, nodes.Output)
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                by_jinja.append((node.data, False))
            else:
                assert isinstance(node, nodes.Name) and node.ctx == "load", node
                by_jinja.append((node.name, True))
    assert pieces == tuple(piece for piece in by_jinja if piece[0] or piece[1])


def test_names_jinja_gives_a_meaning_are_never_taken_as_fields() -> None:
    sandbox_globals = set(_environment().globals)
    assert sandbox_globals <= _NOT_FIELDS
    for name in [*sandbox_globals, "true", "None", "loop", "self", "if", "not"]:
        assert plain_pieces("{{ " + name + " }}") is None
    assert plain_pieces("a {{ text }} b") == (("a ", False), ("text", True), (" b", False))
    assert plain_pieces("{{- text }}") is None  # whitespace control
    assert plain_pieces("{{{ text }}") is None  # Jinja's variable starts at the first {{
    assert plain_pieces("{ {{ text }}}") == (("{ ", False), ("text", True), ("}", False))
    assert plain_pieces("line\r\nnext {{ text }}") is None  # Jinja rewrites the newline


def test_a_run_of_plain_templates_never_imports_jinja() -> None:
    probe = (
        "import sys; from pipeline.prepare.templates import PromptTemplate; "
        "t = PromptTemplate('Review: {{ text }}'); assert t.render({'text': 'x'}) == 'Review: x'; "
        "assert 'jinja2' not in sys.modules; "
        "PromptTemplate('{{ text | upper }}'); assert 'jinja2' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
