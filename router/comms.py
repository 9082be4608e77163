"""Stakeholder communications: the seed's "Incident Started" and "Status Update" messages.

Rendering is pure: an `IncidentView` (a frozen snapshot of everything the templates need) plus
the times and words of the moment go in, Markdown comes out. Whoever sends the message builds the
view (from Redis, from the API) and reads the clock; nothing here does I/O beyond loading
templates.

Templates are Jinja2 files shipped in `router/templates/comms/` (`incident_started.md.j2`,
`status_update.md.j2`, and `postmortem.md.j2` for `router.postmortem`). A file of the same name in
the rules' `templates/` directory replaces the shipped one, as channel templates do
(`router.notify.render`). They run in Jinja2's sandbox because rule files are edited by many hands.

Markdown safety: alert labels and annotations come from whoever can post alerts, so every
`{{ ... }}` is Markdown-escaped on output (see `md_escape`) unless the value is `Markup`, which
only the `code`, `lines`, `md` and `or_placeholder` filters (and Jinja's `safe`) produce. An
override template is therefore as safe as the shipped one without its author thinking about it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from router.incident_view import (
    ActionItem,
    AlertView,
    Findings,
    IncidentView,
    Role,
    StatusUpdate,
    UpdateStatus,
    as_utc,
    role_name,
    timeline_entry,
)
from router.severity import Severity

INCIDENT_STARTED = "incident_started.md.j2"
STATUS_UPDATE = "status_update.md.j2"
POSTMORTEM = "postmortem.md.j2"

# The seed's severity table, "Definition" column.
SEVERITY_MEANING: Mapping[Severity, str] = {
    Severity.SEV1: "Complete outage",
    Severity.SEV2: "Major degradation",
    Severity.SEV3: "Minor degradation",
    Severity.SEV4: "Minimal impact",
}


class CommsRenderer:
    """Renders the comms templates; a same-named file in `override_dir` wins over the package's.

    `override_dir` is the rules' `templates/` directory; a missing directory is ignored so a
    rule set without overrides needs nothing. Template errors (syntax, an undefined variable)
    raise `jinja2.TemplateError`: a broken override should fail loudly the first time it is
    rendered, not send half a message.
    """

    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None and override_dir.is_dir():
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.PackageLoader("router", "templates/comms"))
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,
            finalize=_finalize,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters.update(
            md=md_escape,
            lines=md_lines,
            code=code_span,
            utc=format_utc,
            day=format_day,
            sentence=sentence,
            or_placeholder=or_placeholder,
        )
        self._env.globals.update(
            duration=format_duration,
            role_name=role_name,
            severity_meaning=lambda severity: SEVERITY_MEANING.get(Severity(severity), ""),
        )

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        """Render template `name`; the result ends with exactly one newline."""
        return self._env.get_template(name).render(dict(context)).strip() + "\n"


@functools.cache
def default_renderer() -> CommsRenderer:
    """The package's templates only, for callers without a rules directory."""
    return CommsRenderer()


def incident_started(
    view: IncidentView,
    *,
    now: datetime,
    next_update: datetime,
    renderer: CommsRenderer | None = None,
) -> str:
    """The seed's "Incident Started" message: start time (first alert), severity, impact
    (title, summary, affected services), status Investigating, and the next update time."""
    context = {"view": view, "now": now, "next_update": next_update}
    return (renderer or default_renderer()).render(INCIDENT_STARTED, context)


def status_update(
    view: IncidentView,
    *,
    now: datetime,
    status: UpdateStatus | str,
    facts: Sequence[str],
    actions: Sequence[str],
    next_update: datetime | None,
    renderer: CommsRenderer | None = None,
) -> str:
    """The seed's "Status Update" message posted at `now`.

    `status` is investigating, mitigating or resolved (ValueError otherwise). Every update
    promises the next one (DESIGN section 4), so `next_update` may be None only when resolved.
    """
    current = UpdateStatus(status)
    if next_update is None and current is not UpdateStatus.RESOLVED:
        raise ValueError(f"a status update while {current} must say when the next one is due")
    context = {
        "view": view,
        "now": now,
        "status": current,
        "facts": list(facts),
        "actions": list(actions),
        "next_update": next_update,
    }
    return (renderer or default_renderer()).render(STATUS_UPDATE, context)


# --- Markdown helpers (template filters) -----------------------------------------------------

# C0 controls other than the whitespace we fold anyway, and DEL: terminal escapes have no
# business in a message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Characters that start inline structure anywhere in a line: emphasis, code, links, tables,
# strikethrough, and the backslash itself.
_INLINE = re.compile(r"([\\`*_\[\]~|])")
# `&` only matters where it would start an entity (`&copy;`), so plain "R&D" stays readable.
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# Characters that start block structure at the beginning of a line (heading, list, setext
# underline); an ordered-list marker is "1." or "1)".
_LEADING = re.compile(r"^(?:([#+=-])|(\d{1,9})([.)]))")


def _fold(value: object) -> str:
    """One line: control characters dropped, every run of whitespace (newlines too) one space."""
    return " ".join(_CONTROL.sub("", str(value)).split())


def md_escape(value: object) -> Markup:
    """`value` as literal Markdown text on one line: nothing in it can start a heading, list,
    table cell, link, emphasis, code span or HTML tag. Rendered, it reads as the original.
    `Markup` is returned as is: it was escaped (or built on purpose) already."""
    if isinstance(value, Markup):
        return value
    text = _ENTITY.sub("&amp;", _fold(value))
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    text = _LEADING.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)
    return _markdown(text)


def md_lines(value: object) -> Markup:
    """Multi-line text kept line by line, each line escaped as by `md_escape`. Blank lines are
    dropped so the text stays one paragraph (or one list item) wherever it is placed."""
    lines = (md_escape(line) for line in str(value).splitlines())
    return _markdown("\n".join(line for line in lines if line))


def code_span(value: object) -> Markup:
    """`value` as an inline code span on one line; the fence is longer than any run of
    backticks inside, so the value cannot close it. Empty in, empty out."""
    text = _fold(value)
    if not text:
        return _markdown("")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    # CommonMark strips one space on each side, which lets a value start or end with a backtick.
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return _markdown(f"{fence}{pad}{text}{pad}{fence}")


def or_placeholder(value: object, what: str = "to be written") -> Markup:
    """`value` escaped, or `_(what)_` when it is empty."""
    return md_escape(value) if value else _markdown(f"_({md_escape(what)})_")


def sentence(value: object) -> str:
    """One line of text ending in punctuation, so sentences can be strung together."""
    text = _fold(value)
    return text if not text or text[-1] in ".!?" else f"{text}."


def format_utc(value: datetime, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return as_utc(value).strftime(fmt)


def format_day(value: date) -> str:
    """YYYY-MM-DD; a datetime is first taken to UTC."""
    return (as_utc(value).date() if isinstance(value, datetime) else value).isoformat()


def format_duration(start: datetime, end: datetime) -> str:
    """ "1h 22m", "45m", "2d 3h", "40s": the largest units, minutes at the finest once past one
    minute. A negative span (clock skew between sources) shows as 0s."""
    seconds = max(0, int((as_utc(end) - as_utc(start)).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    # Whole minutes, rounded: a postmortem reader wants the span, not its seconds.
    days, rest = divmod((seconds + 30) // 60, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts)


def _markdown(text: str) -> Markup:
    # Markup here marks Markdown we escaped or built ourselves, which `_finalize` passes
    # through untouched; it is never HTML, so markupsafe's HTML concerns do not apply.
    return Markup(text)  # noqa: S704


def _finalize(value: object) -> object:
    # Jinja calls this on every `{{ }}` result: the Markdown equivalent of HTML autoescaping.
    return value if isinstance(value, Markup) else md_escape(value)


__all__ = [
    "ActionItem",
    "AlertView",
    "CommsRenderer",
    "Findings",
    "IncidentView",
    "Role",
    "StatusUpdate",
    "UpdateStatus",
    "default_renderer",
    "incident_started",
    "role_name",
    "status_update",
    "timeline_entry",
]
