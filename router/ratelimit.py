"""Per-channel rate limits shared by every worker (GCRA in Redis).

Before a page is sent, `acquire` asks for a slot on its channel. When the channel is at its
limit it answers how long to wait, and the page is rescheduled for then without counting as a
failed attempt. Being in Redis, the limit holds across all worker processes.
"""

from __future__ import annotations

from redis import Redis

from router.channelschema import RateLimit
from router.keys import Keys

# Generic cell rate algorithm: the "theoretical arrival time" (tat) of the next message.
# KEYS[1] the channel's tat; ARGV[1] now (ms), ARGV[2] interval (ms), ARGV[3] burst tolerance (ms).
# Returns 0 when the message may go now, else the milliseconds to wait.
_GCRA = """
local now, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
if tat - now > tolerance then
  return tat - now - tolerance
end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now + 1000))
return 0
"""


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._script = redis.register_script(_GCRA)
        self._keys = keys

    def acquire(self, channel: str, limit: RateLimit | None, now_ms: int) -> float:
        """Seconds to wait before sending on `channel` (0: send now; the slot is taken)."""
        if limit is None:
            return 0.0
        interval = 1000.0 / limit.per_second
        tolerance = interval * (limit.burst - 1)
        wait = self._script(
            keys=[self._keys.rate(channel)], args=[now_ms, int(interval), int(tolerance)]
        )
        return int(wait) / 1000
