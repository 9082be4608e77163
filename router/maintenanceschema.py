"""Maintenance windows in `rules/`: when alerts matching some labels are muted on purpose.

A window names the alerts it mutes with Alertmanager matchers (like a rule's `match`) and says
when it is active in one of three ways, in its IANA `timezone` (UTC unless given):

    - name: db-upgrade              # once: [start, end); naive times are in `timezone`
      match: ['service="db"']
      start: 2025-03-30T01:00
      end: 2025-03-30T05:00
    - name: nightly-backup          # weekly: on each listed day from start to end
      match: ['job="backup"']
      timezone: Europe/Berlin
      weekly: {days: [mon, tue, wed, thu, fri], start: "22:00", end: "02:00"}
    - name: patch-sunday            # cron: from each firing, for `duration`
      match: ['env="staging"']
      cron: "0 3 * * sun"
      duration: 2h
      notify: [ops-slack]           # told when the window starts and ends

A weekly `end` earlier than its `start` ends on the next day; `24:00` is the end of the day.
When the window is active lives in `router/maintenance.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from router.matchers import parse_matchers
from router.oncallschema import check_timezone
from router.schemabase import Duration, Name, Strict

__all__ = [
    "WEEKDAYS",
    "CronSpec",
    "MaintenanceWindow",
    "WeeklyWindow",
    "WindowKind",
    "parse_cron",
]

# In the order of `date.weekday()`, so `WEEKDAYS[day.weekday()]` names a date's weekday.
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class WindowKind(StrEnum):
    """How a window says when it is active; the value names the keys that say it."""

    ONCE = "start/end"
    WEEKLY = "weekly"
    CRON = "cron"


# --- times of day ------------------------------------------------------------------------------


def _quoted_clock(value: object) -> object:
    # YAML 1.1 reads an unquoted 22:00 as the base-60 integer 1320 (09:00 stays a string only
    # because of its leading zero); name the fix rather than "Input should be a valid string".
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 24 * 60:
        hours, minutes = divmod(value, 60)
        raise ValueError(
            f'write the time in quotes, "{hours:02}:{minutes:02}": YAML reads an unquoted '
            f"{hours}:{minutes:02} as the number {value}"
        )
    return value


def _start_clock(value: str) -> str:
    if not _CLOCK.fullmatch(value):
        raise ValueError('give a time of day as "HH:MM", from "00:00" to "23:59"')
    return value


def _end_clock(value: str) -> str:
    if value != "24:00" and not _CLOCK.fullmatch(value):
        raise ValueError('give a time of day as "HH:MM", from "00:00" to "24:00"')
    return value


StartClock = Annotated[str, BeforeValidator(_quoted_clock), AfterValidator(_start_clock)]
EndClock = Annotated[str, BeforeValidator(_quoted_clock), AfterValidator(_end_clock)]


class WeeklyWindow(Strict):
    """Active on each of `days` from `start` to `end`, wall-clock times in the window's timezone.

    `end` earlier than `start` means the next day (22:00-02:00 on fri ends early on Saturday);
    `24:00` means midnight at the end of the day, so `00:00`-`24:00` is the whole day.
    """

    days: list[Weekday] = Field(min_length=1)
    start: StartClock
    end: EndClock

    @field_validator("days")
    @classmethod
    def _each_once(cls, days: list[Weekday]) -> list[Weekday]:
        twice = sorted({day for day in days if days.count(day) > 1}, key=WEEKDAYS.index)
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return days

    @model_validator(mode="after")
    def _not_empty(self) -> WeeklyWindow:
        if self.start == self.end:
            raise ValueError(
                f"start and end are both {self.start}, which is no window at all; an end earlier "
                'than the start crosses midnight, and "00:00" to "24:00" is the whole day'
            )
        return self

    @property
    def crosses_midnight(self) -> bool:
        """Whether each occurrence ends on the day after it starts (`24:00` included)."""
        return self.end == "24:00" or self.end < self.start


# --- cron --------------------------------------------------------------------------------------

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# The longest each month can be (February in a leap year), for "never fires" below.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class _CronField:
    name: str
    low: int
    high: int
    # Names accepted for the values low, low + 1, ... (months and weekdays), lower case.
    names: tuple[str, ...] = ()

    def value(self, token: str) -> int:
        if _NUMBER.fullmatch(token):
            number = int(token)
            if not self.low <= number <= self.high:
                raise ValueError(f"{self.name} {number} is out of range {self.low}-{self.high}")
            return number
        if token.lower() in self.names:
            return self.low + self.names.index(token.lower())
        named = f" or a name ({self.names[0]}..{self.names[-1]})" if self.names else ""
        raise ValueError(f"{self.name} {token!r} is not a number{named}")

    def parse(self, text: str) -> frozenset[int]:
        values: set[int] = set()
        for item in text.split(","):
            body, slash, step_text = item.partition("/")
            step = 1
            if slash:
                if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
                    raise ValueError(
                        f"{self.name} {item!r}: the step after / must be a whole number from 1"
                    )
                step = int(step_text)
            if body == "*":
                low, high = self.low, self.high
            elif "-" in body:
                first, _, last = body.partition("-")
                low, high = self.value(first), self.value(last)
                if low > high:
                    raise ValueError(
                        f"{self.name} range {body!r} runs backwards; cron ranges do not wrap, "
                        "so list the two parts, e.g. 22-23,0-2"
                    )
            elif not body:
                raise ValueError(f"{self.name} {text!r} has an empty item")
            else:
                low = high = self.value(body)
                if slash:
                    # Vixie cron rejects "5/15"; other crons read it as 5-59/15 or as 5 alone.
                    raise ValueError(
                        f"{self.name} {item!r}: a step needs a range or *, like "
                        f"{body}-{self.high}/{step} or */{step}"
                    )
            values.update(range(low, high + 1, step))
        return frozenset(values)


_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day of month", 1, 31),
    _CronField("month", 1, 12, _MONTHS),
    # 0 and 7 are both Sunday, as in every cron.
    _CronField("day of week", 0, 7, _CRON_DAYS),
)


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed five-field cron expression (`parse_cron`), as local wall-clock firings.

    `weekdays` counts from Sunday = 0. When both day fields are restricted (neither starts with
    `*`), a day fires if it matches either, as in Vixie cron: `0 3 1 * mon` fires on the 1st and
    on every Monday; otherwise it must match both.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    either_day: bool

    def fires_on(self, day: date) -> bool:
        """Whether the expression fires at some time on the local date `day`."""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        # date.weekday() counts from Monday = 0, cron from Sunday = 0.
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        return by_date or by_weekday if self.either_day else by_date and by_weekday


def parse_cron(text: str) -> CronSpec:
    """Parse `minute hour day-of-month month day-of-week`, e.g. `"30 2 * * sat,sun"`.

    Each field takes `*`, numbers, ranges `a-b`, steps `*/n` or `a-b/n`, and comma lists; months
    and weekdays also take three-letter English names. Extensions that crons disagree on (`L`,
    `W`, `#`, `?`, `H`, seconds, `@daily`) are refused. Raises ValueError saying which field is
    wrong and why, or that the expression never fires (`0 0 30 2 *`).
    """
    fields = text.split()
    if text.strip().startswith("@"):
        raise ValueError('write the five fields instead of a macro, e.g. "0 0 * * *" for @daily')
    if len(fields) != len(_FIELDS):
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(fields)}"
        )
    minutes, hours, days, months, weekdays = (
        spec.parse(field) for spec, field in zip(_FIELDS, fields, strict=True)
    )
    either_day = not fields[2].startswith("*") and not fields[4].startswith("*")
    if not either_day:
        reachable = [day for day in days if any(day <= _MONTH_DAYS[m - 1] for m in months)]
        if not reachable:
            named = sorted(months)
            plural = "have" if len(named) > 1 else "has"
            which = " or ".join(str(day) for day in sorted(days))
            raise ValueError(
                f"never fires: {', '.join(_MONTHS[m - 1] for m in named)} {plural} no day {which}"
            )
    return CronSpec(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=months,
        weekdays=frozenset(day % 7 for day in weekdays),
        either_day=either_day,
    )


def _cron(text: str) -> str:
    parse_cron(text)
    return text


CronText = Annotated[str, AfterValidator(_cron)]


# --- the window --------------------------------------------------------------------------------


def _matcher_text(text: str) -> str:
    if not parse_matchers(text):
        raise ValueError(f"{text!r} holds no matcher; give one like 'service=\"db\"'")
    return text


MatcherText = Annotated[str, AfterValidator(_matcher_text)]


class MaintenanceWindow(Strict):
    """A named stretch of time, once or recurring, during which matching alerts are muted.

    Exactly one of `start`/`end`, `weekly`, or `cron` with `duration` says when (see `kind`).
    `match` holds Alertmanager matcher strings that must all match; it may not be empty. `notify`
    names channels told when the window starts and ends.
    """

    name: Name
    match: list[MatcherText] = Field(default_factory=list, validate_default=True)
    timezone: str = "UTC"
    # A one-off window covers [start, end); naive times are wall-clock times in `timezone`.
    start: datetime | None = None
    end: datetime | None = None
    weekly: WeeklyWindow | None = None
    cron: CronText | None = None
    # Elapsed time from each cron firing (a 2h window from 01:00 on a spring-forward night
    # ends at 04:00 local, two real hours later).
    duration: Duration | None = None
    notify: list[Name] = Field(default_factory=list)
    comment: str = ""

    _check_timezone = field_validator("timezone")(check_timezone)

    @field_validator("match", mode="before")
    @classmethod
    def _one_string(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("match")
    @classmethod
    def _not_everything(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                "a window without matchers would mute every alert; give at least one, "
                "like 'service=\"db\"'"
            )
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> MaintenanceWindow:
        keys = [
            k
            for k in ("start", "end", "weekly", "cron", "duration")
            if getattr(self, k) is not None
        ]
        kinds = {
            WindowKind.ONCE if key in ("start", "end") else WindowKind(key)
            for key in keys
            if key != "duration"
        }
        if not keys:
            raise ValueError(
                "say when the window is active: start and end for a one-off window, weekly, "
                "or cron with duration"
            )
        if len(kinds) > 1 or (kinds and "duration" in keys and WindowKind.CRON not in kinds):
            raise ValueError(
                "give only one of start/end, weekly, or cron with duration; this window has "
                f"{', '.join(keys)}"
            )
        if WindowKind.ONCE in kinds:
            self._check_once()
        elif WindowKind.WEEKLY not in kinds:
            self._check_cron()
        return self

    def _check_cron(self) -> None:
        if self.cron is None:
            raise ValueError("duration goes with cron, which says when each occurrence starts")
        if self.duration is None:
            raise ValueError("cron needs a duration, like duration: 2h")
        if self.duration <= 0:
            raise ValueError("duration must be longer than 0s")

    def _check_once(self) -> None:
        if self.start is None or self.end is None:
            missing, present = ("end", "start") if self.end is None else ("start", "end")
            raise ValueError(f"a one-off window needs {missing} as well as {present}")
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give start and end both with or both without a UTC offset")
        if self.end <= self.start:
            raise ValueError(
                f"end {self.end.isoformat()} must be after start {self.start.isoformat()}"
            )

    @property
    def kind(self) -> WindowKind:
        """Which of the three ways says when this window is active."""
        if self.weekly is not None:
            return WindowKind.WEEKLY
        return WindowKind.CRON if self.cron is not None else WindowKind.ONCE
