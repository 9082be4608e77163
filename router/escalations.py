"""Carrying out escalation plans: pages, the next deadline as a scheduled job, the timeline.

`router/escalation.py` decides; this module acts. The incident's position in its policy and a
token live on the incident hash. Every scheduled deadline carries the token it was scheduled
with; acknowledging, resolving, mitigating or re-planning replaces or clears the token, so a
stale deadline finds a different token and exits quietly (and the compare-and-set is atomic,
so two workers can never both advance the same step).
"""

from __future__ import annotations

import secrets

from router import escalation
from router.context import WorkerContext
from router.escalation import Plan, PolicySnapshot, Position
from router.incidents import IncidentState, TimelineEntry
from router.keys import text
from router.paging import PageRequest, request_page
from router.severity import Severity
from router.targets import resolve

ESCALATE_JOB = "escalate"
ANY_TOKEN = "*"  # noqa: S105 - a wildcard, not a credential

# Moves the incident's escalation position if it is still triggered and holds the expected token.
# KEYS[1] incident; ARGV[1] expected token or '*', ARGV[2] new token, then field/value pairs.
_ADVANCE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'triggered' then return 0 end
if ARGV[1] ~= '*' and redis.call('HGET', KEYS[1], 'esc_token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'esc_token', ARGV[2], unpack(ARGV, 3))
return 1
"""


def snapshot(ctx: WorkerContext, incident_id: str, team: str) -> PolicySnapshot | None:
    """The incident's policy snapshot, taken from the team now if it has none yet."""
    key = ctx.keys.incident(incident_id)
    stored = ctx.redis.hget(key, "policy")
    if stored is None:
        config = ctx.ruleset.team(team)
        if config is None:
            return None
        ctx.redis.hsetnx(key, "policy", PolicySnapshot.of(config).to_json())
        stored = ctx.redis.hget(key, "policy")
    return PolicySnapshot.from_json(text(stored)) if stored is not None else None


def position(fields: dict[str, str]) -> Position:
    return Position(
        step=int(fields.get("esc_step") or 0),
        round=int(fields.get("esc_round") or 0),
        deferred=fields.get("esc_deferred") == "1",
        exhausted=fields.get("esc_exhausted") == "1",
    )


def carry_out(
    ctx: WorkerContext,
    incident_id: str,
    plan: Plan,
    *,
    expected: str,
    member: str,
    team_body: str = "",
) -> bool:
    """Move to the plan's position (if still triggered and `expected` holds), send its pages,
    schedule its next deadline. Returns False when the plan was stale."""
    token = secrets.token_hex(8) if plan.next_check is not None else ""
    p = plan.position
    fields = {
        "esc_step": p.step,
        "esc_round": p.round,
        "esc_deferred": int(p.deferred),
        "esc_exhausted": int(p.exhausted),
        "esc_next": int(plan.next_check.timestamp() * 1000) if plan.next_check else "",
    }
    args: list[str | int] = [expected, token]
    for name, value in fields.items():
        args += [name, value]
    advance = ctx.redis.register_script(_ADVANCE)
    if not advance(keys=[ctx.keys.incident(incident_id)], args=args):
        return False
    now = ctx.clock()
    problems: list[str] = []
    for notify in plan.notify:
        resolution = resolve(ctx.ruleset, notify.targets, now)
        problems += resolution.problems
        for recipient in resolution.recipients:
            request_page(
                ctx,
                PageRequest(
                    incident_id,
                    notify.step,
                    recipient.target,
                    recipient.channel,
                    notify.kind,
                    notify.event,
                    recipient.address,
                    team_body if notify.step == escalation.TEAM_CHANNEL_STEP else "",
                ),
            )
    note = plan.note + "".join(f"; {problem}" for problem in problems)
    ctx.store.append_once(incident_id, member, TimelineEntry(now, "escalation", note))
    if plan.next_check is not None:
        ctx.schedule(
            plan.next_check, ESCALATE_JOB, (incident_id, token), f"esc-{incident_id}-{token}"
        )
    return True


def check(ctx: WorkerContext, incident_id: str, token: str) -> bool:
    """A deadline passed: page the next step unless someone acknowledged (or it is stale)."""
    raw = ctx.redis.hgetall(ctx.keys.incident(incident_id))
    fields = {text(k): text(v) for k, v in raw.items()}
    if fields.get("state") != IncidentState.TRIGGERED or fields.get("esc_token") != token:
        return False
    policy_snapshot = snapshot(ctx, incident_id, fields["team"])
    if policy_snapshot is None:
        return False
    severity = ctx.ruleset.policy(Severity(fields["severity"]))
    plan = escalation.advance(
        severity, policy_snapshot, ctx.ruleset.config.business_hours, position(fields), ctx.clock()
    )
    done = carry_out(ctx, incident_id, plan, expected=token, member=f"esc:{token}")
    if done and any(n.event == "incident.escalated" for n in plan.notify):
        ctx.redis.hincrby(ctx.keys.stats, f"escalated:{fields['severity']}", 1)
    return done
