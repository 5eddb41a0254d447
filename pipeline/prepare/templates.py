"""Prompt templates: Jinja2 in a sandbox, where a missing field is an error, not a blank."""

from __future__ import annotations

from typing import Any

import jinja2
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

    def render(self, fields: dict[str, Any]) -> str:
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
