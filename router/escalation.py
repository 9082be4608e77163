"""Who is told about an incident event: a pure decision from severity policy and team config.

This is the first slice of escalation: step 1 of a team's policy for paging severities, the team
channel for the others. Waiting for acknowledgement and moving to later steps build on it
(issue #3). No Redis, no I/O: the caller passes in everything, including whether step 1 was
already paged.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.ruleschema import SeverityPolicy, Team
from router.severity import Severity


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One notification to send; `key` is its idempotency key: sent at most once."""

    incident: str
    step: int  # 1-based escalation step; 0 for the team channel
    channel: str
    kind: str  # why: trigger, notify, raised-SEV1, reopen-2, mitigated-0 ...
    event: str  # incident.opened, incident.severity_raised, ...

    @property
    def key(self) -> str:
        # (incident, step, target, channel, kind): the target is the channel itself until
        # people and schedules arrive, so it appears once.
        return f"{self.incident}:{self.step}:{self.channel}:{self.channel}:{self.kind}"


def _targets(
    incident: str, team: Team, policy: SeverityPolicy, kind: str, event: str
) -> list[PageRequest]:
    if policy.paging == "page" and team.escalation:
        return [
            PageRequest(incident, 1, target.channel, kind, event)
            for target in team.escalation[0].notify
            if target.channel is not None
        ]
    if team.channel is not None:
        return [PageRequest(incident, 0, team.channel, kind, event)]
    return []


def on_opened(incident: str, team: Team, policy: SeverityPolicy) -> list[PageRequest]:
    kind = "trigger" if policy.paging == "page" else "notify"
    return _targets(incident, team, policy, kind, "incident.opened")


def on_severity_raised(
    incident: str,
    team: Team,
    old: SeverityPolicy,
    new: SeverityPolicy,
    severity: Severity,
) -> list[PageRequest]:
    """A raise to a paging severity pages now; if step 1 was paged already, it hears of it."""
    if new.paging != "page":
        return []
    kind = f"raised-{severity.value}" if old.paging == "page" else "trigger"
    return _targets(incident, team, new, kind, "incident.severity_raised")


def on_reopened(
    incident: str, team: Team, policy: SeverityPolicy, reopen_count: int
) -> list[PageRequest]:
    return _targets(incident, team, policy, f"reopen-{reopen_count}", "incident.reopened")


def on_mitigated(
    incident: str, team: Team, policy: SeverityPolicy, reopen_count: int
) -> list[PageRequest]:
    """Everyone who was told the incident started is told every alert resolved."""
    return _targets(incident, team, policy, f"mitigated-{reopen_count}", "incident.mitigated")
