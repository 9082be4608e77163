"""The HTTP receiver: the webhook path (router/webhook.py), the API, health, readiness and
metrics, and the services they share.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from router import (
    api,
    api_actions,
    api_drill,
    api_explain,
    api_reload,
    api_silences,
    api_workflow,
    metrics,
    webhook,
)
from router.alert import Alert
from router.dedupe import Deduper
from router.incidents import IncidentStore
from router.keys import Keys
from router.lifecycle import Lifecycle
from router.mutes import Mutes
from router.redisconn import connect, connect_async
from router.reload import Rules
from router.ruleset import Ruleset
from router.settings import Settings
from router.silencecache import ActiveSilences
from router.silences import SilenceStore

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Services:
    """What the endpoints share; built once per process in `create_app`."""

    settings: Settings
    ruleset: Ruleset
    keys: Keys
    redis: AsyncRedis
    sync_redis: Redis
    deduper: Deduper
    store: IncidentStore
    lifecycle: Lifecycle
    mutes: Mutes
    silences: SilenceStore
    silence_cache: ActiveSilences
    rules: Rules
    registry: CollectorRegistry


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Deliberately does not touch Redis."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: Redis answers and a rule set is loaded."""
    services: Services = request.app.state.services
    problems = []
    try:
        await services.redis.ping()
    except RedisError as exc:
        problems.append(f"redis: {type(exc).__name__}")
    status = 503 if problems else 200
    return JSONResponse(
        {
            "status": "not ready" if problems else "ready",
            "problems": problems,
            "rules": {
                "integrations": len(services.ruleset.config.integrations),
                "rules": len(services.ruleset.rules),
                # A refused reload leaves the old rules running (still ready), and says why.
                "last_reload_error": services.rules.last_error,
            },
        },
        status_code=status,
    )


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    # Process-local counters from the default registry, installation-wide numbers from Redis.
    local = generate_latest(DEFAULT_REGISTRY)
    shared = await run_in_threadpool(generate_latest, services.registry)
    return Response(local + shared, media_type=CONTENT_TYPE_LATEST)


def create_app(
    settings: Settings, ruleset: Ruleset, *, queue_depth: metrics.QueueDepth
) -> Starlette:
    """The receiver application, with its Redis clients and metrics registry."""
    keys = Keys(settings.key_prefix)
    async_redis = connect_async(settings.redis_url)
    sync_redis = connect(settings.redis_url)
    registry = CollectorRegistry()
    registry.register(metrics.RedisStatsCollector(sync_redis, keys, queue_depth))
    services = Services(
        settings=settings,
        ruleset=ruleset,
        keys=keys,
        redis=async_redis,
        sync_redis=sync_redis,
        deduper=Deduper(
            async_redis, settings.key_prefix, wait_replicas=settings.redis_wait_replicas
        ),
        store=IncidentStore(sync_redis, keys),
        lifecycle=Lifecycle(sync_redis, keys),
        mutes=Mutes(),
        silences=(silence_store := SilenceStore(sync_redis, keys)),
        silence_cache=ActiveSilences(silence_store),
        rules=Rules(settings, ruleset),
        registry=registry,
    )

    def swap(new: Ruleset) -> None:
        # One attribute assignment: each request reads `services.ruleset` once and keeps it.
        services.ruleset = new

    services.rules.listeners.append(swap)

    def in_maintenance(alert: Alert, at: datetime) -> str | None:
        window = services.ruleset.windows.covering(alert.labels, at)
        return window.name if window is not None else None

    services.mutes.maintenance = in_maintenance

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("receiver_started", integrations=sorted(ruleset.integrations))
        reloaders = api_reload.start(app, settings.rules_watch_interval)
        yield
        for task in reloaders:
            task.cancel()
        await asyncio.gather(*reloaders, return_exceptions=True)
        await async_redis.aclose()
        sync_redis.close()

    app = ReceiverApp(
        services,
        routes=[
            *api_reload.routes,
            *api_drill.routes,
            *api_workflow.routes,
            *api_silences.routes,
            *api_actions.routes,
            *api_explain.routes,
            *api.routes,
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
        ],
        lifespan=lifespan,
    )
    return app


class ReceiverApp(Starlette):
    """Starlette, with `/api/v1/webhooks/<name>` (and `<name>/`) handed to `router.webhook`
    before the middleware stack and router, which cost about a third of a one-alert webhook.
    Every other path, including deeper ones under the webhook prefix, goes through Starlette."""

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.state.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = _webhook_name(scope)
            if name:
                await webhook.handle(self.services, name, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _webhook_name(scope: Scope) -> str:
    """The integration a request's path names under the webhook prefix, or ''."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    # As Starlette's routing does: the root path counts only as a whole path segment.
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    if not path.startswith(webhook.PATH_PREFIX):
        return ""
    name = path[len(webhook.PATH_PREFIX) :]
    # A trailing slash is tolerated (Starlette used to redirect it, and Alertmanager follows).
    name = name.removesuffix("/")
    return "" if "/" in name else name
