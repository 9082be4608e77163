"""Escalation as pure decisions: who is told what now, and when to look again.

The worker calls `start` when an incident opens (or reopens), `advance` when an escalation
deadline passes with nobody having acknowledged, and `raise_severity` when a higher-severity
alert joins. Each returns a `Plan`: the notifications to send now, the next deadline, and the
new position in the policy. Nothing here reads a clock or Redis: `now` and the incident's
policy snapshot are passed in, so every rule of the severity table is a table-driven test.

Severity table semantics (rules/severities.yaml):
- `page`: step 1 is paged at once. If nobody acknowledges within the first deadline
  (`escalate_after`, else the severity's `response_time` when not zero, else step 1's `wait`),
  the next step is paged, then each step waits its own `wait`. After the last step the policy
  repeats `repeat` times, then escalation is exhausted (and says so).
- `notify_then_page`: the team channel is notified at once; paging starts at step 1 when the
  response time passes unacknowledged.
- `notify_business_hours`: nobody is paged; the team channel is notified now if within business
  hours, else at the next opening.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from router.business_hours import next_business_time
from router.ruleschema import BusinessHours, SeverityPolicy, Team
from router.severity import Severity

TEAM_CHANNEL_STEP = 0


@dataclass(frozen=True, slots=True)
class TargetRef:
    kind: str  # "channel", "person" or "schedule"
    name: str


@dataclass(frozen=True, slots=True)
class StepSnapshot:
    targets: tuple[TargetRef, ...]
    wait: float


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """A team's escalation policy as it was when the incident opened: a rule reload never
    rewrites an escalation in flight."""

    team: str
    channel: str | None
    steps: tuple[StepSnapshot, ...]
    repeat: int

    @classmethod
    def of(cls, team: Team) -> PolicySnapshot:
        steps = tuple(
            StepSnapshot(tuple(TargetRef(t.kind, t.ref) for t in step.notify), step.wait)
            for step in team.escalation
        )
        return cls(team.name, team.channel, steps, team.repeat)

    def to_json(self) -> str:
        return json.dumps(
            {
                "team": self.team,
                "channel": self.channel,
                "repeat": self.repeat,
                "steps": [
                    {"wait": s.wait, "targets": [[t.kind, t.name] for t in s.targets]}
                    for s in self.steps
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> PolicySnapshot:
        data: dict[str, Any] = json.loads(raw)
        steps = tuple(
            StepSnapshot(tuple(TargetRef(kind, name) for kind, name in s["targets"]), s["wait"])
            for s in data["steps"]
        )
        return cls(data["team"], data["channel"], steps, data["repeat"])


@dataclass(frozen=True, slots=True)
class Position:
    """Where an incident stands in its policy: `step` steps of round `round` are paged;
    `deferred` is set while a business-hours notification waits for the opening."""

    step: int = 0
    round: int = 0
    deferred: bool = False
    exhausted: bool = False


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell these targets; `step` is 1-based, 0 for the team channel."""

    step: int
    targets: tuple[TargetRef, ...]
    kind: str  # part of the page idempotency key: trigger, escalate-1-r0, raised-SEV1 ...
    event: str


@dataclass(frozen=True, slots=True)
class Plan:
    notify: tuple[Notify, ...]
    next_check: datetime | None
    position: Position
    note: str  # one line for the timeline


def _team_channel(snapshot: PolicySnapshot, kind: str, event: str) -> tuple[Notify, ...]:
    if snapshot.channel is None:
        return ()
    return (Notify(TEAM_CHANNEL_STEP, (TargetRef("channel", snapshot.channel),), kind, event),)


def _first_wait(policy: SeverityPolicy, snapshot: PolicySnapshot) -> float:
    if policy.escalate_after is not None:
        return policy.escalate_after
    if policy.response_time:
        return policy.response_time
    return snapshot.steps[0].wait


def _page_step(
    policy: SeverityPolicy,
    snapshot: PolicySnapshot,
    position: Position,
    now: datetime,
    event: str,
    kind: str | None = None,
) -> Plan:
    """Page the step after `position` (wrapping into the next round), or say it is over."""
    step, round_ = position.step, position.round
    if step >= len(snapshot.steps):
        if round_ >= snapshot.repeat:
            exhausted = replace(position, exhausted=True)
            return Plan(
                (), None, exhausted, "escalation exhausted: every step paged, unacknowledged"
            )
        step, round_ = 0, round_ + 1
    index = step
    first = index == 0 and round_ == 0
    wait = _first_wait(policy, snapshot) if first else snapshot.steps[index].wait
    name = kind or ("trigger" if first else f"escalate-{index + 1}-r{round_}")
    notify = Notify(index + 1, snapshot.steps[index].targets, name, event)
    deadline = now + timedelta(seconds=wait)
    targets = ", ".join(f"{t.kind} {t.name}" for t in notify.targets)
    repeat = f" (repeat {round_})" if round_ else ""
    note = (
        f"paging step {index + 1}{repeat}: {targets}; "
        f"next step at {deadline:%H:%M:%S %Z} unless acknowledged"
    )
    return Plan((notify,), deadline, Position(index + 1, round_), note)


def start(
    policy: SeverityPolicy,
    snapshot: PolicySnapshot,
    hours: BusinessHours,
    now: datetime,
    *,
    event: str = "incident.opened",
    kind_suffix: str = "",
) -> Plan:
    """The plan when an incident opens (or reopens: `kind_suffix` keeps pages distinct)."""
    if policy.paging == "page" and snapshot.steps:
        plan = _page_step(policy, snapshot, Position(), now, event, f"trigger{kind_suffix}")
        # The team channel hears of every incident, paged or not: it is where people look.
        announce = _team_channel(snapshot, f"notify{kind_suffix}", event)
        return replace(plan, notify=plan.notify + announce)
    if policy.paging == "notify_business_hours":
        opening = next_business_time(hours, now)
        if opening is not None and opening > now:
            return Plan(
                (), opening, Position(deferred=True), f"team channel at {opening:%a %H:%M %Z}"
            )
        return Plan(
            _team_channel(snapshot, f"notify{kind_suffix}", event),
            None,
            Position(),
            "team channel notified",
        )
    notify = _team_channel(snapshot, f"notify{kind_suffix}", event)
    if policy.paging == "notify_then_page" and snapshot.steps:
        deadline = now + timedelta(seconds=policy.response_time or 0)
        note = f"team channel notified; paging at {deadline:%H:%M %Z} if unacknowledged"
        return Plan(notify, deadline, Position(), note)
    return Plan(notify, None, Position(), "team channel notified")


def advance(
    policy: SeverityPolicy,
    snapshot: PolicySnapshot,
    hours: BusinessHours,
    position: Position,
    now: datetime,
) -> Plan:
    """The plan when a deadline passed unacknowledged."""
    if position.deferred:
        return Plan(
            _team_channel(snapshot, "notify", "incident.notify"),
            None,
            Position(),
            "team channel notified (business hours)",
        )
    if policy.paging == "notify_business_hours" or not snapshot.steps or position.exhausted:
        return Plan((), None, position, "nothing left to escalate")
    event = (
        "incident.opened" if position.step == 0 and position.round == 0 else "incident.escalated"
    )
    return _page_step(policy, snapshot, position, now, event)


def raise_severity(
    old: SeverityPolicy,
    new: SeverityPolicy,
    snapshot: PolicySnapshot,
    hours: BusinessHours,
    position: Position,
    severity: Severity,
    now: datetime,
) -> Plan | None:
    """Re-evaluate at once after a raise; None when the escalation in flight stands."""
    if new.paging != "page" or not snapshot.steps:
        return None
    if position.step == 0 and position.round == 0:
        # Nobody paged yet (a SEV3 or SEV4 that became SEV1/SEV2): page now.
        return _page_step(new, snapshot, Position(), now, "incident.severity_raised")
    # Already paging: the paged step hears of the raise, and the new deadline counts from now.
    index = min(position.step, len(snapshot.steps)) - 1
    notify = Notify(
        index + 1,
        snapshot.steps[index].targets,
        f"raised-{severity.value}",
        "incident.severity_raised",
    )
    wait = _first_wait(new, snapshot)
    return Plan(
        (notify,),
        now + timedelta(seconds=wait),
        replace(position, exhausted=False),
        f"severity raised to {severity.value}; deadline reset",
    )
