"""The response workflow around an incident: roles, status updates on a cadence, reminders,
automatic resolution of quiet SEV3/SEV4 incidents, and postmortems of SEV1/SEV2.

`on_event` runs in the worker for each incident event (after `router/events.py` wrote the
timeline); the `*_due` functions are scheduled jobs. Each scheduled job carries the value it
was scheduled for (the update deadline, the mitigation time) and exits quietly when the incident
has moved on, exactly like escalation deadlines.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from router import comms, escalation
from router.comms import IncidentView, Role, StatusUpdate
from router.context import WorkerContext
from router.escalation import TargetRef
from router.incidents import Incident, IncidentState, TimelineEntry
from router.keys import text
from router.lifecycle import Action, Lifecycle
from router.paging import PageRequest, request_page
from router.severity import Severity
from router.targets import resolve
from router.workflow_store import WorkflowStore

log = structlog.get_logger(__name__)

COMMANDER_JOB = "commander_due"
UPDATE_JOB = "update_due"
UPDATE_ESCALATE_JOB = "update_overdue"
POSTMORTEM_JOB = "postmortem_due"
AUTO_RESOLVE_JOB = "auto_resolve_due"
FLAP_SETTLE_JOB = "flap_settle_due"

_OPEN = (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED)
_PAGING_SEVERITIES = (Severity.SEV1, Severity.SEV2)


def _fields(ctx: WorkerContext, incident_id: str) -> dict[str, str]:
    raw = ctx.redis.hgetall(ctx.keys.incident(incident_id))
    return {text(k): text(v) for k, v in raw.items()}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def view(ctx: WorkerContext, incident: Incident, fields: Mapping[str, str]) -> IncidentView:
    store = WorkflowStore(ctx.redis, ctx.keys)
    full = ctx.store.get(incident.id) or incident
    roles = {role.value: person for role, person in store.roles(incident.id).items()}
    return IncidentView.from_incident(
        full,
        fields,
        roles=roles,
        updates=tuple(store.updates(incident.id)),
        actions=tuple(store.actions(incident.id)),
    )


def _notify_team(
    ctx: WorkerContext, incident: Incident, kind: str, event: str, body: str = ""
) -> None:
    team = ctx.ruleset.team(incident.team)
    if team is None or team.channel is None:
        return
    request_page(
        ctx,
        PageRequest(
            incident.id, 0, f"channel:{team.channel}", team.channel, kind, event, body=body
        ),
    )


def _notify_people(
    ctx: WorkerContext,
    incident: Incident,
    refs: tuple[TargetRef, ...],
    kind: str,
    event: str,
    body: str = "",
) -> bool:
    """Page these targets; False when they reach nobody."""
    resolution = resolve(ctx.ruleset, refs, ctx.clock())
    for r in resolution.recipients:
        request_page(
            ctx, PageRequest(incident.id, 0, r.target, r.channel, kind, event, r.address, body)
        )
    return bool(resolution.recipients)


def on_event(ctx: WorkerContext, incident: Incident, event: Mapping[str, Any]) -> None:
    kind = event["k"]
    if kind == "opened":
        _opened(ctx, incident)
    elif kind == "status_update":
        _status_update(ctx, incident, int(event["n"]))
    elif (
        kind in ("severity_raised", "severity_changed")
        and ctx.ruleset.policy(Severity(event["sev"])).requires_commander
    ):
        _schedule_commander_check(ctx, incident.id)
    elif kind == "all_resolved" and incident.severity not in _PAGING_SEVERITIES:
        fields = _fields(ctx, incident.id)
        quiet = ctx.ruleset.config.incidents.quiet_period
        due = ctx.clock() + timedelta(seconds=quiet)
        mitigated = fields.get("mitigated_at", "")
        ctx.schedule(
            due, AUTO_RESOLVE_JOB, (incident.id, mitigated), f"quiet-{incident.id}-{mitigated}"
        )
    elif kind == "flap_quiet":
        window = ctx.ruleset.config.incidents.flap_window
        due = ctx.clock() + timedelta(seconds=window)
        fingerprint = event["fp"]
        ctx.schedule(
            due,
            FLAP_SETTLE_JOB,
            (incident.id, fingerprint, _ms(ctx.clock())),
            f"settle-{incident.id}-{fingerprint}-{_ms(due)}",
        )
    elif kind == "resolved_by_hand" and incident.severity in _PAGING_SEVERITIES:
        _postmortem_opened(ctx, incident)
    _record_durations(ctx, incident, kind)


def _opened(ctx: WorkerContext, incident: Incident) -> None:
    ctx.redis.hincrby(ctx.keys.stats, f"opened:{incident.severity.value}", 1)
    policy = ctx.ruleset.policy(incident.severity)
    now = ctx.clock()
    if policy.update_every:
        due = now + timedelta(seconds=policy.update_every)
        ctx.redis.hsetnx(ctx.keys.incident(incident.id), "next_update_at", _ms(due))
        ctx.schedule(due, UPDATE_JOB, (incident.id, _ms(due)), f"update-{incident.id}-{_ms(due)}")
    if policy.requires_commander:
        _schedule_commander_check(ctx, incident.id)


def started_text(ctx: WorkerContext, incident: Incident) -> str:
    """The seed's "Incident Started" message, for the team channel's first notification."""
    fields = _fields(ctx, incident.id)
    next_update = fields.get("next_update_at")
    policy = ctx.ruleset.policy(incident.severity)
    now = ctx.clock()
    when = (
        datetime.fromtimestamp(int(next_update) / 1000, now.tzinfo)
        if next_update
        else now + timedelta(seconds=policy.update_every or 3600)
    )
    return comms.incident_started(
        view(ctx, incident, fields), now=now, next_update=when, renderer=ctx.comms
    )


def _status_update(ctx: WorkerContext, incident: Incident, number: int) -> None:
    store = WorkflowStore(ctx.redis, ctx.keys)
    updates = store.updates(incident.id)
    if not 1 <= number <= len(updates):
        return
    update: StatusUpdate = updates[number - 1]
    fields = _fields(ctx, incident.id)
    body = comms.status_update(
        view(ctx, incident, fields),
        now=update.at,
        status=update.status,
        facts=update.facts,
        actions=update.actions,
        next_update=update.next_update,
        renderer=ctx.comms,
    )
    _notify_team(ctx, incident, f"update-{number}", "incident.notify", body)
    if update.next_update is not None:
        due = _ms(update.next_update)
        ctx.schedule(
            update.next_update, UPDATE_JOB, (incident.id, due), f"update-{incident.id}-{due}"
        )


def update_due(ctx: WorkerContext, incident_id: str, due_ms: int) -> bool:
    """The next-update time passed: remind Communications (else the Commander)."""
    incident, fields = ctx.store.get(incident_id, full=False), _fields(ctx, incident_id)
    if incident is None or fields.get("next_update_at") != str(due_ms):
        return False
    if incident.state not in (*_OPEN, IncidentState.MITIGATED):
        return False
    roles = WorkflowStore(ctx.redis, ctx.keys).roles(incident_id)
    person = roles.get(Role.COMMUNICATIONS) or roles.get(Role.COMMANDER)
    kind = f"update-reminder-{due_ms}"
    was_due = datetime.fromtimestamp(due_ms / 1000, UTC)
    note = f"Status update overdue (was due {was_due:%H:%M} UTC)"
    reached = person is not None and _notify_people(
        ctx, incident, (TargetRef("person", person),), kind, "incident.reminder", note
    )
    if not reached:
        _notify_team(ctx, incident, kind, "incident.reminder", note)
    who = person if reached else "the team channel"
    ctx.store.append_once(
        incident_id, kind, TimelineEntry(ctx.clock(), "reminder", f"{note}: reminded {who}")
    )
    if reached:
        cadence = ctx.ruleset.policy(incident.severity).update_every or 1800
        later = ctx.clock() + timedelta(seconds=cadence / 2)
        ctx.schedule(
            later, UPDATE_ESCALATE_JOB, (incident_id, due_ms), f"overdue-{incident_id}-{due_ms}"
        )
    return True


def update_overdue(ctx: WorkerContext, incident_id: str, due_ms: int) -> bool:
    """Still no update half a cadence after the reminder: tell the team channel."""
    incident, fields = ctx.store.get(incident_id, full=False), _fields(ctx, incident_id)
    if incident is None or fields.get("next_update_at") != str(due_ms):
        return False
    if incident.state not in (*_OPEN, IncidentState.MITIGATED):
        return False
    note = "Status update still overdue: the Communications lead has been reminded"
    _notify_team(ctx, incident, f"update-overdue-{due_ms}", "incident.reminder", note)
    ctx.store.append_once(
        incident_id, f"overdue-{due_ms}", TimelineEntry(ctx.clock(), "reminder", note)
    )
    return True


def _schedule_commander_check(ctx: WorkerContext, incident_id: str) -> None:
    # Reminders are numbered for the life of the incident, so a SEV1 lowered and raised again
    # gets fresh reminders (new job ids and page keys) instead of colliding with old ones.
    sent = int(ctx.redis.hget(ctx.keys.incident(incident_id), "commander_reminders") or 0)
    number = sent + 1
    run_at = ctx.clock() + timedelta(seconds=ctx.ruleset.config.incidents.commander_reminder)
    # The time is in the id too: a check that found the severity lowered left its job behind.
    job_id = f"commander-{incident_id}-{number}-{_ms(run_at)}"
    ctx.schedule(run_at, COMMANDER_JOB, (incident_id, number), job_id)


def commander_due(ctx: WorkerContext, incident_id: str, number: int) -> bool:
    """A severity that requires an Incident Commander still has none: page the on-call again."""
    incident = ctx.store.get(incident_id, full=False)
    if incident is None or incident.state not in _OPEN:
        return False
    if not ctx.ruleset.policy(incident.severity).requires_commander:
        return False
    key = ctx.keys.incident(incident_id)
    if int(ctx.redis.hget(key, "commander_reminders") or 0) >= number:
        return False  # this reminder went out already (a job run twice)
    if Role.COMMANDER in WorkflowStore(ctx.redis, ctx.keys).roles(incident_id):
        return False
    ctx.redis.hset(key, "commander_reminders", number)
    team = ctx.ruleset.team(incident.team)
    snapshot = escalation.PolicySnapshot.of(team) if team is not None else None
    sev = incident.severity.value
    note = (
        f"{sev} without an Incident Commander: assign one (sevrouter incidents role ... commander)"
    )
    kind = f"commander-{number}"
    if snapshot and snapshot.steps:
        _notify_people(ctx, incident, snapshot.steps[0].targets, kind, "incident.reminder", note)
    _notify_team(ctx, incident, kind, "incident.reminder", note)
    ctx.store.append_once(incident_id, kind, TimelineEntry(ctx.clock(), "reminder", note))
    _schedule_commander_check(ctx, incident_id)
    return True


def auto_resolve_due(ctx: WorkerContext, incident_id: str, mitigated_at: str) -> bool:
    """A quiet SEV3/SEV4 resolves itself: still mitigated since the same moment."""
    fields = _fields(ctx, incident_id)
    if fields.get("state") != IncidentState.MITIGATED or fields.get("mitigated_at") != mitigated_at:
        return False
    if Severity(fields["severity"]) in _PAGING_SEVERITIES:
        return False  # raised to SEV1/SEV2 by hand meanwhile: those wait for a human
    result = Lifecycle(ctx.redis, ctx.keys).apply(
        incident_id, Action.RESOLVE, "sevrouter (quiet period)", now_ms=_ms(ctx.clock())
    )
    return result.state == IncidentState.RESOLVED


def _postmortem_opened(ctx: WorkerContext, incident: Incident) -> None:
    due = ctx.clock() + timedelta(seconds=ctx.ruleset.config.incidents.postmortem_due)
    key = ctx.keys.incident(incident.id)
    if not ctx.redis.hsetnx(key, "postmortem_due_at", _ms(due)):
        return
    ctx.redis.hset(key, "postmortem_status", "open")
    ctx.store.append(
        incident.id,
        TimelineEntry(ctx.clock(), "postmortem", f"Postmortem due {due:%Y-%m-%d %H:%M} UTC"),
    )
    ctx.schedule(due, POSTMORTEM_JOB, (incident.id, 0), f"postmortem-{incident.id}-0")


def postmortem_due(ctx: WorkerContext, incident_id: str, count: int) -> bool:
    """The postmortem is due and the incident is not closed: remind the Commander, daily."""
    fields = _fields(ctx, incident_id)
    incident = ctx.store.get(incident_id, full=False)
    if (
        incident is None
        or fields.get("postmortem_status") != "open"
        or incident.state is IncidentState.CLOSED
    ):
        return False
    commander = WorkflowStore(ctx.redis, ctx.keys).roles(incident_id).get(Role.COMMANDER)
    note = (
        f"Postmortem of {incident_id} is due: write it (sevrouter postmortem {incident_id}) "
        "and close the incident"
    )
    reached = commander is not None and _notify_people(
        ctx,
        incident,
        (TargetRef("person", commander),),
        f"postmortem-{count}",
        "incident.reminder",
        note,
    )
    if not reached:
        _notify_team(ctx, incident, f"postmortem-{count}", "incident.reminder", note)
    ctx.store.append_once(
        incident_id, f"postmortem-{count}", TimelineEntry(ctx.clock(), "reminder", note)
    )
    later = ctx.clock() + timedelta(days=1)
    ctx.schedule(
        later, POSTMORTEM_JOB, (incident_id, count + 1), f"postmortem-{incident_id}-{count + 1}"
    )
    return True


_DURATIONS = {
    "acknowledged": ("ack", "acknowledged_at"),
    "all_resolved": ("mitigate", "mitigated_at"),
    "mitigated_by_hand": ("mitigate", "mitigated_at"),
    "resolved_by_hand": ("resolve", "resolved_at"),
}


def _record_durations(ctx: WorkerContext, incident: Incident, kind: str) -> None:
    """Time to acknowledge/mitigate/resolve by severity, summed in Redis for /metrics."""
    if kind not in _DURATIONS:
        return
    name, field = _DURATIONS[kind]
    fields = _fields(ctx, incident.id)
    if not fields.get(field) or not ctx.redis.hsetnx(
        ctx.keys.incident(incident.id), f"measured_{name}", 1
    ):
        return
    seconds = (int(fields[field]) - int(fields["opened_at"])) / 1000
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hincrbyfloat(ctx.keys.stats, f"time_to_{name}:{incident.severity.value}:sum", seconds)
    pipe.hincrby(ctx.keys.stats, f"time_to_{name}:{incident.severity.value}:count", 1)
    pipe.execute()


def flap_settle_due(
    ctx: WorkerContext, incident_id: str, fingerprint: str, resolved_ms: int
) -> bool:
    """A flapping alert stayed resolved for a flap window: settle it, and mitigate the incident
    when nothing of it fires any more."""
    fields = _fields(ctx, incident_id)
    if not fields:
        return False
    akey = ctx.keys.alert(fields["group_hash"], fingerprint)
    raw_status = ctx.redis.hget(akey, "s")
    if raw_status is None or text(raw_status) != "resolved":
        return False  # it fired again: still flapping
    ctx.redis.hset(akey, mapping={"fl": "0", "fc": 0})
    if ctx.redis.scard(ctx.keys.incident_firing(incident_id)) > 0:
        return False
    ctx.redis.hset(ctx.keys.incident(incident_id), "flapping", "0")
    if fields.get("state") not in (IncidentState.TRIGGERED, IncidentState.ACKNOWLEDGED):
        return False
    Lifecycle(ctx.redis, ctx.keys).apply(
        incident_id, Action.MITIGATE, "sevrouter (flapping settled)", now_ms=_ms(ctx.clock())
    )
    return True
