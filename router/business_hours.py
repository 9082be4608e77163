"""When the team is at work: the first instant at or after `now` inside business hours.

SEV4 incidents notify the team channel only during business hours (the seed's "next business
day"), so an incident opened at 23:00 on Friday is announced at 09:00 on Monday.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from router.ruleschema import BusinessHours

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _at(day: date, clock: str, zone: ZoneInfo) -> datetime:
    hours, minutes = (int(part) for part in clock.split(":"))
    # fold=0: on an ambiguous autumn hour the first occurrence; a time skipped in spring is
    # normalized forward by the UTC round trip.
    local = datetime.combine(day, time(hours, minutes), tzinfo=zone)
    return local.astimezone(ZoneInfo("UTC")).astimezone(zone)


def is_working_day(hours: BusinessHours, day: date) -> bool:
    return _WEEKDAYS[day.weekday()] in hours.days and day not in hours.holidays


def next_business_time(hours: BusinessHours, now: datetime) -> datetime | None:
    """`now` if it is within business hours, else the next opening; None if there is none
    within a year (no working days configured)."""
    zone = ZoneInfo(hours.timezone)
    local = now.astimezone(zone)
    for offset in range(366):
        day = local.date() + timedelta(days=offset)
        if not is_working_day(hours, day):
            continue
        opens, closes = _at(day, hours.start, zone), _at(day, hours.end, zone)
        if local < opens:
            return opens.astimezone(now.tzinfo)
        if local < closes:
            return now
    return None
