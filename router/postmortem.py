"""The postmortem draft: the seed's template, filled in from the incident and its timeline.

What the record knows is written out (date, duration, severity, impact in alerts and services,
the timeline, the roles, the action items); what only people know (root cause, contributing
factors, what went well, what to improve) is a headed `_(to be written)_` placeholder until
`IncidentView.findings` says otherwise. Rendering is pure, like `router.comms`, and uses the same
overridable templates (`postmortem.md.j2`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from router.comms import (
    POSTMORTEM,
    AlertView,
    CommsRenderer,
    IncidentView,
    Role,
    default_renderer,
    format_utc,
    role_name,
)
from router.incidents import TimelineEntry

# Timeline kinds worth a line in a postmortem, beyond the milestones below. Alert-by-alert
# joins and resolutions and page retries are left out: the impact section counts the alerts,
# and a retried page is not a decision anyone made.
_NOTEWORTHY = frozenset(
    {
        "opened",
        "severity_raised",
        "severity_changed",
        "escalation",
        "role_assigned",
        "status_update",
        "reopened",
        "reopened_by_hand",
        "closed",
    }
)

# Milestone name -> the timeline kinds that mark it. Mitigated means service restored and
# resolved means root cause fixed (DESIGN section 4), hence the names.
_MILESTONES = {
    "Acknowledged": frozenset({"acknowledged"}),
    "Mitigated (service restored)": frozenset({"all_resolved", "mitigated_by_hand"}),
    "Resolved (root cause fixed)": frozenset({"resolved_by_hand"}),
}
_ROLES = frozenset(role.value for role in Role)
_TEAM_ENGAGED = "Team engaged"
_FIRST_ALERT = "First alert"


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of the postmortem timeline; `milestone` names the seed's milestones."""

    at: datetime
    text: str
    milestone: str = ""


def default_author(view: IncidentView) -> str:
    """The Incident Commander, else whoever resolved the incident, else nobody ("")."""
    return view.roles.get(Role.COMMANDER.value) or view.resolved_by


def timeline(view: IncidentView) -> list[Moment]:
    """The postmortem's timeline, oldest first (ties keep their recorded order).

    First alert (the earliest member alert's start), team engaged (the first page delivered),
    acknowledged, mitigated and resolved, plus every role change, severity change, status
    update, escalation, reopening and closing. Milestones come from the timeline entries; an
    incident field fills in a milestone only when no entry records it (a view built without
    the timeline, or a state change that writes none).
    """
    moments: list[Moment] = []
    first = view.first_alert
    if first is not None and first.starts_at is not None:
        moments.append(Moment(first.starts_at, f"{_alert_title(first)} fired", _FIRST_ALERT))

    engaged = False
    seen: set[str] = set()
    for entry in view.timeline:
        if entry.kind == "page_sent" and not engaged:
            engaged = True
            moments.append(Moment(entry.at, _entry_text(entry), _TEAM_ENGAGED))
            continue
        milestone = next((name for name, kinds in _MILESTONES.items() if entry.kind in kinds), "")
        if milestone:
            seen.add(milestone)
            moments.append(Moment(entry.at, _entry_text(entry), milestone))
        elif entry.kind in _NOTEWORTHY:
            moments.append(Moment(entry.at, _entry_text(entry)))

    stamps = {
        "Acknowledged": (view.acknowledged_at, "Acknowledged", view.acknowledged_by),
        "Mitigated (service restored)": (view.mitigated_at, "Mitigated", view.mitigated_by),
        "Resolved (root cause fixed)": (view.resolved_at, "Resolved", view.resolved_by),
    }
    for milestone, (at, verb, by) in stamps.items():
        if at is not None and milestone not in seen:
            moments.append(Moment(at, f"{verb} by {by}" if by else verb, milestone))

    if not any(entry.kind == "status_update" for entry in view.timeline):
        moments.extend(_update_moments(view))
    # sorted() is stable, so entries written in the same instant keep their recorded order.
    return sorted(moments, key=lambda moment: _utc(moment.at))


def render_postmortem(
    view: IncidentView,
    *,
    author: str | None = None,
    now: datetime,
    renderer: CommsRenderer | None = None,
) -> str:
    """The postmortem draft in Markdown, generated at `now`.

    `author` defaults to `default_author(view)`. The duration runs from the first alert to
    resolution ("ongoing" before that); time degraded runs from the first alert to mitigation
    (else resolution). All times are UTC.
    """
    started = view.first_alert_at
    roles = [(role.display, view.roles.get(role.value, "")) for role in Role]
    # Roles the seed does not name (a team's own "Customer Liaison") still belong in the record.
    roles += [
        (role_name(key), person) for key, person in sorted(view.roles.items()) if key not in _ROLES
    ]
    context = {
        "view": view,
        "author": default_author(view) if author is None else author,
        "now": now,
        "started": started,
        "ended": view.resolved_at,
        "degraded_until": view.mitigated_at or view.resolved_at,
        "timeline": timeline(view),
        "roles": roles,
    }
    return (renderer or default_renderer()).render(POSTMORTEM, context)


def _entry_text(entry: TimelineEntry) -> str:
    text = entry.text or entry.kind
    # Most texts name their actor ("Acknowledged by alice"); say who when one does not.
    if entry.actor and entry.actor != "sevrouter" and entry.actor not in text:
        text = f"{text} (by {entry.actor})"
    return text


def _alert_title(alert: AlertView) -> str:
    # The same shape as the timeline's own alert names (router.events), so lines read alike.
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    return f"{alert.name} {{{labels}}}" if labels else alert.name


def _update_moments(view: IncidentView) -> Iterable[Moment]:
    for update in view.updates:
        text = f"Status update ({update.status.value})"
        if update.author:
            text += f" posted by {update.author}"
        if update.next_update is not None:
            text += f"; next update {format_utc(update.next_update)}"
        yield Moment(update.at, text)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
