"""People, on-call schedules and escalation targets in `rules/`.

A schedule is a stack of layers, each a daily or weekly rotation through its members with a
handoff time in the schedule's IANA timezone; a higher layer (later in the list) wins where it
has someone, and dated overrides win over every layer. Computing who is on call lives in
`router/schedules.py`.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from router.schemabase import Name, Strict

_DAILY_HANDOFF = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_WEEKLY_HANDOFF = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d$")


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. Europe/Berlin, UTC)") from None
    return name


class Contact(Strict):
    """How to reach a person: a channel, and the person's address on it (an email address,
    a Slack member id to mention); channels that page a service (PagerDuty) need none."""

    channel: Name
    address: str | None = None


class Person(Strict):
    name: Name
    full_name: str = ""
    contacts: list[Contact] = Field(default_factory=list)


class Layer(Strict):
    rotation: Literal["daily", "weekly"]
    # "09:00" for a daily rotation, "mon 09:00" for a weekly one, in the schedule's timezone.
    handoff: str
    # The first member's turn starts at the first handoff on or after this date.
    start: date
    members: list[Name] = Field(min_length=1)

    @model_validator(mode="after")
    def _handoff_matches_rotation(self) -> Layer:
        pattern = _DAILY_HANDOFF if self.rotation == "daily" else _WEEKLY_HANDOFF
        if not pattern.match(self.handoff):
            example = "09:00" if self.rotation == "daily" else "mon 09:00"
            raise ValueError(
                f"handoff {self.handoff!r} does not fit a {self.rotation} rotation; "
                f"write it like {example!r}"
            )
        return self


class Override(Strict):
    """Someone covering a stretch of time; naive times are in the schedule's timezone."""

    person: Name
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give start and end both with or both without a UTC offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Schedule(Strict):
    name: Name
    timezone: str = "UTC"
    layers: list[Layer] = Field(min_length=1)
    overrides: list[Override] = Field(default_factory=list)

    _check_timezone = field_validator("timezone")(check_timezone)


class Target(Strict):
    """One escalation target: exactly one of a channel, a person or a schedule's on-call."""

    channel: Name | None = None
    person: Name | None = None
    schedule: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_name_is_channel(cls, data: object) -> object:
        # `notify: [ops-slack]` is short for `notify: [{channel: ops-slack}]`.
        return {"channel": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [v for v in (self.channel, self.person, self.schedule) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of channel, person or schedule")
        return self

    @property
    def kind(self) -> Literal["channel", "person", "schedule"]:
        if self.channel is not None:
            return "channel"
        return "person" if self.person is not None else "schedule"

    @property
    def ref(self) -> str:
        return self.channel or self.person or self.schedule or ""
