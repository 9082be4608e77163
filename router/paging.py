"""Pages: created once per idempotency key, delivered with retries, every attempt on the timeline.

`request_page` is the only way a page comes to exist: it creates the page record atomically only
if absent, so a second request for the same (incident, step, target, channel, kind) does nothing
and a page is never sent twice. `deliver` makes one attempt and schedules the next when the
channel says the failure is transient; a short lock keeps two workers from sending one page at
once. Acknowledging cancels pages still waiting to be (re)tried; a page that fails for good
moves to the channel's `fallback`, if it has one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from router.channelschema import rate_limit
from router.context import WorkerContext
from router.incidents import TimelineEntry
from router.keys import page_hash, text
from router.messages import build_message
from router.notify.base import TRIGGER_EVENTS, Delivery, Outcome
from router.notify.retry import next_delay
from router.ratelimit import RateLimiter

log = structlog.get_logger(__name__)

DELIVER_JOB = "deliver_page"
# Longer than a channel's worst attempt (timeouts are seconds), short enough that a worker that
# died mid-send does not hold the page for long.
_SEND_LOCK_SECONDS = 120

# Creates a page record only if none exists, and lists it on its incident.
# KEYS[1] page record, KEYS[2] the incident's page set; ARGV[1] TTL seconds, ARGV[2] page key,
# then field/value pairs.
_CREATE_PAGE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
# Records an attempt's outcome unless the page was cancelled meanwhile.
# KEYS[1] page record; ARGV: field/value pairs. Returns 1 if recorded.
_FINISH_ATTEMPT = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
# Cancels a page that is still pending. KEYS[1] page record. Returns 1 if cancelled.
_CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled')
return 1
"""


class PageStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One notification to one target on one channel; `key` is its idempotency key."""

    incident: str
    step: int  # 1-based escalation step; 0 for the team channel
    target: str  # "channel:ops", "person:alice"
    channel: str
    kind: str  # why: trigger, escalate-2-r0, raised-SEV1, ack-r0, mitigated-0 ...
    event: str  # incident.opened, incident.escalated, ...
    recipient: str | None = None  # the person's address on the channel
    # Text that replaces the generated one: a rendered status update or "Incident Started".
    body: str = ""

    @property
    def key(self) -> str:
        return f"{self.incident}:{self.step}:{self.target}:{self.channel}:{self.kind}"


def request_page(ctx: WorkerContext, request: PageRequest) -> bool:
    """Create the page (once) and make sure its first attempt is scheduled.

    Safe to repeat: the record is created atomically only if absent, and the first attempt's job
    id is deterministic, so a retried job neither duplicates the page nor loses it.
    """
    key = ctx.keys.page(request.key)
    fields: dict[str, str | int] = {
        "key": request.key,
        "incident": request.incident,
        "step": request.step,
        "target": request.target,
        "channel": request.channel,
        "recipient": request.recipient or "",
        "body": request.body,
        "kind": request.kind,
        "event": request.event,
        "status": PageStatus.PENDING,
        "attempts": 0,
        "created_at": ctx.clock().isoformat(),
    }
    args: list[str | int] = [int(ctx.ruleset.config.incidents.retention), request.key]
    for name, value in fields.items():
        args += [name, value]
    script = ctx.redis.register_script(_CREATE_PAGE)
    created = bool(script(keys=[key, ctx.keys.incident_pages(request.incident)], args=args))
    status, attempts = ctx.redis.hmget(key, "status", "attempts")
    if status is not None and text(status) == PageStatus.PENDING and int(attempts or 0) == 0:
        ctx.schedule(None, DELIVER_JOB, (request.key,), _job_id(request.key, 1))
    return created


def deliver(ctx: WorkerContext, page_key: str) -> Outcome | None:
    """One delivery attempt of a page; None when there was nothing to do."""
    key = ctx.keys.page(page_key)
    lock = f"{key}:lock"
    if not ctx.redis.set(lock, "1", nx=True, ex=_SEND_LOCK_SECONDS):
        return None
    try:
        record = {text(k): text(v) for k, v in ctx.redis.hgetall(key).items()}
        if record.get("status") != PageStatus.PENDING:
            return None
        if _throttled(ctx, page_key, record):
            return None
        return _attempt(ctx, page_key, key, record)
    finally:
        ctx.redis.delete(lock)


def _throttled(ctx: WorkerContext, page_key: str, record: dict[str, str]) -> bool:
    """Reschedule (without spending an attempt) when the channel is at its rate limit."""
    config = ctx.ruleset.channel(record["channel"])
    now = ctx.clock()
    wait = RateLimiter(ctx.redis, ctx.keys).acquire(
        record["channel"], rate_limit(config) if config else None, int(now.timestamp() * 1000)
    )
    if wait <= 0:
        return False
    attempt = int(record.get("attempts") or 0) + 1
    throttle = int(ctx.redis.hincrby(ctx.keys.page(page_key), "throttled", 1))
    run_at = now + timedelta(seconds=wait)
    ctx.schedule(run_at, DELIVER_JOB, (page_key,), f"{_job_id(page_key, attempt)}-t{throttle}")
    log.info("page_throttled", channel=record["channel"], wait=wait, incident=record["incident"])
    return True


def _attempt(ctx: WorkerContext, page_key: str, key: str, record: dict[str, str]) -> Outcome:
    now = ctx.clock()
    incident_id, channel_name = record["incident"], record["channel"]
    attempt = ctx.redis.hincrby(key, "attempts", 1)
    incident = ctx.store.get(incident_id)
    channel = ctx.channels.get(channel_name)
    if incident is None or channel is None:
        missing = "incident" if incident is None else f"channel {channel_name!r}"
        result = Delivery(Outcome.PERMANENT, f"{missing} no longer exists")
    else:
        person = (
            record["target"].removeprefix("person:")
            if record["target"].startswith("person:")
            else ""
        )
        message = build_message(incident, record, page_key, ctx.links(incident_id, person))
        result = channel.send(message, now=now)
    delay = None
    if result.outcome is Outcome.RETRY:
        delay = next_delay(ctx.retry_policy, attempt, result.retry_after, random.random())  # noqa: S311 - jitter, not security
    final = (
        Outcome.PERMANENT if result.outcome is Outcome.RETRY and delay is None else result.outcome
    )
    status = {
        Outcome.DELIVERED: PageStatus.DELIVERED,
        Outcome.PERMANENT: PageStatus.FAILED,
        Outcome.RETRY: PageStatus.PENDING,
    }[final]
    finish = ctx.redis.register_script(_FINISH_ATTEMPT)
    recorded = finish(
        keys=[key],
        args=["status", status, "detail", result.detail, "updated_at", now.isoformat()],
    )
    ctx.redis.hincrby(ctx.keys.stats, f"page:{channel_name}:{result.outcome.value}", 1)
    # Once per attempt: a Redis failover can make the client resend a write that had landed.
    ctx.store.append_once(
        incident_id,
        f"page:{page_key}:{attempt}",
        _timeline_entry(record, attempt, result, delay, now),
    )
    log.info(
        "page_attempt",
        incident=incident_id,
        channel=channel_name,
        kind=record["kind"],
        attempt=attempt,
        outcome=result.outcome.value,
        detail=result.detail,
        retry_in=delay,
    )
    if not recorded:
        return final  # cancelled while we were sending: no retry, no fallback
    if delay is not None:
        run_at = now + timedelta(seconds=delay)
        ctx.schedule(run_at, DELIVER_JOB, (page_key,), _job_id(page_key, attempt + 1))
    elif final is Outcome.PERMANENT:
        _fall_back(ctx, record)
    return final


def _fall_back(ctx: WorkerContext, record: dict[str, str]) -> None:
    config = ctx.ruleset.channel(record["channel"])
    # One hop only: a fallback that fails too is recorded, and escalation moves on.
    if config is None or config.fallback is None or record["kind"].endswith("-fallback"):
        return
    request_page(
        ctx,
        PageRequest(
            incident=record["incident"],
            step=int(record["step"]),
            target=record["target"],
            channel=config.fallback,
            kind=f"{record['kind']}-fallback",
            event=record["event"],
        ),
    )


def cancel_pending(ctx: WorkerContext, incident_id: str) -> int:
    """Cancel every paging notification of the incident still waiting to be sent or retried."""
    cancel = ctx.redis.register_script(_CANCEL)
    cancelled = 0
    for record in _records(ctx, incident_id):
        if record.get("event") in TRIGGER_EVENTS and record.get("status") == PageStatus.PENDING:
            cancelled += int(cancel(keys=[ctx.keys.page(record["key"])]))
    return cancelled


def paged(ctx: WorkerContext, incident_id: str) -> list[PageRequest]:
    """One request per (target, channel) that received a paging notification: who to tell when
    the incident is acknowledged, mitigated or resolved."""
    seen: dict[tuple[str, str], PageRequest] = {}
    for record in sorted(_records(ctx, incident_id), key=lambda r: int(r.get("step", 0))):
        if (
            record.get("event") not in TRIGGER_EVENTS
            or record.get("status") != PageStatus.DELIVERED
        ):
            continue
        seen.setdefault(
            (record["target"], record["channel"]),
            PageRequest(
                incident_id,
                int(record["step"]),
                record["target"],
                record["channel"],
                "",
                "",
                record.get("recipient") or None,
            ),
        )
    return list(seen.values())


def _records(ctx: WorkerContext, incident_id: str) -> list[dict[str, str]]:
    keys = [text(k) for k in ctx.redis.smembers(ctx.keys.incident_pages(incident_id))]
    pipe = ctx.redis.pipeline(transaction=False)
    for page_key in keys:
        pipe.hgetall(ctx.keys.page(page_key))
    return [{text(k): text(v) for k, v in raw.items()} for raw in pipe.execute() if raw]


def _timeline_entry(
    record: dict[str, str], attempt: int, result: Delivery, delay: float | None, now: datetime
) -> TimelineEntry:
    who = record["target"].removeprefix("channel:")
    what = f"{record['kind']} page to {who}" + (
        f" via {record['channel']}" if who != record["channel"] else ""
    )
    if result.outcome is Outcome.DELIVERED:
        kind, text_ = "page_sent", f"{what} delivered (attempt {attempt})"
    elif delay is not None:
        kind = "page_retry"
        text_ = f"{what} attempt {attempt} failed: {result.detail}; retrying in {delay:.0f}s"
    else:
        kind = "page_failed"
        text_ = f"{what} failed permanently after {attempt} attempt(s): {result.detail}"
    data = {
        "channel": record["channel"],
        "target": record["target"],
        "kind": record["kind"],
        "step": int(record["step"]),
        "attempt": attempt,
    }
    return TimelineEntry(now, kind, text_, data=data)


def _job_id(page_key: str, attempt: int) -> str:
    return f"page-{page_hash(page_key)}-{attempt}"
