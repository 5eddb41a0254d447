"""Prompt templates: Jinja2 in a sandbox, where a missing field is an error, not a blank.

Most prompts are text and `{{ field }}` alone. Jinja renders those by looking each
field up and joining `str()` of it to the text; done here directly, that is several
times faster than building Jinja's render context for every item. Such templates
are recognised without Jinja, so a run that has only those never imports it (~30 ms
of every start). Any other template (filters, attributes, tags, comments, whitespace
control, a name Jinja itself gives a meaning) is compiled and rendered by Jinja.
"""

from __future__ import annotations

import functools
import keyword
import re
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import ConfigError

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# `{{ name }}`: any whitespace inside the braces, as Jinja's lexer allows; an ASCII
# name (Jinja's own rules for others are left to Jinja).
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What starts a variable, a tag or a comment in Jinja, and what its lexer rewrites in
# plain text (it turns \r\n and \r into \n): text holding one is left to Jinja.
_NOT_PLAIN_TEXT = re.compile(r"\{[{%#]|\r")
# Names a template cannot use as a field: Jinja's constants and keywords, the names it
# gives a meaning inside a template, and its globals (the sandbox's; a test checks them).
_NOT_FIELDS = frozenset(
    {
        *keyword.kwlist, "true", "false", "none",
        "self", "super", "loop", "varargs", "kwargs", "caller",
        "range", "dict", "lipsum", "cycler", "joiner", "namespace",
    }
)  # fmt: skip


class TemplateFieldError(Exception):
    """An item cannot fill the template (missing field, forbidden access)."""


class PromptTemplate:
    """A compiled template; item fields are data and are never themselves rendered."""

    def __init__(self, text: str, name: str = "prompt") -> None:
        self.text = text
        self.name = name
        self._plain = plain_pieces(text)
        self._jinja = JinjaTemplate(text, name) if self._plain is None else None

    @property
    def plain(self) -> bool:
        """Text and `{{ field }}` alone: rendered without Jinja."""
        return self._plain is not None

    def render(self, fields: dict[str, Any]) -> str:
        if self._plain is not None:
            return self._render_plain(self._plain, fields)
        assert self._jinja is not None
        return self._jinja.render(fields)

    def _render_plain(self, pieces: tuple[tuple[str, bool], ...], fields: dict[str, Any]) -> str:
        """What Jinja renders for text and `{{ field }}` alone, without its context."""
        parts = []
        for piece, is_field in pieces:
            if not is_field:
                parts.append(piece)
                continue
            try:
                parts.append(str(fields[piece]))
            except KeyError:
                raise TemplateFieldError(f"{self.name} template: {piece!r} is undefined") from None
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise TemplateFieldError(f"{self.name} template could not render: {exc}") from exc
        return "".join(parts)


class JinjaTemplate:
    """Any template, compiled and rendered by Jinja in its sandbox."""

    def __init__(self, text: str, name: str) -> None:
        import jinja2

        self.name = name
        try:
            self._template = _environment().from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"the {name} template is not valid Jinja2 (line {exc.lineno}): {exc.message}"
            ) from exc
        self._globals = dict(self._template.globals)

    def render(self, fields: dict[str, Any]) -> str:
        import jinja2

        # Template.render merges the template's globals (a ChainMap) into a new dict on
        # every call, which cost more than the rendering itself; a flat copy made once
        # and a context that takes our own fresh dict do the same work for much less.
        context = self._template.new_context({**self._globals, **fields}, shared=True)
        try:
            return "".join(self._template.root_render_func(context))
        except jinja2.UndefinedError as exc:
            raise TemplateFieldError(f"{self.name} template: {exc.message}") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateFieldError(f"{self.name} template: unsafe access refused: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, jinja2.TemplateError) as exc:
            raise TemplateFieldError(f"{self.name} template could not render: {exc}") from exc


def plain_pieces(text: str) -> tuple[tuple[str, bool], ...] | None:
    """The template as (text, False) and (field name, True) pieces, in order, when it
    is text and `{{ name }}` alone; None otherwise (Jinja then compiles it)."""
    pieces: list[tuple[str, bool]] = []
    start = 0
    for match in _FIELD.finditer(text):
        pieces.append((text[start : match.start()], False))
        # `{{{ name }}`: Jinja's lexer starts the variable at the first `{{`.
        if match[1] in _NOT_FIELDS or text.endswith("{", 0, match.start()):
            return None
        pieces.append((match[1], True))
        start = match.end()
    pieces.append((text[start:], False))
    if any(not is_field and _NOT_PLAIN_TEXT.search(piece) for piece, is_field in pieces):
        return None
    return tuple((piece, is_field) for piece, is_field in pieces if piece or is_field)


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
