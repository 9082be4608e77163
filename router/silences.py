"""Silences, as in Alertmanager: label matchers and a time window during which matching alerts
are muted, stored in Redis so every receiver and worker sees the same ones.

A silence is *pending* before `starts_at`, *active* from `starts_at` until `ends_at` (exclusive)
and *expired* after. Expiring a silence early sets `ends_at` to now. An expired silence is kept
for the retention (default 5 days, Alertmanager's too) so it can still be listed and looked at,
then Redis drops it.

Storage (key names in `router.keys`):

    {p}:silence:{id}   hash: matchers (JSON list of [name, op, value]), starts_at, ends_at and
                       created_at (Unix ms), created_by, comment, expire_on_resolve ("1"/"0");
                       its TTL is (ends_at - now) + retention, renewed when the silence is expired
    {p}:silences       sorted set: silence id by ends_at (ms); members whose silence ended the
                       retention or longer ago are removed whenever a silence is created

Reads take the sorted set's members ending after a moment and the hashes of those members in one
Lua call, so a read is one round trip and sees a consistent state; a member whose hash has
already gone (TTL) is skipped.

The receiver's hot path uses `ActiveSilences`, which holds the unexpired silences for up to a
second, and the pure `silencing` to test an alert's labels against them. All times are
timezone-aware datetimes, kept to the millisecond.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from router.durations import format_duration
from router.keys import Keys, text
from router.matchers import Matcher, MatchType, matches_all

log = structlog.get_logger(__name__)

__all__ = [
    "DEFAULT_RETENTION",
    "MAX_COMMENT",
    "MAX_DURATION",
    "MAX_MATCHERS",
    "Silence",
    "SilenceError",
    "SilenceState",
    "SilenceStore",
    "silencing",
]

MAX_DURATION = timedelta(days=30)
DEFAULT_RETENTION = timedelta(days=5)
MAX_MATCHERS = 64
MAX_COMMENT = 2000
SILENCE_ID = re.compile(r"sil-[0-9a-f]{12}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


class SilenceError(ValueError):
    """A silence that cannot be created; `field` names the offending input (for a 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    expire_on_resolve: bool
    created_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return SilenceState.PENDING
        if now < self.ends_at:
            return SilenceState.ACTIVE
        return SilenceState.EXPIRED

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher matches the labels (whatever the time)."""
        return matches_all(self.matchers, labels)

    def matchers_text(self) -> str:
        """The matchers as `parse_matchers` reads them back, e.g. ``a="b", c=~"d.*"``."""
        return ", ".join(str(m) for m in self.matchers)


def silencing(
    silences: Sequence[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The first silence in `silences` that is active at `now` and whose matchers all match
    `labels` (absent labels count as ""), or None when the alert is not silenced."""
    for silence in silences:
        if silence.starts_at <= now < silence.ends_at and matches_all(silence.matchers, labels):
            return silence
    return None


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; silences need aware times")
    return (moment - _EPOCH) // _MS


def _from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _truncate(moment: datetime) -> datetime:
    """`moment` in UTC, to the millisecond, as it reads back from Redis."""
    return _from_ms(_ms(moment))


def _check(
    matchers: Sequence[Matcher],
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
    max_duration: timedelta,
) -> datetime:
    """Refuse a silence that would be wrong or dangerous; returns the effective start."""
    if not matchers:
        raise SilenceError(
            "matchers", "at least one matcher is required (an empty list would silence every alert)"
        )
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError("matchers", f"at most {MAX_MATCHERS} matchers are allowed")
    if all(m.matches({}) for m in matchers):
        # Alertmanager's rule too: such a silence also mutes every alert lacking those labels.
        raise SilenceError(
            "matchers",
            "at least one matcher must require a label value: "
            f"{', '.join(str(m) for m in matchers)} also matches alerts without these labels",
        )
    if not created_by.strip():
        raise SilenceError("created_by", "a silence needs the person who created it")
    if not comment.strip():
        raise SilenceError("comment", "comment must be a non-empty string (why the silence?)")
    if len(comment) > MAX_COMMENT:
        raise SilenceError("comment", f"comment must be at most {MAX_COMMENT} characters")
    # As in Alertmanager, a start in the past means now: the record says when muting began.
    start = max(starts_at, now)
    if ends_at <= now:
        raise SilenceError("ends_at", "the silence must end in the future")
    if ends_at <= start:
        raise SilenceError("ends_at", "the silence must end after it starts")
    if ends_at - start > max_duration:
        raise SilenceError(
            "ends_at",
            f"a silence may last at most {format_duration(max_duration.total_seconds())}, "
            f"this one would last {format_duration((ends_at - start).total_seconds())}",
        )
    return start


# Reads silences ending after a moment, with their fields, in one call (a consistent snapshot).
# KEYS[1] the silences sorted set; ARGV[1] the ZRANGEBYSCORE minimum ("(<ms>" or "-inf"),
# ARGV[2] the key prefix of silence hashes ("{p}:silence:"). Returns id, fields, id, fields, ...
# in end-time order; a member whose hash has expired is left out.
_READ = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local found = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[2] .. id)
  if #fields > 0 then
    found[#found + 1] = id
    found[#found + 1] = fields
  end
end
return found
"""

# Ends a silence now. KEYS[1] the silence hash, KEYS[2] the silences sorted set;
# ARGV[1] now (ms), ARGV[2] the retention (ms), ARGV[3] the silence id, ARGV[4] "resolve" to act
# only on an active silence set to expire on resolve. Returns {status, fields}: status 0 nothing
# done (no such silence, or not eligible for "resolve"), 1 it had already ended, 2 ended now.
_EXPIRE = """
local f = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'expire_on_resolve')
if not f[2] then return {0, {}} end
local now = tonumber(ARGV[1])
local starts, ends = tonumber(f[1]), tonumber(f[2])
if ARGV[4] == 'resolve' and (f[3] ~= '1' or starts > now or ends <= now) then
  return {0, {}}
end
if ends <= now then return {1, redis.call('HGETALL', KEYS[1])} end
if starts > now then redis.call('HSET', KEYS[1], 'starts_at', ARGV[1]) end
redis.call('HSET', KEYS[1], 'ends_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
return {2, redis.call('HGETALL', KEYS[1])}
"""


def _decode(silence_id: str, raw: Mapping[Any, Any] | Sequence[Any]) -> Silence:
    """A silence from its hash, as HGETALL answers (a dict) or Lua returns it (flat list)."""
    if isinstance(raw, Mapping):
        fields = {text(k): text(v) for k, v in raw.items()}
    else:
        fields = {text(raw[i]): text(raw[i + 1]) for i in range(0, len(raw), 2)}
    matchers = tuple(
        Matcher(str(name), MatchType(op), str(value))
        for name, op, value in json.loads(fields["matchers"])
    )
    return Silence(
        id=silence_id,
        matchers=matchers,
        starts_at=_from_ms(int(fields["starts_at"])),
        ends_at=_from_ms(int(fields["ends_at"])),
        created_by=fields["created_by"],
        comment=fields["comment"],
        expire_on_resolve=fields["expire_on_resolve"] == "1",
        created_at=_from_ms(int(fields["created_at"])),
    )


def _decode_all(reply: Sequence[Any]) -> list[Silence]:
    """The silences in a `_READ` reply; an unreadable record is logged and skipped, so one bad
    hash cannot stop alerts from being received."""
    found = []
    for i in range(0, len(reply), 2):
        silence_id = text(reply[i])
        try:
            found.append(_decode(silence_id, reply[i + 1]))
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("silence_unreadable", silence=silence_id, error=str(exc))
    return found


class SilenceStore:
    """Silences in Redis, through a synchronous client (run it in a threadpool from async code).

    `retention` is how long a silence is kept after it ends.
    """

    def __init__(
        self, redis: Redis, keys: Keys, *, retention: timedelta = DEFAULT_RETENTION
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_ms = retention // _MS
        self._read = redis.register_script(_READ)
        self._expire = redis.register_script(_EXPIRE)

    def create(
        self,
        matchers: Sequence[Matcher],
        *,
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
        now: datetime,
        expire_on_resolve: bool = False,
        max_duration: timedelta = MAX_DURATION,
    ) -> Silence:
        """Store a new silence and return it. Raises `SilenceError` (with the field) when it has
        no matchers, only matchers that also match absent labels, no comment or author, ends
        before it starts or in the past, or lasts longer than `max_duration`. A start in the
        past becomes `now`."""
        start = _check(matchers, starts_at, ends_at, created_by, comment, now, max_duration)
        silence = Silence(
            id=f"sil-{secrets.token_hex(6)}",
            matchers=tuple(matchers),
            starts_at=_truncate(start),
            ends_at=_truncate(ends_at),
            created_by=created_by.strip(),
            comment=comment.strip(),
            expire_on_resolve=expire_on_resolve,
            created_at=_truncate(now),
        )
        now_ms, ends_ms = _ms(now), _ms(silence.ends_at)
        key = self._keys.silence(silence.id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "matchers": json.dumps([[m.name, m.type.value, m.value] for m in matchers]),
                "starts_at": _ms(silence.starts_at),
                "ends_at": ends_ms,
                "created_at": _ms(silence.created_at),
                "created_by": silence.created_by,
                "comment": silence.comment,
                "expire_on_resolve": "1" if expire_on_resolve else "0",
            },
        )
        # Relative to `now`, not an absolute PEXPIREAT, so the app's clock and Redis' need not
        # agree (and tests may pass any `now`).
        pipe.pexpire(key, ends_ms - now_ms + self._retention_ms)
        pipe.zadd(self._keys.silences, {silence.id: ends_ms})
        pipe.zremrangebyscore(self._keys.silences, "-inf", now_ms - self._retention_ms)
        pipe.execute()
        return silence

    def get(self, silence_id: str) -> Silence | None:
        """The silence, expired or not, while it is retained; None when unknown."""
        if not SILENCE_ID.fullmatch(silence_id):
            return None
        raw = self._redis.hgetall(self._keys.silence(silence_id))
        return _decode(silence_id, raw) if raw else None

    def list(self, now: datetime, *, include_expired: bool = False) -> list[Silence]:
        """Pending and active silences, and with `include_expired` also those that ended within
        the retention; ordered by end time, soonest (or longest ago) first."""
        since = _ms(now) - self._retention_ms if include_expired else _ms(now)
        return _decode_all(self._read(keys=self._read_keys(), args=self._read_args(since)))

    def active(self, now: datetime) -> builtins.list[Silence]:
        """The silences muting alerts at `now` (started, not ended)."""
        return [s for s in self.list(now) if s.is_active(now)]

    def expire(self, silence_id: str, now: datetime) -> Silence | None:
        """End the silence at `now` (a pending one gets `starts_at` = `ends_at` = now) and return
        it; one that had already ended is returned unchanged. None when unknown."""
        status, silence = self._run_expire(silence_id, now, "expire")
        return silence if status else None

    def expire_resolved(self, silence_id: str, now: datetime) -> Silence | None:
        """For the ingest path, when an alert that `silence_id` silenced resolves: if that silence
        is active and set to expire on resolve, end it now and return it; otherwise (unknown,
        not set to, pending, already ended) do nothing and return None. Idempotent and atomic,
        so concurrent resolutions end it once."""
        status, silence = self._run_expire(silence_id, now, "resolve")
        return silence if status == 2 else None

    def _run_expire(self, silence_id: str, now: datetime, mode: str) -> tuple[int, Silence | None]:
        if not SILENCE_ID.fullmatch(silence_id):
            return 0, None
        status, fields = self._expire(
            keys=[self._keys.silence(silence_id), self._keys.silences],
            args=[_ms(now), self._retention_ms, silence_id, mode],
        )
        return int(status), _decode(silence_id, fields) if int(status) else None

    def _read_keys(self) -> builtins.list[str]:
        return [self._keys.silences]

    def _read_args(self, ending_after_ms: int) -> builtins.list[str]:
        return [f"({ending_after_ms}", self._keys.silence("")]

    async def unexpired_async(self, redis: AsyncRedis, now: datetime) -> builtins.list[Silence]:
        """`list(now)` through an asyncio client (same keys, one round trip)."""
        script = redis.register_script(_READ)
        reply = await script(keys=self._read_keys(), args=self._read_args(_ms(now)))
        return _decode_all(reply)
