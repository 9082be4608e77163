"""The HTTP receiver: webhooks in, receipts out, plus health, readiness and metrics.

The webhook path does no outbound HTTP and no job creation: it authenticates, parses, evaluates
the rules, runs the one atomic Redis step, and answers. Workers do everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
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

from router import (
    api,
    api_actions,
    api_drill,
    api_explain,
    api_reload,
    api_silences,
    api_workflow,
    metrics,
)
from router.alert import Alert, AlertStatus
from router.auth import check_headers, check_signature
from router.dedupe import Deduper, Outcome, Receipt, Routed, summarize
from router.errors import AuthError, PayloadError
from router.incidents import IncidentStore
from router.keys import Keys
from router.lifecycle import Lifecycle
from router.mutes import Mutes
from router.redisconn import connect, connect_async
from router.reload import Rules
from router.ruleset import Ruleset
from router.settings import Settings
from router.silences import ActiveSilences, SilenceStore
from router.sources import SourceKind, parse

log = structlog.get_logger(__name__)

# Alertmanager retries 5xx only (not 429), so "try again later" must be a 503.
RETRY_AFTER_SECONDS = "5"


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


def error(
    status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The JSON error body every endpoint uses: {"error": message, ...extra}."""
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


async def receive_webhook(request: Request) -> Response:
    started = time.perf_counter()
    name = request.path_params["integration"]
    response = await _receive(request, name)
    integration = name if request.app.state.services.ruleset.integration(name) else "(unknown)"
    metrics.WEBHOOK_REQUESTS.labels(integration, str(response.status_code)).inc()
    metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    return response


def _unavailable(integration: str, exc: RedisError) -> Response:
    # Alertmanager retries 5xx only: a 503 keeps the alert with the sender until Redis is back.
    log.warning("redis_unavailable", integration=integration, error=type(exc).__name__)
    return error(
        503, "storage unavailable, retry later", headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


async def _receive(request: Request, name: str) -> Response:
    services: Services = request.app.state.services
    ruleset = services.ruleset
    integration = ruleset.integration(name)
    if integration is None:
        return error(404, f"unknown integration {name!r}; integrations are declared in rules/")
    try:
        check_headers(integration, request.headers, ruleset.secret)
    except AuthError as exc:
        return error(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return error(
            415, f"expected Content-Type: application/json, got {content_type or 'none'!r}"
        )
    limit = services.settings.max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        return error(413, f"body larger than the {limit}-byte limit (SEVROUTER_MAX_BODY_BYTES)")
    now = time.time()
    at = datetime.fromtimestamp(now, UTC)  # the request's one clock reading
    try:
        check_signature(integration, request.headers, body, ruleset.secret, now=now)
    except AuthError as exc:
        return error(401, str(exc))
    try:
        alerts = parse(
            SourceKind(integration.type),
            body,
            integration=name,
            now=at,
        )
    except PayloadError as exc:
        return error(400, exc.message, field=exc.field)

    try:
        silences = await services.silence_cache.get_async(services.redis, at)
    except RedisError as exc:
        return _unavailable(name, exc)
    receipt = Receipt(alerts=len(alerts))
    routed: list[Routed] = []
    firing = 0
    for alert in alerts:
        firing += alert.status is AlertStatus.FIRING
        if alert.is_test:
            # Grafana's "Test" button: proves the contact point works; never opens an incident.
            receipt.tests += 1
            log.info("test_notification_received", integration=name)
            continue
        evaluation = ruleset.evaluate(alert)
        if evaluation.dropped_by is not None:
            receipt.dropped += 1
            continue
        mute = services.mutes.reason(alert, at, silences)
        routed.extend(
            Routed(alert, d, mute, evaluation.inhibit_sources, evaluation.inhibit_targets)
            for d in evaluation.decisions
        )
    policy = ruleset.config.incidents
    try:
        results = await services.deduper.ingest(
            routed,
            now_ms=int(now * 1000),
            flap_window_s=policy.flap_window,
            flap_threshold=policy.flap_threshold,
            ttl_s=policy.retention,
        )
    except RedisError as exc:
        return _unavailable(name, exc)
    summarize(receipt, results)
    resolved_silences = {
        reason.removeprefix("silence:")
        for (outcome, reason), item in zip(results, routed, strict=True)
        if outcome is Outcome.MUTED
        and reason.startswith("silence:")
        and item.alert.status is AlertStatus.RESOLVED
    }
    if resolved_silences:
        # "Expire when its alerts resolve": the silence ends with the first resolve it muted.
        await run_in_threadpool(_expire_resolved, services, resolved_silences, at)
    # Counted per webhook, not per alert: label lookups are a visible cost at 20 alerts a post.
    metrics.ALERTS_RECEIVED.labels(name, "firing").inc(firing)
    metrics.ALERTS_RECEIVED.labels(name, "resolved").inc(len(alerts) - firing)
    for outcome, count in receipt.outcomes.items():
        metrics.DEDUPE_OUTCOMES.labels(outcome.value).inc(count)
    if receipt.opened:
        log.info("incidents_opened", integration=name, incidents=receipt.opened)
    return JSONResponse(receipt.as_json(), status_code=202)


def _expire_resolved(services: Services, silence_ids: set[str], at: datetime) -> None:
    for silence_id in silence_ids:
        if services.silences.expire_resolved(silence_id, at) is not None:
            services.silence_cache.invalidate()


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it exceeds `limit` (checked before and while reading)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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

    app = Starlette(
        routes=[
            Route("/api/v1/webhooks/{integration}", receive_webhook, methods=["POST", "PUT"]),
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
    app.state.services = services
    return app
