"""Jinja2 message templates for channels: shipped in the package, overridable from rules/.

A channel renders its messages from templates named `<channel type>.<part>.j2` (for example
`slack.text.j2`, `email.html.j2`). A file of the same name in the rules' `templates/` directory
replaces the shipped one, so teams can change wording without forking. Templates run in
Jinja2's sandbox, because rule files are edited by many hands.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from router.notify.base import Message


class Renderer:
    """Renders channel templates; `override_dir` (rules/templates) wins over the package's."""

    def __init__(self, override_dir: Path | None = None, *, autoescape: bool = False) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None and override_dir.is_dir():
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.PackageLoader("router", "notify/templates"))
        self._plain = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._html = self._plain.overlay(autoescape=True)

    def render(self, name: str, message: Message, **extra: Any) -> str:
        """Render template `name` for `message`; HTML templates (`*.html.j2`) are autoescaped."""
        environment = self._html if name.endswith(".html.j2") else self._plain
        return environment.get_template(name).render(context(message) | extra)


def context(message: Message) -> dict[str, Any]:
    """What every template sees: the message, the incident document, and the links."""
    incident: Mapping[str, Any] = message.payload
    return {
        "message": message,
        "event": message.event,
        "title": message.title,
        "text": message.text,
        "incident": incident,
        "severity": message.severity or incident.get("severity", ""),
        "links": dict(message.links),
        "recipient": message.recipient,
    }
