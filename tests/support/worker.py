"""A real rq worker run in the test process, with the clock under the test's control.

`drain` does what `sevrouter worker` does in a loop (pump the events stream into rq jobs, run
them with rq's SimpleWorker), until nothing is left. `advance` moves the test clock and releases
the scheduled jobs that are due by then, as rq's scheduler would when that time came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from router.context import WorkerContext
from router.jobs import Promoter, Pump, build_context, install, pages_queue
from router.ruleset import Ruleset
from router.settings import Settings


class _BurstWorker(SimpleWorker):
    """rq's worker listens for commands (kill, suspend) on a pub/sub thread that it starts and
    joins in every `work()` call, up to a second each; tests send none and drain often."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class TestWorker:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    context: WorkerContext
    queue: Queue
    pump: Pump
    clock: Clock
    redis: Redis

    def drain(self, rounds: int = 50) -> int:
        """Run everything runnable now; returns how many jobs ran."""
        ran = 0
        for _ in range(rounds):
            moved = self.pump.run_once(block_ms=None)
            queues = [pages_queue(self.queue), self.queue]
            count = sum(q.count for q in queues)
            if not moved and not count:
                return ran
            if count:
                _BurstWorker(queues, connection=self.redis).work(
                    burst=True, logging_level="ERROR", with_scheduler=False
                )
                ran += count
        raise AssertionError("work kept arriving after many rounds")

    def advance(self, delta: timedelta) -> int:
        """Move the clock forward, release the scheduled jobs due by then, and drain."""
        self.clock.now += delta
        # Jobs are scheduled at times read from the test clock, so "due" is by that clock: the
        # worker's own promoter, run with the test clock.
        Promoter(self.redis, [pages_queue(self.queue), self.queue], self.clock).run_once()
        return self.drain()

    def scheduled(self) -> list[str]:
        return [
            job_id
            for queue in (pages_queue(self.queue), self.queue)
            for job_id in ScheduledJobRegistry(queue=queue).get_job_ids()
        ]


def start_worker(settings: Settings, ruleset: Ruleset, redis: Redis) -> TestWorker:
    queue = Queue(settings.queue_name, connection=redis)
    context = build_context(settings, ruleset, redis, queue)
    clock = Clock()
    context.clock = clock
    install(context)
    pump = Pump(redis, context.keys, queue, "test-consumer")
    pump.ensure_group()
    return TestWorker(context, queue, pump, clock, redis)
