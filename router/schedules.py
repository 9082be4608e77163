"""Who is on call: pure functions over a `Schedule` and instants passed in by the caller.

A schedule is a stack of rotation layers under dated overrides (see `router/oncallschema.py`).
Every function here takes aware datetimes, returns aware datetimes in UTC, and never reads the
clock.

Rotations are counted in local calendar days or weeks, and each handoff is placed at its local
wall-clock time in the schedule's timezone, so handoffs stay at 09:00 across DST changes: the
daily shift spanning the spring-forward night lasts 23 hours, the autumn one 25. A local time
that does not exist (02:30 in Europe/Berlin on the last Sunday of March) means the first valid
instant after the gap (03:00 local); an ambiguous one (02:30 on the last Sunday of October) means
its first occurrence.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import count
from zoneinfo import ZoneInfo

from router.oncallschema import Layer, Schedule

__all__ = ["Shift", "gaps", "next_handoff", "on_call", "shifts"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_STEP_DAYS = {"daily": 1, "weekly": 7}


@dataclass(frozen=True, slots=True)
class Shift:
    """One stretch of the final timeline: `person` is on call over [start, end), in UTC.

    `source` names what put them there, "layer 0" or "override 2" (indexes into the schedule's
    lists); when adjacent pieces of the same person are merged it lists each distinct source in
    order, "layer 0, override 2".
    """

    person: str
    start: datetime
    end: datetime
    source: str


def on_call(schedule: Schedule, at: datetime) -> str | None:
    """The person on call at the aware instant `at`, or None if nobody is.

    The last override in the list covering `at` wins (an override covers [start, end)); otherwise
    the highest layer (last in the list) that has started; None before every layer's first
    handoff. Raises ValueError if `at` is naive.
    """
    holder = _Compiled(schedule).holder(_utc(at, "at"))
    return None if holder is None else holder[0]


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The final timeline over [start, end): who is on call, in order, clipped to the window.

    Adjacent stretches of the same person are merged into one shift, whatever put them there;
    periods with nobody on call are left out (see `gaps`). Raises ValueError if `start` or `end`
    is naive or `end` is before `start`.
    """
    compiled, window_start, window_end = _prepare(schedule, start, end)
    result: list[Shift] = []
    for piece_start, piece_end, holder in compiled.pieces(window_start, window_end):
        if holder is None:
            continue
        person, source = holder
        last = result[-1] if result else None
        if last is not None and last.person == person and last.end == piece_start:
            sources = last.source.split(", ")
            merged = last.source if source in sources else f"{last.source}, {source}"
            result[-1] = Shift(person, last.start, piece_end, merged)
        else:
            result.append(Shift(person, piece_start, piece_end, source))
    return result


def gaps(schedule: Schedule, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The periods within [start, end) when nobody is on call, as (start, end) pairs in UTC.

    Raises ValueError if `start` or `end` is naive or `end` is before `start`.
    """
    compiled, window_start, window_end = _prepare(schedule, start, end)
    result: list[tuple[datetime, datetime]] = []
    for piece_start, piece_end, holder in compiled.pieces(window_start, window_end):
        if holder is not None:
            continue
        if result and result[-1][1] == piece_start:
            result[-1] = (result[-1][0], piece_end)
        else:
            result.append((piece_start, piece_end))
    return result


def next_handoff(schedule: Schedule, at: datetime) -> datetime | None:
    """The first instant after `at` at which someone else (or nobody) becomes on call.

    A layer handoff hidden by a higher layer or an override, or one that passes the pager to the
    same person, is not a handoff for the responder and is skipped. None if the on-call person
    never changes again (e.g. a one-member layer with no overrides ahead). Raises ValueError if
    `at` is naive.
    """
    compiled = _Compiled(schedule)
    now = _utc(at, "at")
    current = compiled.holder(now)
    person = None if current is None else current[0]
    for instant in compiled.boundaries(now, compiled.settled_limit(now)):
        holder = compiled.holder(instant)
        if (None if holder is None else holder[0]) != person:
            return instant
    return None


# --- internals -------------------------------------------------------------------------------


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a timezone), got {value!r}")
    # Everything internal is in UTC: Python compares and subtracts two datetimes that share a
    # tzinfo by wall clock, ignoring `fold`, which is wrong across a DST change.
    return value.astimezone(UTC)


def _prepare(
    schedule: Schedule, start: datetime, end: datetime
) -> tuple[_Compiled, datetime, datetime]:
    window_start, window_end = _utc(start, "start"), _utc(end, "end")
    if window_end < window_start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    return _Compiled(schedule), window_start, window_end


def _local_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of a naive local wall-clock time in `zone`.

    An ambiguous time (the repeated hour in autumn) takes `wall.fold`, 0 unless the caller set it,
    i.e. the first occurrence. A time inside a spring-forward gap moves to the first valid instant
    after the gap: 02:30 on a night that jumps from 02:00 to 03:00 becomes 03:00. zoneinfo alone
    would instead apply the offset from before the gap for fold=0 (03:30, half an hour into the
    next shift) or from after it for fold=1 (01:30, before the wall time asked for).
    """
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall.replace(fold=0):
        return instant
    # `wall` does not exist. Its fold=1 reading (offset after the gap) lands before the
    # transition and its fold=0 reading (offset before the gap) after it, so the transition lies
    # between them: bisect for the first microsecond carrying the offset after the gap.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = before, after
    offset_before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) // 2
        if middle.astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True, slots=True)
class _Rotation:
    """One layer as arithmetic: turn n starts at `at` on local date `first + n * step_days`."""

    zone: tzinfo
    first: date
    step_days: int
    at: time
    members: tuple[str, ...]

    @classmethod
    def of(cls, layer: Layer, zone: tzinfo) -> _Rotation:
        step = _STEP_DAYS[layer.rotation]
        if layer.rotation == "weekly":
            day, clock = layer.handoff.split(" ")
            ahead = (_WEEKDAYS.index(day) - layer.start.weekday()) % 7
            first = layer.start + timedelta(days=ahead)
        else:
            clock, first = layer.handoff, layer.start
        hour, minute = clock.split(":")
        return cls(zone, first, step, time(int(hour), int(minute)), tuple(layer.members))

    def handoff(self, turn: int) -> datetime:
        """The UTC instant turn `turn` begins."""
        day = self.first + timedelta(days=turn * self.step_days)
        return _local_to_utc(datetime.combine(day, self.at), self.zone)

    def turn(self, instant: datetime) -> int:
        """The turn in effect at the UTC `instant`; -1 before the first handoff."""
        # Count calendar days in local time: elapsed seconds divided by 86400 drift by an hour
        # at every DST change.
        local_day = instant.astimezone(self.zone).date()
        turn = max((local_day - self.first).days // self.step_days, -1)
        # The local date puts us within one turn; the instants decide. Both loops run at most
        # once, for a handoff moved past midnight by a gap or an instant in a repeated hour.
        while self.handoff(turn + 1) <= instant:
            turn += 1
        while turn >= 0 and self.handoff(turn) > instant:
            turn -= 1
        return turn

    def handoffs_after(self, instant: datetime) -> Iterator[datetime]:
        """Every handoff strictly after `instant`, in order, forever."""
        for turn in count(self.turn(instant) + 1):
            yield self.handoff(turn)


@dataclass(frozen=True, slots=True)
class _Cover:
    person: str
    start: datetime
    end: datetime
    source: str


class _Compiled:
    """A schedule with its rotations and overrides turned into UTC arithmetic."""

    def __init__(self, schedule: Schedule) -> None:
        zone = ZoneInfo(schedule.timezone)
        self.rotations = [_Rotation.of(layer, zone) for layer in schedule.layers]
        self.covers = [
            _Cover(
                o.person,
                _override_time(o.start, zone),
                _override_time(o.end, zone),
                f"override {i}",
            )
            for i, o in enumerate(schedule.overrides)
        ]

    def holder(self, instant: datetime) -> tuple[str, str] | None:
        """(person, source) on call at the UTC `instant`, or None."""
        for cover in reversed(self.covers):
            if cover.start <= instant < cover.end:
                return cover.person, cover.source
        for index in reversed(range(len(self.rotations))):
            rotation = self.rotations[index]
            turn = rotation.turn(instant)
            if turn >= 0:
                return rotation.members[turn % len(rotation.members)], f"layer {index}"
        return None

    def boundaries(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Every instant in (after, until) where the holder may change, ascending, deduplicated."""
        edges = sorted(
            edge
            for cover in self.covers
            for edge in (cover.start, cover.end)
            if after < edge < until
        )
        previous = after
        for instant in heapq.merge(edges, *(r.handoffs_after(after) for r in self.rotations)):
            if instant >= until:
                return
            if instant > previous:
                previous = instant
                yield instant

    def pieces(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[datetime, datetime, tuple[str, str] | None]]:
        """[start, end) cut at every boundary, each piece with its holder."""
        piece_start = start
        for instant in self.boundaries(start, end):
            yield piece_start, instant, self.holder(piece_start)
            piece_start = instant
        if piece_start < end:
            yield piece_start, end, self.holder(piece_start)

    def settled_limit(self, after: datetime) -> datetime:
        """An instant past which the holder can no longer change if it has not changed by then.

        Once every override has ended and the top layer has started, the top layer alone decides
        who is on call; one full cycle of its members after that shows every person it can hand
        to. One microsecond past that handoff so `boundaries` (open at the top) includes it.
        """
        top = self.rotations[-1]
        settled = max([after, top.handoff(0), *(c.end for c in self.covers)])
        return top.handoff(top.turn(settled) + len(top.members)) + timedelta(microseconds=1)


def _override_time(value: datetime, zone: tzinfo) -> datetime:
    # Naive override times are wall-clock times in the schedule's timezone, as in the rule file.
    if value.tzinfo is None:
        return _local_to_utc(value, zone)
    return value.astimezone(UTC)
