"""Prompt templates: Jinja2 in a sandbox, where a missing field is an error, not a blank."""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pipeline.errors import ConfigError

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

    def render(self, fields: dict[str, Any]) -> str:
        try:
            return self._template.render(fields)
        except jinja2.UndefinedError as exc:
            raise TemplateFieldError(f"{self.name} template: {exc.message}") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateFieldError(f"{self.name} template: unsafe access refused: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, jinja2.TemplateError) as exc:
            raise TemplateFieldError(f"{self.name} template could not render: {exc}") from exc
