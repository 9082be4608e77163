"""When to try a failed page again: capped exponential backoff with jitter, and Retry-After.

Alertmanager retries a webhook with randomized exponential backoff until its flush deadline
(FORMATS.md 1.7). A page has no flush to fall back on, so it is retried for longer (about 18
minutes of waiting with the defaults) but a bounded number of times, after which the page job
records a permanent failure and escalation moves on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a channel's failed attempts are spaced. All durations are in seconds.

    The nominal wait before attempt n+1 is `initial * multiplier**(n-1)`, capped at
    `max_interval`, then spread by +/-`jitter` (a fraction) so that pages failing together do
    not retry together. After `max_attempts` attempts in all, there is no next one.
    A receiver's Retry-After is honoured up to `max_retry_after`.
    Invalid values raise `ValueError`.
    """

    initial: float = 1.0
    multiplier: float = 2.0
    max_interval: float = 300.0
    jitter: float = 0.2
    max_attempts: int = 12
    max_retry_after: float = 3600.0

    def __post_init__(self) -> None:
        problems = [
            message
            for failed, message in (
                (self.initial <= 0, "initial must be > 0"),
                (self.multiplier < 1, "multiplier must be >= 1"),
                (self.max_interval < self.initial, "max_interval must be >= initial"),
                (not 0 <= self.jitter < 1, "jitter must be in [0, 1)"),
                (self.max_attempts < 1, "max_attempts must be >= 1"),
                (self.max_retry_after < 0, "max_retry_after must be >= 0"),
            )
            if failed
        ]
        if problems:
            raise ValueError("invalid RetryPolicy: " + "; ".join(problems))


def next_delay(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rand: float
) -> float | None:
    """Seconds to wait before the next attempt, or None when no attempt is left.

    `attempt` counts the attempts made so far, the failed one included (1 after the first).
    `retry_after` is the receiver's Retry-After in seconds (`Delivery.retry_after`); it wins
    when longer than the backoff, capped at `policy.max_retry_after`, and is not jittered
    because the receiver chose it. `rand` is a uniform draw in [0, 1) (`random.random()`),
    injected so the result is reproducible; 0.5 gives the nominal wait.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if not 0 <= rand < 1:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
    if attempt >= policy.max_attempts:
        return None
    try:
        nominal = min(policy.initial * policy.multiplier ** (attempt - 1), policy.max_interval)
    except OverflowError:
        # Only reachable with a large max_attempts; the cap was passed long ago.
        nominal = policy.max_interval
    # Jitter is applied after the cap, so that pages failing together while at the cap still
    # spread out instead of all retrying exactly every max_interval.
    delay = nominal * (1 + policy.jitter * (2 * rand - 1))
    if retry_after is not None:
        delay = max(delay, min(max(retry_after, 0.0), policy.max_retry_after))
    return delay
