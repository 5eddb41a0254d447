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
