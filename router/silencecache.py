"""The receiver's in-memory copy of the unexpired silences (`ActiveSilences`)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from redis.asyncio import Redis as AsyncRedis

from router.silences import Silence, SilenceStore


class ActiveSilences:
    """The unexpired silences, held in memory for the receiver's hot path.

    `get(now)` / `get_async(redis, now)` answer from memory while the copy is younger than
    `max_age` (1 s) and refresh it otherwise, so silences created or expired elsewhere apply
    within a second; `invalidate()` forces the next call to refresh (after a local write). The
    copy holds pending silences too, and those that ended up to `max_age` before the read, and
    `silencing` checks each one's window against the `now` it is given: a copy read at T is
    exact for any `now` from T - max_age on, so starts and ends are exact and only writes lag.
    That matters under load, where a webhook that read the clock just before another refreshed
    the copy must not refresh it again. A clock that went back further also refreshes.

    Concurrent `get_async` calls that find the copy stale share one read (at a few thousand
    webhooks a second, each sending its own was a third of the load), when it was started for a
    `now` the copy it makes will cover. A local write (`invalidate`) also abandons a read in
    flight: what it returns goes to those who asked before the write, and is not kept.
    `get` uses the store's synchronous client, for workers and threads.
    """

    def __init__(self, store: SilenceStore, *, max_age: timedelta = timedelta(seconds=1)) -> None:
        self._store = store
        self._max_age = max_age
        # One tuple, swapped whole, so concurrent readers never see a torn (time, list) pair.
        self._snapshot: tuple[datetime, tuple[Silence, ...]] | None = None
        # The shared read in flight and the `now` it reads for.
        self._reading: tuple[asyncio.Task[tuple[Silence, ...]], datetime] | None = None
        self._writes = 0  # bumped by `invalidate`: a read that saw an older count is not kept

    def _covers(self, read_at: datetime, now: datetime) -> bool:
        return -self._max_age <= now - read_at < self._max_age

    def _fresh(self, now: datetime) -> tuple[Silence, ...] | None:
        """The held silences if the copy covers `now`, else None."""
        snapshot = self._snapshot
        if snapshot is not None and self._covers(snapshot[0], now):
            return snapshot[1]
        return None

    def get(self, now: datetime) -> tuple[Silence, ...]:
        held = self._fresh(now)
        return held if held is not None else self.refresh(now)

    async def get_async(self, redis: AsyncRedis, now: datetime) -> tuple[Silence, ...]:
        held = self._fresh(now)
        if held is not None:
            return held
        reading = self._reading
        if (
            reading is None
            or reading[0].get_loop() is not asyncio.get_running_loop()
            or not self._covers(reading[1], now)
        ):
            task = asyncio.ensure_future(self.refresh_async(redis, now))
            reading = self._reading = (task, now)
            task.add_done_callback(self._read_done)
        # Shielded: one caller giving up (its request cancelled) must not cancel the others'.
        return await asyncio.shield(reading[0])

    def _read_done(self, task: asyncio.Task[tuple[Silence, ...]]) -> None:
        if self._reading is not None and self._reading[0] is task:
            self._reading = None
        if not task.cancelled():
            task.exception()  # a failed read is the callers' error; retrieved here too

    def refresh(self, now: datetime) -> tuple[Silence, ...]:
        """Reload from Redis now (synchronous client)."""
        writes = self._writes
        silences = tuple(self._store.list(now - self._max_age))
        if writes == self._writes:
            self._snapshot = (now, silences)
        return silences

    async def refresh_async(self, redis: AsyncRedis, now: datetime) -> tuple[Silence, ...]:
        """Reload from Redis now, through an asyncio client."""
        writes = self._writes
        silences = tuple(await self._store.unexpired_async(redis, now - self._max_age))
        if writes == self._writes:
            self._snapshot = (now, silences)
        return silences

    def invalidate(self) -> None:
        self._writes += 1
        self._snapshot = None
        self._reading = None
