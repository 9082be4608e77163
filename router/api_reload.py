"""`POST /-/reload` and the receiver's background reloaders (SIGHUP, Redis, the file watcher)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.access import person_for_token
from router.reload import Rules, reload_channel

log = structlog.get_logger(__name__)


async def reload_endpoint(request: Request) -> Response:
    services = request.app.state.services
    person = person_for_token(
        services.settings.api_tokens, request.headers.get("authorization", "")
    )
    if person is None:
        return JSONResponse(
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    rules: Rules = services.rules
    ok = await run_in_threadpool(rules.reload, f"POST /-/reload by {person}")
    if not ok:
        return JSONResponse(
            {
                "error": "the new rules are invalid; the old ones keep running",
                "problems": rules.last_error,
            },
            status_code=400,
        )
    # Every other receiver and worker reloads from its own copy of the files.
    with contextlib.suppress(RedisError):
        await services.redis.publish(reload_channel(services.keys.prefix), person)
    return JSONResponse({"status": "reloaded", "rules": len(rules.current.rules)})


async def _follow_redis(app: Starlette) -> None:
    services = app.state.services
    while True:
        try:
            pubsub = services.redis.pubsub()
            await pubsub.subscribe(reload_channel(services.keys.prefix))
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await run_in_threadpool(services.rules.reload, "reload published on Redis")
        except RedisError:
            await asyncio.sleep(2)  # Redis away: the watcher still sees file changes


async def _watch_files(app: Starlette, interval: float) -> None:
    rules: Rules = app.state.services.rules
    while True:
        await asyncio.sleep(interval)
        if await run_in_threadpool(rules.changed_on_disk):
            await run_in_threadpool(rules.reload, "files changed")


def start(app: Starlette, interval: float) -> list[asyncio.Task[None]]:
    """Background reloaders of this receiver; the caller cancels them at shutdown."""
    loop = asyncio.get_running_loop()
    rules: Rules = app.state.services.rules
    # Signal handlers exist only on Unix event loops in the main thread (tests serve the app in
    # a thread): elsewhere SIGHUP is skipped, and /-/reload and the watcher still work.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # see #5
        loop.add_signal_handler(
            signal.SIGHUP, lambda: loop.create_task(run_in_threadpool(rules.reload, "SIGHUP"))
        )
    tasks = [loop.create_task(_follow_redis(app))]
    if interval > 0:
        tasks.append(loop.create_task(_watch_files(app, interval)))
    return tasks


routes = [Route("/-/reload", reload_endpoint, methods=["POST"])]
