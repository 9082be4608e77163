"""`POST /api/v1/webhooks/{integration}`: the receiver's hot path, as a bare ASGI handler.

It authenticates, parses, evaluates the rules, runs the one atomic Redis step and answers with a
receipt; no outbound HTTP and no job creation (workers do everything else). Every answer is JSON:
202 with the receipt, or {"error": ...} with 400, 401, 404, 405, 413, 415 or 503.

`ReceiverApp` (router/app.py) hands this path over before Starlette's middleware and routing:
for a one-alert webhook their request, response and middleware objects cost about a third of
what the whole pipeline did (measured with `make bench`), and this path needs none of them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from router import metrics
from router.alert import AlertStatus
from router.auth import check_headers, check_signature
from router.bodies import BodyError, read_body
from router.dedupe import Outcome, Receipt, Routed, summarize
from router.errors import AuthError, PayloadError
from router.sources import SourceKind, parse

if TYPE_CHECKING:
    from router.app import Services

log = structlog.get_logger(__name__)

PATH_PREFIX = "/api/v1/webhooks/"
METHODS = ("POST", "PUT")
# Alertmanager retries 5xx only (not 429), so "try again later" must be a 503.
RETRY_AFTER_SECONDS = "5"


class _AnswerError(Exception):
    """An error answer decided before the receipt: status, message and extra body fields."""

    def __init__(
        self, status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}
        self.headers = headers or {}


async def handle(services: Services, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one webhook request for the integration called `name`."""
    started = time.perf_counter()
    body: dict[str, Any] = {}
    headers: dict[str, str] = {}
    try:
        status, body = 202, await _accept(services, name, scope, receive)
    except _AnswerError as answer:
        status, body, headers = answer.status, answer.body, dict(answer.headers)
    except ClientDisconnect:
        # Nobody left to answer; counted as nginx does (499), so a flaky sender shows up.
        log.info("webhook_sender_disconnected", integration=name)
        status = 499
    except Exception:
        # What Starlette's ServerErrorMiddleware would do: log it, answer 500 (the sender retries).
        log.exception("webhook_failed", integration=name)
        status, body = 500, {"error": "internal error"}
    if status != 499:
        await _respond(send, status, body, headers)
    known = name if services.ruleset.integration(name) else "(unknown)"
    _requests_counter(known, status).inc()
    metrics.WEBHOOK_LATENCY.observe(time.perf_counter() - started)


async def _accept(services: Services, name: str, scope: Scope, receive: Receive) -> dict[str, Any]:
    if scope["method"] not in METHODS:
        raise _AnswerError(405, "use POST or PUT", {"Allow": ", ".join(METHODS)})
    ruleset = services.ruleset  # read once: a reload swaps it whole
    integration = ruleset.integration(name)
    if integration is None:
        raise _AnswerError(
            404, f"unknown integration {name!r}; integrations are declared in rules/"
        )
    headers = _headers(scope)
    try:
        check_headers(integration, headers, ruleset.secret)
    except AuthError as exc:
        raise _AnswerError(401, str(exc), {"WWW-Authenticate": "Bearer"}) from None
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise _AnswerError(
            415, f"expected Content-Type: application/json, got {content_type or 'none'!r}"
        )
    limit = services.settings.max_body_bytes
    try:
        body = await read_body(receive, headers.get("content-length", ""), limit)
    except BodyError as exc:
        raise _AnswerError(exc.status, exc.message) from None
    now = time.time()
    at = datetime.fromtimestamp(now, UTC)  # the request's one clock reading
    try:
        check_signature(integration, headers, body, ruleset.secret, now=now)
    except AuthError as exc:
        raise _AnswerError(401, str(exc)) from None
    try:
        alerts = parse(SourceKind(integration.type), body, integration=name, now=at)
    except PayloadError as exc:
        raise _AnswerError(400, exc.message, field=exc.field) from None

    try:
        silences = await services.silence_cache.get_async(services.redis, at)
    except RedisError as exc:
        raise _unavailable(name, exc) from None
    receipt = Receipt(alerts=len(alerts))
    routed: list[Routed] = []
    firing = 0
    # Usually nothing is silenced and no window is defined: then no alert needs the question.
    may_mute = bool(silences) or len(ruleset.windows) > 0
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
        mute = services.mutes.reason(alert, at, silences) if may_mute else ""
        for decision in evaluation.decisions:
            routed.append(
                Routed(
                    alert, decision, mute, evaluation.inhibit_sources, evaluation.inhibit_targets
                )
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
        raise _unavailable(name, exc) from None
    summarize(receipt, results)
    resolved_silences = _resolved_silences(results, routed) if silences else set()
    if resolved_silences:
        # "Expire when its alerts resolve": the silence ends with the first resolve it muted.
        await run_in_threadpool(_expire_resolved, services, resolved_silences, at)
    # Counted per webhook, not per alert: label lookups are a visible cost at 20 alerts a post.
    # Both series exist from the first webhook (looked up once); an increment costs a lock.
    firing_counter, resolved_counter = (
        _alerts_counter(name, "firing"),
        _alerts_counter(name, "resolved"),
    )
    if firing:
        firing_counter.inc(firing)
    if firing < len(alerts):
        resolved_counter.inc(len(alerts) - firing)
    for outcome, count in receipt.outcomes.items():
        _outcomes_counter(outcome).inc(count)
    if receipt.opened:
        # Debug, like an access log: in a storm of one-alert webhooks this line was a tenth of
        # the receiver's work. Each opening is logged once at info by the worker that applies
        # it (`events_applied`), and counted in sevrouter_incidents_opened.
        log.debug("incidents_opened", integration=name, incidents=receipt.opened)
    return receipt.as_json()


def _resolved_silences(results: list[tuple[Outcome, str]], routed: list[Routed]) -> set[str]:
    """The silences that muted an alert which has now resolved."""
    return {
        reason.removeprefix("silence:")
        for (outcome, reason), item in zip(results, routed, strict=True)
        if outcome is Outcome.MUTED
        and reason.startswith("silence:")
        and item.alert.status is AlertStatus.RESOLVED
    }


def _expire_resolved(services: Services, silence_ids: set[str], at: datetime) -> None:
    for silence_id in silence_ids:
        if services.silences.expire_resolved(silence_id, at) is not None:
            services.silence_cache.invalidate()


def _unavailable(integration: str, exc: RedisError) -> _AnswerError:
    # Alertmanager retries 5xx only: a 503 keeps the alert with the sender until Redis is back.
    log.warning("redis_unavailable", integration=integration, error=type(exc).__name__)
    return _AnswerError(
        503, "storage unavailable, retry later", {"Retry-After": RETRY_AFTER_SECONDS}
    )


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lowercase name (ASGI servers lowercase them); the first of a
    repeated header wins, as with Starlette's `Headers.get`."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


async def _respond(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = msgspec.json.encode(body)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


# Labelled metric children, looked up once: `labels()` takes a lock and builds a key each call.
# Integration names come from the rules (unknown ones are counted as "(unknown)"), so these stay
# small.
@functools.cache
def _requests_counter(integration: str, status: int) -> Any:
    return metrics.WEBHOOK_REQUESTS.labels(integration, str(status))


@functools.cache
def _alerts_counter(integration: str, status: str) -> Any:
    return metrics.ALERTS_RECEIVED.labels(integration, status)


@functools.cache
def _outcomes_counter(outcome: Outcome) -> Any:
    return metrics.DEDUPE_OUTCOMES.labels(outcome.value)
