"""What the communication and postmortem templates see of an incident: roles, status updates,
action items, findings, and `IncidentView`, built from the stored incident."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from router.incidents import Incident, IncidentState, TimelineEntry, from_ms
from router.severity import Severity


class Role(StrEnum):
    """The seed's incident roles; the values are the keys of `IncidentView.roles`."""

    COMMANDER = "commander"
    TECH_LEAD = "tech_lead"
    COMMUNICATIONS = "communications"
    SCRIBE = "scribe"

    @property
    def display(self) -> str:
        return _ROLE_NAMES[self]


_ROLE_NAMES = {
    Role.COMMANDER: "Incident Commander",
    Role.TECH_LEAD: "Tech Lead",
    Role.COMMUNICATIONS: "Communications",
    Role.SCRIBE: "Scribe",
}


def role_name(key: str) -> str:
    """ "Incident Commander" for "commander"; a role we do not know is shown as given."""
    try:
        return Role(key).display
    except ValueError:
        return key


class UpdateStatus(StrEnum):
    """The seed's "Current Status" of a status update."""

    INVESTIGATING = "investigating"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"

    @property
    def display(self) -> str:
        return self.value.capitalize()


@dataclass(frozen=True, slots=True)
class AlertView:
    """One member alert as the templates see it (the stored alert record, parsed)."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    status: str = "firing"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or self.fingerprint or "alert"

    @property
    def summary(self) -> str:
        """The one-line description people wrote for the alert, if any."""
        for key in ("summary", "description", "message"):
            if self.annotations.get(key):
                return self.annotations[key]
        return ""

    @property
    def service(self) -> str:
        """What is broken, in the words of the labels: `service` (else `job`) and `namespace`."""
        name = self.labels.get("service") or self.labels.get("job") or ""
        namespace = self.labels.get("namespace") or ""
        if name and namespace:
            return f"{name} ({namespace})"
        return name or (f"namespace {namespace}" if namespace else "")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AlertView:
        """From the JSON record `router.alert.record_json` stores with the incident."""
        return cls(
            labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
            annotations={str(k): str(v) for k, v in (record.get("annotations") or {}).items()},
            status=str(record.get("status") or "firing"),
            starts_at=_parse_time(record.get("starts_at")),
            ends_at=_parse_time(record.get("ends_at")),
            fingerprint=str(record.get("fingerprint") or ""),
        )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status update that was posted: when, by whom, and what it said."""

    at: datetime
    status: UpdateStatus
    author: str = ""
    facts: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    next_update: datetime | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusUpdate:
        """Keys: at, status (ISO time, investigating/mitigating/resolved); optional author,
        facts, actions (lists of text), next_update (ISO time)."""
        at = _parse_time(data["at"])
        if at is None:
            raise ValueError("a status update needs its time")
        return cls(
            at=at,
            status=UpdateStatus(data["status"]),
            author=str(data.get("author") or ""),
            facts=tuple(str(fact) for fact in data.get("facts") or ()),
            actions=tuple(str(action) for action in data.get("actions") or ()),
            next_update=_parse_time(data.get("next_update")),
        )


@dataclass(frozen=True, slots=True)
class ActionItem:
    """A postmortem follow-up: `- [ ] text - Owner: owner - Due: due`."""

    text: str
    owner: str = ""
    due: date | None = None
    done: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionItem:
        """Keys: text; optional owner, due (ISO date), done (bool)."""
        due = data.get("due")
        return cls(
            text=str(data["text"]),
            owner=str(data.get("owner") or ""),
            due=date.fromisoformat(str(due)[:10]) if due else None,
            done=bool(data.get("done", False)),
        )


@dataclass(frozen=True, slots=True)
class Findings:
    """What people wrote for the postmortem; anything empty renders as `_(to be written)_`."""

    root_cause: str = ""
    contributing_factors: tuple[str, ...] = ()
    went_well: tuple[str, ...] = ()
    could_improve: tuple[str, ...] = ()
    business_impact: str = ""


@dataclass(frozen=True, slots=True)
class IncidentView:
    """Everything the communication and postmortem templates read about one incident.

    Times are timezone-aware (a naive time is taken as UTC when rendered). `roles` maps a role
    key (`Role` values; other keys are shown as given) to a person. `timeline` is in stored
    order; the postmortem sorts it by time.
    """

    id: str
    title: str
    severity: Severity
    state: IncidentState
    team: str
    opened_at: datetime
    summary: str = ""
    runbook: str = ""
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    mitigated_at: datetime | None = None
    mitigated_by: str = ""
    resolved_at: datetime | None = None
    resolved_by: str = ""
    closed_at: datetime | None = None
    alerts: tuple[AlertView, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    roles: Mapping[str, str] = field(default_factory=dict)
    updates: tuple[StatusUpdate, ...] = ()
    actions: tuple[ActionItem, ...] = ()
    findings: Findings = field(default_factory=Findings)

    @property
    def first_alert_at(self) -> datetime:
        """When it started: the earliest member alert's start, else when the incident opened."""
        first = self.first_alert
        return as_utc(first.starts_at if first and first.starts_at else self.opened_at)

    @property
    def first_alert(self) -> AlertView | None:
        """The member alert that started first (None without dated alerts)."""
        dated = [(as_utc(alert.starts_at), alert) for alert in self.alerts if alert.starts_at]
        return min(dated, key=lambda pair: pair[0])[1] if dated else None

    @property
    def services(self) -> tuple[str, ...]:
        """The affected services of the member alerts, each once, in alert order."""
        return tuple(dict.fromkeys(a.service for a in self.alerts if a.service))

    @property
    def alerts_firing(self) -> int:
        return sum(1 for alert in self.alerts if alert.status == "firing")

    @classmethod
    def from_incident(
        cls,
        incident: Incident,
        fields: Mapping[str, str] | None = None,
        *,
        roles: Mapping[str, str] | None = None,
        updates: Iterable[StatusUpdate] = (),
        actions: Iterable[ActionItem] = (),
        findings: Findings | None = None,
    ) -> IncidentView:
        """Build the view from a stored incident (read with `full=True` to get alerts and
        timeline) and its raw hash `fields`, which carry what `Incident` does not: the
        `acknowledged_*`, `mitigated_by`, `resolved_*` and `closed_at` stamps (ms since epoch)."""
        raw = fields or {}

        def stamp(name: str) -> datetime | None:
            value = raw.get(f"{name}_at")
            return from_ms(value) if value else None

        return cls(
            id=incident.id,
            title=incident.title,
            severity=incident.severity,
            state=incident.state,
            team=incident.team,
            opened_at=incident.opened_at,
            summary=incident.summary,
            runbook=incident.runbook,
            acknowledged_at=stamp("acknowledged"),
            acknowledged_by=raw.get("acknowledged_by", ""),
            mitigated_at=incident.mitigated_at or stamp("mitigated"),
            mitigated_by=raw.get("mitigated_by", ""),
            resolved_at=stamp("resolved"),
            resolved_by=raw.get("resolved_by", ""),
            closed_at=stamp("closed"),
            alerts=tuple(AlertView.from_record(record) for record in incident.alerts),
            timeline=tuple(timeline_entry(entry) for entry in incident.timeline),
            roles=dict(roles or {}),
            updates=tuple(updates),
            actions=tuple(actions),
            findings=findings or Findings(),
        )


def timeline_entry(data: Mapping[str, Any]) -> TimelineEntry:
    """Parse a stored timeline entry (`TimelineEntry.to_json`'s JSON, decoded)."""
    at = _parse_time(data["at"])
    if at is None:
        raise ValueError("a timeline entry needs its time")
    return TimelineEntry(
        at=at,
        kind=str(data["kind"]),
        text=str(data.get("text") or ""),
        actor=str(data.get("actor") or "sevrouter"),
        data=dict(data.get("data") or {}),
    )


# --- rendering -------------------------------------------------------------------------------


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_time(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value)))
