"""Prompt templates: Jinja2 in a sandbox, where a missing field is an error, not a blank.

Most prompts are text and `{{ field }}` alone. Jinja renders those by looking each
field up and joining `str()` of it to the text; done here directly, that is several
times faster than building Jinja's render context for every item. Any other template
(filters, attributes, tags, a name Jinja itself defines) is rendered by Jinja.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pipeline.core.errors import ConfigError

_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


class TemplateFieldError(Exception):
    """An item cannot fill the template (missing field, forbidden access)."""


class PromptTemplate:
    """A compiled template; item fields are data and are never themselves rendered."""

    def __init__(self, text: str, name: str = "prompt") -> None:
        self.text = text
        self.name = name
        try:
            self._template = _ENVIRONMENT.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"the {name} template is not valid Jinja2 (line {exc.lineno}): {exc.message}"
            ) from exc
        self._globals = dict(self._template.globals)
        self._plain = _plain_pieces(_ENVIRONMENT.parse(text), self._globals)

    @property
    def plain(self) -> bool:
        """Text and `{{ field }}` alone: rendered without Jinja's context."""
        return self._plain is not None

    def render(self, fields: dict[str, Any]) -> str:
        if self._plain is not None:
            return self._render_plain(self._plain, fields)
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


# Names Jinja gives a meaning of its own inside a template.
_SPECIAL_NAMES = frozenset({"self", "super", "loop", "varargs", "kwargs", "caller"})


def _plain_pieces(
    template: nodes.Template, jinja_globals: dict[str, Any]
) -> tuple[tuple[str, bool], ...] | None:
    """The template as (text, False) and (field name, True) pieces, in order, when it
    is made of nothing else; None otherwise."""
    pieces: list[tuple[str, bool]] = []
    for output in template.body:
        if not isinstance(output, nodes.Output):
            return None
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append((node.data, False))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                if node.name in jinja_globals or node.name in _SPECIAL_NAMES:
                    return None
                pieces.append((node.name, True))
            else:
                return None
    return tuple(pieces)
