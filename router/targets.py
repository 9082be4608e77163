"""From escalation targets to the addresses a page goes to.

A target names a channel, a person, or a schedule (whoever is on call at that moment). People
are reached through their contacts: a channel plus their address on it. A person reached twice
in one step (directly and through a schedule) is paged once, because the page key names the
person, not the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from router.escalation import TargetRef
from router.ruleset import Ruleset
from router.schedules import on_call


@dataclass(frozen=True, slots=True)
class Recipient:
    target: str  # "channel:ops-slack" or "person:alice": part of the page's idempotency key
    channel: str
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    recipients: tuple[Recipient, ...]
    problems: tuple[str, ...] = ()  # for the timeline: "schedule primary has nobody on call"


def resolve(ruleset: Ruleset, targets: tuple[TargetRef, ...], at: datetime) -> Resolution:
    recipients: dict[tuple[str, str], Recipient] = {}
    problems: list[str] = []
    for ref in targets:
        person = ref.name if ref.kind == "person" else None
        if ref.kind == "channel":
            found = [Recipient(f"channel:{ref.name}", ref.name)]
        else:
            if ref.kind == "schedule":
                schedule = ruleset.schedule(ref.name)
                person = on_call(schedule, at) if schedule is not None else None
                if person is None:
                    problems.append(f"schedule {ref.name} has nobody on call")
                    continue
            found = _contacts(ruleset, person or "", problems)
        for recipient in found:
            recipients.setdefault((recipient.target, recipient.channel), recipient)
    return Resolution(tuple(recipients.values()), tuple(problems))


def _contacts(ruleset: Ruleset, name: str, problems: list[str]) -> list[Recipient]:
    person = ruleset.person(name)
    if person is None:
        problems.append(f"person {name} is not defined")
        return []
    if not person.contacts:
        problems.append(f"person {name} has no contact channel")
    return [Recipient(f"person:{name}", c.channel, c.address) for c in person.contacts]
