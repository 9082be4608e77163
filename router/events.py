"""Carrying out what a webhook changed: the timeline, the incident's texts, and who is told.

The ingest script already decided *what* happened (opened, added, severity raised, reopened,
resolved, all resolved) and changed the incident's state atomically. A job then calls
`apply_events` for one stream entry. Every effect is idempotent: timeline entries are keyed by
event id (`append_once`) and pages by their idempotency key, so a job that runs twice (a worker
died, the pump re-delivered) changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from router import escalation
from router.alert import from_record
from router.context import WorkerContext
from router.escalation import PageRequest
from router.incidents import Incident, TimelineEntry
from router.paging import request_page
from router.ruleset import Decision
from router.severity import Severity

log = structlog.get_logger(__name__)


def apply_events(
    ctx: WorkerContext,
    incident_id: str,
    entry_id: str,
    at: datetime,
    events: Sequence[Mapping[str, Any]],
) -> None:
    incident = ctx.store.get(incident_id, full=False)
    if incident is None:
        log.warning("incident_missing", incident=incident_id, entry=entry_id)
        return
    for index, event in enumerate(events):
        member = f"{entry_id}#{index}"
        kind = event["k"]
        if kind == "opened":
            incident = _describe(ctx, incident, event["fp"])
        entry = _timeline_entry(ctx, incident, event, at)
        ctx.store.append_once(incident_id, member, entry)
        for request in _pages(ctx, incident, event):
            request_page(ctx, request)
    log.info(
        "events_applied", incident=incident_id, entry=entry_id, events=[e["k"] for e in events]
    )


def _describe(ctx: WorkerContext, incident: Incident, fingerprint: str) -> Incident:
    """Render the incident's title, summary and runbook from its first alert (once)."""
    record = ctx.store.alert_record(incident.id, fingerprint)
    if record is None:
        return incident
    alert = from_record(record)
    decision = Decision(incident.rule, incident.severity, incident.team, incident.group_key)
    ctx.store.set_fields_once(
        incident.id,
        {
            "title": ctx.ruleset.render_title(decision, alert),
            "summary": ctx.ruleset.render_summary(decision, alert),
            "runbook": ctx.ruleset.render_runbook(decision, alert),
        },
    )
    return ctx.store.get(incident.id, full=False) or incident


def _timeline_entry(
    ctx: WorkerContext, incident: Incident, event: Mapping[str, Any], at: datetime
) -> TimelineEntry:
    kind = event["k"]
    fingerprint = event.get("fp", "")
    alert = _alert_name(ctx, incident.id, fingerprint) if fingerprint else ""
    texts = {
        "opened": f"Incident opened: {incident.title} "
        f"({event.get('sev')}, team {incident.team}, rule {incident.rule})",
        "added": f"Alert {alert} joined the incident",
        "reopened": f"Alert {alert} fired again within the flap window: incident reopened",
        "resolved": f"Alert {alert} resolved",
        "all_resolved": "Every alert resolved: incident mitigated",
        "severity_raised": f"Severity raised from {event.get('from')} to {event.get('sev')} "
        f"by alert {alert}",
    }
    data = {"fingerprint": fingerprint} if fingerprint else {}
    return TimelineEntry(at, kind, texts.get(kind, kind), data=data)


def _alert_name(ctx: WorkerContext, incident_id: str, fingerprint: str) -> str:
    record = ctx.store.alert_record(incident_id, fingerprint)
    if record is None:
        return fingerprint
    labels = record["labels"]
    name = labels.get("alertname", fingerprint)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return f"{name} {{{detail}}}" if detail else str(name)


def _pages(ctx: WorkerContext, incident: Incident, event: Mapping[str, Any]) -> list[PageRequest]:
    kind = event["k"]
    ruleset = ctx.ruleset
    team = ruleset.team(incident.team)
    if team is None:
        log.warning("team_missing", incident=incident.id, team=incident.team)
        return []
    policy = ruleset.policy(incident.severity)
    if kind == "opened":
        return escalation.on_opened(incident.id, team, policy)
    if kind == "severity_raised":
        old = ruleset.policy(Severity(event["from"]))
        new_severity = Severity(event["sev"])
        return escalation.on_severity_raised(
            incident.id, team, old, ruleset.policy(new_severity), new_severity
        )
    if kind == "reopened":
        return escalation.on_reopened(incident.id, team, policy, event["n"])
    if kind == "all_resolved":
        return escalation.on_mitigated(incident.id, team, policy, event["n"])
    return []


def decode_events(raw: str | bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(raw)
    return events
