"""Telling channels when maintenance windows start and end (a thread in every worker).

Each worker looks at the transitions since its last look; the first to claim one in Redis (SET
NX) sends it, so with several workers each start and end is announced once.
"""

from __future__ import annotations

import threading
from datetime import datetime

import structlog
from redis.exceptions import RedisError

from router.context import WorkerContext
from router.maintenance import transitions
from router.notify.base import Message

log = structlog.get_logger(__name__)

CHECK_SECONDS = 30.0


def announce(ctx: WorkerContext, since: datetime, until: datetime) -> int:
    """Send the window starts and ends in [since, until); returns how many this worker sent."""
    sent = 0
    windows = {w.name: w for w in ctx.ruleset.config.maintenance}
    for moment, name, edge in transitions(ctx.ruleset.windows, since, until):
        window = windows.get(name)
        if window is None or not window.notify:
            continue
        claim = f"{ctx.keys.prefix}:maintenance:{name}:{edge}:{int(moment.timestamp())}"
        if not ctx.redis.set(claim, "1", nx=True, ex=7 * 86400):
            continue
        verb = "started" if edge == "start" else "ended"
        title = f"Maintenance window {name} {verb}"
        text = title + (f": {window.comment}" if window.comment else "")
        if edge == "start":
            text += f"\nAlerts matching {', '.join(window.match)} are muted until it ends."
        for channel_name in window.notify:
            channel = ctx.channels.get(channel_name)
            if channel is None:
                continue
            message = Message(
                idempotency_key=f"maintenance:{name}:{edge}:{int(moment.timestamp())}",
                event="incident.notify",
                title=title,
                text=text,
                payload={"maintenance": name, "edge": str(edge), "at": moment.isoformat()},
            )
            result = channel.send(message, now=ctx.clock())
            log.info(
                "maintenance_announced",
                window=name,
                edge=str(edge),
                channel=channel_name,
                outcome=result.outcome.value,
            )
        sent += 1
    return sent


def run(ctx: WorkerContext, stop: threading.Event) -> None:
    since = ctx.clock()
    while not stop.wait(CHECK_SECONDS):
        until = ctx.clock()
        try:
            announce(ctx, since, until)
            since = until
        except RedisError as exc:
            log.warning("maintenance_redis_error", error=type(exc).__name__)
