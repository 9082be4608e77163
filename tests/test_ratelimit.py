"""Per-channel rate limits (GCRA) against real Redis, shared by every worker."""

from __future__ import annotations

import pytest
from redis import Redis

from router.channelschema import RateLimit
from router.keys import Keys
from router.ratelimit import RateLimiter

SECOND = 1000


@pytest.mark.parametrize(
    ("limit", "times_ms", "waits"),
    [
        # One a second, no burst: the second message waits out the rest of the second.
        pytest.param(RateLimit(per_second=1), [0, 0, 1000], [0, 1.0, 0], id="one-per-second"),
        # A burst of three goes at once; the fourth waits one interval.
        pytest.param(RateLimit(per_second=1, burst=3), [0, 0, 0, 0], [0, 0, 0, 1.0], id="burst"),
        # PagerDuty's 120/min: two a second.
        pytest.param(
            RateLimit(per_second=2), [0, 0, 250, 500], [0, 0.5, 0.25, 0], id="two-per-second"
        ),
        # A refused request takes no slot: asking again at the advertised time succeeds.
        pytest.param(
            RateLimit(per_second=1),
            [0, 400, 1000, 1000],
            [0, 0.6, 0, 1.0],
            id="refusal-takes-no-slot",
        ),
    ],
)
def test_gcra(redis: Redis, limit: RateLimit, times_ms: list[int], waits: list[float]) -> None:
    limiter = RateLimiter(redis, Keys("test"))
    start = 1_800_000_000_000
    assert [limiter.acquire("slack", limit, start + t) for t in times_ms] == waits


def test_no_limit_never_waits(redis: Redis) -> None:
    limiter = RateLimiter(redis, Keys("test"))
    assert [limiter.acquire("email", None, 0) for _ in range(5)] == [0.0] * 5


def test_limits_are_per_channel(redis: Redis) -> None:
    limiter = RateLimiter(redis, Keys("test"))
    limit = RateLimit(per_second=1)
    assert limiter.acquire("a", limit, 0) == 0
    assert limiter.acquire("b", limit, 0) == 0
    assert limiter.acquire("a", limit, 0) == 1.0
