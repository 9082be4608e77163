"""Carrying out what changed an incident: the timeline, escalation, and who is told.

The ingest script (alerts) and the transition script (people) already decided *what* happened
and changed the incident's state atomically; each appended an entry to the events stream. A job
calls `apply_events` for one entry. Every effect is idempotent: timeline entries are keyed by
event id (`append_once`), pages by their idempotency key, escalation moves by token, so a job
that runs twice (a worker died, the pump re-delivered) changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from router import escalation, escalations, paging, workflow
from router.alert import from_record
from router.comms import role_name
from router.context import WorkerContext
from router.escalations import ANY_TOKEN
from router.incidents import Incident, IncidentState, TimelineEntry
from router.keys import text
from router.paging import PageRequest
from router.ruleset import Decision
from router.severity import Severity

log = structlog.get_logger(__name__)

# Events after which whoever was paged hears how the incident ended (or who took it).
_FOLLOW_UPS = {
    "acknowledged": ("incident.acknowledged", "ack"),
    "all_resolved": ("incident.mitigated", "mitigated"),
    "mitigated_by_hand": ("incident.mitigated", "mitigated"),
    "resolved_by_hand": ("incident.resolved", "resolved"),
}


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
        ctx.store.append_once(incident_id, member, _timeline_entry(ctx, incident, event, at))
        _act(ctx, incident, event, member)
    log.info(
        "events_applied", incident=incident_id, entry=entry_id, events=[e["k"] for e in events]
    )


def _act(ctx: WorkerContext, incident: Incident, event: Mapping[str, Any], member: str) -> None:
    kind = event["k"]
    snapshot = escalations.snapshot(ctx, incident.id, incident.team)
    if snapshot is None:
        log.warning("team_missing", incident=incident.id, team=incident.team)
        return
    ruleset, now = ctx.ruleset, ctx.clock()
    hours = ruleset.config.business_hours
    policy = ruleset.policy(incident.severity)
    plan = None
    team_body = ""
    if kind == "opened":
        workflow.on_event(ctx, incident, event)  # first: it sets the next-update time
        team_body = workflow.started_text(ctx, incident)
        plan = escalation.start(policy, snapshot, hours, now)
    elif kind in ("reopened", "reopened_by_hand"):
        suffix = f"-reopen-{event['n']}"
        plan = escalation.start(
            policy, snapshot, hours, now, event="incident.reopened", kind_suffix=suffix
        )
    elif kind in ("severity_raised", "severity_changed"):
        new = Severity(event["sev"])
        raised = new.is_higher_than(Severity(event["from"]))
        if raised and incident.state is IncidentState.TRIGGERED:
            fields = _fields(ctx, incident.id)
            plan = escalation.raise_severity(
                ruleset.policy(Severity(event["from"])),
                ruleset.policy(new),
                snapshot,
                hours,
                escalations.position(fields),
                new,
                now,
            )
    elif kind in _FOLLOW_UPS:
        paging.cancel_pending(ctx, incident.id)
        notify_event, prefix = _FOLLOW_UPS[kind]
        for paged in paging.paged(ctx, incident.id):
            follow_up = PageRequest(
                incident.id,
                paged.step,
                paged.target,
                paged.channel,
                f"{prefix}-{event.get('n', 0)}",
                notify_event,
                paged.recipient,
            )
            paging.request_page(ctx, follow_up)
    if plan is not None:
        escalations.carry_out(
            ctx, incident.id, plan, expected=ANY_TOKEN, member=f"{member}:esc", team_body=team_body
        )
    if kind != "opened":
        workflow.on_event(ctx, incident, event)


def _fields(ctx: WorkerContext, incident_id: str) -> dict[str, str]:
    raw = ctx.redis.hgetall(ctx.keys.incident(incident_id))
    return {text(k): text(v) for k, v in raw.items()}


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
    actor = event.get("actor", "sevrouter")
    texts = {
        "opened": f"Incident opened: {incident.title} "
        f"({event.get('sev')}, team {incident.team}, rule {incident.rule})",
        "added": f"Alert {alert} joined the incident",
        "reopened": f"Alert {alert} fired again within the flap window: incident reopened",
        "resolved": f"Alert {alert} resolved",
        "all_resolved": "Every alert resolved: incident mitigated",
        "severity_raised": f"Severity raised from {event.get('from')} to {event.get('sev')} "
        f"by alert {alert}",
        "acknowledged": f"Acknowledged by {actor}",
        "mitigated_by_hand": f"Marked mitigated by {actor}",
        "resolved_by_hand": f"Resolved by {actor}",
        "reopened_by_hand": f"Reopened by {actor}",
        "closed": f"Closed by {actor}",
        "role_assigned": _role_text(event),
        "status_update": f"Status update #{event.get('n')} posted by {actor}",
        "severity_changed": f"Severity changed from {event.get('from')} to {event.get('sev')} "
        f"by {actor}" + (f": {event['reason']}" if event.get("reason") else ""),
        "flapping": f"Alert {alert or 'of this incident'} is flapping ({event.get('n')} re-fires "
        "within the flap window): the incident stays open and re-fires page no one",
        "flap_quiet": f"Flapping alert {alert} resolved; the incident is mitigated if it stays "
        "quiet for the flap window",
        "action_added": f"Action item #{event.get('n')} added by {actor}",
        "action_done": f"Action item #{event.get('n')} done, marked by {actor}",
    }
    data = {"fingerprint": fingerprint} if fingerprint else {}
    return TimelineEntry(at, kind, texts.get(kind, kind), actor=actor, data=data)


def _role_text(event: Mapping[str, Any]) -> str:
    if event.get("k") != "role_assigned":
        return ""
    role = role_name(event["role"])
    if event.get("previous"):
        return (
            f"{role} handed over from {event['previous']} to {event['person']} by {event['actor']}"
        )
    return f"{event['person']} is {role} (assigned by {event['actor']})"


def _alert_name(ctx: WorkerContext, incident_id: str, fingerprint: str) -> str:
    record = ctx.store.alert_record(incident_id, fingerprint)
    if record is None:
        return fingerprint
    labels = record["labels"]
    name = labels.get("alertname", fingerprint)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return f"{name} {{{detail}}}" if detail else str(name)


def decode_events(raw: str | bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(raw)
    return events
