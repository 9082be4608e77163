"""Pages: created once per idempotency key, delivered with retries, every attempt on the timeline.

`request_page` is the only way a page comes to exist: it creates the page record with `HSETNX`,
so a second request for the same (incident, step, target, channel, kind) does nothing and a page
is never sent twice. `deliver` makes one attempt and schedules the next one when the channel says
the failure is transient; a short lock keeps two workers from sending the same page at once.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import structlog

from router.context import WorkerContext
from router.escalation import PageRequest
from router.incidents import Incident, TimelineEntry
from router.keys import page_hash, text
from router.notify.base import Delivery, Message, Outcome
from router.notify.retry import next_delay

log = structlog.get_logger(__name__)

DELIVER_JOB = "deliver_page"
# Longer than a channel's worst attempt (timeouts are seconds), short enough that a worker that
# died mid-send does not hold the page for long.
_SEND_LOCK_SECONDS = 120


# Creates a page record only if none exists.
# KEYS[1] page record; ARGV[1] TTL seconds, then field/value pairs.
_CREATE_PAGE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class PageStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


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
        "channel": request.channel,
        "kind": request.kind,
        "event": request.event,
        "status": PageStatus.PENDING,
        "attempts": 0,
        "created_at": ctx.clock().isoformat(),
    }
    args: list[str | int] = [int(ctx.ruleset.config.incidents.retention)]
    for name, value in fields.items():
        args += [name, value]
    created = bool(_create_page(ctx, key, args))
    attempts = ctx.redis.hget(key, "attempts")
    if attempts is not None and int(attempts) == 0:
        ctx.schedule(None, DELIVER_JOB, (request.key,), _job_id(request.key, 1))
    return created


def _create_page(ctx: WorkerContext, key: str, args: list[str | int]) -> Any:
    script = ctx.redis.register_script(_CREATE_PAGE)
    return script(keys=[key], args=args)


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
        return _attempt(ctx, page_key, key, record)
    finally:
        ctx.redis.delete(lock)


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
        result = channel.send(build_message(incident, record, page_key), now=now)
    delay = None
    if result.outcome is Outcome.RETRY:
        delay = next_delay(ctx.retry_policy, attempt, result.retry_after, random.random())  # noqa: S311 - jitter, not security
    final = (
        result.outcome
        if result.outcome is not Outcome.RETRY or delay is not None
        else Outcome.PERMANENT
    )
    status = {
        Outcome.DELIVERED: PageStatus.DELIVERED,
        Outcome.PERMANENT: PageStatus.FAILED,
        Outcome.RETRY: PageStatus.PENDING,
    }[final]
    ctx.redis.hset(
        key, mapping={"status": status, "detail": result.detail, "updated_at": now.isoformat()}
    )
    ctx.redis.hincrby(ctx.keys.stats, f"page:{channel_name}:{result.outcome.value}", 1)
    ctx.store.append(incident_id, _timeline_entry(record, attempt, result, delay, now))
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
    if delay is not None:
        run_at = now + timedelta(seconds=delay)
        ctx.schedule(run_at, DELIVER_JOB, (page_key,), _job_id(page_key, attempt + 1))
    return final


def _timeline_entry(
    record: dict[str, str], attempt: int, result: Delivery, delay: float | None, now: datetime
) -> TimelineEntry:
    what = f"{record['kind']} page to {record['channel']}"
    if result.outcome is Outcome.DELIVERED:
        kind, text = "page_sent", f"{what} delivered (attempt {attempt})"
    elif delay is not None:
        kind, text = (
            "page_retry",
            f"{what} attempt {attempt} failed: {result.detail}; retrying in {delay:.0f}s",
        )
    else:
        kind, text = (
            "page_failed",
            f"{what} failed permanently after {attempt} attempt(s): {result.detail}",
        )
    data = {
        "channel": record["channel"],
        "kind": record["kind"],
        "step": int(record["step"]),
        "attempt": attempt,
    }
    return TimelineEntry(now, kind, text, data=data)


def build_message(incident: Incident, record: dict[str, str], page_key: str) -> Message:
    state = incident.state.value
    title = f"[{incident.severity.value}] {incident.id} {incident.title} ({state})"
    lines = [
        f"{incident.severity.value} incident {incident.id} for team {incident.team}: {state}",
        f"Opened {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC; "
        f"{incident.alerts_firing} alert(s) firing",
    ]
    if incident.summary:
        lines.append(incident.summary)
    if incident.runbook:
        lines.append(f"Runbook: {incident.runbook}")
    payload = incident.to_json()
    payload.pop("timeline")
    payload["page"] = {
        "kind": record["kind"],
        "step": int(record["step"]),
        "channel": record["channel"],
    }
    return Message(
        idempotency_key=page_key.replace(" ", "_"),
        event=record["event"],
        title=title,
        text="\n".join(lines),
        payload=payload,
    )


def _job_id(page_key: str, attempt: int) -> str:
    return f"page-{page_hash(page_key)}-{attempt}"
