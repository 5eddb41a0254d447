import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.errors import ConfigError
from pipeline.prepare.templates import PromptTemplate, TemplateFieldError

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
    ),
    max_size=6,
)


def _by_jinja(template: PromptTemplate, fields: dict[str, object]) -> str:
    jinja_only = PromptTemplate(template.text)
    jinja_only._plain = None
    return jinja_only.render(fields)


@given(parts=pieces, fields=st.dictionaries(field_names, json_values, max_size=4))
def test_a_plain_template_renders_as_jinja_does(
    parts: list[str], fields: dict[str, object]
) -> None:
    template = PromptTemplate("".join(parts))
    try:
        expected = _by_jinja(template, fields)
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
