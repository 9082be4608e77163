"""When maintenance windows are active: pure functions over windows and instants passed in.

Build a `CompiledWindows` once per rule set (matchers parsed, timezones and cron expressions
resolved) and ask it, or call the module functions, which also accept the configs and compile
them on the spot:

- `active_windows(windows, at)`: the windows active at `at`, in config order;
- `covering(windows, labels, at)`: the first active window whose matchers all match an alert;
- `transitions(windows, start, end)`: every start and end of a window within [start, end), for
  the notifications a window sends;
- `next_transition(windows, after)`: the first instant after `after` at which any window starts
  or ends, to schedule those notifications.

Every function takes aware datetimes, returns aware datetimes in UTC, and never reads the clock.
A window is active over half-open stretches [start, end). Occurrences of one window that overlap
or touch form one stretch: an hourly cron window lasting 90 minutes starts once and never ends,
and a weekly 00:00-24:00 window on sat and sun starts on Saturday and ends on Monday.

Wall-clock times follow `router/schedules.py`: a weekly window or cron firing is placed at its
local time on each day, so a 22:00 window stays at 22:00 across DST changes. A local time that
does not exist (02:30 in Europe/Berlin on the last Sunday of March) means the first valid instant
after the gap (03:00); an ambiguous one (02:30 on the last Sunday of October) its first
occurrence. A cron window's `duration` is elapsed time from its firing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import NamedTuple, Protocol, TypeVar
from zoneinfo import ZoneInfo

from router.maintenanceschema import (
    WEEKDAYS,
    CronSpec,
    MaintenanceWindow,
    WindowKind,
    parse_cron,
)
from router.matchers import Matcher, matches_all, parse_matchers

# The wall-clock rules must be the same as the on-call schedules', so share their one
# implementation rather than keep a second copy of the DST edge cases.
from router.schedules import _local_to_utc, _utc

__all__ = [
    "CompiledWindows",
    "Edge",
    "Transition",
    "active_windows",
    "covering",
    "next_transition",
    "transitions",
]

_DAY = timedelta(days=1)
# How far `next_transition` looks ahead. A cron window may go eight years without firing
# (`0 3 29 2 *` skips 2100), and a window that is active without a break this long is treated
# as never ending.
_HORIZON = timedelta(days=366 * 10)


class Edge(StrEnum):
    """Whether a window starts or ends at a transition."""

    START = "start"
    END = "end"


class Transition(NamedTuple):
    """Window `window` starts or ends (`edge`) at the UTC instant `at`."""

    at: datetime
    window: str
    edge: Edge


Stretch = tuple[datetime, datetime]


class _Timing(Protocol):
    def stretches(self, first: datetime, last: datetime) -> Iterator[Stretch]:
        """The window's active stretches (UTC, ascending, disjoint) from `first` to `last`.

        Yields every stretch with end >= `first` and start <= `last`, possibly more. An end
        after `last` may be too early (the stretch may go on); every end <= `last` is final.
        """
        ...


@dataclass(frozen=True, slots=True)
class _Once:
    start: datetime
    end: datetime

    def stretches(self, first: datetime, last: datetime) -> Iterator[Stretch]:
        if self.end >= first and self.start <= last:
            yield self.start, self.end


_T = TypeVar("_T", datetime, timedelta)


def _merged(pieces: Iterable[tuple[_T, _T]]) -> list[tuple[_T, _T]]:
    """Pieces sorted by start, with those that overlap or touch joined."""
    result: list[tuple[_T, _T]] = []
    for start, end in pieces:
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


class _Daily(ABC):
    """A recurring window as blocks of time placed day by day on the local calendar.

    Subclasses give `blocks(day)`: the day's occurrences, merged, in UTC, ascending, none empty;
    a later day's blocks start and end no earlier than an earlier day's. `lookback_days` is how
    many days before an instant's local date a block may start and still reach it.
    """

    zone: ZoneInfo
    lookback_days: int

    @abstractmethod
    def blocks(self, day: date) -> tuple[Stretch, ...]:
        """The day's occurrences (see the class docstring)."""

    def stretches(self, first: datetime, last: datetime) -> Iterator[Stretch]:
        day = first.astimezone(self.zone).date() - timedelta(days=self.lookback_days)
        # One day past `last`'s date, so a stretch's end <= last is never cut short by a block
        # the scan did not reach: those start after the next local midnight.
        final_day = last.astimezone(self.zone).date() + _DAY
        current: Stretch | None = None
        while day <= final_day:
            for start, end in self.blocks(day):
                if current is not None and start <= current[1]:
                    current = (current[0], max(current[1], end))
                    continue
                if current is not None and current[1] >= first:
                    yield current
                current = (start, end)
            day += _DAY
        if current is not None and current[1] >= first:
            yield current


class _Weekly(_Daily):
    def __init__(self, window: MaintenanceWindow, zone: ZoneInfo) -> None:
        weekly = window.weekly
        assert weekly is not None  # the caller dispatches on window.kind
        self.zone = zone
        # A block starts on its day and ends by the next day's 24:00; two days back reach it.
        self.lookback_days = 2
        self.days = frozenset(WEEKDAYS.index(day) for day in weekly.days)
        self.start = time.fromisoformat(weekly.start)
        self.end = time(0) if weekly.end == "24:00" else time.fromisoformat(weekly.end)
        self.end_offset = _DAY if weekly.crosses_midnight else timedelta(0)

    def blocks(self, day: date) -> tuple[Stretch, ...]:
        if day.weekday() not in self.days:
            return ()
        start = _local_to_utc(datetime.combine(day, self.start), self.zone)
        end = _local_to_utc(datetime.combine(day + self.end_offset, self.end), self.zone)
        # 02:00-02:30 on a spring-forward night lies wholly in the gap: both ends are 03:00.
        return ((start, end),) if start < end else ()


class _Cron(_Daily):
    def __init__(self, window: MaintenanceWindow, zone: ZoneInfo) -> None:
        assert window.cron is not None  # the caller dispatches on window.kind
        assert window.duration is not None  # the schema requires it with cron
        self.zone = zone
        self.spec: CronSpec = parse_cron(window.cron)
        self.duration = timedelta(seconds=window.duration)
        # A block starts before its next midnight and lasts `duration`; one day more covers
        # a day shortened by DST.
        self.lookback_days = math.ceil(self.duration / _DAY) + 1
        self.times = tuple(time(h, m) for h in self.spec.hours for m in self.spec.minutes)
        # Each firing's blocks as offsets from local midnight, merged once; on a day without a
        # DST change they only need shifting (an every-minute cron would otherwise cost 1440
        # conversions a day).
        offsets = (timedelta(hours=t.hour, minutes=t.minute) for t in self.times)
        self.day_blocks = _merged((offset, offset + self.duration) for offset in offsets)

    def blocks(self, day: date) -> tuple[Stretch, ...]:
        if not self.spec.fires_on(day):
            return ()
        midnight = _local_to_utc(datetime.combine(day, time(0)), self.zone)
        next_midnight = _local_to_utc(datetime.combine(day + _DAY, time(0)), self.zone)
        if next_midnight - midnight == _DAY:
            return tuple((midnight + start, midnight + end) for start, end in self.day_blocks)
        # The offset changes during this day: place each firing at its own wall-clock time.
        starts = (_local_to_utc(datetime.combine(day, t), self.zone) for t in self.times)
        return tuple(_merged((start, start + self.duration) for start in starts))


def _timing(window: MaintenanceWindow) -> _Timing:
    zone = ZoneInfo(window.timezone)
    if window.kind is WindowKind.WEEKLY:
        return _Weekly(window, zone)
    if window.kind is WindowKind.CRON:
        return _Cron(window, zone)
    assert window.start is not None and window.end is not None  # the schema requires both

    def instant(value: datetime) -> datetime:
        # Naive one-off times are wall-clock times in the window's timezone, as in the file.
        return _local_to_utc(value, zone) if value.tzinfo is None else value.astimezone(UTC)

    return _Once(instant(window.start), instant(window.end))


def _is_active(timing: _Timing, at: datetime) -> bool:
    for start, end in timing.stretches(at, at):
        if start > at:
            return False
        if at < end:
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Compiled:
    config: MaintenanceWindow
    matchers: tuple[Matcher, ...]
    timing: _Timing


class CompiledWindows:
    """Maintenance windows ready to answer: matchers parsed, times resolved, built once.

    Build it from validated configs when the rule set loads; it is immutable and holds no
    clock, so one instance serves every request. Raises whatever the schema would have refused
    (MatcherError, ValueError) if handed configs built without validation.
    """

    __slots__ = ("_windows",)

    def __init__(self, windows: Iterable[MaintenanceWindow]) -> None:
        self._windows = tuple(
            _Compiled(
                config=window,
                matchers=tuple(m for text in window.match for m in parse_matchers(text)),
                timing=_timing(window),
            )
            for window in windows
        )

    @property
    def windows(self) -> tuple[MaintenanceWindow, ...]:
        """The configs, in the order given."""
        return tuple(window.config for window in self._windows)

    def active(self, at: datetime) -> list[MaintenanceWindow]:
        """The windows active at the aware instant `at`, in config order."""
        now = _utc(at, "at")
        return [w.config for w in self._windows if _is_active(w.timing, now)]

    def __len__(self) -> int:
        return len(self._windows)

    def covering(self, labels: Mapping[str, str], at: datetime) -> MaintenanceWindow | None:
        """The first window (config order) active at `at` whose matchers all match `labels`."""
        if not self._windows:
            return None  # the usual case, asked for every alert received
        now = _utc(at, "at")
        for window in self._windows:
            # Matchers first: they are cheaper than placing the window in time.
            if matches_all(window.matchers, labels) and _is_active(window.timing, now):
                return window.config
        return None

    def transitions(self, start: datetime, end: datetime) -> list[Transition]:
        """Every start and end of a window at an instant in [start, end), ordered by time.

        A window already active at `start` has no start in the list, one still active at `end`
        no end. At one instant, ends come before starts, then config order. Raises ValueError
        if `start` or `end` is naive or `end` is before `start`.
        """
        first, last = _utc(start, "start"), _utc(end, "end")
        if last < first:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        found: list[tuple[datetime, int, int, Transition]] = []
        for index, window in enumerate(self._windows):
            name = window.config.name
            for begins, ends in window.timing.stretches(first, last):
                if first <= begins < last:
                    found.append((begins, 1, index, Transition(begins, name, Edge.START)))
                if first <= ends < last:
                    found.append((ends, 0, index, Transition(ends, name, Edge.END)))
        found.sort(key=lambda item: item[:3])
        return [item[3] for item in found]

    def next_transition(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` at which any window starts or ends.

        None if no window starts or ends within ten years (a one-off window in the past, or a
        cron window whose occurrences overlap without a break). Raises ValueError if `after` is
        naive.
        """
        now = _utc(after, "after")
        best: datetime | None = None
        for window in self._windows:
            # Nothing beyond the best so far can win, which keeps later scans short.
            limit = best if best is not None else now + _HORIZON
            for begins, ends in window.timing.stretches(now, limit):
                if begins > now:
                    candidate = begins
                elif ends > now:
                    candidate = ends
                else:
                    continue
                if candidate <= limit:
                    best = candidate
                break
        return best


Windows = CompiledWindows | Iterable[MaintenanceWindow]


def _compiled(windows: Windows) -> CompiledWindows:
    return windows if isinstance(windows, CompiledWindows) else CompiledWindows(windows)


def active_windows(windows: Windows, at: datetime) -> list[MaintenanceWindow]:
    """The windows active at the aware instant `at`, in config order (`CompiledWindows.active`)."""
    return _compiled(windows).active(at)


def covering(windows: Windows, labels: Mapping[str, str], at: datetime) -> MaintenanceWindow | None:
    """The first window active at `at` whose matchers all match `labels`, or None."""
    return _compiled(windows).covering(labels, at)


def transitions(windows: Windows, start: datetime, end: datetime) -> list[Transition]:
    """Every window start and end within [start, end) (`CompiledWindows.transitions`)."""
    return _compiled(windows).transitions(start, end)


def next_transition(windows: Windows, after: datetime) -> datetime | None:
    """The first window start or end after `after` (`CompiledWindows.next_transition`)."""
    return _compiled(windows).next_transition(after)
