"""Tests for router.schedules: who is on call, shifts, gaps and handoffs, across DST changes.

Expected instants are written in UTC so that each case states exactly which instant it means,
including in the repeated hour of an autumn night. Europe/Berlin switches on the last Sundays of
March (02:00 CET -> 03:00 CEST) and October (03:00 CEST -> 02:00 CET); America/New_York on the
second Sunday of March (02:00 EST -> 03:00 EDT) and the first of November (02:00 EDT -> 01:00 EST).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Literal

import pytest

from router.oncallschema import Layer, Override, Schedule
from router.schedules import Shift, gaps, next_handoff, on_call, shifts

HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A naive wall-clock time, as an override in a rule file gives it."""
    return datetime(year, month, day, hour, minute)


def layer(rotation: Literal["daily", "weekly"], handoff: str, start: str, members: str) -> Layer:
    return Layer(
        rotation=rotation,
        handoff=handoff,
        start=date.fromisoformat(start),
        members=members.split(),
    )


def schedule(*layers: Layer, tz: str = "UTC", overrides: tuple[Override, ...] = ()) -> Schedule:
    return Schedule(name="oncall", timezone=tz, layers=list(layers), overrides=list(overrides))


def override(person: str, start: datetime, end: datetime) -> Override:
    return Override(person=person, start=start, end=end)


# Daily at 09:00 UTC from Monday 2024-01-01: a, b, c, a, ...
DAILY = schedule(layer("daily", "09:00", "2024-01-01", "a b c"))
# Weekly on Mondays from Wednesday 2024-01-03, so the first handoff is Monday 2024-01-08.
WEEKLY = schedule(layer("weekly", "mon 09:00", "2024-01-03", "a b c"))
# Weekly on Wednesdays from Wednesday 2024-01-03: the first handoff is on the start date.
WEEKLY_ON_START_DAY = schedule(layer("weekly", "wed 09:00", "2024-01-03", "a b"))
# A daily layer under a weekly one that starts on Monday 2024-01-15 at 12:00.
LAYERED = schedule(
    layer("daily", "09:00", "2024-01-01", "a b"),
    layer("weekly", "mon 12:00", "2024-01-10", "x y"),
)
# Layer 2 starts before layer 1: the highest layer that has started wins, not the latest started.
THREE_LAYERS = schedule(
    layer("daily", "09:00", "2024-01-01", "a"),
    layer("daily", "09:00", "2024-01-20", "m"),
    layer("daily", "09:00", "2024-01-10", "t"),
)
# Overrides on top of DAILY: x 12:00-18:00 on Jan 2, y inside it 15:00-16:00, and z from
# 17:00 on Jan 2 over the Jan 3 09:00 handoff until 10:00.
OVERRIDDEN = schedule(
    layer("daily", "09:00", "2024-01-01", "a b c"),
    overrides=(
        override("x", local(2024, 1, 2, 12), local(2024, 1, 2, 18)),
        override("y", local(2024, 1, 2, 15), local(2024, 1, 2, 16)),
        override("z", local(2024, 1, 2, 17), local(2024, 1, 3, 10)),
    ),
)
# An override listed first lies inside one listed later, which hides it completely.
HIDDEN_OVERRIDE = schedule(
    layer("daily", "09:00", "2024-01-01", "a"),
    overrides=(
        override("short", local(2024, 1, 2, 12), local(2024, 1, 2, 13)),
        override("long", local(2024, 1, 2, 10), local(2024, 1, 2, 20)),
    ),
)
# New York: one override in local wall-clock time, one with an explicit UTC offset.
NEW_YORK_OVERRIDES = schedule(
    layer("daily", "09:00", "2024-01-01", "a"),
    tz="America/New_York",
    overrides=(
        override("naive", local(2024, 1, 2, 10), local(2024, 1, 2, 11)),
        override("aware", utc(2024, 1, 2, 10), utc(2024, 1, 2, 11)),
    ),
)
SEVEN = "a b c d e f g"
DAILY_SEVEN = schedule(layer("daily", "09:00", "2024-01-01", SEVEN))
BERLIN_DAILY_SEVEN = schedule(layer("daily", "02:30", "2024-01-01", SEVEN), tz="Europe/Berlin")
WEEKLY_1000 = schedule(layer("weekly", "mon 09:00", "2024-01-01", "a b c"))
# Sundays from 2024-01-07.
NY_1000 = schedule(layer("weekly", "sun 02:30", "2024-01-01", SEVEN), tz="America/New_York")


ON_CALL = [
    # Before the first handoff on the start date the layer has nobody, even at local midnight.
    pytest.param(DAILY, utc(2023, 12, 31, 12), None, id="daily-before-start-date"),
    pytest.param(DAILY, utc(2024, 1, 1, 0), None, id="daily-start-date-midnight"),
    pytest.param(DAILY, utc(2024, 1, 1, 9) - US, None, id="daily-just-before-first-handoff"),
    # The first member's turn begins at the first handoff on the start date.
    pytest.param(DAILY, utc(2024, 1, 1, 9), "a", id="daily-first-handoff"),
    # One microsecond before a handoff is still the outgoing person; at it, the new one.
    pytest.param(DAILY, utc(2024, 1, 2, 9) - US, "a", id="daily-microsecond-before-handoff"),
    pytest.param(DAILY, utc(2024, 1, 2, 9), "b", id="daily-at-handoff"),
    # Turn n goes to members[n % len(members)]: turn 3 wraps to the first member.
    pytest.param(DAILY, utc(2024, 1, 4, 9), "a", id="daily-wraps-around"),
    # `at` may carry any offset; 10:00+01:00 is the 09:00 UTC handoff.
    pytest.param(
        DAILY,
        datetime(2024, 1, 2, 10, tzinfo=timezone(HOUR)),
        "b",
        id="daily-at-with-other-offset",
    ),
    # A weekly layer starts at the first handoff weekday on or after its start date.
    pytest.param(WEEKLY, utc(2024, 1, 7, 23), None, id="weekly-before-first-weekday"),
    pytest.param(WEEKLY, utc(2024, 1, 8, 9), "a", id="weekly-first-handoff"),
    pytest.param(WEEKLY, utc(2024, 1, 15, 9) - US, "a", id="weekly-microsecond-before"),
    pytest.param(WEEKLY, utc(2024, 1, 15, 9), "b", id="weekly-at-handoff"),
    pytest.param(WEEKLY, utc(2024, 1, 29, 9), "a", id="weekly-wraps-around"),
    # A start date on the handoff weekday is itself the first handoff day.
    pytest.param(WEEKLY_ON_START_DAY, utc(2024, 1, 3, 9) - US, None, id="weekly-start-day-before"),
    pytest.param(WEEKLY_ON_START_DAY, utc(2024, 1, 3, 9), "a", id="weekly-start-day-handoff"),
    # Handoff times are local: 09:00 in Berlin in January is 08:00 UTC.
    pytest.param(
        schedule(layer("daily", "09:00", "2024-01-01", "a b"), tz="Europe/Berlin"),
        utc(2024, 1, 1, 8),
        "a",
        id="local-handoff-time",
    ),
    # Long horizons: turn 1000 of a daily rotation (2026-09-27) goes to member 1000 % 7 = g.
    pytest.param(DAILY_SEVEN, utc(2026, 9, 27, 9), "g", id="daily-turn-1000"),
    pytest.param(DAILY_SEVEN, utc(2026, 9, 27, 9) - US, "f", id="daily-turn-999"),
    # ... also when five DST changes lie between: 02:30 CEST on 2026-09-27 is 00:30 UTC.
    pytest.param(BERLIN_DAILY_SEVEN, utc(2026, 9, 27, 0, 30), "g", id="berlin-daily-turn-1000"),
    pytest.param(BERLIN_DAILY_SEVEN, utc(2026, 9, 27, 0, 30) - US, "f", id="berlin-daily-turn-999"),
    # Turn 1000 of a weekly rotation from Monday 2024-01-01 is Monday 2043-03-02: 1000 % 3 = b.
    pytest.param(WEEKLY_1000, utc(2043, 3, 2, 9), "b", id="weekly-turn-1000"),
    pytest.param(WEEKLY_1000, utc(2043, 3, 2, 9) - US, "a", id="weekly-turn-999"),
    # Turn 1000 from Sunday 2024-01-07 is Sunday 2043-03-08, New York's spring-forward day:
    # 02:30 does not exist and the handoff happens at 03:00 EDT, 07:00 UTC.
    pytest.param(NY_1000, utc(2043, 3, 8, 7), "g", id="new-york-weekly-turn-1000-in-gap"),
    pytest.param(NY_1000, utc(2043, 3, 8, 7) - US, "f", id="new-york-weekly-turn-999"),
    # Layers: the lower layer shows until the higher one's first handoff ...
    pytest.param(LAYERED, utc(2024, 1, 15, 12) - US, "a", id="lower-layer-before-higher-starts"),
    # ... from which the higher layer wins everywhere, over every lower handoff too.
    pytest.param(LAYERED, utc(2024, 1, 15, 12), "x", id="higher-layer-at-its-start"),
    pytest.param(LAYERED, utc(2024, 1, 16, 9), "x", id="higher-layer-over-lower-handoff"),
    pytest.param(LAYERED, utc(2024, 1, 22, 12), "y", id="higher-layer-rotates"),
    pytest.param(LAYERED, utc(2025, 6, 1), "y", id="higher-layer-much-later"),
    # The highest started layer wins, whichever started first.
    pytest.param(THREE_LAYERS, utc(2024, 1, 9), "a", id="three-layers-only-bottom"),
    pytest.param(THREE_LAYERS, utc(2024, 1, 12), "t", id="three-layers-top-started"),
    pytest.param(THREE_LAYERS, utc(2024, 1, 25), "t", id="three-layers-top-over-middle"),
    # Overrides cover [start, end): the start is covered, the end is not.
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 12) - US, "b", id="override-microsecond-before"),
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 12), "x", id="override-at-start"),
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 13), "x", id="override-inside"),
    # A later override wins over an earlier one where they overlap ...
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 15, 30), "y", id="later-override-inside-earlier"),
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 17, 30), "z", id="later-override-overlaps-end"),
    # ... and the earlier one resumes at the later one's (exclusive) end.
    pytest.param(OVERRIDDEN, utc(2024, 1, 2, 16), "x", id="earlier-override-resumes"),
    # An override wins over a layer handoff inside it; the layer resumes at its end.
    pytest.param(OVERRIDDEN, utc(2024, 1, 3, 9), "z", id="override-over-handoff"),
    pytest.param(OVERRIDDEN, utc(2024, 1, 3, 10), "c", id="layer-at-override-end"),
    # "Later" is the order in the list, not in time: an earlier-listed override inside a
    # later-listed one never shows.
    pytest.param(HIDDEN_OVERRIDE, utc(2024, 1, 2, 12, 30), "long", id="later-listed-wins"),
    # Naive override times are in the schedule's timezone: 10:00 EST is 15:00 UTC ...
    pytest.param(NEW_YORK_OVERRIDES, utc(2024, 1, 2, 15, 30), "naive", id="naive-override-local"),
    # ... and aware ones are taken as given.
    pytest.param(NEW_YORK_OVERRIDES, utc(2024, 1, 2, 10, 30), "aware", id="aware-override-utc"),
    pytest.param(NEW_YORK_OVERRIDES, utc(2024, 1, 2, 16), "a", id="after-overrides"),
]


@pytest.mark.parametrize(("sched", "at", "person"), ON_CALL)
def test_on_call(sched: Schedule, at: datetime, person: str | None) -> None:
    assert on_call(sched, at) == person


# Daily and weekly rotations with the handoff inside the skipped or repeated hour.
BERLIN_DAILY_SPRING = schedule(
    layer("daily", "02:30", "2024-03-01", "a b"), tz="Europe/Berlin"
)  # 2024-03-31 is turn 30: a
BERLIN_DAILY_AUTUMN = schedule(
    layer("daily", "02:30", "2024-10-01", "a b"), tz="Europe/Berlin"
)  # 2024-10-27 is turn 26: a
BERLIN_WEEKLY_SPRING = schedule(
    layer("weekly", "sun 02:30", "2024-03-01", "a b c"), tz="Europe/Berlin"
)  # Sundays from 03-03; 2024-03-31 is turn 4: b
BERLIN_WEEKLY_AUTUMN = schedule(
    layer("weekly", "sun 02:30", "2024-10-01", "a b"), tz="Europe/Berlin"
)  # Sundays from 10-06; 2024-10-27 is turn 3: b
NEW_YORK_DAILY_SPRING = schedule(
    layer("daily", "02:30", "2024-03-01", "a b"), tz="America/New_York"
)  # 2024-03-10 is turn 9: b
NEW_YORK_DAILY_AUTUMN = schedule(
    layer("daily", "01:30", "2024-11-01", "a b"), tz="America/New_York"
)  # 2024-11-03 is turn 2: a
NEW_YORK_WEEKLY_SPRING = schedule(
    layer("weekly", "sun 02:30", "2024-03-01", "a b"), tz="America/New_York"
)  # Sundays from 03-03; 2024-03-10 is turn 1: b
NEW_YORK_WEEKLY_AUTUMN = schedule(
    layer("weekly", "sun 01:30", "2024-10-01", "a b c"), tz="America/New_York"
)  # Sundays from 10-06; 2024-11-03 is turn 4: b
# Weekly on Mondays at 09:00 Berlin time, over the spring change.
BERLIN_MONDAYS = schedule(layer("weekly", "mon 09:00", "2024-03-18", "a b"), tz="Europe/Berlin")
# Naive override starts inside the skipped hour and inside the repeated hour.
DST_OVERRIDES = schedule(
    layer("daily", "12:00", "2024-01-01", "a"),
    tz="Europe/Berlin",
    overrides=(
        override("spring", local(2024, 3, 31, 2, 30), local(2024, 3, 31, 5)),
        override("autumn", local(2024, 10, 27, 2, 30), local(2024, 10, 27, 5)),
    ),
)

DST_ON_CALL = [
    # Spring forward, Berlin: 02:30 does not exist on 03-31, so the handoff happens at the first
    # valid instant after the gap, 03:00 CEST = 01:00 UTC ...
    pytest.param(
        BERLIN_DAILY_SPRING, utc(2024, 3, 31, 1) - US, "b", id="berlin-daily-spring-before"
    ),
    pytest.param(BERLIN_DAILY_SPRING, utc(2024, 3, 31, 1), "a", id="berlin-daily-spring-at-03:00"),
    # ... not at 03:30 CEST, where zoneinfo's fold=0 reading of 02:30 would put it.
    pytest.param(BERLIN_DAILY_SPRING, utc(2024, 3, 31, 1, 29), "a", id="berlin-daily-spring-03:29"),
    # The next day's handoff is back at 02:30 local, now 00:30 UTC.
    pytest.param(
        BERLIN_DAILY_SPRING, utc(2024, 4, 1, 0, 30) - US, "a", id="berlin-daily-after-spring"
    ),
    pytest.param(
        BERLIN_DAILY_SPRING, utc(2024, 4, 1, 0, 30), "b", id="berlin-daily-after-spring-at"
    ),
    # Fall back, Berlin: 02:30 happens twice on 10-27; the handoff is at the first, 02:30 CEST
    # = 00:30 UTC ...
    pytest.param(
        BERLIN_DAILY_AUTUMN, utc(2024, 10, 27, 0, 30) - US, "b", id="berlin-daily-fall-before"
    ),
    pytest.param(BERLIN_DAILY_AUTUMN, utc(2024, 10, 27, 0, 30), "a", id="berlin-daily-fall-first"),
    # ... and the second 02:30 (CET, 01:30 UTC) is no second handoff.
    pytest.param(BERLIN_DAILY_AUTUMN, utc(2024, 10, 27, 1, 30), "a", id="berlin-daily-fall-second"),
    # The next day's 02:30 CET is 01:30 UTC.
    pytest.param(
        BERLIN_DAILY_AUTUMN, utc(2024, 10, 28, 1, 30) - US, "a", id="berlin-daily-after-fall"
    ),
    pytest.param(
        BERLIN_DAILY_AUTUMN, utc(2024, 10, 28, 1, 30), "b", id="berlin-daily-after-fall-at"
    ),
    # The same rules for weekly rotations whose handoff falls on the changeover Sunday.
    pytest.param(
        BERLIN_WEEKLY_SPRING, utc(2024, 3, 31, 1) - US, "a", id="berlin-weekly-spring-before"
    ),
    pytest.param(
        BERLIN_WEEKLY_SPRING, utc(2024, 3, 31, 1), "b", id="berlin-weekly-spring-at-03:00"
    ),
    pytest.param(
        BERLIN_WEEKLY_AUTUMN, utc(2024, 10, 27, 0, 30) - US, "a", id="berlin-weekly-fall-before"
    ),
    pytest.param(
        BERLIN_WEEKLY_AUTUMN, utc(2024, 10, 27, 0, 30), "b", id="berlin-weekly-fall-first"
    ),
    pytest.param(
        BERLIN_WEEKLY_AUTUMN, utc(2024, 10, 27, 1, 30), "b", id="berlin-weekly-fall-second"
    ),
    # Spring forward, New York: 02:30 on 03-10 does not exist; 03:00 EDT is 07:00 UTC.
    pytest.param(NEW_YORK_DAILY_SPRING, utc(2024, 3, 10, 7) - US, "a", id="ny-daily-spring-before"),
    pytest.param(NEW_YORK_DAILY_SPRING, utc(2024, 3, 10, 7), "b", id="ny-daily-spring-at-03:00"),
    pytest.param(
        NEW_YORK_WEEKLY_SPRING, utc(2024, 3, 10, 7) - US, "a", id="ny-weekly-spring-before"
    ),
    pytest.param(NEW_YORK_WEEKLY_SPRING, utc(2024, 3, 10, 7), "b", id="ny-weekly-spring-at-03:00"),
    # Fall back, New York: 01:30 on 11-03 happens twice; the first is 01:30 EDT = 05:30 UTC,
    # the second (06:30 UTC) is no second handoff.
    pytest.param(
        NEW_YORK_DAILY_AUTUMN, utc(2024, 11, 3, 5, 30) - US, "b", id="ny-daily-fall-before"
    ),
    pytest.param(NEW_YORK_DAILY_AUTUMN, utc(2024, 11, 3, 5, 30), "a", id="ny-daily-fall-first"),
    pytest.param(NEW_YORK_DAILY_AUTUMN, utc(2024, 11, 3, 6, 30), "a", id="ny-daily-fall-second"),
    pytest.param(
        NEW_YORK_WEEKLY_AUTUMN, utc(2024, 11, 3, 5, 30) - US, "a", id="ny-weekly-fall-before"
    ),
    pytest.param(NEW_YORK_WEEKLY_AUTUMN, utc(2024, 11, 3, 5, 30), "b", id="ny-weekly-fall-first"),
    pytest.param(NEW_YORK_WEEKLY_AUTUMN, utc(2024, 11, 3, 6, 30), "b", id="ny-weekly-fall-second"),
    # A handoff outside the changeover hours keeps its wall-clock time: Monday 09:00 in Berlin is
    # 08:00 UTC before the change and 07:00 UTC after it.
    pytest.param(BERLIN_MONDAYS, utc(2024, 3, 25, 8), "b", id="berlin-weekly-09:00-before-change"),
    pytest.param(
        BERLIN_MONDAYS, utc(2024, 4, 1, 7) - US, "b", id="berlin-weekly-09:00-after-before"
    ),
    pytest.param(BERLIN_MONDAYS, utc(2024, 4, 1, 7), "a", id="berlin-weekly-09:00-after-change"),
    # A naive override time inside the spring gap also moves to 03:00 CEST (01:00 UTC), and an
    # ambiguous one means its first occurrence (02:30 CEST = 00:30 UTC).
    pytest.param(DST_OVERRIDES, utc(2024, 3, 31, 1) - US, "a", id="override-start-in-gap-before"),
    pytest.param(DST_OVERRIDES, utc(2024, 3, 31, 1), "spring", id="override-start-in-gap"),
    pytest.param(DST_OVERRIDES, utc(2024, 10, 27, 0, 30) - US, "a", id="override-ambiguous-before"),
    pytest.param(DST_OVERRIDES, utc(2024, 10, 27, 0, 30), "autumn", id="override-ambiguous-first"),
]


@pytest.mark.parametrize(("sched", "at", "person"), DST_ON_CALL)
def test_on_call_across_dst(sched: Schedule, at: datetime, person: str | None) -> None:
    assert on_call(sched, at) == person


def _daily(tz: str, handoff: str, start: str, members: str = "a b") -> Schedule:
    return schedule(layer("daily", handoff, start, members), tz=tz)


def _weekly(tz: str, handoff: str, start: str, members: str = "a b") -> Schedule:
    return schedule(layer("weekly", handoff, start, members), tz=tz)


L0 = "layer 0"

SHIFTS = [
    # Daily 09:00 in Berlin: the shift over the spring-forward night lasts 23 hours ...
    pytest.param(
        _daily("Europe/Berlin", "09:00", "2024-03-29"),
        utc(2024, 3, 29, 8),
        utc(2024, 4, 1, 7),
        [
            Shift("a", utc(2024, 3, 29, 8), utc(2024, 3, 30, 8), L0),
            Shift("b", utc(2024, 3, 30, 8), utc(2024, 3, 31, 7), L0),
            Shift("a", utc(2024, 3, 31, 7), utc(2024, 4, 1, 7), L0),
        ],
        [24, 23, 24],
        id="berlin-daily-spring-23h",
    ),
    # ... and the one over the fall-back night 25 hours.
    pytest.param(
        _daily("Europe/Berlin", "09:00", "2024-10-25"),
        utc(2024, 10, 25, 7),
        utc(2024, 10, 28, 8),
        [
            Shift("a", utc(2024, 10, 25, 7), utc(2024, 10, 26, 7), L0),
            Shift("b", utc(2024, 10, 26, 7), utc(2024, 10, 27, 8), L0),
            Shift("a", utc(2024, 10, 27, 8), utc(2024, 10, 28, 8), L0),
        ],
        [24, 25, 24],
        id="berlin-daily-fall-25h",
    ),
    # The same in New York.
    pytest.param(
        _daily("America/New_York", "09:00", "2024-03-08"),
        utc(2024, 3, 8, 14),
        utc(2024, 3, 11, 13),
        [
            Shift("a", utc(2024, 3, 8, 14), utc(2024, 3, 9, 14), L0),
            Shift("b", utc(2024, 3, 9, 14), utc(2024, 3, 10, 13), L0),
            Shift("a", utc(2024, 3, 10, 13), utc(2024, 3, 11, 13), L0),
        ],
        [24, 23, 24],
        id="new-york-daily-spring-23h",
    ),
    pytest.param(
        _daily("America/New_York", "09:00", "2024-11-01"),
        utc(2024, 11, 1, 13),
        utc(2024, 11, 4, 14),
        [
            Shift("a", utc(2024, 11, 1, 13), utc(2024, 11, 2, 13), L0),
            Shift("b", utc(2024, 11, 2, 13), utc(2024, 11, 3, 14), L0),
            Shift("a", utc(2024, 11, 3, 14), utc(2024, 11, 4, 14), L0),
        ],
        [24, 25, 24],
        id="new-york-daily-fall-25h",
    ),
    # Weekly rotations: 167 hours over the spring change, 169 over the autumn one.
    pytest.param(
        _weekly("Europe/Berlin", "mon 09:00", "2024-03-25"),
        utc(2024, 3, 25, 8),
        utc(2024, 4, 1, 7),
        [Shift("a", utc(2024, 3, 25, 8), utc(2024, 4, 1, 7), L0)],
        [167],
        id="berlin-weekly-spring-167h",
    ),
    pytest.param(
        _weekly("Europe/Berlin", "mon 09:00", "2024-10-21"),
        utc(2024, 10, 21, 7),
        utc(2024, 10, 28, 8),
        [Shift("a", utc(2024, 10, 21, 7), utc(2024, 10, 28, 8), L0)],
        [169],
        id="berlin-weekly-fall-169h",
    ),
    pytest.param(
        _weekly("America/New_York", "mon 09:00", "2024-03-04"),
        utc(2024, 3, 4, 14),
        utc(2024, 3, 11, 13),
        [Shift("a", utc(2024, 3, 4, 14), utc(2024, 3, 11, 13), L0)],
        [167],
        id="new-york-weekly-spring-167h",
    ),
    pytest.param(
        _weekly("America/New_York", "mon 09:00", "2024-10-28"),
        utc(2024, 10, 28, 13),
        utc(2024, 11, 4, 14),
        [Shift("a", utc(2024, 10, 28, 13), utc(2024, 11, 4, 14), L0)],
        [169],
        id="new-york-weekly-fall-169h",
    ),
    # A handoff at 02:30 moves to 03:00 on the spring-forward day: both shifts touching it are
    # 23.5 hours (02:30 CET -> 03:00 CEST, then 03:00 CEST -> 02:30 CEST).
    pytest.param(
        _daily("Europe/Berlin", "02:30", "2024-03-30"),
        utc(2024, 3, 30, 1, 30),
        utc(2024, 4, 1, 0, 30),
        [
            Shift("a", utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1), L0),
            Shift("b", utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30), L0),
        ],
        [23.5, 23.5],
        id="berlin-daily-02:30-spring",
    ),
    # At the first 02:30 on the fall-back day: 24 hours before it, 25 after.
    pytest.param(
        _daily("Europe/Berlin", "02:30", "2024-10-26"),
        utc(2024, 10, 26, 0, 30),
        utc(2024, 10, 28, 1, 30),
        [
            Shift("a", utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), L0),
            Shift("b", utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30), L0),
        ],
        [24, 25],
        id="berlin-daily-02:30-fall",
    ),
    # Consecutive turns of the same person merge into one shift.
    pytest.param(
        schedule(layer("daily", "09:00", "2024-01-01", "a a b")),
        utc(2024, 1, 1, 9),
        utc(2024, 1, 4, 9),
        [
            Shift("a", utc(2024, 1, 1, 9), utc(2024, 1, 3, 9), L0),
            Shift("b", utc(2024, 1, 3, 9), utc(2024, 1, 4, 9), L0),
        ],
        [48, 24],
        id="same-person-merged",
    ),
    # An override for someone else splits a shift; the pieces on either side stay apart.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-01", "a b"),
            overrides=(override("x", local(2024, 1, 1, 12), local(2024, 1, 1, 15)),),
        ),
        utc(2024, 1, 1, 9),
        utc(2024, 1, 2, 9),
        [
            Shift("a", utc(2024, 1, 1, 9), utc(2024, 1, 1, 12), L0),
            Shift("x", utc(2024, 1, 1, 12), utc(2024, 1, 1, 15), "override 0"),
            Shift("a", utc(2024, 1, 1, 15), utc(2024, 1, 2, 9), L0),
        ],
        [3, 3, 18],
        id="override-splits-shift",
    ),
    # An override for the person already on call merges with it, listing both sources.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-01", "a b"),
            overrides=(override("a", local(2024, 1, 2, 6), local(2024, 1, 2, 12)),),
        ),
        utc(2024, 1, 1, 9),
        utc(2024, 1, 3, 9),
        [
            Shift("a", utc(2024, 1, 1, 9), utc(2024, 1, 2, 12), "layer 0, override 0"),
            Shift("b", utc(2024, 1, 2, 12), utc(2024, 1, 3, 9), L0),
        ],
        [27, 21],
        id="override-same-person-merged",
    ),
    # Shifts are clipped to the window.
    pytest.param(
        DAILY,
        utc(2024, 1, 1, 12),
        utc(2024, 1, 2, 10),
        [
            Shift("a", utc(2024, 1, 1, 12), utc(2024, 1, 2, 9), L0),
            Shift("b", utc(2024, 1, 2, 9), utc(2024, 1, 2, 10), L0),
        ],
        [21, 1],
        id="clipped-to-window",
    ),
    # Nobody on call before the layer starts: no shift there.
    pytest.param(
        DAILY,
        utc(2023, 12, 31, 12),
        utc(2024, 1, 1, 12),
        [Shift("a", utc(2024, 1, 1, 9), utc(2024, 1, 1, 12), L0)],
        [3],
        id="gap-left-out",
    ),
    # The lower layer until the higher one starts, which then covers every lower handoff.
    pytest.param(
        LAYERED,
        utc(2024, 1, 15),
        utc(2024, 1, 17),
        [
            Shift("b", utc(2024, 1, 15), utc(2024, 1, 15, 9), L0),
            Shift("a", utc(2024, 1, 15, 9), utc(2024, 1, 15, 12), L0),
            Shift("x", utc(2024, 1, 15, 12), utc(2024, 1, 17), "layer 1"),
        ],
        [9, 3, 36],
        id="layers",
    ),
    # Overlapping overrides: the later one wins, the earlier resumes after it.
    pytest.param(
        OVERRIDDEN,
        utc(2024, 1, 2, 9),
        utc(2024, 1, 3, 12),
        [
            Shift("b", utc(2024, 1, 2, 9), utc(2024, 1, 2, 12), L0),
            Shift("x", utc(2024, 1, 2, 12), utc(2024, 1, 2, 15), "override 0"),
            Shift("y", utc(2024, 1, 2, 15), utc(2024, 1, 2, 16), "override 1"),
            Shift("x", utc(2024, 1, 2, 16), utc(2024, 1, 2, 17), "override 0"),
            Shift("z", utc(2024, 1, 2, 17), utc(2024, 1, 3, 10), "override 2"),
            Shift("c", utc(2024, 1, 3, 10), utc(2024, 1, 3, 12), L0),
        ],
        [3, 3, 1, 1, 17, 2],
        id="overlapping-overrides",
    ),
    # An empty window has no shifts.
    pytest.param(DAILY, utc(2024, 1, 2), utc(2024, 1, 2), [], [], id="empty-window"),
]


@pytest.mark.parametrize(("sched", "start", "end", "expected", "hours"), SHIFTS)
def test_shifts(
    sched: Schedule,
    start: datetime,
    end: datetime,
    expected: list[Shift],
    hours: list[float],
) -> None:
    result = shifts(sched, start, end)
    assert result == expected
    assert [(s.end - s.start) / HOUR for s in result] == hours


GAPS = [
    # Nobody is on call before the first handoff.
    pytest.param(
        DAILY,
        utc(2023, 12, 31),
        utc(2024, 1, 2),
        [(utc(2023, 12, 31), utc(2024, 1, 1, 9))],
        id="before-start",
    ),
    # A started rotation never leaves a gap.
    pytest.param(DAILY, utc(2024, 1, 2), utc(2024, 3, 1), [], id="none-after-start"),
    # A window wholly before the start is one gap.
    pytest.param(
        DAILY,
        utc(2023, 12, 1),
        utc(2023, 12, 2),
        [(utc(2023, 12, 1), utc(2023, 12, 2))],
        id="whole-window",
    ),
    # An override before the layer starts fills part of the gap and splits it.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-01", "a"),
            overrides=(override("x", local(2023, 12, 31, 10), local(2023, 12, 31, 12)),),
        ),
        utc(2023, 12, 31),
        utc(2024, 1, 1, 12),
        [(utc(2023, 12, 31), utc(2023, 12, 31, 10)), (utc(2023, 12, 31, 12), utc(2024, 1, 1, 9))],
        id="override-splits-gap",
    ),
    # An override reaching into the rotation closes the gap at its start.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-01", "a"),
            overrides=(override("x", local(2023, 12, 31, 20), local(2024, 1, 1, 10)),),
        ),
        utc(2023, 12, 31),
        utc(2024, 1, 1, 12),
        [(utc(2023, 12, 31), utc(2023, 12, 31, 20))],
        id="override-bridges-to-layer",
    ),
    # The gap lasts until the earliest layer starts, whichever its position.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-10", "a"),
            layer("daily", "09:00", "2024-01-05", "x"),
        ),
        utc(2024, 1, 1),
        utc(2024, 1, 20),
        [(utc(2024, 1, 1), utc(2024, 1, 5, 9))],
        id="earliest-layer-ends-gap",
    ),
    # A first handoff inside the spring gap (02:30 Berlin) ends the gap at 03:00 CEST.
    pytest.param(
        _daily("Europe/Berlin", "02:30", "2024-03-31"),
        utc(2024, 3, 30),
        utc(2024, 4, 1),
        [(utc(2024, 3, 30), utc(2024, 3, 31, 1))],
        id="gap-ends-after-dst-gap",
    ),
]


@pytest.mark.parametrize(("sched", "start", "end", "expected"), GAPS)
def test_gaps(
    sched: Schedule, start: datetime, end: datetime, expected: list[tuple[datetime, datetime]]
) -> None:
    assert gaps(sched, start, end) == expected


ONE_PERSON_WITH_OVERRIDE = schedule(
    layer("daily", "09:00", "2024-01-01", "a"),
    overrides=(override("x", local(2024, 1, 5, 12), local(2024, 1, 6, 12)),),
)
# A one-member weekly layer from Monday 2024-01-15 12:00 over a rotating daily one.
ONE_ON_TOP = schedule(
    layer("daily", "09:00", "2024-01-01", "a b"),
    layer("weekly", "mon 12:00", "2024-01-10", "x"),
)

NEXT_HANDOFF = [
    # The next layer handoff after `at`.
    pytest.param(DAILY, utc(2024, 1, 1, 12), utc(2024, 1, 2, 9), id="daily-next"),
    pytest.param(WEEKLY, utc(2024, 1, 8, 12), utc(2024, 1, 15, 9), id="weekly-next"),
    # Strictly after `at`: at a handoff, the following one; a microsecond before, that one.
    pytest.param(DAILY, utc(2024, 1, 2, 9), utc(2024, 1, 3, 9), id="at-handoff"),
    pytest.param(DAILY, utc(2024, 1, 2, 9) - US, utc(2024, 1, 2, 9), id="microsecond-before"),
    # Before the layer starts, the first handoff (from nobody to the first member).
    pytest.param(DAILY, utc(2023, 12, 1), utc(2024, 1, 1, 9), id="before-start"),
    # A one-member layer, or one whose members are all the same, never hands off.
    pytest.param(
        schedule(layer("daily", "09:00", "2024-01-01", "a")), utc(2024, 1, 5), None, id="one-member"
    ),
    pytest.param(
        schedule(layer("weekly", "mon 09:00", "2024-01-01", "a a")),
        utc(2024, 1, 5),
        None,
        id="identical-members",
    ),
    # A handoff to the same person is skipped.
    pytest.param(
        schedule(layer("daily", "09:00", "2024-01-01", "a a b")),
        utc(2024, 1, 1, 10),
        utc(2024, 1, 3, 9),
        id="same-person-continues",
    ),
    # Far ahead: four turns of the same person, then someone else.
    pytest.param(
        schedule(layer("weekly", "mon 09:00", "2024-01-01", "a a a a b")),
        utc(2024, 1, 1, 10),
        utc(2024, 1, 29, 9),
        id="four-weeks-ahead",
    ),
    # Overrides hand off at their start and end.
    pytest.param(
        ONE_PERSON_WITH_OVERRIDE, utc(2024, 1, 2), utc(2024, 1, 5, 12), id="override-start"
    ),
    pytest.param(
        ONE_PERSON_WITH_OVERRIDE, utc(2024, 1, 5, 12), utc(2024, 1, 6, 12), id="override-end"
    ),
    pytest.param(ONE_PERSON_WITH_OVERRIDE, utc(2024, 1, 6, 12), None, id="after-last-override"),
    # An override for the person already on call is no handoff.
    pytest.param(
        schedule(
            layer("daily", "09:00", "2024-01-01", "a"),
            overrides=(override("a", local(2024, 1, 5, 12), local(2024, 1, 6, 12)),),
        ),
        utc(2024, 1, 2),
        None,
        id="override-same-person",
    ),
    # Lower-layer handoffs hidden by a higher layer are skipped ...
    pytest.param(LAYERED, utc(2024, 1, 16), utc(2024, 1, 22, 12), id="hidden-lower-handoffs"),
    # ... and the higher layer's first handoff is one.
    pytest.param(LAYERED, utc(2024, 1, 15, 10), utc(2024, 1, 15, 12), id="higher-layer-starts"),
    # A one-member top layer ends all handoffs once it starts, whatever rotates below it.
    pytest.param(
        ONE_ON_TOP, utc(2024, 1, 15, 10), utc(2024, 1, 15, 12), id="one-member-top-starts"
    ),
    pytest.param(ONE_ON_TOP, utc(2024, 1, 16), None, id="one-member-top-started"),
    # DST: a handoff inside the spring gap happens at 03:00 CEST (01:00 UTC) ...
    pytest.param(BERLIN_DAILY_SPRING, utc(2024, 3, 30, 12), utc(2024, 3, 31, 1), id="berlin-gap"),
    pytest.param(NEW_YORK_DAILY_SPRING, utc(2024, 3, 9, 12), utc(2024, 3, 10, 7), id="ny-gap"),
    # ... an ambiguous one at its first occurrence, and the next one day of local time later.
    pytest.param(
        BERLIN_WEEKLY_AUTUMN, utc(2024, 10, 26), utc(2024, 10, 27, 0, 30), id="berlin-ambiguous"
    ),
    pytest.param(
        BERLIN_WEEKLY_AUTUMN,
        utc(2024, 10, 27, 0, 30),
        utc(2024, 11, 3, 1, 30),
        id="berlin-after-ambiguous",
    ),
    pytest.param(
        NEW_YORK_DAILY_AUTUMN, utc(2024, 11, 2, 12), utc(2024, 11, 3, 5, 30), id="ny-ambiguous"
    ),
    pytest.param(
        NEW_YORK_DAILY_AUTUMN,
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),
        id="ny-after-ambiguous",
    ),
    # Long horizon: the handoff after turn 999 of a daily Berlin rotation is at 02:30 CEST.
    pytest.param(
        BERLIN_DAILY_SEVEN,
        utc(2026, 9, 26, 12),
        utc(2026, 9, 27, 0, 30),
        id="berlin-turn-1000",
    ),
]


@pytest.mark.parametrize(("sched", "at", "expected"), NEXT_HANDOFF)
def test_next_handoff(sched: Schedule, at: datetime, expected: datetime | None) -> None:
    assert next_handoff(sched, at) == expected


# Schedules that mix everything, for the checks that the functions agree with each other.
MIXED = [
    # Two rotations and overlapping overrides, in UTC.
    pytest.param(OVERRIDDEN, utc(2023, 12, 30), utc(2024, 2, 1), id="overrides"),
    pytest.param(LAYERED, utc(2024, 1, 1), utc(2024, 3, 1), id="layers"),
    # A Berlin year with handoffs inside the skipped and repeated hours and DST overrides.
    pytest.param(
        schedule(
            layer("daily", "02:30", "2024-01-01", "a b c"),
            layer("weekly", "sun 02:30", "2024-06-01", "x y"),
            tz="Europe/Berlin",
            overrides=(
                override("o", local(2024, 3, 31, 2, 30), local(2024, 4, 2, 2, 30)),
                override("p", local(2024, 10, 27, 2, 30), local(2024, 10, 27, 2, 45)),
            ),
        ),
        utc(2023, 12, 1),
        utc(2025, 1, 1),
        id="berlin-year",
    ),
    # A New York year, weekly under daily.
    pytest.param(
        schedule(
            layer("weekly", "sun 01:30", "2024-01-01", "a b c"),
            layer("daily", "02:30", "2024-07-01", "x y z"),
            tz="America/New_York",
        ),
        utc(2024, 1, 1),
        utc(2025, 1, 1),
        id="new-york-year",
    ),
]


@pytest.mark.parametrize(("sched", "start", "end"), MIXED)
def test_shifts_and_gaps_tile_the_window(sched: Schedule, start: datetime, end: datetime) -> None:
    # Every instant of the window is in exactly one shift or gap, in order, without overlap.
    pieces = sorted([(s.start, s.end) for s in shifts(sched, start, end)] + gaps(sched, start, end))
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


@pytest.mark.parametrize(("sched", "start", "end"), MIXED)
def test_shifts_agree_with_on_call(sched: Schedule, start: datetime, end: datetime) -> None:
    # A shift's person is on call from its first to its last microsecond, and merged shifts
    # really are different people from their neighbours.
    result = shifts(sched, start, end)
    for shift in result:
        assert on_call(sched, shift.start) == shift.person
        assert on_call(sched, shift.end - US) == shift.person
    for before, after in itertools.pairwise(result):
        assert before.end < after.start or before.person != after.person


@pytest.mark.parametrize(("sched", "start", "end"), MIXED)
def test_next_handoff_walks_the_shifts(sched: Schedule, start: datetime, end: datetime) -> None:
    # Following next_handoff from the window's start visits every shift and gap boundary.
    boundaries = sorted(
        {s.start for s in shifts(sched, start, end)}
        | {s.end for s in shifts(sched, start, end)}
        | {g for gap in gaps(sched, start, end) for g in gap}
    )
    visited = [start]
    while (following := next_handoff(sched, visited[-1])) is not None and following < end:
        visited.append(following)
    assert visited == [b for b in boundaries if b < end]


def test_results_are_utc() -> None:
    # Callers compare and print results without caring which zone they were computed in.
    sched = _daily("Europe/Berlin", "09:00", "2024-03-01")
    start = datetime(2024, 3, 30, tzinfo=timezone(timedelta(hours=5)))
    end = start + 3 * timedelta(days=1)
    instants = [s.start for s in shifts(sched, start, end)] + [
        s.end for s in shifts(sched, start, end)
    ]
    instants += [g for gap in gaps(sched, utc(2024, 2, 28), end) for g in gap]
    handoff = next_handoff(sched, start)
    assert handoff is not None
    instants.append(handoff)
    assert instants
    assert all(instant.tzinfo is UTC for instant in instants)


NAIVE = datetime(2024, 1, 2, 9)


@pytest.mark.parametrize(
    "call",
    [
        # `at`, `start` and `end` must be aware: a naive instant has no single meaning.
        pytest.param(lambda: on_call(DAILY, NAIVE), id="on_call"),
        pytest.param(lambda: next_handoff(DAILY, NAIVE), id="next_handoff"),
        pytest.param(lambda: shifts(DAILY, NAIVE, utc(2024, 1, 3)), id="shifts-start"),
        pytest.param(lambda: shifts(DAILY, utc(2024, 1, 1), NAIVE), id="shifts-end"),
        pytest.param(lambda: gaps(DAILY, NAIVE, utc(2024, 1, 3)), id="gaps-start"),
        # A window that ends before it starts is a caller's mistake, not an empty answer.
        pytest.param(lambda: shifts(DAILY, utc(2024, 1, 3), utc(2024, 1, 2)), id="shifts-reversed"),
        pytest.param(lambda: gaps(DAILY, utc(2024, 1, 3), utc(2024, 1, 2)), id="gaps-reversed"),
    ],
)
def test_rejects_bad_instants(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"aware|before start"):
        call()
