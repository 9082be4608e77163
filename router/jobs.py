"""Everything that touches rq: the event pump, the job functions, and the worker process.

The receiver never creates jobs (an rq enqueue costs a millisecond or two of CPU, which would cap
the receiver far below Alertmanager's rate). It appends one entry per touched incident to the
`{p}:events` stream inside the ingest script; the pump in each worker process reads that stream
through a consumer group, turns each entry into an rq job with a deterministic id, then
acknowledges and deletes the entry. Entries a dead worker had read but not acknowledged are
claimed again after `CLAIM_IDLE_MS`; deterministic job ids make that harmless.
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from router import escalations, events, maintenance_notify, paging, workflow
from router.access import make_links
from router.comms import CommsRenderer
from router.context import Scheduler, WorkerContext, build_channels
from router.incidents import IncidentStore, RedisThreads
from router.keys import EVENTS_GROUP, Keys, text
from router.redisconn import WORKER_RETRY_SECONDS, connect
from router.reload import Rules, reload_channel, watch
from router.ruleset import Ruleset
from router.settings import Settings

log = structlog.get_logger(__name__)

CLAIM_IDLE_MS = 30_000
_BATCH = 100
# A failed job (Redis blip, bug) is retried on this schedule before it is left failed.
_JOB_RETRY = Retry(max=5, interval=[1, 5, 15, 60, 300])
_RESULT_TTL = 3600

_context: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    """Make `context` the one the job functions use in this process."""
    global _context
    _context = context


def current() -> WorkerContext:
    if _context is None:
        raise RuntimeError("no worker context installed; jobs run inside `sevrouter worker`")
    return _context


# --- job functions (module-level so rq can import them by name) ---------------------------


def process_events(incident_id: str, entry_id: str, at_ms: int, events_json: str) -> None:
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    events.apply_events(current(), incident_id, entry_id, at, events.decode_events(events_json))


def deliver_page(page_key: str) -> str | None:
    outcome = paging.deliver(current(), page_key)
    return outcome.value if outcome else None


def escalate(incident_id: str, token: str) -> bool:
    return escalations.check(current(), incident_id, token)


def update_due(incident_id: str, due_ms: int) -> bool:
    return workflow.update_due(current(), incident_id, due_ms)


def update_overdue(incident_id: str, due_ms: int) -> bool:
    return workflow.update_overdue(current(), incident_id, due_ms)


def commander_due(incident_id: str, number: int) -> bool:
    return workflow.commander_due(current(), incident_id, number)


def postmortem_due(incident_id: str, count: int) -> bool:
    return workflow.postmortem_due(current(), incident_id, count)


def flap_settle_due(incident_id: str, fingerprint: str, resolved_ms: int) -> bool:
    return workflow.flap_settle_due(current(), incident_id, fingerprint, resolved_ms)


def auto_resolve_due(incident_id: str, mitigated_at: str) -> bool:
    return workflow.auto_resolve_due(current(), incident_id, mitigated_at)


_JOBS: dict[str, Callable[..., Any]] = {
    paging.DELIVER_JOB: deliver_page,
    escalations.ESCALATE_JOB: escalate,
    workflow.UPDATE_JOB: update_due,
    workflow.UPDATE_ESCALATE_JOB: update_overdue,
    workflow.COMMANDER_JOB: commander_due,
    workflow.POSTMORTEM_JOB: postmortem_due,
    workflow.AUTO_RESOLVE_JOB: auto_resolve_due,
    workflow.FLAP_SETTLE_JOB: flap_settle_due,
}


# --- queueing ------------------------------------------------------------------------------


def pages_queue(queue: Queue) -> Queue:
    """Page deliveries have their own queue, which workers take from first: a page never waits
    behind other incidents' bookkeeping when an alert storm fills the main queue."""
    return Queue(f"{queue.name}-pages", connection=queue.connection)


def make_scheduler(queue: Queue) -> Scheduler:
    pages = pages_queue(queue)

    def schedule(run_at: datetime | None, job: str, args: tuple[Any, ...], job_id: str) -> None:
        function = _JOBS[job]
        target = pages if job == paging.DELIVER_JOB else queue
        options: dict[str, Any] = {
            "job_id": job_id,
            "unique": True,
            "result_ttl": _RESULT_TTL,
            "retry": _JOB_RETRY,
        }
        try:
            if run_at is None:
                target.enqueue(function, *args, **options)
            else:
                # rq's registry keeps whole seconds; rounding up never runs a job early (a
                # receiver's Retry-After is honoured in full).
                due = datetime.fromtimestamp(math.ceil(run_at.timestamp()), UTC)
                target.enqueue_at(due, function, *args, **options)
        except DuplicateJobError:
            pass  # already queued or done: that is the point of the deterministic id

    return schedule


def queue_depth(redis: Redis, keys: Keys, queue_name: str) -> Callable[[], dict[str, int]]:
    def depth() -> dict[str, int]:
        queue = Queue(queue_name, connection=redis)
        return {
            "events": int(redis.xlen(keys.events)),
            "jobs": queue.count,
            "pages": pages_queue(queue).count,
        }

    return depth


class Pump:
    """Moves webhook events from the Redis stream into rq jobs."""

    def __init__(self, redis: Redis, keys: Keys, queue: Queue, consumer: str) -> None:
        self._redis = redis
        self._keys = keys
        self._queue = queue
        self._consumer = consumer

    def ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self._keys.events, EVENTS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run_once(self, block_ms: int | None = 1000) -> int:
        """Move one batch: re-claimed stale entries first, then new ones. Returns entries moved.

        `block_ms` is how long to wait for new entries; None returns at once.
        """
        claim: Any = self._redis.xautoclaim(
            self._keys.events, EVENTS_GROUP, self._consumer, CLAIM_IDLE_MS, "0-0", count=_BATCH
        )
        entries: list[tuple[bytes, dict[bytes, bytes]]] = list(claim[1])
        if not entries:
            reply: Any = self._redis.xreadgroup(
                EVENTS_GROUP, self._consumer, {self._keys.events: ">"}, count=_BATCH, block=block_ms
            )
            entries = [entry for _, stream_entries in reply for entry in stream_entries]
        for entry_id, fields in entries:
            self._enqueue(text(entry_id), fields)
        if entries:
            ids = [entry_id for entry_id, _ in entries]
            pipe = self._redis.pipeline()
            pipe.xack(self._keys.events, EVENTS_GROUP, *ids)
            pipe.xdel(self._keys.events, *ids)
            pipe.execute()
        return len(entries)

    def _enqueue(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        # A duplicate id means this entry was already turned into a job (re-claimed entry).
        with contextlib.suppress(DuplicateJobError):
            self._queue.enqueue(
                process_events,
                fields[b"incident"].decode(),
                entry_id,
                int(fields[b"at"]),
                fields[b"events"].decode(),
                job_id="events-" + entry_id.replace("-", "_"),
                unique=True,
                result_ttl=_RESULT_TTL,
                retry=_JOB_RETRY,
            )

    def run(self, stop: threading.Event) -> None:
        self.ensure_group()
        while not stop.is_set():
            try:
                self.run_once()
            except RedisError as exc:
                log.warning("pump_redis_error", error=type(exc).__name__)
                stop.wait(1.0)


def templates_dir(rules_path: Path) -> Path:
    """`templates/` next to the rule files: where message template overrides live."""
    return (rules_path if rules_path.is_dir() else rules_path.parent) / "templates"


def build_context(
    settings: Settings, ruleset: Ruleset, redis: Redis, queue: Queue
) -> WorkerContext:
    keys = Keys(settings.key_prefix)
    http = httpx.Client(follow_redirects=False, headers={"User-Agent": "sevrouter"})
    context = WorkerContext(
        settings=settings,
        ruleset=ruleset,
        redis=redis,
        keys=keys,
        store=IncidentStore(redis, keys),
        channels=build_channels(
            ruleset,
            http,
            RedisThreads(redis, keys, int(ruleset.config.incidents.retention)),
            templates_dir(settings.rules_path),
        ),
        schedule=make_scheduler(queue),
        http=http,
        comms=CommsRenderer(templates_dir(settings.rules_path)),
    )
    context.links = lambda incident, person: make_links(
        settings.public_url,
        settings.link_secret,
        incident,
        person,
        context.clock(),
        settings.link_ttl_seconds,
    )
    return context


class Promoter:
    """Moves scheduled jobs (page retries, escalation deadlines) to the queue when they are due.

    It reads rq's own scheduled-job registry, but replaces rq's scheduler process: that process
    dies on the first Redis connection error and rq restarts it only in its maintenance pass,
    about ten minutes later, stalling every escalation meanwhile. This loop just logs and tries
    again a second later. Several workers may run it at once: removing a job from the registry
    (ZREM) is the claim, and only the worker whose ZREM succeeded enqueues the job.
    """

    def __init__(self, redis: Redis, queues: list[Queue], clock: Callable[[], datetime]) -> None:
        self._redis = redis
        self._queues = [(queue, ScheduledJobRegistry(queue=queue)) for queue in queues]
        self._clock = clock

    def run_once(self) -> int:
        now = int(self._clock().timestamp())
        promoted = 0
        for queue, registry in self._queues:
            for job_id in registry.get_jobs_to_schedule(now):
                if not self._redis.zrem(registry.key, job_id):
                    continue  # another worker claimed it
                try:
                    job = Job.fetch(job_id, connection=self._redis)
                except NoSuchJobError:
                    continue
                queue.enqueue_job(job)
                promoted += 1
        return promoted

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                self.run_once()
            except RedisError as exc:
                log.warning("promoter_redis_error", error=type(exc).__name__)


def _swap_rules(context: WorkerContext, ruleset: Ruleset) -> None:
    """New rules for the jobs that start from now on; escalations keep their snapshots."""
    threads = RedisThreads(context.redis, context.keys, int(ruleset.config.incidents.retention))
    channels = build_channels(
        ruleset, context.http, threads, templates_dir(context.settings.rules_path)
    )
    context.channels = channels
    context.ruleset = ruleset


def _follow_reloads(redis: Redis, rules: Rules, stop: threading.Event) -> None:
    """Reload when another process published a reload (`POST /-/reload`)."""
    while not stop.is_set():
        try:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            pubsub.subscribe(reload_channel(rules.settings.key_prefix))
            while not stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    rules.reload("reload published on Redis")
        except RedisError:
            stop.wait(2.0)


def run_worker(settings: Settings, ruleset: Ruleset, *, burst: bool = False) -> None:
    """The worker process: the event pump, the promoter of scheduled jobs, and an rq worker.

    SIGTERM/SIGINT stop it warmly: rq finishes the job in hand, then the threads stop.
    """
    redis = connect(settings.redis_url, retry_for=WORKER_RETRY_SECONDS)
    queue = Queue(settings.queue_name, connection=redis)
    context = build_context(settings, ruleset, redis, queue)
    install(context)
    consumer = f"{socket.gethostname()}-{threading.get_native_id()}"
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=Pump(redis, context.keys, queue, consumer).run,
            args=(stop,),
            name="event-pump",
            daemon=True,
        ),
        threading.Thread(
            target=Promoter(redis, [pages_queue(queue), queue], context.clock).run,
            args=(stop,),
            name="promoter",
            daemon=True,
        ),
    ]
    threads.append(
        threading.Thread(
            target=maintenance_notify.run, args=(context, stop), name="maintenance", daemon=True
        )
    )
    rules = Rules(settings, ruleset)
    rules.listeners.append(lambda new: _swap_rules(context, new))
    threads.append(
        threading.Thread(
            target=_follow_reloads, args=(redis, rules, stop), name="rules-reload", daemon=True
        )
    )
    if settings.rules_watch_interval > 0:
        threads.append(
            threading.Thread(
                target=watch,
                args=(rules, stop, settings.rules_watch_interval),
                name="rules-watcher",
                daemon=True,
            )
        )
    signal.signal(signal.SIGHUP, lambda signum, frame: rules.reload("SIGHUP"))
    for thread in threads:
        thread.start()
    # SimpleWorker runs jobs in this process instead of forking one per job: jobs are short,
    # our own code, and share the HTTP connection pool; forking would add ~10 ms to each page.
    log.info("worker_started", queue=settings.queue_name, consumer=consumer)
    try:
        while True:
            worker = SimpleWorker([pages_queue(queue), queue], connection=redis)
            worker.work(burst=burst, logging_level="WARNING")
            # rq records a SIGTERM/SIGINT only as this date (an idle worker just leaves its loop).
            if burst or worker._shutdown_requested_date is not None:
                break
            # rq gives up when Redis stays away longer than its own retries (a failover that
            # took its time): start a fresh worker instead of exiting the process quietly.
            log.warning("worker_restarting", reason="rq stopped without being asked to")
            stop.wait(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        context.http.close()
        log.info("worker_stopped")
