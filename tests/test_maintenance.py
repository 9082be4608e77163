"""Tests for maintenance windows: the schema (router/maintenanceschema.py) and when windows are
active, cover an alert, start and end (router/maintenance.py).

Expected instants are written in UTC so that each case states exactly which instant it means.
Europe/Berlin switches on the last Sundays of March (02:00 CET -> 03:00 CEST; 2025-03-30) and
October (03:00 CEST -> 02:00 CET; 2025-10-26); America/New_York is UTC-5 in winter, UTC-4 in
summer. 2025-01-10 is a Friday.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from router.maintenance import (
    CompiledWindows,
    Edge,
    Transition,
    active_windows,
    covering,
    next_transition,
    transitions,
)
from router.maintenanceschema import MaintenanceWindow, WindowKind, parse_cron

US = timedelta(microseconds=1)
DB = ['service="db"']


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def window(name: str = "w", **fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": name, "match": DB, **fields})


def weekly(days: str, start: str, end: str, tz: str = "UTC", name: str = "w") -> MaintenanceWindow:
    return window(name, timezone=tz, weekly={"days": days.split(), "start": start, "end": end})


def cron(expression: str, duration: str, tz: str = "UTC", name: str = "w") -> MaintenanceWindow:
    return window(name, timezone=tz, cron=expression, duration=duration)


def once(start: str, end: str, tz: str = "UTC", name: str = "w") -> MaintenanceWindow:
    return window(name, timezone=tz, start=start, end=end)


# --------------------------------------------------------------------------------------------
# Schema: each case is a valid window with exactly one defect, written as in a rule file
# --------------------------------------------------------------------------------------------


def schema_errors(text: str) -> list[tuple[str, str]]:
    """(dotted location, message) of each error in a window given as YAML."""
    document = {"name": "w", "match": DB, **yaml.safe_load(text)}
    with pytest.raises(ValidationError) as caught:
        MaintenanceWindow.model_validate(document)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


WEEKLY_OK = "weekly: {days: [sat], start: '01:00', end: '03:00'}"
CRON_OK = "cron: '0 3 * * sun'\nduration: 2h"

SCHEMA_ERRORS = [
    # An empty match would mute every alert: the window must say which alerts it is for.
    pytest.param(f"match: []\n{WEEKLY_OK}", "match", "would mute every alert", id="match-empty"),
    # A matcher string that parses to no matcher is just as empty.
    pytest.param(f"match: ['{{}}']\n{WEEKLY_OK}", "match.0", "holds no matcher", id="match-braces"),
    # Matchers are checked when the file loads, with the matcher parser's own message.
    pytest.param(
        f"match: ['service==\"db\"']\n{WEEKLY_OK}",
        "match.0",
        'expected a label value after "=" at column 9',
        id="match-syntax",
    ),
    pytest.param(
        f"match: ['service=~\"(\"']\n{WEEKLY_OK}",
        "match.0",
        'invalid regex "("',
        id="match-bad-regex",
    ),
    pytest.param(f"name: 'db upgrade'\n{WEEKLY_OK}", "name", "pattern", id="name-with-space"),
    pytest.param(
        f"timezone: Europe/Berlyn\n{WEEKLY_OK}",
        "timezone",
        "unknown IANA timezone 'Europe/Berlyn'",
        id="unknown-timezone",
    ),
    pytest.param(f"notify: ['ops slack']\n{WEEKLY_OK}", "notify.0", "pattern", id="notify-name"),
    pytest.param(f"until: 2025-01-01\n{WEEKLY_OK}", "until", "Extra inputs", id="unknown-key"),
    # Exactly one of the three ways of saying when.
    pytest.param("comment: x", "", "say when the window is active", id="no-schedule"),
    pytest.param(
        f"start: 2025-01-10T09:00:00\nend: 2025-01-10T10:00:00\n{WEEKLY_OK}",
        "",
        "only one of start/end, weekly, or cron with duration; this window has start, end, weekly",
        id="once-and-weekly",
    ),
    pytest.param(
        f"{WEEKLY_OK}\n{CRON_OK}",
        "",
        "this window has weekly, cron, duration",
        id="weekly-and-cron",
    ),
    pytest.param(
        "start: 2025-01-10T09:00:00\nend: 2025-01-10T10:00:00\nduration: 1h",
        "",
        "this window has start, end, duration",
        id="once-with-duration",
    ),
    # One-off windows: both ends, consistent offsets, end after start.
    pytest.param(
        "start: 2025-01-10T09:00:00", "", "needs end as well as start", id="start-without-end"
    ),
    pytest.param(
        "end: 2025-01-10T09:00:00", "", "needs start as well as end", id="end-without-start"
    ),
    pytest.param(
        "start: 2025-01-10T09:00:00\nend: 2025-01-10T08:00:00",
        "",
        "end 2025-01-10T08:00:00 must be after start 2025-01-10T09:00:00",
        id="end-before-start",
    ),
    # [start, end) with start == end is empty.
    pytest.param(
        "start: 2025-01-10T09:00:00\nend: 2025-01-10T09:00:00",
        "",
        "must be after start",
        id="end-equals-start",
    ),
    pytest.param(
        "start: 2025-01-10T09:00:00Z\nend: 2025-01-10T10:00:00",
        "",
        "both with or both without a UTC offset",
        id="mixed-offsets",
    ),
    pytest.param(
        "start: next friday\nend: 2025-01-10T10:00:00",
        "start",
        "valid datetime",
        id="start-not-a-time",
    ),
    # cron and duration go together; a duration is positive and written like 2h.
    pytest.param("duration: 2h", "", "duration goes with cron", id="duration-alone"),
    pytest.param("cron: '0 3 * * sun'", "", "cron needs a duration", id="cron-without-duration"),
    pytest.param("cron: '0 3 * * sun'\nduration: 0s", "", "longer than 0s", id="duration-zero"),
    pytest.param(
        "cron: '0 3 * * sun'\nduration: 2 hours",
        "duration",
        "invalid duration '2 hours'",
        id="duration-words",
    ),
    # Weekly: days once each, from mon..sun; times as quoted "HH:MM".
    pytest.param(
        "weekly: {days: [], start: '01:00', end: '03:00'}",
        "weekly.days",
        "at least 1 item",
        id="weekly-no-days",
    ),
    pytest.param(
        "weekly: {days: [monday], start: '01:00', end: '03:00'}",
        "weekly.days.0",
        "'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun'",
        id="weekly-day-spelled-out",
    ),
    pytest.param(
        "weekly: {days: [sat, mon, sat, mon], start: '01:00', end: '03:00'}",
        "weekly.days",
        "mon, sat listed more than once",
        id="weekly-day-twice",
    ),
    # YAML 1.1 reads unquoted 22:00 as 1320 (base 60); the message names the fix.
    pytest.param(
        "weekly: {days: [sat], start: 22:00, end: '23:00'}",
        "weekly.start",
        'write the time in quotes, "22:00": YAML reads an unquoted 22:00 as the number 1320',
        id="weekly-unquoted-time",
    ),
    pytest.param(
        "weekly: {days: [sat], start: '24:00', end: '23:00'}",
        "weekly.start",
        'from "00:00" to "23:59"',
        id="weekly-start-24",
    ),
    pytest.param(
        "weekly: {days: [sat], start: '01:00', end: '9:00'}",
        "weekly.end",
        'give a time of day as "HH:MM", from "00:00" to "24:00"',
        id="weekly-end-one-digit-hour",
    ),
    pytest.param(
        "weekly: {days: [sat], start: '02:00', end: '02:00'}",
        "weekly",
        "start and end are both 02:00, which is no window at all",
        id="weekly-start-equals-end",
    ),
    pytest.param(
        "weekly: {days: [sat], start: '02:00'}", "weekly.end", "Field required", id="weekly-no-end"
    ),
    pytest.param(
        "weekly: {days: [sat], start: '02:00', end: '03:00', at: x}",
        "weekly.at",
        "Extra inputs",
        id="weekly-unknown-key",
    ),
    # cron: five plain fields, each in range, every step and range well-formed, and a date
    # that exists.
    pytest.param("cron: '0 3 * *'\nduration: 1h", "cron", "has 5 fields", id="cron-four-fields"),
    pytest.param("cron: '0 0 3 * * sun'\nduration: 1h", "cron", "not 6", id="cron-seconds-field"),
    pytest.param("cron: '@daily'\nduration: 1h", "cron", "instead of a macro", id="cron-macro"),
    pytest.param(
        "cron: '0 24 * * *'\nduration: 1h",
        "cron",
        "hour 24 is out of range 0-23",
        id="cron-hour-24",
    ),
    pytest.param(
        "cron: '60 1 * * *'\nduration: 1h",
        "cron",
        "minute 60 is out of range 0-59",
        id="cron-minute-60",
    ),
    pytest.param(
        "cron: '0 1 0 * *'\nduration: 1h",
        "cron",
        "day of month 0 is out of range 1-31",
        id="cron-day-0",
    ),
    pytest.param(
        "cron: '0 1 * 13 *'\nduration: 1h",
        "cron",
        "month 13 is out of range 1-12",
        id="cron-month-13",
    ),
    pytest.param(
        "cron: '0 1 * * 8'\nduration: 1h",
        "cron",
        "day of week 8 is out of range 0-7",
        id="cron-weekday-8",
    ),
    pytest.param(
        "cron: '0 1 * * funday'\nduration: 1h",
        "cron",
        "day of week 'funday' is not a number or a name (sun..sat)",
        id="cron-bad-weekday-name",
    ),
    # Extensions that crons disagree on are refused rather than guessed at.
    pytest.param(
        "cron: '0 1 L * *'\nduration: 1h",
        "cron",
        "day of month 'L' is not a number",
        id="cron-last-day-extension",
    ),
    pytest.param(
        "cron: '*/0 1 * * *'\nduration: 1h",
        "cron",
        "the step after / must be a whole number from 1",
        id="cron-step-0",
    ),
    pytest.param(
        "cron: '5/15 1 * * *'\nduration: 1h",
        "cron",
        "minute '5/15': a step needs a range or *, like 5-59/15 or */15",
        id="cron-step-without-range",
    ),
    pytest.param(
        "cron: '0 22-2 * * *'\nduration: 1h",
        "cron",
        "hour range '22-2' runs backwards",
        id="cron-backwards-range",
    ),
    pytest.param(
        "cron: '0 1,,2 * * *'\nduration: 1h",
        "cron",
        "hour '1,,2' has an empty item",
        id="cron-empty-list-item",
    ),
    pytest.param(
        "cron: '0 0 30 2 *'\nduration: 1h",
        "cron",
        "never fires: feb has no day 30",
        id="cron-february-30",
    ),
    pytest.param(
        "cron: '0 0 31 apr,jun *'\nduration: 1h",
        "cron",
        "never fires: apr, jun have no day 31",
        id="cron-april-june-31",
    ),
]


@pytest.mark.parametrize(("text", "location", "message"), SCHEMA_ERRORS)
def test_schema_error(text: str, location: str, message: str) -> None:
    errors = schema_errors(text)
    assert len(errors) == 1, errors
    assert errors[0][0] == location
    assert message in errors[0][1]


def test_missing_match_would_mute_every_alert() -> None:
    # Leaving match out is the same mistake as an empty list, with the same message.
    with pytest.raises(ValidationError) as caught:
        MaintenanceWindow.model_validate({"name": "w", "cron": "0 3 * * *", "duration": "1h"})
    [error] = caught.value.errors()
    assert error["loc"] == ("match",)
    assert "would mute every alert" in error["msg"]


SCHEMA_ACCEPTED = [
    # A single matcher string is short for a one-element list, as in rules.
    pytest.param({"match": 'service="db"', "cron": "0 3 * * *", "duration": "1h"}, id="one-string"),
    # An end earlier than the start crosses midnight; 24:00 is the end of the day.
    pytest.param({"weekly": {"days": ["fri"], "start": "22:00", "end": "02:00"}}, id="overnight"),
    pytest.param({"weekly": {"days": ["sat"], "start": "00:00", "end": "24:00"}}, id="whole-day"),
    # Both day fields restricted: either matches (Vixie cron), so Feb 31 is no obstacle.
    pytest.param({"cron": "0 0 31 2 mon", "duration": "1h"}, id="cron-either-day"),
    # Both ends with an offset; naive times need no offset.
    pytest.param(
        {"start": "2025-01-10T09:00:00+01:00", "end": "2025-01-10T10:00:00Z"}, id="aware-once"
    ),
    # A bare date is midnight.
    pytest.param({"start": "2025-01-10", "end": "2025-01-11"}, id="dates"),
]


@pytest.mark.parametrize("fields", SCHEMA_ACCEPTED)
def test_schema_accepts(fields: dict[str, Any]) -> None:
    document = {"name": "w", "match": DB, **fields}
    assert MaintenanceWindow.model_validate(document).name == "w"


def test_kind() -> None:
    assert once("2025-01-10T09:00:00", "2025-01-10T10:00:00").kind is WindowKind.ONCE
    assert weekly("sat", "01:00", "02:00").kind is WindowKind.WEEKLY
    assert cron("0 3 * * *", "1h").kind is WindowKind.CRON


CRON_FIELDS = [
    # Steps over * and over ranges; lists; 0 and 7 are both Sunday; names in any case.
    pytest.param("*/15 9-17/4 * * *", ((0, 15, 30, 45), (9, 13, 17)), id="steps"),
    pytest.param("0,30 1,2 * * *", ((0, 30), (1, 2)), id="lists"),
]


@pytest.mark.parametrize(("expression", "times"), CRON_FIELDS)
def test_parse_cron_times(expression: str, times: tuple[tuple[int, ...], ...]) -> None:
    spec = parse_cron(expression)
    assert (spec.minutes, spec.hours) == times


def test_parse_cron_names_and_sunday() -> None:
    spec = parse_cron("0 0 * JAN-mar 5-7")
    assert spec.months == {1, 2, 3}
    assert spec.weekdays == {5, 6, 0}
    assert not spec.either_day
    assert parse_cron("0 0 1 * mon").either_day


# --------------------------------------------------------------------------------------------
# Activity: is the window active at this instant?
# --------------------------------------------------------------------------------------------

ONCE_UTC = once("2025-01-10T09:00:00Z", "2025-01-10T10:00:00Z")
ONCE_BERLIN = once("2025-01-10T09:00:00", "2025-01-10T10:00:00", tz="Europe/Berlin")
ONCE_OFFSET = once("2025-01-10T09:00:00+05:00", "2025-01-10T10:00:00+05:00", tz="Europe/Berlin")
ONCE_IN_GAP = once("2025-03-30T02:30:00", "2025-03-30T04:00:00", tz="Europe/Berlin")
WEEKDAYS_9_17 = weekly("mon tue wed thu fri", "09:00", "17:00")
FRIDAY_NIGHT = weekly("fri", "22:00", "02:00")
SUNDAY_NIGHT = weekly("sun", "23:00", "01:00")
WEEKEND = weekly("sat sun", "00:00", "24:00")
BERLIN_OFFICE = weekly("mon", "09:00", "17:00", tz="Europe/Berlin")
BERLIN_0230 = weekly("sun", "02:30", "04:00", tz="Europe/Berlin")
BERLIN_IN_GAP = weekly("sun", "02:00", "02:30", tz="Europe/Berlin")
BERLIN_REPEATED = weekly("sun", "02:30", "03:30", tz="Europe/Berlin")
SUNDAY_0300 = cron("0 3 * * sun", "2h")
LATE = cron("30 23 * * *", "1h")
MONTH_START = cron("0 0 1 * *", "3d")
FRIDAY_13 = cron("0 0 13 * fri", "1h")
ODD_MONDAYS = cron("0 0 */2 * mon", "1h")
BERLIN_CRON_0230 = cron("30 2 * * *", "1h", tz="Europe/Berlin")
BERLIN_CRON_0100 = cron("0 1 30 3 *", "2h", tz="Europe/Berlin")
BERLIN_CRON_REPEATED = cron("30 2 26 10 *", "30m", tz="Europe/Berlin")
NEW_YORK_0900 = cron("0 9 * * *", "1h", tz="America/New_York")
HALF_HOURLY = cron("*/30 * * * *", "45m", tz="Europe/Berlin")

ACTIVE = [
    # A one-off window covers [start, end): active at start, not at end.
    pytest.param(ONCE_UTC, utc(2025, 1, 10, 9) - US, False, id="once-just-before-start"),
    pytest.param(ONCE_UTC, utc(2025, 1, 10, 9), True, id="once-at-start"),
    pytest.param(ONCE_UTC, utc(2025, 1, 10, 10) - US, True, id="once-just-before-end"),
    pytest.param(ONCE_UTC, utc(2025, 1, 10, 10), False, id="once-at-end"),
    # Naive one-off times are in the window's timezone (09:00 CET = 08:00 UTC).
    pytest.param(ONCE_BERLIN, utc(2025, 1, 10, 8), True, id="once-naive-in-timezone"),
    pytest.param(ONCE_BERLIN, utc(2025, 1, 10, 9), False, id="once-naive-end-in-timezone"),
    # Times with an offset mean what they say, whatever the window's timezone.
    pytest.param(ONCE_OFFSET, utc(2025, 1, 10, 4), True, id="once-offset-wins"),
    pytest.param(ONCE_OFFSET, utc(2025, 1, 10, 8), False, id="once-offset-not-timezone"),
    # A naive start in the spring-forward gap means the first instant after it (03:00 CEST).
    pytest.param(ONCE_IN_GAP, utc(2025, 3, 30, 1) - US, False, id="once-start-in-gap-before"),
    pytest.param(ONCE_IN_GAP, utc(2025, 3, 30, 1), True, id="once-start-in-gap"),
    # Weekly: only on the listed days, from start to end.
    pytest.param(WEEKDAYS_9_17, utc(2025, 1, 10, 9), True, id="weekly-friday-start"),
    pytest.param(WEEKDAYS_9_17, utc(2025, 1, 10, 17), False, id="weekly-friday-end"),
    pytest.param(WEEKDAYS_9_17, utc(2025, 1, 11, 12), False, id="weekly-unlisted-saturday"),
    # An end before the start crosses midnight: Friday 22:00 to Saturday 02:00.
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 10, 21, 59), False, id="overnight-before"),
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 10, 22), True, id="overnight-start"),
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 11, 1, 59), True, id="overnight-after-midnight"),
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 11, 2), False, id="overnight-end"),
    # The listed day is the day the window starts: Saturday night is not Friday night.
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 11, 23), False, id="overnight-next-day-unlisted"),
    pytest.param(FRIDAY_NIGHT, utc(2025, 1, 10, 1), False, id="overnight-morning-of-listed"),
    # Sunday night runs into Monday, across the end of the week.
    pytest.param(SUNDAY_NIGHT, utc(2025, 1, 13, 0, 30), True, id="overnight-into-monday"),
    # 00:00-24:00 on sat and sun: the whole weekend, up to Monday 00:00.
    pytest.param(WEEKEND, utc(2025, 1, 11, 0), True, id="whole-day-saturday-midnight"),
    pytest.param(WEEKEND, utc(2025, 1, 13) - US, True, id="whole-day-end-of-sunday"),
    pytest.param(WEEKEND, utc(2025, 1, 13), False, id="whole-day-monday"),
    # Wall-clock times: Monday 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
    pytest.param(BERLIN_OFFICE, utc(2025, 1, 6, 8), True, id="berlin-winter-start"),
    pytest.param(BERLIN_OFFICE, utc(2025, 1, 6, 7), False, id="berlin-winter-before"),
    pytest.param(BERLIN_OFFICE, utc(2025, 7, 7, 7), True, id="berlin-summer-start"),
    pytest.param(BERLIN_OFFICE, utc(2025, 7, 7, 15), False, id="berlin-summer-end"),
    # Spring forward: 02:30 does not exist on 2025-03-30; the window starts at 03:00 CEST
    # (01:00 UTC), the first valid instant, and still ends at 04:00 CEST (02:00 UTC).
    pytest.param(BERLIN_0230, utc(2025, 3, 30, 1) - US, False, id="spring-forward-before"),
    pytest.param(BERLIN_0230, utc(2025, 3, 30, 1), True, id="spring-forward-first-instant"),
    pytest.param(BERLIN_0230, utc(2025, 3, 30, 2) - US, True, id="spring-forward-before-end"),
    pytest.param(BERLIN_0230, utc(2025, 3, 30, 2), False, id="spring-forward-end"),
    # A week earlier the same window runs 02:30-04:00 CET (01:30-03:00 UTC).
    pytest.param(BERLIN_0230, utc(2025, 3, 23, 1, 30), True, id="week-before-spring-forward"),
    pytest.param(BERLIN_0230, utc(2025, 3, 23, 1, 29), False, id="week-before-not-yet"),
    # 02:00-02:30 lies wholly in the gap: that night the window does not happen at all.
    pytest.param(BERLIN_IN_GAP, utc(2025, 3, 30, 1), False, id="window-inside-gap"),
    pytest.param(BERLIN_IN_GAP, utc(2025, 4, 6, 0, 15), True, id="window-inside-gap-next-week"),
    # Fall back: 02:30 means its first occurrence (CEST, 00:30 UTC); 03:30 comes once, in CET
    # (02:30 UTC), so the window lasts three real hours, the repeated hour included.
    pytest.param(BERLIN_REPEATED, utc(2025, 10, 26, 0, 29), False, id="fall-back-before"),
    pytest.param(BERLIN_REPEATED, utc(2025, 10, 26, 0, 30), True, id="fall-back-first-0230"),
    pytest.param(BERLIN_REPEATED, utc(2025, 10, 26, 1, 45), True, id="fall-back-repeated-hour"),
    pytest.param(BERLIN_REPEATED, utc(2025, 10, 26, 2, 30), False, id="fall-back-end"),
    # cron + duration: from each firing for the duration.
    pytest.param(SUNDAY_0300, utc(2025, 1, 12, 3) - US, False, id="cron-before-firing"),
    pytest.param(SUNDAY_0300, utc(2025, 1, 12, 3), True, id="cron-at-firing"),
    pytest.param(SUNDAY_0300, utc(2025, 1, 12, 5) - US, True, id="cron-before-duration-ends"),
    pytest.param(SUNDAY_0300, utc(2025, 1, 12, 5), False, id="cron-duration-ends"),
    pytest.param(SUNDAY_0300, utc(2025, 1, 13, 3), False, id="cron-not-monday"),
    # A duration runs past midnight and over several days.
    pytest.param(LATE, utc(2025, 1, 11, 0, 15), True, id="cron-past-midnight"),
    pytest.param(LATE, utc(2025, 1, 11, 0, 30), False, id="cron-past-midnight-end"),
    pytest.param(MONTH_START, utc(2025, 2, 3, 23, 59), True, id="cron-three-days"),
    pytest.param(MONTH_START, utc(2025, 2, 4), False, id="cron-three-days-end"),
    # Both day fields restricted: Friday 10 January (a Friday) and Monday 13 January (the 13th).
    pytest.param(FRIDAY_13, utc(2025, 1, 10, 0, 30), True, id="cron-either-day-weekday"),
    pytest.param(FRIDAY_13, utc(2025, 1, 13, 0, 30), True, id="cron-either-day-date"),
    pytest.param(FRIDAY_13, utc(2025, 1, 14, 0, 30), False, id="cron-either-day-neither"),
    # A day field starting with * makes both required: odd days that are Mondays.
    pytest.param(ODD_MONDAYS, utc(2025, 1, 13, 0, 30), True, id="cron-both-days-odd-monday"),
    pytest.param(ODD_MONDAYS, utc(2025, 1, 6, 0, 30), False, id="cron-both-days-even-monday"),
    pytest.param(ODD_MONDAYS, utc(2025, 1, 15, 0, 30), False, id="cron-both-days-odd-wednesday"),
    # A firing at 02:30 on the spring-forward night is placed at 03:00 CEST (01:00 UTC).
    pytest.param(BERLIN_CRON_0230, utc(2025, 3, 29, 1, 30), True, id="cron-berlin-day-before"),
    pytest.param(BERLIN_CRON_0230, utc(2025, 3, 30, 1) - US, False, id="cron-gap-not-yet"),
    pytest.param(BERLIN_CRON_0230, utc(2025, 3, 30, 1), True, id="cron-gap-first-instant"),
    pytest.param(BERLIN_CRON_0230, utc(2025, 3, 30, 2), False, id="cron-gap-duration-ends"),
    # duration is elapsed time: 01:00 CET + 2h is 04:00 CEST (02:00 UTC), not 03:00 local.
    pytest.param(BERLIN_CRON_0100, utc(2025, 3, 30, 2) - US, True, id="cron-duration-elapsed"),
    pytest.param(BERLIN_CRON_0100, utc(2025, 3, 30, 2), False, id="cron-duration-elapsed-end"),
    # An ambiguous firing time fires once, at its first occurrence, as cron does.
    pytest.param(BERLIN_CRON_REPEATED, utc(2025, 10, 26, 0, 30), True, id="cron-fold-first"),
    pytest.param(BERLIN_CRON_REPEATED, utc(2025, 10, 26, 1, 30), False, id="cron-fold-second"),
    # Timezone: 09:00 in New York is 14:00 UTC in January and 13:00 UTC in July.
    pytest.param(NEW_YORK_0900, utc(2025, 1, 10, 14), True, id="cron-new-york-winter"),
    pytest.param(NEW_YORK_0900, utc(2025, 1, 10, 13), False, id="cron-new-york-winter-early"),
    pytest.param(NEW_YORK_0900, utc(2025, 7, 10, 13), True, id="cron-new-york-summer"),
    # Overlapping firings keep the window active without a break...
    pytest.param(HALF_HOURLY, utc(2025, 6, 1, 12, 40), True, id="cron-overlapping"),
    # ...except in the repeated autumn hour, which has no firings of its own (00:30 + 45m UTC
    # ends at 01:15; the next firing is 03:00 CET, 02:00 UTC).
    pytest.param(HALF_HOURLY, utc(2025, 10, 26, 1, 15), False, id="cron-overlapping-fold-gap"),
]


@pytest.mark.parametrize(("config", "at", "expected"), ACTIVE)
def test_active(config: MaintenanceWindow, at: datetime, expected: bool) -> None:
    assert (active_windows([config], at) == [config]) is expected


def test_active_in_config_order_and_any_offset() -> None:
    windows = [WEEKEND, ONCE_UTC, WEEKDAYS_9_17]
    # 10:00+01:00 is 09:00 UTC on Friday 10 January.
    at = datetime(2025, 1, 10, 10, tzinfo=timezone(timedelta(hours=1)))
    assert active_windows(windows, at) == [ONCE_UTC, WEEKDAYS_9_17]
    assert active_windows(windows, utc(2025, 1, 10, 9)) == [ONCE_UTC, WEEKDAYS_9_17]


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        active_windows([ONCE_UTC], datetime(2025, 1, 10, 9))


# --------------------------------------------------------------------------------------------
# covering: the first active window whose matchers all match
# --------------------------------------------------------------------------------------------

DB_NOW = window(
    "db-now", match=['service="db"'], start="2025-01-10T09:00:00Z", end="2025-01-10T10:00:00Z"
)
DB_LATER = window(
    "db-later", match=['service="db"'], start="2025-01-11T09:00:00Z", end="2025-01-11T10:00:00Z"
)
DB_WIDE = window(
    "db-wide",
    match=['service=~"db|cache"'],
    start="2025-01-10T00:00:00Z",
    end="2025-01-12T00:00:00Z",
)
PROD_DB = window(
    "prod-db",
    match=['service="db"', 'env="prod"'],
    start="2025-01-10T00:00:00Z",
    end="2025-01-12T00:00:00Z",
)
NOT_STAGING = window(
    "not-staging", match=['{env!="staging", team="x"}'], cron="0 9 * * *", duration="1h"
)
COVER_ORDER = CompiledWindows([DB_LATER, PROD_DB, DB_NOW, DB_WIDE, NOT_STAGING])
NINE = utc(2025, 1, 10, 9)

COVERING = [
    # The first window in config order that is active and matches wins.
    pytest.param({"service": "db", "env": "prod"}, NINE, "prod-db", id="first-matching-active"),
    # An inactive matching window (db-later) is skipped; so is one whose matchers fail.
    pytest.param({"service": "db", "env": "dev"}, NINE, "db-now", id="skips-non-matching"),
    # Regex matchers are anchored and match alternatives.
    pytest.param({"service": "cache"}, NINE, "db-wide", id="regex"),
    pytest.param({"service": "cache2"}, NINE, None, id="regex-anchored"),
    # Every matcher must match (AND), also within one braced string; != matches absent labels.
    pytest.param({"team": "x"}, NINE, "not-staging", id="not-equal-absent-label"),
    pytest.param({"team": "x", "env": "staging"}, NINE, None, id="not-equal-fails"),
    # Nothing active matches: the alert may page.
    pytest.param({"service": "db"}, utc(2025, 1, 12, 12), None, id="nothing-active"),
    pytest.param({"service": "db"}, utc(2025, 1, 11, 9, 30), "db-later", id="later-window"),
]


@pytest.mark.parametrize(("labels", "at", "expected"), COVERING)
def test_covering(labels: dict[str, str], at: datetime, expected: str | None) -> None:
    found = covering(COVER_ORDER, labels, at)
    assert (found.name if found is not None else None) == expected
    # The configs give the same answer as the compiled windows.
    again = covering(COVER_ORDER.windows, labels, at)
    assert (again.name if again is not None else None) == expected


# --------------------------------------------------------------------------------------------
# transitions and next_transition over a week in Berlin, ending on the spring-forward night
# --------------------------------------------------------------------------------------------

WEEK = CompiledWindows(
    [
        # Weeknights 22:00-02:00 CET (21:00-01:00 UTC); not on Sunday night.
        weekly("mon tue wed thu fri", "22:00", "02:00", tz="Europe/Berlin", name="nightly"),
        # The whole weekend: Saturday 00:00 CET to Monday 00:00 CEST.
        weekly("sat sun", "00:00", "24:00", tz="Europe/Berlin", name="weekend"),
        # 02:30 does not exist on Sunday 30 March: 03:00 CEST (01:00 UTC) for an hour.
        cron("30 2 * * sun", "1h", tz="Europe/Berlin", name="backup"),
        once("2025-03-26T10:00:00+01:00", "2025-03-26T12:00:00+01:00", name="upgrade"),
        # Began before the week; ends at 06:00 CET on Monday, as `handover` begins.
        once("2025-03-20T00:00:00", "2025-03-24T06:00:00", tz="Europe/Berlin", name="long"),
        once("2025-03-24T06:00:00", "2025-03-24T07:00:00", tz="Europe/Berlin", name="handover"),
    ]
)
# Monday 24 March 00:00 CET to Monday 31 March 00:00 CEST.
WEEK_START, WEEK_END = utc(2025, 3, 23, 23), utc(2025, 3, 30, 22)
S, E = Edge.START, Edge.END
WEEK_TRANSITIONS = [
    # The previous weekend ends at the very start of the week, which belongs to [start, end).
    (WEEK_START, "weekend", E),
    # At one instant an end comes before a start.
    (utc(2025, 3, 24, 5), "long", E),
    (utc(2025, 3, 24, 5), "handover", S),
    (utc(2025, 3, 24, 6), "handover", E),
    (utc(2025, 3, 24, 21), "nightly", S),
    (utc(2025, 3, 25, 1), "nightly", E),
    (utc(2025, 3, 25, 21), "nightly", S),
    (utc(2025, 3, 26, 1), "nightly", E),
    (utc(2025, 3, 26, 9), "upgrade", S),
    (utc(2025, 3, 26, 11), "upgrade", E),
    (utc(2025, 3, 26, 21), "nightly", S),
    (utc(2025, 3, 27, 1), "nightly", E),
    (utc(2025, 3, 27, 21), "nightly", S),
    (utc(2025, 3, 28, 1), "nightly", E),
    (utc(2025, 3, 28, 21), "nightly", S),
    # Saturday and Sunday touch, so the weekend starts once; it ends at WEEK_END, outside
    # the half-open week.
    (utc(2025, 3, 28, 23), "weekend", S),
    (utc(2025, 3, 29, 1), "nightly", E),
    (utc(2025, 3, 30, 1), "backup", S),
    (utc(2025, 3, 30, 2), "backup", E),
]


def test_transitions_over_a_week() -> None:
    found = transitions(WEEK, WEEK_START, WEEK_END)
    assert found == [Transition(*item) for item in WEEK_TRANSITIONS]
    # Transitions compare equal to plain (at, name, "start"/"end") tuples.
    assert found[1] == (utc(2025, 3, 24, 5), "long", "end")


@pytest.mark.parametrize(
    "middle",
    [
        pytest.param(utc(2025, 3, 26, 9), id="at-a-start"),
        pytest.param(utc(2025, 3, 29, 0, 17), id="inside-two-windows"),
        pytest.param(utc(2025, 3, 24, 5), id="at-an-end-and-a-start"),
    ],
)
def test_transitions_split_anywhere(middle: datetime) -> None:
    # [start, end) intervals that tile the week report each transition exactly once.
    whole = transitions(WEEK, WEEK_START, WEEK_END)
    assert transitions(WEEK, WEEK_START, middle) + transitions(WEEK, middle, WEEK_END) == whole


def test_transitions_agree_with_active() -> None:
    # At each start the window becomes active and was not just before; the reverse at an end;
    # and between transitions nothing changes.
    found = transitions(WEEK, WEEK_START, WEEK_END)
    for at, name, edge in found:
        now = {w.name for w in WEEK.active(at)}
        before = {w.name for w in WEEK.active(at - US)}
        assert (name in now, name in before) == (edge is S, edge is E), (at, name)
    instants = [WEEK_START, *(t.at for t in found), WEEK_END]
    for start, end in itertools.pairwise(instants):
        if start < end:
            assert WEEK.active(start) == WEEK.active(end - US), (start, end)


def test_transitions_when_active_throughout() -> None:
    # A window active over the whole interval neither starts nor ends in it.
    assert transitions([WEEKEND], utc(2025, 1, 11, 1), utc(2025, 1, 12, 23)) == []
    # Overlapping firings make one stretch, with no end in between.
    day = transitions([HALF_HOURLY], utc(2025, 6, 1), utc(2025, 6, 2))
    assert day == []


def test_transitions_empty_interval_and_bad_order() -> None:
    assert transitions(WEEK, utc(2025, 3, 24, 5), utc(2025, 3, 24, 5)) == []
    with pytest.raises(ValueError, match="is before start"):
        transitions(WEEK, WEEK_END, WEEK_START)


NEXT = [
    # The first start or end after the instant.
    pytest.param(WEEK_START, utc(2025, 3, 24, 5), id="from-week-start"),
    # Strictly after: at a transition, the next one.
    pytest.param(utc(2025, 3, 24, 5), utc(2025, 3, 24, 6), id="strictly-after"),
    pytest.param(utc(2025, 3, 29, 1), utc(2025, 3, 30, 1), id="to-spring-forward-backup"),
    # The weekend's end, Monday 00:00 CEST.
    pytest.param(utc(2025, 3, 30, 2), utc(2025, 3, 30, 22), id="end-of-weekend"),
]


@pytest.mark.parametrize(("after", "expected"), NEXT)
def test_next_transition(after: datetime, expected: datetime) -> None:
    assert next_transition(WEEK, after) == expected


def test_next_transition_none() -> None:
    # A one-off window in the past never changes again.
    assert next_transition([ONCE_UTC], utc(2025, 2, 1)) is None
    # Nor does a window that is active all the time.
    always = weekly("mon tue wed thu fri sat sun", "00:00", "24:00", tz="Europe/Berlin")
    assert next_transition([always], utc(2025, 2, 1)) is None
    assert next_transition([], utc(2025, 2, 1)) is None


def test_next_transition_far_ahead() -> None:
    # 29 February 2028 is the next leap day after March 2025.
    leap_day = cron("0 3 29 2 *", "1h")
    assert next_transition([leap_day], utc(2025, 3, 1)) == utc(2028, 2, 29, 3)
    # A 45-minute window every half hour ends only in the repeated autumn hour.
    assert next_transition([HALF_HOURLY], utc(2025, 6, 1)) == utc(2025, 10, 26, 1, 15)
