"""Jinja2 message templates, sandboxed because rule files are edited by many hands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

# Undefined renders as "" so `{{ labels.namespace }}` on an alert without that label is empty
# instead of an error at 3 a.m.
_env = SandboxedEnvironment(
    autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=False
)


class TemplateError(ValueError):
    """A template that does not compile; the message says where."""


def compile_template(source: str) -> jinja2.Template:
    try:
        return _env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


def render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render, never raising: a template that fails at run time yields a marked fallback."""
    try:
        return template.render(context).strip()
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        return f"(template error: {exc})"
    except RecursionError:
        # A macro that calls itself; it must not take down the worker rendering it.
        return "(template error: maximum recursion depth exceeded)"
