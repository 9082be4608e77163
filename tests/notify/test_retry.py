"""Backoff and Retry-After: `next_delay` and `parse_retry_after`, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from router.notify import RetryPolicy, next_delay, parse_retry_after

DEFAULT = RetryPolicy()
NO_JITTER = RetryPolicy(jitter=0.0)
NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("policy", "attempt", "retry_after", "rand", "expected"),
    [
        # Growth: rand=0.5 is the nominal wait, initial * multiplier**(attempt-1).
        pytest.param(DEFAULT, 1, None, 0.5, 1.0, id="first-retry-waits-initial"),
        pytest.param(DEFAULT, 2, None, 0.5, 2.0, id="doubles"),
        pytest.param(DEFAULT, 9, None, 0.5, 256.0, id="last-before-cap"),
        # Cap: the nominal wait stops growing at max_interval.
        pytest.param(DEFAULT, 10, None, 0.5, 300.0, id="capped"),
        pytest.param(DEFAULT, 11, None, 0.5, 300.0, id="stays-capped"),
        # Jitter bounds: rand=0 gives -20 %, rand->1 approaches +20 %.
        pytest.param(DEFAULT, 3, None, 0.0, 3.2, id="jitter-low"),
        pytest.param(DEFAULT, 3, None, 0.999, 4.0 * 1.1996, id="jitter-high"),
        # Jitter applies after the cap, so capped retries still spread out (240-360 s).
        pytest.param(DEFAULT, 11, None, 0.0, 240.0, id="jitter-below-cap"),
        pytest.param(DEFAULT, 11, None, 0.999, 300.0 * 1.1996, id="jitter-above-cap"),
        # No jitter configured: rand has no effect.
        pytest.param(NO_JITTER, 3, None, 0.0, 4.0, id="no-jitter"),
        # Retry-After wins when it asks for longer than the backoff ...
        pytest.param(DEFAULT, 1, 7.0, 0.5, 7.0, id="retry-after-wins"),
        # ... and is not jittered: the receiver chose it.
        pytest.param(DEFAULT, 1, 7.0, 0.0, 7.0, id="retry-after-not-jittered"),
        # ... but never shortens the backoff.
        pytest.param(DEFAULT, 5, 1.0, 0.5, 16.0, id="backoff-wins-over-short-retry-after"),
        pytest.param(DEFAULT, 2, 0.0, 0.5, 2.0, id="retry-after-zero"),
        # A Retry-After beyond max_retry_after is capped there; the page keeps its place.
        pytest.param(DEFAULT, 1, 86_400.0, 0.5, 3600.0, id="retry-after-capped"),
        # A Retry-After above max_interval but within max_retry_after is honoured as is.
        pytest.param(DEFAULT, 10, 900.0, 0.5, 900.0, id="retry-after-above-max-interval"),
        # Exhaustion: after max_attempts attempts there is no next one, Retry-After or not.
        pytest.param(DEFAULT, 11, None, 0.5, 300.0, id="last-retry"),
        pytest.param(DEFAULT, 12, None, 0.5, None, id="exhausted"),
        pytest.param(DEFAULT, 12, 5.0, 0.5, None, id="exhausted-despite-retry-after"),
        pytest.param(DEFAULT, 40, None, 0.5, None, id="far-past-exhausted"),
        # A single-attempt policy never retries.
        pytest.param(RetryPolicy(max_attempts=1), 1, None, 0.5, None, id="single-attempt"),
        # A huge attempt budget does not overflow the exponent: it sits at the cap.
        pytest.param(
            RetryPolicy(multiplier=10.0, max_attempts=10_000), 5_000, None, 0.5, 300.0, id="huge"
        ),
    ],
)
def test_next_delay(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None,
    rand: float,
    expected: float | None,
) -> None:
    delay = next_delay(policy, attempt, retry_after, rand)
    if expected is None:
        assert delay is None
    else:
        assert delay == pytest.approx(expected)


def test_defaults_wait_about_eighteen_minutes_in_all() -> None:
    # The budget the page jobs rely on: 11 waits between 12 attempts, at the nominal values.
    waits = [next_delay(DEFAULT, attempt, None, 0.5) for attempt in range(1, 12)]
    assert sum(w for w in waits if w is not None) == pytest.approx(1111.0)
    assert next_delay(DEFAULT, 12, None, 0.5) is None


@pytest.mark.parametrize(
    ("attempt", "rand"),
    [
        # Attempts are counted from 1: 0 means nothing was tried, a caller bug.
        pytest.param(0, 0.5, id="attempt-zero"),
        # rand is a uniform draw in [0, 1); 1.0 and negatives are outside it.
        pytest.param(1, 1.0, id="rand-one"),
        pytest.param(1, -0.1, id="rand-negative"),
    ],
)
def test_next_delay_rejects_bad_arguments(attempt: int, rand: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        next_delay(DEFAULT, attempt, None, rand)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        # Each invalid setting is named in the error.
        pytest.param({"initial": 0.0}, "initial", id="initial-zero"),
        pytest.param({"multiplier": 0.5}, "multiplier", id="shrinking"),
        pytest.param({"max_interval": 0.5}, "max_interval", id="cap-below-initial"),
        pytest.param({"jitter": 1.0}, "jitter", id="jitter-100-percent"),
        pytest.param({"max_attempts": 0}, "max_attempts", id="no-attempts"),
        pytest.param({"max_retry_after": -1.0}, "max_retry_after", id="negative-retry-after"),
    ],
)
def test_policy_rejects_invalid_settings(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RetryPolicy(**fields)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Absent: the caller uses its own backoff.
        pytest.param(None, None, id="absent"),
        # delta-seconds, the common form (Slack, PagerDuty).
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 120 ", 120.0, id="seconds-padded"),
        pytest.param("0", 0.0, id="zero"),
        # HTTP-date, measured from `now`: IMF-fixdate, RFC 850 and asctime forms.
        pytest.param("Wed, 01 Jan 2025 00:01:30 GMT", 90.0, id="imf-fixdate"),
        pytest.param("Wednesday, 01-Jan-25 00:01:30 GMT", 90.0, id="rfc850"),
        pytest.param("Wed Jan  1 00:01:30 2025", 90.0, id="asctime"),
        # "-0000" parses to a naive datetime; it is still GMT.
        pytest.param("Wed, 01 Jan 2025 00:01:30 -0000", 90.0, id="minus-zero"),
        # A date already past means "now", never a negative wait.
        pytest.param("Tue, 31 Dec 2024 23:00:00 GMT", 0.0, id="past-date"),
        # Not RFC 9110: ignored rather than guessed at.
        pytest.param("1.5", None, id="fractional"),
        pytest.param("-1", None, id="negative"),
        pytest.param("", None, id="empty"),
        pytest.param("soon", None, id="garbage"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("Wed, 01 Jan 2025 00:01:30 GMT", now=datetime(2025, 1, 1))
