"""router.silences: the Redis store (against the real redis-server), the pure `silencing` table,
and the `ActiveSilences` cache's refresh timing under an injected clock.

Times are fixed (NOW, a Thursday morning) and passed in: the store keeps TTLs relative to the
`now` it is given, so a fixed past or future moment behaves like the real one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from structlog.testing import capture_logs

from router.keys import Keys
from router.matchers import Matcher, parse_matcher, parse_matchers
from router.silencecache import ActiveSilences
from router.silences import (
    DEFAULT_RETENTION,
    MAX_MATCHERS,
    Silence,
    SilenceError,
    SilenceState,
    SilenceStore,
    silencing,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
KEYS = Keys("sevrouter")
DISK = parse_matchers('alertname="DiskFull", cluster=~"eu.*"')
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MS = timedelta(milliseconds=1)


@pytest.fixture
def store(redis: Redis) -> SilenceStore:
    return SilenceStore(redis, KEYS)


def make(
    store: SilenceStore,
    matchers: str | list[Matcher] = DISK,
    *,
    start: timedelta = timedelta(0),
    end: timedelta = 2 * HOUR,
    expire_on_resolve: bool = False,
    now: datetime = NOW,
) -> Silence:
    """A silence from `now + start` to `now + end`, created at `now` by alice."""
    return store.create(
        parse_matchers(matchers) if isinstance(matchers, str) else matchers,
        starts_at=now + start,
        ends_at=now + end,
        created_by="alice",
        comment="disk swap on db-1",
        now=now,
        expire_on_resolve=expire_on_resolve,
    )


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def test_create_returns_the_silence_get_reads_back(store: SilenceStore) -> None:
    created = make(store, expire_on_resolve=True)
    assert created.id.startswith("sil-")
    assert len(created.id) == 16
    assert int(created.id[4:], 16) >= 0  # 12 hex digits
    assert created == Silence(
        id=created.id,
        matchers=tuple(DISK),
        starts_at=NOW,
        ends_at=NOW + 2 * HOUR,
        created_by="alice",
        comment="disk swap on db-1",
        expire_on_resolve=True,
        created_at=NOW,
    )
    assert store.get(created.id) == created
    assert created.matchers_text() == 'alertname="DiskFull", cluster=~"eu.*"'


def test_storage_layout_one_hash_and_the_end_time_index(store: SilenceStore, redis: Redis) -> None:
    created = make(store, start=30 * MINUTE, end=2 * HOUR)
    key = f"sevrouter:silence:{created.id}"
    assert redis.hgetall(key) == {
        b"matchers": json.dumps(
            [["alertname", "=", "DiskFull"], ["cluster", "=~", "eu.*"]]
        ).encode(),
        b"starts_at": str(int((NOW + 30 * MINUTE).timestamp() * 1000)).encode(),
        b"ends_at": str(int((NOW + 2 * HOUR).timestamp() * 1000)).encode(),
        b"created_at": str(int(NOW.timestamp() * 1000)).encode(),
        b"created_by": b"alice",
        b"comment": b"disk swap on db-1",
        b"expire_on_resolve": b"0",
    }
    assert redis.zrange("sevrouter:silences", 0, -1, withscores=True) == [
        (created.id.encode(), (NOW + 2 * HOUR).timestamp() * 1000)
    ]
    # Kept until the end plus the retention (5 days), counted from `now`.
    expected_ms = (2 * HOUR + DEFAULT_RETENTION) // MS
    assert expected_ms - 5000 < redis.pttl(key) <= expected_ms


def test_times_are_kept_to_the_millisecond_and_a_past_start_becomes_now(
    store: SilenceStore,
) -> None:
    now = NOW + timedelta(microseconds=123_456)
    created = make(store, start=-HOUR, end=HOUR, now=now)
    # The start in the past is recorded as `now`; all times lose their microseconds.
    assert created.starts_at == NOW + timedelta(milliseconds=123)
    assert created.created_at == NOW + timedelta(milliseconds=123)
    assert created.ends_at == NOW + HOUR + timedelta(milliseconds=123)
    assert store.get(created.id) == created


def test_list_and_active_by_state_ordered_by_end(store: SilenceStore, redis: Redis) -> None:
    later = make(store, end=3 * HOUR)
    pending = make(store, start=HOUR, end=2 * HOUR)
    soon = make(store, end=10 * MINUTE)
    ended = make(store, end=5 * MINUTE)
    store.expire(ended.id, NOW + MINUTE)
    at = NOW + 2 * MINUTE
    # Soonest end first; the expired one only on request, first since it ended longest ago.
    assert [s.id for s in store.list(at)] == [soon.id, pending.id, later.id]
    assert [s.id for s in store.list(at, include_expired=True)] == [
        ended.id,
        soon.id,
        pending.id,
        later.id,
    ]
    assert [s.id for s in store.active(at)] == [soon.id, later.id]
    assert [s.state(at) for s in store.list(at, include_expired=True)] == [
        SilenceState.EXPIRED,
        SilenceState.ACTIVE,
        SilenceState.PENDING,
        SilenceState.ACTIVE,
    ]


def test_expire_ends_an_active_silence_now(store: SilenceStore, redis: Redis) -> None:
    created = make(store)
    at = NOW + 20 * MINUTE
    expired = store.expire(created.id, at)
    assert expired is not None
    assert (expired.starts_at, expired.ends_at) == (NOW, at)
    assert store.get(created.id) == expired
    assert store.list(at) == []
    assert redis.zscore("sevrouter:silences", created.id) == at.timestamp() * 1000
    # From now on it is kept for the retention only.
    retention_ms = DEFAULT_RETENTION // MS
    assert retention_ms - 5000 < redis.pttl(f"sevrouter:silence:{created.id}") <= retention_ms


def test_expire_a_pending_silence_collapses_its_window(store: SilenceStore) -> None:
    created = make(store, start=HOUR, end=2 * HOUR)
    expired = store.expire(created.id, NOW)
    assert expired is not None
    # starts_at <= ends_at holds: both become the moment it was expired.
    assert (expired.starts_at, expired.ends_at) == (NOW, NOW)
    assert expired.state(NOW) is SilenceState.EXPIRED


def test_expire_an_ended_silence_returns_it_unchanged(store: SilenceStore) -> None:
    created = make(store, end=HOUR)
    first = store.expire(created.id, NOW + MINUTE)
    again = store.expire(created.id, NOW + 5 * MINUTE)
    assert first is not None
    assert again == first
    assert again.ends_at == NOW + MINUTE


@pytest.mark.parametrize(
    "silence_id",
    [
        # Well formed, but nothing stored under it.
        pytest.param("sil-000000000000", id="unknown"),
        # Not an id at all: never turned into a key.
        pytest.param("sil-../incidents", id="malformed"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_ids_are_none(store: SilenceStore, redis: Redis, silence_id: str) -> None:
    assert store.get(silence_id) is None
    assert store.expire(silence_id, NOW) is None
    assert store.expire_resolved(silence_id, NOW) is None
    assert redis.keys("*") == []  # expiring nothing wrote nothing


@pytest.mark.parametrize(
    ("expire_on_resolve", "start", "end", "resolved_at", "expires"),
    [
        # Set to expire on resolve and active: ends when its alert resolves.
        pytest.param(True, timedelta(0), HOUR, NOW + MINUTE, True, id="active-expires"),
        # Not set to: a resolved alert leaves it alone.
        pytest.param(False, timedelta(0), HOUR, NOW + MINUTE, False, id="not-set"),
        # Pending: it silenced nothing yet, so nothing it silenced can resolve.
        pytest.param(True, HOUR, 2 * HOUR, NOW + MINUTE, False, id="pending"),
        # Already over at the time of the resolution: nothing to do.
        pytest.param(True, timedelta(0), HOUR, NOW + HOUR, False, id="already-ended"),
    ],
)
def test_expire_resolved(
    store: SilenceStore,
    expire_on_resolve: bool,
    start: timedelta,
    end: timedelta,
    resolved_at: datetime,
    expires: bool,
) -> None:
    created = make(store, start=start, end=end, expire_on_resolve=expire_on_resolve)
    result = store.expire_resolved(created.id, resolved_at)
    stored = store.get(created.id)
    assert stored is not None
    if expires:
        assert result == stored
        assert stored.ends_at == resolved_at
    else:
        assert result is None
        assert stored == created


def test_expire_resolved_ends_it_once(store: SilenceStore) -> None:
    created = make(store, expire_on_resolve=True)
    first = store.expire_resolved(created.id, NOW + MINUTE)
    # A second alert of the same silence resolving later changes nothing.
    assert store.expire_resolved(created.id, NOW + 2 * MINUTE) is None
    assert first is not None
    assert store.get(created.id) == first


def test_expired_silences_are_dropped_after_the_retention(
    store: SilenceStore, redis: Redis
) -> None:
    old = make(store, end=HOUR)
    store.expire(old.id, NOW + MINUTE)
    ended = NOW + MINUTE
    gone = ended + DEFAULT_RETENTION
    # Listed (as expired) for the retention, as long as its TTL keeps it: not at its end.
    assert [s.id for s in store.list(gone - MS, include_expired=True)] == [old.id]
    assert store.list(gone, include_expired=True) == []
    # The next silence created from then on removes it from the end-time index; its hash goes
    # by TTL (Redis' clock, so it is still there in this test).
    fresh = make(store, now=gone)
    assert redis.zrange("sevrouter:silences", 0, -1) == [fresh.id.encode()]


def test_a_silence_whose_hash_expired_is_skipped(store: SilenceStore, redis: Redis) -> None:
    gone, kept = make(store), make(store, end=3 * HOUR)
    redis.delete(f"sevrouter:silence:{gone.id}")  # what its TTL does
    assert store.list(NOW) == [kept]
    assert store.get(gone.id) is None


def test_an_unreadable_silence_is_logged_and_skipped(store: SilenceStore, redis: Redis) -> None:
    broken, kept = make(store), make(store, end=3 * HOUR)
    redis.hset(f"sevrouter:silence:{broken.id}", "matchers", "not json")
    with capture_logs() as logs:
        assert store.list(NOW) == [kept]
    assert [(e["event"], e["silence"]) for e in logs] == [("silence_unreadable", broken.id)]


class Override(TypedDict, total=False):
    """Arguments of `SilenceStore.create` that differ from a valid one-hour silence."""

    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str


CREATE_ERRORS = [
    # No matchers would silence every alert.
    pytest.param(
        {"matchers": []},
        "matchers",
        "at least one matcher is required (an empty list would silence every alert)",
        id="no-matchers",
    ),
    # Every matcher also matches an alert without the label: Alertmanager refuses these too.
    pytest.param(
        {"matchers": parse_matchers('team=~".*", env!="prod"')},
        "matchers",
        "at least one matcher must require a label value: "
        'team=~".*", env!="prod" also matches alerts without these labels',
        id="matchers-match-empty",
    ),
    pytest.param(
        {"matchers": [parse_matcher(f'a{i}="x"') for i in range(MAX_MATCHERS + 1)]},
        "matchers",
        f"at most {MAX_MATCHERS} matchers are allowed",
        id="too-many-matchers",
    ),
    pytest.param(
        {"comment": "  "},
        "comment",
        "comment must be a non-empty string (why the silence?)",
        id="blank-comment",
    ),
    pytest.param(
        {"created_by": ""},
        "created_by",
        "a silence needs the person who created it",
        id="no-author",
    ),
    pytest.param({"ends_at": NOW}, "ends_at", "the silence must end in the future", id="ends-now"),
    pytest.param(
        {"starts_at": NOW + 2 * HOUR, "ends_at": NOW + HOUR},
        "ends_at",
        "the silence must end after it starts",
        id="ends-before-start",
    ),
    # 30 days is the limit, counted from the (effective) start.
    pytest.param(
        {"ends_at": NOW + timedelta(days=30, seconds=1)},
        "ends_at",
        "a silence may last at most 30d, this one would last 30d1s",
        id="too-long",
    ),
]


@pytest.mark.parametrize(("override", "field", "message"), CREATE_ERRORS)
def test_create_refuses(
    store: SilenceStore, redis: Redis, override: Override, field: str, message: str
) -> None:
    with pytest.raises(SilenceError) as caught:
        store.create(
            override.get("matchers", DISK),
            starts_at=override.get("starts_at", NOW),
            ends_at=override.get("ends_at", NOW + HOUR),
            created_by=override.get("created_by", "alice"),
            comment=override.get("comment", "why"),
            now=NOW,
        )
    assert (caught.value.field, caught.value.message) == (field, message)
    assert redis.keys("*") == []


def test_create_allows_exactly_the_longest_duration(store: SilenceStore) -> None:
    created = make(store, end=timedelta(days=30))
    assert created.ends_at - created.starts_at == timedelta(days=30)


def test_naive_times_are_refused(store: SilenceStore) -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        make(store, now=NOW.replace(tzinfo=None))


# --------------------------------------------------------------------------------------------
# silencing: the pure decision
# --------------------------------------------------------------------------------------------


def silence(sid: str, matchers: str, start: timedelta, end: timedelta) -> Silence:
    return Silence(
        id=sid,
        matchers=tuple(parse_matchers(matchers)),
        starts_at=NOW + start,
        ends_at=NOW + end,
        created_by="alice",
        comment="",
        expire_on_resolve=False,
        created_at=NOW,
    )


SILENCES = [
    silence("disk-eu", 'alertname="DiskFull", cluster=~"eu.*"', timedelta(0), HOUR),
    silence("later", 'alertname="CPUHigh"', HOUR, 2 * HOUR),
    silence("not-db", 'team!="db", alertname="Deploy"', -HOUR, HOUR),
    silence("any-eu", 'cluster=~"eu-.*"', timedelta(0), 2 * HOUR),
]


@pytest.mark.parametrize(
    ("labels", "at", "expected"),
    [
        # Every matcher matches, within the window.
        pytest.param({"alertname": "DiskFull", "cluster": "eu-1"}, NOW, "disk-eu", id="match"),
        # The first active match wins, in the order given (disk-eu before any-eu).
        pytest.param(
            {"alertname": "DiskFull", "cluster": "eu-1"}, NOW + MINUTE, "disk-eu", id="first-wins"
        ),
        # One matcher failing is enough to miss (AND); any-eu's regex still needs "eu-".
        pytest.param({"alertname": "DiskFull", "cluster": "us-1"}, NOW, None, id="one-fails"),
        # Regexes are anchored: "eu.*" matches "eu", "eu-.*" does not.
        pytest.param({"alertname": "DiskFull", "cluster": "eu"}, NOW, "disk-eu", id="anchored"),
        pytest.param({"alertname": "X", "cluster": "xeu-1"}, NOW, None, id="anchored-start"),
        # The window starts inclusive ...
        pytest.param({"alertname": "CPUHigh"}, NOW + HOUR, "later", id="at-start"),
        # ... and a silence is not applied before it starts (pending).
        pytest.param({"alertname": "CPUHigh"}, NOW + HOUR - MS, None, id="pending"),
        # ... and ends exclusive: at ends_at the silence is over.
        pytest.param(
            {"alertname": "DiskFull", "cluster": "eu-1"},
            NOW + HOUR,
            "any-eu",
            id="ended-falls-through",
        ),
        pytest.param({"alertname": "CPUHigh"}, NOW + 2 * HOUR, None, id="at-end"),
        # An absent label counts as "": team!="db" matches an alert without a team.
        pytest.param({"alertname": "Deploy"}, NOW, "not-db", id="absent-label-not-equal"),
        pytest.param({"alertname": "Deploy", "team": "db"}, NOW, None, id="negative-fails"),
        # No labels at all: nothing here requires none.
        pytest.param({}, NOW, None, id="no-labels"),
    ],
)
def test_silencing(labels: dict[str, str], at: datetime, expected: str | None) -> None:
    found = silencing(SILENCES, labels, at)
    assert (found.id if found else None) == expected


def test_silencing_nothing() -> None:
    assert silencing([], {"alertname": "DiskFull"}, NOW) is None


# --------------------------------------------------------------------------------------------
# ActiveSilences: the hot path's copy
# --------------------------------------------------------------------------------------------


class CountingStore(SilenceStore):
    """The real store, counting the reads the cache makes through it."""

    reads = 0

    def list(self, now: datetime, *, include_expired: bool = False) -> list[Silence]:
        self.reads += 1
        return super().list(now, include_expired=include_expired)


@pytest.fixture
def counting(redis: Redis) -> CountingStore:
    return CountingStore(redis, KEYS)


def test_cache_holds_the_list_for_up_to_one_second(counting: CountingStore) -> None:
    first = make(counting)
    cache = ActiveSilences(counting)
    assert cache.get(NOW) == (first,)
    second = make(counting, end=3 * HOUR)
    # 999 ms later: the copy still answers, without the new silence and without a read.
    assert cache.get(NOW + 999 * MS) == (first,)
    assert counting.reads == 1
    # At one second the copy is stale: read again, and the new silence is there.
    assert cache.get(NOW + 1000 * MS) == (first, second)
    assert counting.reads == 2
    # The second second starts from that read.
    assert cache.get(NOW + 1999 * MS) == (first, second)
    assert counting.reads == 2


def test_cache_refreshes_when_the_clock_goes_back_or_on_invalidate(
    counting: CountingStore,
) -> None:
    cache = ActiveSilences(counting)
    cache.get(NOW)
    # A caller that read the clock a little before the copy was read: the copy covers it.
    cache.get(NOW - 999 * MS)
    assert counting.reads == 1
    cache.get(NOW - 1001 * MS)  # the wall clock stepped back further: do not trust the copy
    assert counting.reads == 2
    cache.invalidate()  # e.g. after this process created a silence
    cache.get(NOW)
    assert counting.reads == 3


def test_copy_read_just_after_a_silence_ended_still_mutes_an_earlier_caller(
    counting: CountingStore,
) -> None:
    # A webhook reads the clock at NOW; before it looks, another refreshes the copy 300 ms on,
    # after the silence ended at NOW + 100 ms. The webhook must still be muted.
    make(counting, end=100 * MS)
    cache = ActiveSilences(counting)
    cache.get(NOW + 300 * MS)
    held = cache.get(NOW)
    labels = {"alertname": "DiskFull", "cluster": "eu-1"}
    assert silencing(held, labels, NOW) is not None
    assert silencing(held, labels, NOW + 300 * MS) is None
    assert counting.reads == 1


class CountingAsyncStore(SilenceStore):
    async_reads = 0

    async def unexpired_async(self, redis: AsyncRedis, now: datetime) -> list[Silence]:
        self.async_reads += 1
        return await super().unexpired_async(redis, now)


def test_concurrent_stale_callers_share_one_read(redis: Redis, redis_url: str) -> None:
    store = CountingAsyncStore(redis, KEYS)
    first = make(store)
    cache = ActiveSilences(store)

    async def run() -> list[tuple[Silence, ...]]:
        client = AsyncRedis.from_url(redis_url)
        try:
            # 50 webhooks, each with its own clock reading, find no copy at the same time.
            return await asyncio.gather(*(cache.get_async(client, NOW + i * MS) for i in range(50)))
        finally:
            await client.aclose()

    results = asyncio.run(run())
    assert results == [(first,)] * 50
    assert store.async_reads == 1


def test_cache_applies_windows_at_the_time_asked_not_the_time_read(
    counting: CountingStore,
) -> None:
    # Read while the silence is pending; it applies from its start without another read, and
    # stops at its end although the copy still holds it.
    make(counting, start=500 * MS, end=800 * MS)
    cache = ActiveSilences(counting)
    held = cache.get(NOW)
    labels = {"alertname": "DiskFull", "cluster": "eu-1"}
    assert silencing(held, labels, NOW + 499 * MS) is None
    assert silencing(cache.get(NOW + 500 * MS), labels, NOW + 500 * MS) is not None
    assert silencing(cache.get(NOW + 800 * MS), labels, NOW + 800 * MS) is None
    assert counting.reads == 1


def test_cache_with_a_custom_max_age(counting: CountingStore) -> None:
    cache = ActiveSilences(counting, max_age=timedelta(seconds=5))
    cache.get(NOW)
    cache.get(NOW + timedelta(seconds=4))
    assert counting.reads == 1
    cache.get(NOW + timedelta(seconds=5))
    assert counting.reads == 2


def test_async_refresh_reads_the_same_silences(redis_url: str, counting: CountingStore) -> None:
    active = make(counting, end=90 * MINUTE)
    pending = make(counting, start=HOUR, end=2 * HOUR)
    ended = make(counting, end=HOUR)
    counting.expire(ended.id, NOW)
    cache = ActiveSilences(counting)

    async def run() -> list[tuple[Silence, ...]]:
        client = AsyncRedis.from_url(redis_url)
        try:
            first = await cache.get_async(client, NOW)
            make(counting, end=3 * HOUR)
            held = await cache.get_async(client, NOW + 999 * MS)  # from the copy
            forced = await cache.refresh_async(client, NOW + 999 * MS)  # read anyway
            return [first, held, forced]
        finally:
            await client.aclose()

    first, held, forced = asyncio.run(run())
    ended_now = counting.get(ended.id)
    # The copy keeps what ended within its max age (so it also serves callers a little behind
    # it); `silencing` checks the windows.
    assert first == held == (ended_now, active, pending)
    assert len(forced) == 4
    assert forced[:3] == (ended_now, active, pending)
    assert counting.reads == 0  # the async path never touched the synchronous store


def test_a_caller_far_from_the_read_in_flight_reads_for_itself(
    redis: Redis, redis_url: str
) -> None:
    # A read started for `now` lists what is unexpired a second before it; a caller an hour
    # later must not take that list (a silence that ended in between would still mute).
    store = CountingAsyncStore(redis, KEYS)
    short = make(store, end=30 * MINUTE)
    long = make(store, end=3 * HOUR)
    cache = ActiveSilences(store)

    async def run() -> tuple[tuple[Silence, ...], tuple[Silence, ...]]:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await asyncio.gather(
                cache.get_async(client, NOW), cache.get_async(client, NOW + HOUR)
            )
        finally:
            await client.aclose()

    now_list, later_list = asyncio.run(run())
    assert now_list == (short, long)
    assert later_list == (long,)
    assert store.async_reads == 2


class GatedStore(SilenceStore):
    """Its async read has its answer, then waits for `gate` before returning it."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys)
        self.read_done, self.gate = asyncio.Event(), asyncio.Event()
        self.async_reads = 0

    async def unexpired_async(self, redis: AsyncRedis, now: datetime) -> list[Silence]:
        self.async_reads += 1
        silences = await super().unexpired_async(redis, now)
        self.read_done.set()
        await self.gate.wait()
        return silences


def test_a_local_write_during_a_read_is_not_hidden_by_it(redis: Redis, redis_url: str) -> None:
    async def run() -> tuple[tuple[Silence, ...], tuple[Silence, ...], int]:
        store = GatedStore(redis, KEYS)
        cache = ActiveSilences(store)
        client = AsyncRedis.from_url(redis_url)
        try:
            reading = asyncio.ensure_future(cache.get_async(client, NOW))
            await store.read_done.wait()  # the read has its (empty) answer...
            make(store)  # ...when this process creates a silence...
            cache.invalidate()  # ...and says so
            store.gate.set()
            before = await reading  # asked before the write: without it
            after = await cache.get_async(client, NOW + MS)  # asked after: must have it
            return before, after, store.async_reads
        finally:
            await client.aclose()

    before, after, reads = asyncio.run(run())
    assert before == ()
    assert len(after) == 1
    assert reads == 2
