"""Warnings about a valid rule set that may still fail someone at 3 a.m.

Errors (a rule set that cannot load) are `rulefile`'s; these are legal configurations worth a
second look, printed by `sevrouter check`: people nobody can reach, schedules with holes,
escalation steps that reach nobody or that no route can ever use, and SEV1 routes whose policy
never reaches a channel that wakes a human (a `log` channel only writes a line).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from router.ruleset import Ruleset
from router.schedules import gaps
from router.severity import Severity

# How far ahead schedules are checked for holes.
HORIZON = timedelta(days=28)
_SILENT_CHANNEL_TYPES = frozenset({"log"})


def warnings(ruleset: Ruleset, now: datetime) -> list[str]:
    config = ruleset.config
    found: list[str] = []
    for person in config.people:
        if not person.contacts:
            found.append(f"people[{person.name}]: no contact channel; pages to them go nowhere")
    for schedule in config.schedules:
        for start, end in gaps(schedule, now, now + HORIZON):
            found.append(
                f"schedules[{schedule.name}]: nobody on call from {start:%Y-%m-%d %H:%M} "
                f"to {end:%Y-%m-%d %H:%M} UTC"
            )
    paging_teams = _teams_paged(ruleset)
    for team in config.teams:
        for index, step in enumerate(team.escalation):
            if not any(_reachable(ruleset, t.kind, t.ref) for t in step.notify):
                found.append(f"teams[{team.name}].escalation[{index}]: reaches nobody")
        if team.escalation and team.name not in paging_teams:
            found.append(
                f"teams[{team.name}]: no route sends paging severities here; "
                "its escalation steps are never used"
            )
    for rule in [*ruleset.rules, ruleset.default_rule]:
        if rule.drop:
            continue
        severities = {rule.severity, *rule.severity_values.values()}
        if Severity.SEV1 in severities and not _wakes_someone(ruleset, rule.team):
            found.append(
                f"rules[{rule.name}]: routes SEV1 to team {rule.team}, whose escalation never "
                "reaches a channel that pages a human (only log channels)"
            )
    return found


def _teams_paged(ruleset: Ruleset) -> set[str]:
    teams = set()
    for rule in [*ruleset.rules, ruleset.default_rule]:
        severities = {rule.severity, *rule.severity_values.values()}
        if any(ruleset.policy(s).paging != "notify_business_hours" for s in severities):
            teams.add(rule.team)
    return teams


def _reachable(ruleset: Ruleset, kind: str, name: str) -> bool:
    if kind == "channel":
        return True
    if kind == "person":
        person = ruleset.person(name)
        return person is not None and bool(person.contacts)
    schedule = ruleset.schedule(name)
    return schedule is not None and any(
        _reachable(ruleset, "person", member)
        for layer in schedule.layers
        for member in layer.members
    )


def _wakes_someone(ruleset: Ruleset, team_name: str) -> bool:
    team = ruleset.team(team_name)
    if team is None:
        return False
    channels: set[str] = set()
    for step in team.escalation:
        for target in step.notify:
            if target.kind == "channel":
                channels.add(target.ref)
            people = [target.ref] if target.kind == "person" else []
            if target.kind == "schedule":
                schedule = ruleset.schedule(target.ref)
                people = [m for layer in schedule.layers for m in layer.members] if schedule else []
            for name in people:
                person = ruleset.person(name)
                channels |= {c.channel for c in person.contacts} if person else set()
    return any(
        (config := ruleset.channel(name)) is not None and config.type not in _SILENT_CHANNEL_TYPES
        for name in channels
    )
